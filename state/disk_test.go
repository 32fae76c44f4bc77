package state

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// TestDiskNearlyFullAtOpen opens a store on the real file system asking
// for more free space than any disk has: Open refuses with ErrDiskFull,
// naming the directory, and creates no database there.
func TestDiskNearlyFullAtOpen(t *testing.T) {
	dir := t.TempDir() + "/state"
	s, err := Open(dir, Options{MinFreeBytes: 1 << 62})
	if err == nil {
		s.Close()
		t.Fatal("Open succeeded with less free space than MinFreeBytes")
	}
	if !errors.Is(err, ErrDiskFull) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("Open: %v, want ErrDiskFull naming %s", err, dir)
	}
	if names, _ := vfs.Default.List(dir); len(names) != 0 {
		t.Fatalf("Open refused but wrote %v", names)
	}

	// The real free space is read: the default minimum opens, and Stats
	// reports it.
	s, err = Open(dir, Options{})
	if err != nil {
		t.Fatalf("Open with the default minimum: %v", err)
	}
	defer s.Close()
	if free := s.Stats().DiskFreeBytes; free <= 0 {
		t.Fatalf("Stats().DiskFreeBytes = %d on a real file system", free)
	}
}

// TestDiskNearlyFullWhileRunning runs a store on a file system whose free
// space the test sets (Pebble's MemFS reports what it is told): it works
// with room to spare, fails within a few checks once the free space drops
// below the minimum (ErrFailed wrapping ErrDiskFull), refuses every read
// and write after, closes cleanly, and cannot be opened again until there
// is a quarter more than the minimum; then it opens with every commit made
// before.
func TestDiskNearlyFullWhileRunning(t *testing.T) {
	fs := vfs.NewMem()
	room := vfs.DiskUsage{AvailBytes: 10 << 30, TotalBytes: 20 << 30, UsedBytes: 10 << 30}
	fs.TestingSetDiskUsage(room)
	o := Options{FS: fs, MinFreeBytes: 512 << 20}
	s, err := Open("db", o)
	if err != nil {
		t.Fatal(err)
	}
	commit(t, s, 0, 0, ev("sent", T, wamid("wamid.before")))
	if got := s.Stats().DiskFreeBytes; got != 10<<30 {
		t.Fatalf("Stats().DiskFreeBytes = %d, want %d", got, 10<<30)
	}

	fs.TestingSetDiskUsage(vfs.DiskUsage{AvailBytes: 100 << 20, TotalBytes: 20 << 30, UsedBytes: 20<<30 - 100<<20})
	deadline := time.Now().Add(10 * diskCheckInterval)
	for s.Err() == nil {
		if time.Now().After(deadline) {
			t.Fatalf("the store did not fail within %s of the disk going below its minimum", 10*diskCheckInterval)
		}
		time.Sleep(diskCheckInterval / 10)
	}
	b := s.NewBatch(0)
	e := ev("delivered", T+1, wamid("wamid.before"))
	_, _, err = b.Apply(&e, 1)
	b.Close()
	checkFailed(t, s, err, ErrDiskFull)
	if err := s.Close(); err != nil {
		t.Fatalf("Close of a store stopped for disk space: %v", err)
	}

	if _, err := Open("db", o); !errors.Is(err, ErrDiskFull) {
		t.Fatalf("Open on a nearly full disk: %v, want ErrDiskFull", err)
	}
	// Just above the minimum is not enough to start: the store would stop
	// again at once. A quarter more is.
	fs.TestingSetDiskUsage(vfs.DiskUsage{AvailBytes: 600 << 20, TotalBytes: 20 << 30, UsedBytes: 20<<30 - 600<<20})
	if _, err := Open("db", o); !errors.Is(err, ErrDiskFull) || !strings.Contains(err.Error(), "needs to open") {
		t.Fatalf("Open with 600 MiB free and a 512 MiB minimum: %v, want ErrDiskFull", err)
	}
	fs.TestingSetDiskUsage(vfs.DiskUsage{AvailBytes: 640 << 20, TotalBytes: 20 << 30, UsedBytes: 20<<30 - 640<<20})
	s, err = Open("db", o)
	if err != nil {
		t.Fatalf("Open with 640 MiB free and a 512 MiB minimum: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	fs.TestingSetDiskUsage(room)
	s, err = Open("db", o)
	if err != nil {
		t.Fatalf("Open once there is room: %v", err)
	}
	defer s.Close()
	if m, ok := mustGet(t, s, 0, "wamid.before"); !ok || m.Status(s.Policy()).String() != "sent" {
		t.Fatalf("after reopening: %v %v, want the sent state committed before", m.Status(s.Policy()), ok)
	}
}

// TestDiskCheckOff: a negative MinFreeBytes opens and runs on a disk below
// any minimum, and a file system that cannot report its free space is not
// checked (Stats says -1).
func TestDiskCheckOff(t *testing.T) {
	fs := vfs.NewMem()
	fs.TestingSetDiskUsage(vfs.DiskUsage{AvailBytes: 1, TotalBytes: 1 << 30, UsedBytes: 1<<30 - 1})
	s, err := Open("db", Options{FS: fs, MinFreeBytes: -1})
	if err != nil {
		t.Fatalf("Open with the check off: %v", err)
	}
	commit(t, s, 0, 0, ev("sent", T, wamid("wamid.off")))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, _ = openMem(t, Options{})
	if free := s.Stats().DiskFreeBytes; free != -1 {
		t.Fatalf("Stats().DiskFreeBytes = %d on a file system that cannot tell, want -1", free)
	}
}
