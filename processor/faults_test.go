package processor_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/wastatus/wastatus/internal/kafkatest"
	"github.com/wastatus/wastatus/processor"
	"github.com/wastatus/wastatus/schemas"
	"github.com/wastatus/wastatus/state"
)

// folded is every event a test produced, and their fold: what every
// message's state must be, however the processor got there.
type folded struct {
	f    *fixture
	r    *rand.Rand
	msgs map[string]*state.Message
}

func newFolded(t *testing.T, f *fixture) *folded {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	return &folded{f: f, r: rand.New(rand.NewPCG(seed, seed+1)), msgs: map[string]*state.Message{}}
}

// produce produces n random events over the messages named prefix+0 to
// prefix+(m-1), and folds them into the expected states.
func (fd *folded) produce(prefix string, m, n int) {
	fd.f.t.Helper()
	statuses := []string{"sent", "delivered", "read", "played", "failed"}
	recs := make([]*kgo.Record, 0, n)
	for range n {
		ev := schemas.StatusEvent{
			WAMID:       fmt.Sprintf("wamid.%s%03d", prefix, fd.r.IntN(m)),
			Status:      statuses[fd.r.IntN(len(statuses))],
			Timestamp:   1_700_000_000 + fd.r.Int64N(100),
			RecipientID: "16505551234", Region: "test", ReceivedAt: 1, Raw: []byte(`{}`),
		}
		msg := fd.msgs[ev.WAMID]
		if msg == nil {
			msg = new(state.Message)
			fd.msgs[ev.WAMID] = msg
		}
		if _, err := msg.Apply(&ev, state.FailedWins); err != nil {
			fd.f.t.Fatal(err)
		}
		v, err := fd.f.codec.AppendStatusEvent(nil, &ev)
		if err != nil {
			fd.f.t.Fatal(err)
		}
		recs = append(recs, &kgo.Record{Topic: fd.f.cfg.EventsTopic, Key: []byte(ev.WAMID), Value: v})
	}
	fd.f.produce(recs...)
}

// check waits until the processor serves exactly the fold of every event
// for every message, and the current topic's last record of every key is
// that state too.
func (fd *folded) check(p *processor.Processor) {
	fd.f.t.Helper()
	kafkatest.Eventually(fd.f.t, 60*time.Second, func() error {
		for id, m := range fd.msgs {
			got, _, err := p.Get(id)
			if err != nil {
				return fmt.Errorf("%s: %w", id, err)
			}
			if want := m.View(state.FailedWins); !reflect.DeepEqual(got, want) {
				return fmt.Errorf("%s: state\n%+v\nwant the fold of every event\n%+v", id, got, want)
			}
		}
		return nil
	})
	fd.f.consume(fd.f.cfg.CurrentTopic, func(recs []*kgo.Record) error {
		last := map[string]*kgo.Record{}
		for _, r := range recs {
			last[string(r.Key)] = r
		}
		for id, m := range fd.msgs {
			r := last[id]
			if r == nil {
				return fmt.Errorf("%s: nothing emitted", id)
			}
			got, err := fd.f.codec.DecodeMessageStatus(r.Value)
			if err != nil {
				return err
			}
			if want := m.View(state.FailedWins); !reflect.DeepEqual(got, want) {
				return fmt.Errorf("%s: last emitted %+v, want %+v", id, got, want)
			}
		}
		return nil
	})
}

// waitEvents waits until p folded at least n events.
func waitEvents(t *testing.T, p *processor.Processor, n int) {
	t.Helper()
	kafkatest.Eventually(t, 60*time.Second, func() error {
		if st := p.Stats(); st.Events < uint64(n) {
			return fmt.Errorf("%d of %d events folded", st.Events, n)
		}
		return nil
	})
}

// fullFS is an errorfs.FS whose recycled WAL files fail too (errorfs's
// ReuseForWrite hands out the file unwrapped): it renames and creates the
// file afresh, through the injector.
type fullFS struct{ *errorfs.FS }

func (f fullFS) ReuseForWrite(oldname, newname string, category vfs.DiskWriteCategory) (vfs.File, error) {
	if err := f.Rename(oldname, newname); err != nil {
		return nil, err
	}
	return f.Create(newname, category)
}

// diskFull returns an injector, off until switched on, that fails with
// ENOSPC the writes and syncs of the files for which match holds.
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

