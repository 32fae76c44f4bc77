package state

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/wastatus/wastatus/schemas"
)

// crashInput is a partition's input and what the store must hold after each
// committed batch.
type crashInput struct {
	events []schemas.StatusEvent // event i is at offset i
	ends   []int64               // batch boundaries: batch k is [ends[k-1], ends[k])
	// states[k] maps each wamid to its encoding after the input up to
	// ends[k]; history[w] is wamid w's full history.
	states  []map[string][]byte
	history map[string][]HistoryEntry
	wamids  []string
}

// makeCrashInput generates random events over a few messages, cut into
// batches, and folds them with plain Messages to know every expected state.
func makeCrashInput(r *rand.Rand, n int, p Policy) *crashInput {
	in := &crashInput{history: map[string][]HistoryEntry{}}
	for i := range 40 {
		in.wamids = append(in.wamids, fmt.Sprintf("wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQz%03d", i))
	}
	for len(in.events) < n {
		id := in.wamids[r.IntN(len(in.wamids))]
		evs := randomEvents(r)
		for _, e := range evs[:min(len(evs), 1+r.IntN(2))] {
			e.WAMID = id
			in.events = append(in.events, e)
		}
	}
	msgs := map[string]*Message{}
	state := map[string][]byte{}
	for off := 0; off < len(in.events); {
		end := min(off+1+r.IntN(60), len(in.events))
		for ; off < end; off++ {
			e := &in.events[off]
			m := msgs[e.WAMID]
			if m == nil {
				m = new(Message)
				msgs[e.WAMID] = m
			}
			out, err := m.Apply(e, p)
			if err != nil {
				panic(err)
			}
			in.history[e.WAMID] = append(in.history[e.WAMID], HistoryEntry{
				Offset: int64(off), Status: e.Status, Timestamp: e.Timestamp, Participant: e.RecipientParticipantID,
				Region: e.Region, ReceivedAt: e.ReceivedAt, Outcome: out,
			})
			state[e.WAMID] = encode(m)
		}
		snapshot := make(map[string][]byte, len(state))
		for k, v := range state {
			snapshot[k] = v
		}
		in.ends = append(in.ends, int64(end))
		in.states = append(in.states, snapshot)
	}
	return in
}

// write applies the input batch by batch, committing each; after each
// commit it reports the number of batches committed on progress.
func (in *crashInput) write(s *Store, from int, progress chan<- int) error {
	b := s.NewBatch(0)
	defer b.Close()
	start := int64(0)
	if from > 0 {
		start = in.ends[from-1]
	}
	for k := from; k < len(in.ends); k++ {
		for off := start; off < in.ends[k]; off++ {
			if _, _, err := b.Apply(&in.events[off], off); err != nil {
				return err
			}
		}
		b.SetNextOffset(in.ends[k])
		if err := b.Commit(); err != nil {
			return err
		}
		start = in.ends[k]
		if progress != nil {
			progress <- k + 1
		}
	}
	return nil
}

// check opens the store on fs and verifies that its next offset is a batch
// boundary at or after the one committed before the crash, and that every
// state and history is exactly the input's up to that offset. It returns
// the number of batches found committed.
func (in *crashInput) check(t *testing.T, fs vfs.FS, o Options, atLeast int) (*Store, int) {
	t.Helper()
	o.FS = fs
	s, err := Open("db", o)
	if err != nil {
		t.Fatalf("open after crash: %v", err)
	}
	off, ok, err := s.NextOffset(0)
	if err != nil {
		t.Fatal(err)
	}
	k := 0
	if ok {
		for k < len(in.ends) && in.ends[k] != off {
			k++
		}
		if k == len(in.ends) {
			t.Fatalf("next offset %d is not a batch boundary", off)
		}
		k++ // batches committed
	}
	if k < atLeast {
		t.Fatalf("next offset %d: only %d batches found, but %d had committed (synced) before the crash", off, k, atLeast)
	}
	for _, id := range in.wamids {
		m, found, err := s.Get(0, id)
		if err != nil {
			t.Fatal(err)
		}
		var want []byte
		if k > 0 {
			want = in.states[k-1][id]
		}
		if found != (want != nil) || (found && !bytes.Equal(encode(&m), want)) {
			t.Fatalf("after %d batches (offset %d), %s: found %t, state %x, want %x", k, off, id, found, encode(&m), want)
		}
		var wantHist []HistoryEntry
		for _, h := range in.history[id] {
			if h.Offset < off && ok {
				wantHist = append(wantHist, h)
			}
		}
		if len(wantHist) > o.HistoryLimit {
			wantHist = wantHist[len(wantHist)-o.HistoryLimit:]
		}
		gotHist, err := s.History(0, id)
		if err != nil {
			t.Fatal(err)
		}
		if len(gotHist) != 0 || len(wantHist) != 0 {
			if !reflect.DeepEqual(gotHist, wantHist) {
				t.Fatalf("after %d batches, history of %s:\n got %+v\nwant %+v", k, id, gotHist, wantHist)
			}
		}
	}
	return s, k
}

