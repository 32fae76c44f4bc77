package state

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// diskFull returns an injector, off until switched on, that fails with
// ENOSPC the writes and syncs of the files for which match holds, as a full
// disk does. Creating, renaming and removing files and syncing directories
// still work, as they mostly do on a full disk.
func diskFull(match func(path string) bool) *errorfs.Toggle {
	return &errorfs.Toggle{Injector: errorfs.InjectorFunc(func(op errorfs.Op) error {
		switch op.Kind {
		case errorfs.OpFileWrite, errorfs.OpFileWriteAt, errorfs.OpFilePreallocate,
			errorfs.OpFileSync, errorfs.OpFileSyncData, errorfs.OpFileSyncTo, errorfs.OpFileFlush:
			if match(op.Path) {
				return &os.PathError{Op: "write", Path: op.Path, Err: syscall.ENOSPC}
			}
		}
		return nil
	})}
}

// fullFS is an errorfs.FS whose recycled WAL files fail too: errorfs's
// ReuseForWrite hands out the file unwrapped. Here it renames and creates
// the file afresh (a recycled WAL may start empty), through the injector.
type fullFS struct{ *errorfs.FS }

func (f fullFS) ReuseForWrite(oldname, newname string, category vfs.DiskWriteCategory) (vfs.File, error) {
	if err := f.Rename(oldname, newname); err != nil {
		return nil, err
	}
	return f.Create(newname, category)
}

// checkFailed checks that err is the store's failure on a full disk, and
// that the store now refuses every read and write with it.
func checkFailed(t *testing.T, s *Store, err error, want error) {
	t.Helper()
	if !errors.Is(err, ErrFailed) || !errors.Is(err, want) {
		t.Fatalf("error %v: want ErrFailed and %v", err, want)
	}
	if !errors.Is(s.Err(), ErrFailed) {
		t.Fatalf("Err() = %v after %v", s.Err(), err)
	}
	if _, _, err := s.Get(0, "wamid.any"); !errors.Is(err, ErrFailed) {
		t.Errorf("Get on a failed store: %v, want ErrFailed", err)
	}
	if _, _, err := s.NextOffset(0); !errors.Is(err, ErrFailed) {
		t.Errorf("NextOffset on a failed store: %v, want ErrFailed", err)
	}
	if err := s.DropPartition(0); !errors.Is(err, ErrFailed) {
		t.Errorf("DropPartition on a failed store: %v, want ErrFailed", err)
	}
	b := s.NewBatch(0)
	defer b.Close()
	ev := randomEvents(rand.New(rand.NewPCG(1, 2)))[0]
	ev.WAMID = "wamid.any"
	if _, _, err := b.Apply(&ev, 0); !errors.Is(err, ErrFailed) {
		t.Errorf("Batch.Apply on a failed store: %v, want ErrFailed", err)
	}
}

// TestFullDiskLogWrite fills the disk under the WAL: the next commit fails
// (Pebble's "fatal commit error", which it hands to Logger.Fatalf) with an
// error that wraps ENOSPC, without a panic or an exit; the store refuses
// everything after it, although Pebble applied the failed batch to its
// memtable. Once space returns the store reopens at the last commit that
// succeeded, consistent, and resuming from there reaches the full fold.
func TestFullDiskLogWrite(t *testing.T) {
	// Default memtables: no WAL rotation during the test. A full disk met
	// by a rotation makes Pebble panic with its mutex unlocked, a Go fatal
	// error nothing can recover (see the report on storage faults).
	testFullDisk(t, func(p string) bool { return strings.HasSuffix(p, ".log") }, 0)
}

// TestFullDiskFlush fills the disk for new sstables only, as when the WAL
// is preallocated: Pebble's flushes fail (BackgroundError) and it retries
// them for ever, stalling writers once the memtables are full. The stalled
// commit returns the failure instead of waiting for space.
func TestFullDiskFlush(t *testing.T) {
	testFullDisk(t, func(p string) bool { return strings.HasSuffix(p, ".sst") }, 64<<10)
}