// TestFullDisk fills the store's disk under a running processor, for the
// WAL (Pebble's fatal commit error, through Logger.Fatalf) and for new
// sstables only (failed flushes, then stalled writes): Run returns an error
// that says the disk is full, /readyz turns 503, the store refuses reads,
// and nothing panics or hangs. Once space returns, a restart on the same
// store resumes by the rules (catching up what Kafka committed and the
// store did not) and serves exactly the fold of every event.
func TestFullDisk(t *testing.T) {
	for _, tc := range []struct {
		name     string
		match    func(string) bool
		memTable uint64 // 0: no WAL rotation in the test (Pebble panics unrecoverably on one)
	}{
		{"log", func(p string) bool { return strings.HasSuffix(p, ".log") }, 0},
		{"tables", func(p string) bool { return strings.HasSuffix(p, ".sst") }, 64 << 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, 2)
			fd := newFolded(t, f)
			full := diskFull(tc.match)
			o := state.Options{FS: fullFS{errorfs.Wrap(vfs.NewMem(), full)}, MemTableSize: tc.memTable}
			store, err := state.Open("db", o)
			if err != nil {
				t.Fatal(err)
			}
			r := f.startOn(f.cfg, store)
			base := serve(t, r.p)
			fd.produce("F", 50, 200)
			waitEvents(t, r.p, 200)

			full.On()
			// Produce until the store fails: a flush needs the memtables
			// to fill first.
			var err2 error
			for i := 0; err2 == nil; i++ {
				if i == 50 {
					t.Fatal("the processor kept running on a full disk")
				}
				fd.produce("F", 50, 200)
				select {
				case err2 = <-r.done:
				case <-time.After(200 * time.Millisecond):
				}
			}
			t.Logf("Run: %v", err2)
			if !errors.Is(err2, processor.ErrStore) || !errors.Is(err2, state.ErrFailed) || !errors.Is(err2, syscall.ENOSPC) {
				t.Errorf("Run = %v, want ErrStore, state.ErrFailed and ENOSPC", err2)
			}
			if !strings.Contains(err2.Error(), "no space left on device") {
				t.Errorf("Run = %q: does not say the disk is full", err2)
			}
			if code := getJSON(t, base+"/readyz", nil); code != http.StatusServiceUnavailable {
				t.Errorf("/readyz = %d after the store failed, want 503", code)
			}
			if code := getJSON(t, base+"/v1/messages/wamid.F000", nil); code < 500 {
				t.Errorf("GET a message = %d after the store failed, want 5xx", code)
			}
			if _, _, err := store.Get(0, "wamid.F000"); !errors.Is(err, state.ErrFailed) {
				t.Errorf("store.Get = %v after the failure, want state.ErrFailed", err)
			}
			// The processor says why, not "partition not owned" (Run let
			// its partitions go when it stopped).
			if _, _, err := r.p.Get("wamid.F000"); !errors.Is(err, processor.ErrStore) || !errors.Is(err, state.ErrFailed) {
				t.Errorf("Processor.Get = %v after the failure, want ErrStore and state.ErrFailed", err)
			}
			if ok, why := r.p.Ready(); ok || !strings.Contains(why, "store failed") {
				t.Errorf("Ready = %v, %q after the failure, want not ready saying the store failed", ok, why)
			}

			full.Off() // space returns
			if err := store.Close(); err != nil {
				t.Logf("close of the failed store: %v", err)
			}
			if store, err = state.Open("db", o); err != nil {
				t.Fatal(err)
			}
			r = f.startOn(f.cfg, store)
			defer r.stop(t)
			t.Logf("after the restart: %+v", r.p.Stats())
			fd.produce("F", 50, 100)
			fd.check(r.p)
		})
	}
}