// crashFS works around a lock-order bug in pebble v2.1.7's crashable MemFS:
// ReuseForWrite (WAL recycling) read-locks the clone mutex and then calls
// Rename, which read-locks it again, so a CrashClone waiting for the write
// lock in between deadlocks both. Here ReuseForWrite renames and then
// creates the file afresh (a recycled WAL may start empty), locking once per
// call.
type crashFS struct{ *vfs.MemFS }

func (f crashFS) ReuseForWrite(oldname, newname string, category vfs.DiskWriteCategory) (vfs.File, error) {
	if err := f.MemFS.Rename(oldname, newname); err != nil {
		return nil, err
	}
	return f.MemFS.Create(newname, category)
}

// TestCrashAndReopen crashes the store (a crash clone of its file system,
// keeping a random part of the unsynced data) at arbitrary points while a
// writer commits batches concurrently, reopens each clone, and checks that
// the stored next offset always matches the stored states and histories,
// that no synced commit is lost, and that resuming from the recovered
// offset reaches exactly the state of an uninterrupted run.
func TestCrashAndReopen(t *testing.T) {
	seed := testSeed(t)
	r := rand.New(rand.NewPCG(seed, seed+1))
	o := Options{HistoryLimit: 4, Policy: Policy(r.IntN(2)), MemTableSize: 64 << 10} // small memtable: flushes happen
	in := makeCrashInput(r, 3000, o.Policy)

	fs := vfs.NewCrashableMem()
	o.FS = crashFS{fs}
	s, err := Open("db", o)
	if err != nil {
		t.Fatal(err)
	}
	type crash struct {
		fs      *vfs.MemFS
		atLeast int
	}
	progress := make(chan int, len(in.ends))
	done := make(chan error, 1)
	go func() {
		done <- in.write(s, 0, progress)
		close(progress)
	}()
	var crashes []crash
	committed := 0
	for k := range progress {
		committed = max(committed, k)
		// Clone while the writer is already applying or committing the
		// next batch: a crash at an arbitrary point.
		if r.IntN(3) == 0 {
			crashes = append(crashes, crash{
				fs:      fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: r.IntN(101), RNG: rand.New(rand.NewPCG(r.Uint64(), r.Uint64()))}),
				atLeast: committed,
			})
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("writer: %v", err)
	}
	crashes = append(crashes, crash{fs: fs.CrashClone(vfs.CrashCloneCfg{}), atLeast: len(in.ends)})
	t.Logf("%d batches, %d crashes, %d flushes", len(in.ends), len(crashes), s.Stats().Flushes)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	ahead := 0
	for i, c := range crashes {
		s, k := in.check(t, c.fs, o, c.atLeast)
		if k > c.atLeast {
			ahead++ // the clone caught a commit the writer had not reported yet
		}
		if i%4 == 0 || i == len(crashes)-1 {
			// Resume from the recovered offset: the end state is the one
			// of an uninterrupted run.
			if err := in.write(s, k, nil); err != nil {
				t.Fatalf("resume after crash %d: %v", i, err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s, _ = in.check(t, c.fs, o, len(in.ends))
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d crashes found a commit newer than the last one reported", ahead)
}
