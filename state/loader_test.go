package state

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// TestLoaderMatchesRestore loads the same states, in a random order with
// repeats of which some are older states of the message, into one partition
// with a Loader and into another with a load batch's Restore, and checks
// that every message reads back the same, the next offset too. Each size
// of run is tried: one that never spills, and ones that spill every few
// records (repeats then meet across runs as well as within one).
func TestLoaderMatchesRestore(t *testing.T) {
	for _, c := range []struct {
		runBytes, chunkBytes, tableBytes, mergeRuns int
	}{
		{runBytes: 0},
		{runBytes: 4 << 10},
		{runBytes: 256 << 10},
		// Records larger than a chunk, many tables, merges in passes.
		{runBytes: 4 << 10, chunkBytes: 64, tableBytes: 16 << 10, mergeRuns: 3},
	} {
		runBytes := c.runBytes
		t.Run(fmt.Sprintf("%+v", c), func(t *testing.T) {
			seed := testSeed(t)
			r := rand.New(rand.NewPCG(seed, seed+3))
			s, _ := openMem(t, Options{Policy: Policy(r.IntN(2)), LoadRunBytes: runBytes})

			ids := make([]string, 3_000)
			for i := range ids {
				ids[i] = fmt.Sprintf("wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQz%06d", i)
			}
			l, err := s.NewLoader(1, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			if c.chunkBytes > 0 {
				l.chunkBytes, l.tableBytes, l.mergeRuns = c.chunkBytes, c.tableBytes, c.mergeRuns
			}
			b, err := s.NewLoadBatch(2, 10)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()

			for range 9_000 {
				id := ids[r.IntN(len(ids))]
				evs := randomEvents(r)
				for i := range evs {
					evs[i].WAMID = id
				}
				// An earlier state of the same fold, as the current topic
				// holds before compaction, in some of the adds.
				m, _ := fold(t, s.Policy(), evs[:1+r.IntN(len(evs))]...)
				if err := errors.Join(l.Add(&m), b.Restore(&m)); err != nil {
					t.Fatal(err)
				}
			}
			if l.Loaded() != 9_000 {
				t.Fatalf("Loaded %d, want 9000", l.Loaded())
			}
			l.SetNextOffset(77)
			b.SetNextOffset(77)
			if runBytes > 0 && len(l.runs) < 2 {
				t.Fatalf("%d runs spilled; the test should spill several", len(l.runs))
			}
			if err := errors.Join(l.Finish(t.Context()), b.Commit()); err != nil {
				t.Fatal(err)
			}
			if c.tableBytes > 0 {
				if tables := s.db.Metrics().Levels[6].TablesCount; tables < 2 {
					t.Fatalf("%d tables ingested; the test should write several", tables)
				}
			}

			n := 0
			for _, id := range ids {
				m1, ok1 := mustGet(t, s, 1, id)
				m2, ok2 := mustGet(t, s, 2, id)
				if ok1 != ok2 || !bytes.Equal(encode(&m1), encode(&m2)) {
					t.Fatalf("%s: loader %t %x, restore %t %x", id, ok1, encode(&m1), ok2, encode(&m2))
				}
				if ok1 {
					n++
				}
			}
			if n < len(ids)*9/10 {
				t.Fatalf("only %d of %d messages loaded", n, len(ids))
			}
			for _, p := range []int32{1, 2} {
				off, ok, err := s.NextOffset(p)
				if err != nil || !ok || off != 77 {
					t.Fatalf("partition %d next offset %d, %t, %v; want 77", p, off, ok, err)
				}
			}
			if left, _ := s.fs.List(filepath.Join("db", loadDir)); len(left) != 0 {
				t.Fatalf("spill files left after Finish: %v", left)
			}
		})
	}
}

// TestLoaderKnowsWhatItLoaded checks that batches after a load find the
// loaded messages (the filter of known messages holds them) and skip the
// lookups of others.
func TestLoaderKnowsWhatItLoaded(t *testing.T) {
	s, _ := openMem(t, Options{LoadRunBytes: 1 << 10})
	loadStates(t, s, 0, 200, "wamid.", "delivered")
	b := s.NewBatch(0)
	defer b.Close()
	if b.known.f == nil {
		t.Fatal("a loaded partition has no filter of known messages")
	}
	// A loaded message folds onto its loaded state: an earlier sent
	// fills in the skipped step and the status stays delivered (a
	// message the batch did not find would now be sent).
	e := ev("sent", T-5, wamid("wamid.7"))
	out, m, err := b.Apply(&e, 0)
	if err != nil {
		t.Fatal(err)
	}
	if out != Filled || m.Status(s.Policy()) != Delivered {
		t.Fatalf("sent onto a loaded delivered message: %v, status %s", out, m.Status(s.Policy()))
	}
}

// TestLoaderRefusesAndDiscards checks the partitions a Loader refuses, and
// that a Loader closed before Finish, or whose process died (its spill
// files left for Open), leaves the partition empty and no file behind.
func TestLoaderRefusesAndDiscards(t *testing.T) {
	s, fs := openMem(t, Options{LoadRunBytes: 1 << 10})
	commit(t, s, 3, 0, ev("sent", T, wamid("wamid.x")))
	if _, err := s.NewLoader(3, 0); !errors.Is(err, ErrNotEmpty) {
		t.Fatalf("NewLoader of a partition with state: %v, want ErrNotEmpty", err)
	}
	if _, err := s.NewLoader(-1, 0); !errors.Is(err, ErrInvalidPartition) {
		t.Fatalf("NewLoader(-1): %v, want ErrInvalidPartition", err)
	}

	l, err := s.NewLoader(4, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := addStates(l, s.Policy(), 100, "wamid.", "sent", T); err != nil {
		t.Fatal(err)
	}
	if len(l.runs) == 0 {
		t.Fatal("nothing spilled; the test should spill")
	}
	l.Close()
	if err := l.Finish(t.Context()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Finish after Close: %v, want ErrClosed", err)
	}
	if _, ok := mustGet(t, s, 4, "wamid.1"); ok {
		t.Fatal("a closed Loader wrote")
	}
	if left, _ := fs.List(filepath.Join("db", loadDir, "4")); len(left) != 0 {
		t.Fatalf("spill files left after Close: %v", left)
	}

	// A process that died mid-load: its spill files stay until Open.
	l, err = s.NewLoader(5, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := addStates(l, s.Policy(), 100, "wamid.", "sent", T); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if left, _ := fs.List(filepath.Join("db", loadDir, "5")); len(left) == 0 {
		t.Fatal("no spill files to clean up; the test should leave some")
	}
	s, _ = openMem(t, Options{FS: fs})
	if left, err := fs.List(filepath.Join("db", loadDir)); err == nil {
		t.Fatalf("Open left the spill directory: %v", left)
	}
	if _, ok := mustGet(t, s, 5, "wamid.1"); ok {
		t.Fatal("an unfinished load is visible")
	}
}

// TestLoaderIngestsIntoTheBottomLevel checks the point of the Loader: a
// partition loaded into a store that never held it is written once, into
// the bottom level, not into L0 for compactions to rewrite; and so is one
// dropped while empty. A partition that held keys is dropped by a range
// deletion, and its load then lands above it, still correct.
func TestLoaderIngestsIntoTheBottomLevel(t *testing.T) {
	s, _ := openMem(t, Options{})
	load := func(p int32) {
		t.Helper()
		if err := s.DropPartition(p); err != nil {
			t.Fatal(err)
		}
		loadStates(t, s, p, 500, fmt.Sprintf("wamid.%d.", p), "read")
	}
	load(0)
	load(1)
	m := s.db.Metrics()
	// Each load writes a table of records and one of index entries.
	if l0, l6 := m.Levels[0].TablesCount, m.Levels[6].TablesCount; l0 != 0 || l6 != 4 {
		t.Fatalf("after two loads: %d tables in L0, %d in L6; want 0 and 4", l0, l6)
	}

	commit(t, s, 2, 0, ev("sent", T, wamid("wamid.old")))
	load(2)
	if _, ok := mustGet(t, s, 2, "wamid.old"); ok {
		t.Fatal("a dropped message survived the load")
	}
	if got, ok := mustGet(t, s, 2, "wamid.2.9"); !ok || got.Status(s.Policy()) != Read {
		t.Fatalf("loaded message: %t %s", ok, got.Status(s.Policy()))
	}
}

// TestLoaderFullDisk fills the disk under a Loader's files, while it
// spills a run and while it writes its tables: Add or Finish fails with the
// disk's error, nothing of the load is visible, the store stays healthy
// (nothing reached Pebble), and a load once space returns completes.
func TestLoaderFullDisk(t *testing.T) {
	for _, runBytes := range []int{1 << 10, 0} {
		t.Run(fmt.Sprintf("run=%d", runBytes), func(t *testing.T) {
			full := diskFull(func(path string) bool { return strings.Contains(path, loadDir) })
			s, _ := openMem(t, Options{LoadRunBytes: runBytes, FS: errorfs.Wrap(vfs.NewMem(), full)})
			add := func(l *Loader) error {
				if err := addStates(l, s.Policy(), 200, "wamid.", "read", T); err != nil {
					return err
				}
				return l.Finish(t.Context())
			}
			l, err := s.NewLoader(0, 0)
			if err != nil {
				t.Fatal(err)
			}
			full.On()
			if err := add(l); !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("load on a full disk: %v, want ENOSPC", err)
			}
			full.Off()
			if err := s.Err(); err != nil {
				t.Fatalf("the store failed: %v", err)
			}
			if _, ok := mustGet(t, s, 0, "wamid.1"); ok {
				t.Fatal("a failed load is visible")
			}
			if l, err = s.NewLoader(0, 0); err != nil {
				t.Fatalf("NewLoader after a failed load: %v", err)
			}
			if err := add(l); err != nil {
				t.Fatalf("load once space returned: %v", err)
			}
			if _, ok := mustGet(t, s, 0, "wamid.199"); !ok {
				t.Fatal("the second load is not visible")
			}
		})
	}
}

// TestLoadersAtOnce runs a Loader for each of several partitions at the
// same time, as a restore does, and checks every partition's states.
func TestLoadersAtOnce(t *testing.T) {
	s, _ := openMem(t, Options{LoadRunBytes: 2 << 10})
	const parts, messages = 4, 300
	var wg sync.WaitGroup
	errs := make([]error, parts)
	for p := range int32(parts) {
		wg.Go(func() {
			l, err := s.NewLoader(p, 0)
			if err != nil {
				errs[p] = err
				return
			}
			if err := addStates(l, s.Policy(), messages, fmt.Sprintf("wamid.%d.", p), "read", T); err != nil {
				errs[p] = err
				return
			}
			l.SetNextOffset(int64(p))
			errs[p] = l.Finish(t.Context())
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	for p := range int32(parts) {
		for i := range messages {
			m, ok := mustGet(t, s, p, fmt.Sprintf("wamid.%d.%d", p, i))
			if !ok || m.Status(s.Policy()) != Read {
				t.Fatalf("partition %d message %d: %t %v", p, i, ok, m.Status(s.Policy()))
			}
		}
		if off, ok, err := s.NextOffset(p); err != nil || !ok || off != int64(p) {
			t.Fatalf("partition %d next offset %d, %t, %v", p, off, ok, err)
		}
	}
}

// TestLoaderCrash crashes a store (vfs.NewCrashableMem, unsynced data lost)
// at each point of a load: before Finish the partition is empty and the
// spill files are gone after Open; after Finish the states and the offset
// are both there; and states ingested without an offset (a crash between
// the two writes) are dropped and loaded again, as a restore does.
func TestLoaderCrash(t *testing.T) {
	mem := vfs.NewCrashableMem()
	o := Options{LoadRunBytes: 1 << 10, FS: crashFS{mem}}
	s, err := Open("db", o)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	load := func(p int32, finish bool, next int64) {
		t.Helper()
		l, err := s.NewLoader(p, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		if err := addStates(l, s.Policy(), 100, "wamid.", "delivered", T); err != nil {
			t.Fatal(err)
		}
		if next >= 0 {
			l.SetNextOffset(next)
		}
		if finish {
			if err := l.Finish(t.Context()); err != nil {
				t.Fatal(err)
			}
		}
	}
	reopen := func(fs *vfs.MemFS) *Store {
		t.Helper()
		o := o
		o.FS = crashFS{fs}
		s, err := Open("db", o)
		if err != nil {
			t.Fatalf("open after a crash: %v", err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}

	load(0, true, 7)  // complete
	load(1, true, -1) // states ingested, offset not written yet
	l, err := s.NewLoader(2, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := addStates(l, s.Policy(), 100, "wamid.", "sent", T); err != nil { // spilled runs, not finished
		t.Fatal(err)
	}
	c := reopen(mem.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 100, RNG: rand.New(rand.NewPCG(1, 2))}))

	if _, ok := mustGet(t, c, 0, "wamid.42"); !ok {
		t.Fatal("a finished load was lost in the crash")
	}
	if off, ok, err := c.NextOffset(0); err != nil || !ok || off != 7 {
		t.Fatalf("finished load's offset %d, %t, %v", off, ok, err)
	}
	if _, ok, _ := c.NextOffset(1); ok {
		t.Fatal("partition 1 has an offset it was never given")
	}
	if _, ok := mustGet(t, c, 2, "wamid.42"); ok {
		t.Fatal("an unfinished load is visible after the crash")
	}
	if left, err := c.fs.List(filepath.Join("db", loadDir)); err == nil {
		t.Fatalf("spill files survived Open: %v", left)
	}
	// A restore of partition 1 again: dropped (its states are there), then
	// loaded afresh.
	if err := c.DropPartition(1); err != nil {
		t.Fatal(err)
	}
	if _, ok := mustGet(t, c, 1, "wamid.42"); ok {
		t.Fatal("DropPartition left the states of a load without an offset")
	}
	s = c
	load(1, true, 9)
	if off, ok, err := c.NextOffset(1); err != nil || !ok || off != 9 {
		t.Fatalf("reloaded partition's offset %d, %t, %v", off, ok, err)
	}
}

// TestOpenInUseKeepsLoaderFiles opens a store's directory a second time
// while a Loader of the first has spilled runs: the second Open is refused
// (Pebble's lock) and must not have removed them.
func TestOpenInUseKeepsLoaderFiles(t *testing.T) {
	s, err := Open(t.TempDir(), Options{LoadRunBytes: 1 << 10, MinFreeBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	l, err := s.NewLoader(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := addStates(l, s.Policy(), 100, "wamid.", "sent", T); err != nil {
		t.Fatal(err)
	}
	if len(l.runs) == 0 {
		t.Fatal("nothing spilled; the test should spill")
	}
	if _, err := Open(s.dir, Options{MinFreeBytes: -1}); err == nil {
		t.Fatal("a second Open of a store in use succeeded")
	}
	if err := l.Finish(t.Context()); err != nil {
		t.Fatalf("Finish after a refused Open: %v", err)
	}
	if _, ok := mustGet(t, s, 0, "wamid.42"); !ok {
		t.Fatal("the load is not visible")
	}
}

// loadStates loads the states of n messages (as addStates makes them) into
// the empty partition p of s with a Loader.
func loadStates(t testing.TB, s *Store, p int32, n int, prefix, status string) {
	t.Helper()
	l, err := s.NewLoader(p, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := addStates(l, s.Policy(), n, prefix, status, T); err != nil {
		t.Fatal(err)
	}
	if err := l.Finish(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// addStates adds to l the states of n messages, wamid prefix followed by
// 0 to n-1, each folded from one event of status at ts.
func addStates(l *Loader, p Policy, n int, prefix, status string, ts int64) error {
	for i := range n {
		var m Message
		e := ev(status, ts, wamid(fmt.Sprintf("%s%d", prefix, i)))
		if _, err := m.Apply(&e, p); err != nil {
			return err
		}
		if err := l.Add(&m); err != nil {
			return err
		}
	}
	return nil
}

// TestGetWhileLoading reads partitions while Loaders fill them, as an API
// reader does while its processor restores partitions. A read sees a
// message as absent or as its whole loaded state, and never fails; and it
// finds every message of a partition that a snapshot taken before it
// already held: the reader reads the filter of known messages after its
// snapshot, and a Loader sets the filter before it ingests
// (findCommitted, knownKeys). Partition 0 is dropped and loaded again each
// round, so that reads also cross drops (an index entry whose record is
// gone, or names another message); the others are loaded once each.
func TestGetWhileLoading(t *testing.T) {
	s, _ := openMem(t, Options{})
	const n, rounds = 300, 12
	statuses := []string{"sent", "delivered", "read"}
	var loading atomic.Int32 // the highest partition a Loader has begun
	ctx, stop := context.WithCancel(t.Context())
	var reads, found atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for r := range 2 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(r), 7))
			for ctx.Err() == nil {
				p, id := rng.Int32N(loading.Load()+1), fmt.Sprintf("wamid.%d", rng.IntN(n))
				held := p > 0 && hasKeys(t, s, p) // partition 0 may be dropped meanwhile
				m, ok, err := s.Get(p, id)
				reads.Add(1)
				if err != nil {
					errs <- fmt.Errorf("Get %d/%s: %w", p, id, err)
					return
				}
				if !ok {
					if held {
						errs <- fmt.Errorf("Get %d/%s: absent from a partition loaded before the read", p, id)
						return
					}
					continue
				}
				found.Add(1)
				if v := m.View(s.Policy()); v.WAMID != id || !slices.Contains(statuses, v.Status) {
					errs <- fmt.Errorf("Get %d/%s: a state of %s with status %q", p, id, v.WAMID, v.Status)
					return
				}
			}
		})
	}
	for round := range int32(rounds) {
		if err := s.DropPartition(0); err != nil {
			t.Fatal(err)
		}
		status := statuses[int(round)%len(statuses)]
		loadStates(t, s, 0, n, "wamid.", status)
		if round > 0 {
			loading.Store(round)
			loadStates(t, s, round, n, "wamid.", status)
		}
		for _, p := range []int32{0, round} {
			m, ok, err := s.Get(p, fmt.Sprintf("wamid.%d", round))
			if err != nil || !ok || m.Status(s.Policy()).String() != status {
				t.Fatalf("round %d: after the load, Get from partition %d = %v, %v, %v; want the loaded %s", round, p, m.Status(s.Policy()), ok, err, status)
			}
		}
	}
	stop()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if found.Load() == 0 {
		t.Errorf("%d reads found no loaded message", reads.Load())
	}
}

// hasKeys reports whether partition p holds any key now.
func hasKeys(t *testing.T, s *Store, p int32) bool {
	empty, err := s.noKeys(partitionBounds(p))
	if err != nil {
		t.Error(err)
	}
	return !empty
}
