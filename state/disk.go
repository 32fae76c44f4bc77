package state

import (
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// DefaultMinFreeBytes is the free space a store keeps on its file system
// unless Options.MinFreeBytes says otherwise: two memtables' worth of log
// and flush output several times over.
const DefaultMinFreeBytes int64 = 256 << 20

// diskCheckInterval is how often a running store reads its file system's
// free space.
const diskCheckInterval = time.Second

// diskGuard stops the store while the disk still has room. Pebble cannot
// stop cleanly on a full disk: a failed log rotation is a fatal error of the
// process, and a restart meets the same full disk. Below MinFreeBytes the
// store fails instead (ErrFailed wrapping ErrDiskFull), every write is
// refused, and Open refuses until there is a quarter more than the minimum;
// Kafka holds what was not written, so a restart resumes or restores.
//
// The check reads what the file system reports (statfs): a file system
// that cannot tell (vfs.ErrUnsupported, as an in-memory one) is not
// checked.
type diskGuard struct {
	fs   vfs.FS
	dir  string
	min  int64 // 0: no check
	stop chan struct{}
	done chan struct{}
}

func newDiskGuard(fs vfs.FS, dir string, min int64) *diskGuard {
	return &diskGuard{fs: fs, dir: dir, min: max(min, 0)}
}

// read returns the free space, or -1 if the file system cannot tell.
func (g *diskGuard) read() int64 {
	free, err := g.free()
	if err != nil {
		return -1
	}
	return free
}

// free returns the bytes available to this process on the store's file
// system.
func (g *diskGuard) free() (int64, error) {
	u, err := g.fs.GetDiskUsage(g.dir)
	if err != nil {
		return 0, err
	}
	return int64(min(u.AvailBytes, 1<<62)), nil
}

// check reads the free space and returns an error wrapping ErrDiskFull if
// it is below the minimum, or, at Open, below a quarter more: a store
// opened just above the minimum would stop again once Pebble replayed its
// log. ok is false when the file system cannot tell, or nothing is checked.
func (g *diskGuard) check(atOpen bool) (ok bool, err error) {
	if g.min == 0 {
		return false, nil
	}
	free, err := g.free()
	if errors.Is(err, vfs.ErrUnsupported) {
		return false, nil
	}
	if err != nil {
		return true, fmt.Errorf("state: free space of %s: %w", g.dir, err)
	}
	switch {
	case atOpen && free < g.min+g.min/4:
		return true, fmt.Errorf("%w: %s has %d bytes free, below the %d the store needs to open (the %d it keeps, and a quarter more); free some space",
			ErrDiskFull, g.dir, free, g.min+g.min/4, g.min)
	case free < g.min:
		return true, fmt.Errorf("%w: %s has %d bytes free, below the %d the store keeps; free some space, then restart",
			ErrDiskFull, g.dir, free, g.min)
	}
	return true, nil
}

// run checks the free space every diskCheckInterval until stopped or the
// store failed, and fails the store once it is below the minimum. A check
// that cannot read the free space is logged and tried again.
func (g *diskGuard) run(s *Store) {
	defer close(g.done)
	t := time.NewTicker(diskCheckInterval)
	defer t.Stop()
	warned := false
	for {
		select {
		case <-g.stop:
			return
		case <-s.fault.done:
			return
		case <-t.C:
		}
		_, err := g.check(false)
		switch {
		case errors.Is(err, ErrDiskFull):
			s.fail(err)
			return
		case err != nil && !warned:
			s.opts.Logger.Warn("state store cannot read its free space", "err", err)
			warned = true
		case err == nil && warned:
			s.opts.Logger.Info("state store reads its free space again")
			warned = false
		}
	}
}

// start runs the guard in its own goroutine, if there is anything to check.
func (g *diskGuard) start(s *Store, checkable bool) {
	if g.min == 0 || !checkable {
		return
	}
	g.stop, g.done = make(chan struct{}), make(chan struct{})
	go g.run(s)
}

// close stops the guard's goroutine and waits for it.
func (g *diskGuard) close() {
	if g.stop != nil {
		close(g.stop)
		<-g.done
	}
}