// TestCorruptStore corrupts a stopped processor's store (a truncated
// MANIFEST; flipped bytes in every sstable): the store either fails to open
// or fails on the first read of a corrupt block, with a clear error, and no
// message is ever served with a state other than the fold. The way out is
// documented: the store is a cache of the topics, so delete its directory
// and start again; the processor restores every partition from the current
// topic and serves exactly the fold of every event.
func TestCorruptStore(t *testing.T) {
	for _, tc := range []struct {
		name    string
		corrupt func(t *testing.T, dir string)
		// tolerated: Pebble may read a MANIFEST cut at a record boundary
		// as a torn tail (a crash), open an earlier consistent version, and
		// serve exactly the fold after catching up: nothing to see then.
		tolerated bool
	}{
		{"manifest", func(t *testing.T, dir string) {
			editFiles(t, dir, "MANIFEST", func(b []byte) []byte { return b[:len(b)/2] })
		}, true},
		{"tables", func(t *testing.T, dir string) {
			editFiles(t, dir, ".sst", func(b []byte) []byte {
				for i := 16; i < len(b)/2; i += 97 { // data blocks come first
					b[i] ^= 0xff
				}
				return b
			})
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, 2)
			fd := newFolded(t, f)
			dir := t.TempDir()
			// Small memtables: flushes, so sstables. vfs.Default rather than
			// nil: Pebble wraps a nil FS in a disk-health checker whose
			// goroutine a failed Open leaks (pebble v2.1.7).
			o := state.Options{FS: vfs.Default, MemTableSize: 64 << 10}
			store, err := state.Open(dir, o)
			if err != nil {
				t.Fatal(err)
			}
			r := f.startOn(f.cfg, store)
			fd.produce("A", 40, 200)
			waitEvents(t, r.p, 200)
			// Many more events for other messages: the states of the A
			// messages are left in sstables only.
			fd.produce("B", 400, 3000)
			waitEvents(t, r.p, 3200)
			r.stop(t)

			tc.corrupt(t, dir)
			detected := corruptionSeen(t, f, fd, dir, o, tc.tolerated)
			t.Logf("corruption seen: %v", detected)

			// The way out: drop the store, restore it from the topics.
			if err := os.RemoveAll(dir); err != nil {
				t.Fatal(err)
			}
			if store, err = state.Open(dir, o); err != nil {
				t.Fatal(err)
			}
			r = f.startOn(f.cfg, store)
			defer r.stop(t)
			if st := r.p.Stats(); st.Restored == 0 {
				t.Errorf("nothing restored: %+v", st)
			}
			fd.produce("A", 40, 50)
			fd.check(r.p)
		})
	}
}

// corruptionSeen opens the corrupt store and starts a processor on it,
// failing t if any message is served with a wrong state or the corruption
// goes unnoticed, and returns the error that showed it.
func corruptionSeen(t *testing.T, f *fixture, fd *folded, dir string, o state.Options, tolerated bool) error {
	t.Helper()
	store, err := state.Open(dir, o)
	if err != nil {
		return err // a clear error at open: the process does not start
	}
	defer store.Close()
	r := f.launch(f.cfg, store)
	p, cancel, done := r.p, r.cancel, r.done
	defer func() {
		cancel()
		<-done
	}()
	var seen error
	kafkatest.Eventually(t, 60*time.Second, func() error {
		select {
		case err := <-done:
			done <- err // for the deferred wait
			if !errors.Is(err, processor.ErrStore) {
				t.Fatalf("Run = %v on a corrupt store, want ErrStore", err)
			}
			seen = err
			return nil
		default:
		}
		if ok, why := p.Ready(); !ok {
			return errors.New(why)
		}
		for id, m := range fd.msgs {
			got, _, err := p.Get(id)
			if err != nil {
				if !errors.Is(err, processor.ErrStore) || !errors.Is(err, state.ErrFailed) {
					t.Fatalf("Get(%s) = %v on a corrupt store, want ErrStore and state.ErrFailed", id, err)
				}
				seen = err
				return nil
			}
			if want := m.View(state.FailedWins); !reflect.DeepEqual(got, want) {
				t.Fatalf("%s: a corrupt store served %+v, want %+v", id, got, want)
			}
		}
		if tolerated {
			return nil
		}
		return errors.New("every message served: the corruption is not read yet")
	})
	if seen == nil {
		return nil // tolerated, and every message served exactly
	}
	if !errors.Is(store.Err(), state.ErrFailed) {
		t.Errorf("store.Err() = %v after the corruption was seen", store.Err())
	}
	return seen
}

