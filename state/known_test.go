package state

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/wastatus/wastatus/schemas"
)

// TestKnownMessages folds random events into a partition through batches
// that commit, abort (Reset) and commit without waiting for the log sync,
// with a DropPartition and a reopen of the store along the way, and checks
// every stored state against the fold of the events committed since the
// drop: the partition's filter of known messages, which lets batches skip
// the lookups of new messages, never hides a stored one. It also checks
// when the store has a filter: for partitions it found without messages,
// and not for one that held messages when it opened.
func TestKnownMessages(t *testing.T) {
	seed := testSeed(t)
	r := rand.New(rand.NewPCG(seed, seed+3))
	o := Options{HistoryLimit: 4, Policy: Policy(r.IntN(2))}
	s, fs := openMem(t, o)
	s.epochKeys = 64 // many epochs
	ids := make([]string, 3000)
	for i := range ids {
		ids[i] = fmt.Sprintf("wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQz%06d", i)
	}
	want := map[string][]schemas.StatusEvent{} // committed since the drop
	check := func(stage string) {
		t.Helper()
		for _, id := range ids {
			got, ok := mustGet(t, s, 0, id)
			evs := want[id]
			if ok != (len(evs) > 0) {
				t.Fatalf("%s: %s stored %t, want %t", stage, id, ok, len(evs) > 0)
			}
			if ok {
				m, _ := fold(t, o.Policy, evs...)
				if !bytes.Equal(encode(&got), encode(&m)) {
					t.Fatalf("%s: %s holds %x, want the fold %x", stage, id, encode(&got), encode(&m))
				}
			}
		}
	}
	// run folds n batches of random events into a new batch of partition
	// 0, committing most and resetting the others (their events are lost,
	// as an aborted transaction's are read again as new records here).
	off := int64(0)
	run := func(n int) {
		b := s.NewBatch(0)
		defer b.Close()
		for range n {
			pending := map[string][]schemas.StatusEvent{}
			for range 200 {
				id := ids[r.IntN(len(ids))]
				evs := randomEvents(r)
				e := evs[r.IntN(len(evs))]
				e.WAMID = id
				if _, _, err := b.Apply(&e, off); err != nil {
					continue // an event Apply rejects changes nothing
				}
				off++
				pending[id] = append(pending[id], e)
			}
			if r.IntN(4) == 0 {
				b.Reset()
				continue
			}
			b.SetNextOffset(off)
			commit := b.CommitNoSyncWait
			if r.IntN(2) == 0 {
				commit = b.Commit
			}
			if err := commit(); err != nil {
				t.Fatal(err)
			}
			for id, evs := range pending {
				want[id] = append(want[id], evs...)
			}
		}
	}

	if s.knownKeys(0, true).f == nil || s.knownKeys(1, true).f == nil {
		t.Fatal("no filter of known messages for the partitions of a new store")
	}
	run(20)
	check("fresh store")
	checkIndexInFilter(t, s, 0)

	if err := s.DropPartition(0); err != nil {
		t.Fatal(err)
	}
	clear(want)
	check("dropped")
	run(20)
	check("after the drop")

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	o.FS = fs
	s, _ = openMem(t, o)
	s.epochKeys = 64
	if s.knownKeys(0, true).f == nil {
		t.Fatal("no filter of known messages for a partition that held messages at Open: its index was not read")
	}
	if s.knownKeys(1, true).f == nil {
		t.Fatal("no filter of known messages for an empty partition after a reopen")
	}
	check("reopened")
	checkIndexInFilter(t, s, 0)
	run(20)
	check("after the reopen")
	checkIndexInFilter(t, s, 0)
	if n := len(s.knownKeys(0, true).f.layers); n < 10 {
		t.Fatalf("%d epochs: the test should make many", n)
	}

	// Without a filter (as if the index could not be read), a batch reads
	// every epoch's entry, and writes new ones in the newest.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, _ = openMem(t, o)
	if s.knownKeys(0, false).f != nil {
		t.Fatal("a filter without reading the index")
	}
	check("reopened without a filter")
	run(20)
	check("after batches without a filter")

	// And their entries are found by the filter read at the next Open.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, _ = openMem(t, o)
	s.epochKeys = 64
	if s.knownKeys(0, true).f == nil {
		t.Fatal("no filter of known messages after the reopen")
	}
	checkIndexInFilter(t, s, 0)
	check("reopened after batches without a filter")
	run(20)
	check("after batches with the filter again")
	checkIndexInFilter(t, s, 0)
}
