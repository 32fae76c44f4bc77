package state

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
)

// TestLoadBatchMatchesBatch folds the same random input (thousands of
// messages, duplicates, restores of folded states) into one partition with
// a load batch and into another, which held a message when the store
// opened, with a plain batch that has no filter, and checks that every state and history is
// identical: skipping the lookups of messages the partition has not seen
// changes nothing, also past the filter's first layer (the size hint is far
// too small) and across its commits.
func TestLoadBatchMatchesBatch(t *testing.T) {
	seed := testSeed(t)
	r := rand.New(rand.NewPCG(seed, seed+2))
	o := Options{HistoryLimit: 8, Policy: Policy(r.IntN(2))}
	s, fs := openMem(t, o)
	commit(t, s, 2, 0, ev("sent", T, wamid("wamid.other")))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	o.FS = fs
	s, _ = openMem(t, o)

	ids := make([]string, 12_000)
	for i := range ids {
		ids[i] = fmt.Sprintf("wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQz%06d", i)
	}
	load, err := s.NewLoadBatch(1, 10)
	if err != nil {
		t.Fatal(err)
	}
	defer load.Close()
	s.knownKeys(2, false) // as if its index could not be read: no filter
	plain := s.NewBatch(2)
	defer plain.Close()
	if plain.known.f != nil {
		t.Fatal("the plain batch has a filter of known messages")
	}

	for off := int64(0); off < 40_000; off++ {
		id := ids[r.IntN(len(ids))]
		if r.IntN(20) == 0 { // a restore of an independently folded state
			evs := randomEvents(r)
			for i := range evs {
				evs[i].WAMID = id
			}
			m, _ := fold(t, s.Policy(), evs...)
			for _, b := range []*Batch{load, plain} {
				if err := b.Restore(&m); err != nil {
					t.Fatalf("Restore: %v", err)
				}
			}
		} else {
			evs := randomEvents(r)
			e := evs[r.IntN(len(evs))]
			e.WAMID = id
			o1, _, err1 := load.Apply(&e, off)
			o2, _, err2 := plain.Apply(&e, off)
			if o1 != o2 || (err1 == nil) != (err2 == nil) {
				t.Fatalf("offset %d: load batch %v, %v; batch %v, %v", off, o1, err1, o2, err2)
			}
		}
		if r.IntN(500) == 0 {
			if err := load.Commit(); err != nil {
				t.Fatal(err)
			}
			if err := plain.Commit(); err != nil {
				t.Fatal(err)
			}
		}
	}
	load.SetNextOffset(40_000)
	plain.SetNextOffset(40_000)
	if err := errors.Join(load.Commit(), plain.Commit()); err != nil {
		t.Fatal(err)
	}

	if got := len(load.known.f.layers); got < 2 {
		t.Fatalf("the filter has %d layers; the test should make it grow", got)
	}
	for _, id := range ids {
		m1, ok1 := mustGet(t, s, 1, id)
		m2, ok2 := mustGet(t, s, 2, id)
		if ok1 != ok2 || !bytes.Equal(encode(&m1), encode(&m2)) {
			t.Fatalf("%s: load batch %t %x, batch %t %x", id, ok1, encode(&m1), ok2, encode(&m2))
		}
		h1, err1 := s.History(1, id)
		h2, err2 := s.History(2, id)
		if err := errors.Join(err1, err2); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(h1, h2) {
			t.Fatalf("%s: history with a load batch %+v, with a batch %+v", id, h1, h2)
		}
	}
}

// TestNewLoadBatchNotEmpty refuses a load batch for a partition that holds
// state, which it would otherwise fold over without reading.
func TestNewLoadBatchNotEmpty(t *testing.T) {
	s, _ := openMem(t, Options{})
	commit(t, s, 3, 0, ev("sent", T))
	if _, err := s.NewLoadBatch(3, 0); !errors.Is(err, ErrNotEmpty) {
		t.Fatalf("NewLoadBatch of a partition with state: %v, want ErrNotEmpty", err)
	}
	if _, err := s.NewLoadBatch(-1, 0); !errors.Is(err, ErrInvalidPartition) {
		t.Fatalf("NewLoadBatch(-1): %v, want ErrInvalidPartition", err)
	}
	if err := s.DropPartition(3); err != nil {
		t.Fatal(err)
	}
	b, err := s.NewLoadBatch(3, 0)
	if err != nil {
		t.Fatalf("NewLoadBatch after DropPartition: %v", err)
	}
	b.Close()
}

// TestKeyFilter checks the filter never forgets a key and, grown far past
// its size hint, still rejects almost every key it never saw, without
// taking much more memory than its keys need.
func TestKeyFilter(t *testing.T) {
	f := newKeyFilter(0)
	const n = 1 << 20 // a layer boundary: the newest layer is almost empty
	for i := range n {
		f.add(wamidHash(fmt.Sprint("in", i)))
	}
	for i := range n {
		if !f.mayContain(wamidHash(fmt.Sprint("in", i))) {
			t.Fatalf("key %d added but not contained", i)
		}
	}
	fp := 0
	for i := range n {
		if f.mayContain(wamidHash(fmt.Sprint("out", i))) {
			fp++
		}
	}
	if rate := float64(fp) / n; rate > 0.05 {
		t.Fatalf("false positive rate %.4f over %d layers, want at most 0.05", rate, len(f.layers))
	}
	if perKey := float64(f.bytes()*8) / n; perKey > 2*filterBitsPerKey+1 {
		t.Fatalf("%.1f bits per key over %d layers, want at most %d", perKey, len(f.layers), 2*filterBitsPerKey+1)
	}
}

// BenchmarkKeyFilter measures the lookup of a message the filter never
// saw (the case it exists for) in a partition of 10 million messages over
// 12 partitions, the largest state.
func BenchmarkKeyFilter(b *testing.B) {
	f := newKeyFilter(0)
	const n = 10_000_000 / 12
	for i := range n {
		f.add(wamidHash(fmt.Sprint("in", i)))
	}
	hs := make([]uint64, 1<<16)
	for i := range hs {
		hs[i] = wamidHash(fmt.Sprint("out", i))
	}
	b.ResetTimer()
	fp := 0
	for i := range b.N {
		if f.mayContain(hs[i&(len(hs)-1)]) {
			fp++
		}
	}
	b.ReportMetric(float64(fp)/float64(b.N), "fp")
	b.ReportMetric(float64(f.bytes()*8)/n, "bits/key")
}