// editFiles replaces the contents of dir's files whose names contain part
// with edit's result.
func editFiles(t *testing.T, dir, part string, edit func([]byte) []byte) {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*"+part+"*"))
	if err != nil || len(names) == 0 {
		t.Fatalf("no %s file in %s: %v", part, dir, err)
	}
	for _, name := range names {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(name, edit(b), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// crashFS works around the lock-order bug of pebble v2.1.7's crashable
// MemFS (see state's crash test): ReuseForWrite renames and creates afresh.
type crashFS struct{ *vfs.MemFS }

func (f crashFS) ReuseForWrite(oldname, newname string, category vfs.DiskWriteCategory) (vfs.File, error) {
	if err := f.MemFS.Rename(oldname, newname); err != nil {
		return nil, err
	}
	return f.MemFS.Create(newname, category)
}

// TestCrashMidBatch crashes a processor's store (a crash clone of its file
// system) between the Kafka transaction's commit and the store's, and in
// the middle of the store's commit, then stops the processor there. Each
// clone reopens with a next offset P at most the group's committed offset
// C (the store never runs ahead of Kafka); a processor restarted on it on
// the same cluster catches up to C without emitting, and serves exactly the
// fold of every event, as does the current topic.
func TestCrashMidBatch(t *testing.T) {
	f := newFixture(t, 2)
	fd := newFolded(t, f)
	mem := vfs.NewCrashableMem()
	o := state.Options{FS: crashFS{mem}}
	store, err := state.Open("db", o)
	if err != nil {
		t.Fatal(err)
	}

	var (
		mu     sync.Mutex
		armed  bool
		clones []*vfs.MemFS
		cloned sync.WaitGroup
		stop   context.CancelFunc
	)
	rng := rand.New(rand.NewPCG(rand.Uint64(), 1))
	cfg := f.cfg
	cfg.Testing.AfterTxnCommit = func() {
		mu.Lock()
		defer mu.Unlock()
		if !armed {
			return
		}
		armed = false
		// The Kafka transaction committed; the store's commit has not begun.
		clones = append(clones, mem.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 50, RNG: rng}))
		// And one while the store commits, keeping a random part of what
		// it has not synced.
		seed := rng.Uint64()
		cloned.Go(func() {
			c := mem.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: int(seed % 101), RNG: rand.New(rand.NewPCG(seed, 2))})
			mu.Lock()
			clones = append(clones, c)
			mu.Unlock()
		})
		stop() // the process dies here: nothing after this batch
	}
	p, err := processor.New(cfg, store, f.codec)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	stop = cancel
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	fd.produce("C", 30, 300)
	waitEvents(t, p, 300)
	mu.Lock()
	armed = true
	mu.Unlock()
	fd.produce("C", 30, 300)
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	cloned.Wait()
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	if len(clones) != 2 {
		t.Fatalf("%d crash clones, want 2", len(clones))
	}

	committed := groupOffsets(t, f)
	for i, c := range clones {
		store, err := state.Open("db", state.Options{FS: crashFS{c}})
		if err != nil {
			t.Fatalf("open crash clone %d: %v", i, err)
		}
		behind := false
		for part, c := range committed {
			next, ok, err := store.NextOffset(part)
			if err != nil {
				t.Fatal(err)
			}
			if ok && next > c {
				t.Fatalf("clone %d, partition %d: store at %d, ahead of the group's %d", i, part, next, c)
			}
			behind = behind || !ok || next < c
			t.Logf("clone %d, partition %d: store at %d (%t), group at %d", i, part, next, ok, c)
		}
		if i == 0 && !behind {
			t.Errorf("clone %d, taken before the store's commit, is not behind the group", i)
		}
		r := f.startOn(f.cfg, store)
		t.Logf("clone %d restarted: %+v", i, r.p.Stats())
		fd.produce("C", 30, 100)
		fd.check(r.p)
		r.cancel()
		if err := <-r.done; err != nil {
			t.Fatalf("Run: %v", err)
		}
		for part, c := range groupOffsets(t, f) { // stopped cleanly: P = C
			if next, _, err := store.NextOffset(part); err != nil || next != c {
				t.Errorf("clone %d, partition %d: stopped with the store at %d (%v), the group at %d", i, part, next, err, c)
			}
		}
		if err := store.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// groupOffsets returns the group's committed offsets of the events topic.
func groupOffsets(t *testing.T, f *fixture) map[int32]int64 {
	t.Helper()
	offs, err := kadm.NewClient(f.cl).FetchOffsets(t.Context(), f.cfg.Group)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32]int64{}
	offs.Each(func(o kadm.OffsetResponse) {
		if o.Topic == f.cfg.EventsTopic {
			out[o.Partition] = o.At
		}
	})
	return out
}