func testFullDisk(t *testing.T, match func(string) bool, memTable uint64) {
	seed := testSeed(t)
	r := rand.New(rand.NewPCG(seed, seed+1))
	o := Options{HistoryLimit: 4, MemTableSize: memTable}
	in := makeCrashInput(r, 3000, o.Policy)

	full := diskFull(match)
	mem := vfs.NewMem()
	o.FS = fullFS{errorfs.Wrap(mem, full)}
	s, err := Open("db", o)
	if err != nil {
		t.Fatal(err)
	}
	committed, err := in.writeUntil(s, len(in.ends)/3, full.On)
	if err == nil {
		t.Fatal("every batch committed on a full disk")
	}
	t.Logf("%d of %d batches committed; then %v", committed, len(in.ends), err)
	checkFailed(t, s, err, syscall.ENOSPC)
	if !strings.Contains(err.Error(), "no space left on device") {
		t.Errorf("error %q does not say the disk is full", err)
	}

	full.Off() // space returns; a commit Pebble stalled may now finish
	if err := s.Close(); err != nil {
		t.Logf("close of the failed store: %v", err)
	}
	s, k := in.check(t, o.FS, o, committed)
	if err := in.write(s, k, nil); err != nil {
		t.Fatalf("resume after space returned: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, _ = in.check(t, o.FS, o, len(in.ends))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// writeUntil writes the input batch by batch as write does, calling flip
// once at batches are committed, until a commit fails. It returns the
// number of batches committed.
func (in *crashInput) writeUntil(s *Store, at int, flip func()) (int, error) {
	b := s.NewBatch(0)
	defer b.Close()
	for k := range in.ends {
		if k == at {
			flip()
		}
		start := int64(0)
		if k > 0 {
			start = in.ends[k-1]
		}
		for off := start; off < in.ends[k]; off++ {
			if _, _, err := b.Apply(&in.events[off], off); err != nil {
				return k, err
			}
		}
		b.SetNextOffset(in.ends[k])
		if err := b.Commit(); err != nil {
			return k, err
		}
	}
	return len(in.ends), nil
}

// corruptStore writes the input into a store on a fresh MemFS with small
// memtables, so that it lands in several sstables, and closes it.
func corruptStore(t *testing.T) (*crashInput, vfs.FS, Options) {
	t.Helper()
	seed := testSeed(t)
	r := rand.New(rand.NewPCG(seed, seed+1))
	o := Options{HistoryLimit: 4, MemTableSize: 64 << 10, FS: vfs.NewMem()}
	in := makeCrashInput(r, 3000, o.Policy)
	s, err := Open("db", o)
	if err != nil {
		t.Fatal(err)
	}
	if err := in.write(s, 0, nil); err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(s.db.Flush(), s.Close()); err != nil { // every state in an sstable
		t.Fatal(err)
	}
	return in, o.FS, o
}

// files returns the store's files whose names contain part.
func files(t *testing.T, fs vfs.FS, part string) []string {
	t.Helper()
	names, err := fs.List("db")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, n := range names {
		if strings.Contains(n, part) {
			out = append(out, fs.PathJoin("db", n))
		}
	}
	if len(out) == 0 {
		t.Fatalf("no %s file in %v", part, names)
	}
	return out
}

// rewrite replaces a file's contents with edit's result.
func rewrite(t *testing.T, fs vfs.FS, name string, edit func([]byte) []byte) {
	t.Helper()
	f, err := fs.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, st.Size())
	if n, err := f.ReadAt(b, 0); n < len(b) {
		t.Fatal(err)
	}
	f.Close()
	w, err := fs.Create(name, vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(edit(b)); err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(w.Sync(), w.Close()); err != nil {
		t.Fatal(err)
	}
}

// TestCorruptTable flips bytes all over the data blocks of every sstable:
// Pebble's block checksums catch it on the Get that reads the block, which
// returns an error (no panic: Pebble's default for corruption is
// Logger.Fatalf), and the store refuses every read after it. No Get ever
// answers with a state other than the one written.
func TestCorruptTable(t *testing.T) {
	in, fs, o := corruptStore(t)
	for _, name := range files(t, fs, ".sst") {
		rewrite(t, fs, name, func(b []byte) []byte {
			for i := 16; i < len(b)/2; i += 97 { // data blocks come first
				b[i] ^= 0xff
			}
			return b
		})
	}
	s, err := Open("db", o)
	if err != nil {
		t.Logf("open of the corrupt store: %v", err) // a clear error is as good
		if !errors.Is(err, ErrFailed) && !pebble.IsCorruptionError(err) {
			t.Fatalf("open: %v: neither ErrFailed nor a corruption", err)
		}
		return
	}
	defer s.Close()
	var first error
	for _, id := range in.wamids {
		m, found, err := s.Get(0, id)
		if err != nil {
			first = err
			break
		}
		if want := in.states[len(in.states)-1][id]; found && string(encode(&m)) != string(want) {
			t.Fatalf("%s: a corrupt store answered %x, want %x", id, encode(&m), want)
		}
	}
	if first == nil {
		t.Fatal("every Get answered from a corrupt store")
	}
	t.Logf("first error: %v", first)
	if !pebble.IsCorruptionError(first) && !errors.Is(first, ErrCorrupt) {
		t.Errorf("error %v is not a corruption", first)
	}
	checkFailed(t, s, first, ErrFailed)
}

// TestCorruptManifest truncates the MANIFEST: Open fails with an error
// naming it, rather than opening an empty or partial store.
func TestCorruptManifest(t *testing.T) {
	_, fs, o := corruptStore(t)
	for _, name := range files(t, fs, "MANIFEST") {
		rewrite(t, fs, name, func(b []byte) []byte { return b[:len(b)/2] })
	}
	s, err := Open("db", o)
	if err == nil {
		s.Close()
		t.Fatal("opened a store with a truncated MANIFEST")
	}
	t.Logf("open: %v", err)
	if !strings.Contains(err.Error(), "state: open db") {
		t.Errorf("error %q does not say which store", err)
	}
}

// TestTruncatedLog cuts the WAL in the middle of a record, as a crash of
// the machine does: Pebble treats it as the log's end, and the store opens
// at an earlier commit, consistent (next offset and states together), so
// the processor catches up from there.
func TestTruncatedLog(t *testing.T) {
	in, fs, o := corruptStore(t)
	logs := files(t, fs, ".log")
	rewrite(t, fs, logs[len(logs)-1], func(b []byte) []byte { return b[:len(b)*2/3] })
	s, k := in.check(t, fs, o, 0)
	t.Logf("opened at batch %d of %d", k, len(in.ends))
	if err := in.write(s, k, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, _ = in.check(t, fs, o, len(in.ends))
	s.Close()
}

// TestCorruptRecordFailsStore writes garbage under a message's record key,
// its index key and the partition's offset key, bypassing the store: reading either fails with
// ErrCorrupt and fails the store, so nothing more is read or written.
func TestCorruptRecordFailsStore(t *testing.T) {
	for _, tc := range []struct {
		name string
		key  func(db *pebble.DB, in *crashInput) []byte
		read func(s *Store, in *crashInput) error
	}{
		{"message", func(db *pebble.DB, in *crashInput) []byte {
			return recordKeyOf(t, db, 0, in.wamids[0])
		}, func(s *Store, in *crashInput) error { _, _, err := s.Get(0, in.wamids[0]); return err }},
		{"index", func(db *pebble.DB, in *crashInput) []byte {
			key, _ := indexKeyOf(t, db, 0, in.wamids[0])
			return key
		}, func(s *Store, in *crashInput) error { _, _, err := s.Get(0, in.wamids[0]); return err }},
		{"offset", func(*pebble.DB, *crashInput) []byte { return appendOffsetKey(nil, 0) },
			func(s *Store, _ *crashInput) error { _, _, err := s.NextOffset(0); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in, fs, o := corruptStore(t)
			db, err := pebble.Open("db", &pebble.Options{FS: fs, Logger: pebbleLogger{o.withDefaults().Logger}})
			if err != nil {
				t.Fatal(err)
			}
			if err := errors.Join(db.Set(tc.key(db, in), []byte{0xff, 0xff, 0xff}, pebble.Sync), db.Close()); err != nil {
				t.Fatal(err)
			}
			s, err := Open("db", o)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			err = tc.read(s, in)
			checkFailed(t, s, err, ErrCorrupt)
		})
	}
}

// TestDropCorruptPartition drops a partition whose sstables hold corrupt
// data blocks: DropPartition must not read them (which would fail the
// store), only delete the range, and the store stays healthy.
func TestDropCorruptPartition(t *testing.T) {
	o := Options{FS: vfs.NewMem()}
	fs := o.FS
	s, err := Open("db", o)
	if err != nil {
		t.Fatal(err)
	}
	// The states of partition 0 in tables of their own, ingested by a
	// Loader: the format key, read by Open, stays readable.
	loadStates(t, s, 0, 3000, "wamid.", "read")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open("db", o); err != nil {
		t.Fatal(err)
	}
	levels, err := s.db.SSTables()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tables := range levels {
		for _, tb := range tables {
			if tb.Largest.UserKey[0] != 0xff {
				names = append(names, fs.PathJoin("db", fmt.Sprintf("%s.sst", tb.FileNum)))
			}
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if len(names) == 0 {
		t.Fatal("no table holds partition 0 alone; the test needs one")
	}
	for _, name := range names {
		rewrite(t, fs, name, func(b []byte) []byte {
			for i := 16; i < len(b)/2; i += 97 { // data blocks come first
				b[i] ^= 0xff
			}
			return b
		})
	}
	if s, err = Open("db", o); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.DropPartition(0); err != nil {
		t.Fatalf("DropPartition of a corrupt partition: %v", err)
	}
	if err := s.Err(); err != nil {
		t.Fatalf("the store failed: %v", err)
	}
}