// TestAbortedTransaction makes the broker refuse the processor's output
// records once, so the transaction of a folded batch aborts. Run stops with
// ErrProduce, and the store holds nothing of the aborted batch: each
// partition's next offset is the group's. A processor restarted on the
// store folds the batch again and serves exactly the fold of every event,
// as does the current topic.
func TestAbortedTransaction(t *testing.T) {
	f := newFixture(t, 2)
	if f.cluster.Real() {
		t.Skip("injects a produce error through kfake")
	}
	fd := newFolded(t, f)
	dir := t.TempDir()
	r := f.start(dir)
	fd.produce("A", 40, 400)
	fd.check(r.p)

	var refused atomic.Int32
	f.cluster.Fake.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		pr := req.(*kmsg.ProduceRequest)
		if pr.TransactionID == nil {
			return nil, nil, false // the test's own events: kept for the next request
		}
		refused.Add(1)
		return kafkatest.RefuseProduce(pr, kerr.InvalidRecord), nil, true
	})
	fd.produce("B", 40, 400)
	err := <-r.done
	if !errors.Is(err, processor.ErrProduce) {
		t.Fatalf("Run: %v, want ErrProduce", err)
	}
	if refused.Load() == 0 {
		t.Fatal("Run stopped before the broker refused its outputs")
	}
	committed := groupOffsets(t, f)
	for part := range f.cfg.Partitions {
		next, _, err := r.store.NextOffset(part)
		if err != nil {
			t.Fatal(err)
		}
		if next != committed[part] {
			t.Errorf("partition %d: the store's next offset is %d, the group's %d: the aborted batch was stored", part, next, committed[part])
		}
	}
	if err := r.store.Close(); err != nil {
		t.Fatal(err)
	}

	r = f.start(dir)
	defer r.stop(t)
	fd.check(r.p)
}

// TestEndTxnOutlastingTimeoutStopsRun holds the broker's answer to a
// transaction's EndTxn commit past the transaction timeout: End is then
// cancelled after asking the broker to end the transaction, so whether it
// committed is unknown, and Run must stop and say so rather than read the
// records again. The answer is then let go (kfake has aborted the
// transaction at its timeout by then, and refuses the commit), and a
// restart on the same store must hold, and have emitted, the fold of every
// event.
func TestEndTxnOutlastingTimeoutStopsRun(t *testing.T) {
	f := newFixture(t, 2)
	if f.cluster.Real() {
		t.Skip("holds an EndTxn answer through kfake")
	}
	f.cfg.TransactionTimeout = 3 * time.Second
	fd := newFolded(t, f)
	dir := t.TempDir()
	r := f.start(dir)
	fd.produce("A", 40, 400)
	fd.check(r.p)

	release := make(chan struct{})
	var once sync.Once
	let := func() { once.Do(func() { close(release) }) }
	defer let()
	var held atomic.Bool
	f.cluster.Fake.ControlKey(int16(kmsg.EndTxn), func(req kmsg.Request) (kmsg.Response, error, bool) {
		if !req.(*kmsg.EndTxnRequest).Commit {
			return nil, nil, false
		}
		f.cluster.Fake.DropControl()
		held.Store(true)
		f.cluster.Fake.SleepControl(func() { <-release })
		return nil, nil, false
	})
	fd.produce("B", 40, 400)
	began := time.Now()
	var err error
	select {
	case err = <-r.done:
	case <-time.After(60 * time.Second):
		t.Fatal("Run goes on a minute after the EndTxn was held")
	}
	if !held.Load() {
		t.Fatalf("Run returned before an EndTxn was held: %v", err)
	}
	if !errors.Is(err, processor.ErrTransaction) || !strings.Contains(err.Error(), "whether it committed is unknown") {
		t.Fatalf("Run: %v, want ErrTransaction saying the outcome is unknown", err)
	}
	if waited := time.Since(began); waited < f.cfg.TransactionTimeout {
		t.Errorf("Run stopped %s after the events were produced, before the transaction timeout", waited)
	}
	if err := r.store.Close(); err != nil {
		t.Fatal(err)
	}
	let()

	r = f.start(dir)
	defer r.stop(t)
	fd.check(r.p)
}
