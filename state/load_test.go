package state

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
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
	s.epochKeys = 1000 // many epochs

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

	if got := len(load.known.f.layers); got < 5 {
		t.Fatalf("the filter has %d epochs; the test should make many", got)
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

// TestKeyFilter checks the filter's epochs: a key is never forgotten and
// is always a candidate of the epoch it joined, epochs begin when the
// newest is full and are sized as filter.go says, and the filter still
// rejects almost every key it never saw, in no more memory than its keys
// need. A filter rebuilt from the keys' epochs and hashes, as learnKeys
// rebuilds it from a partition's index, answers the same and takes new
// keys in its newest epoch until that is full.
func TestKeyFilter(t *testing.T) {
	f := newKeyFilter(firstEpochKeys(0, 0), 0)
	const n = 1 << 20
	epochs := make([]uint32, n)
	for i := range n {
		h := wamidHash(fmt.Sprint("in", i))
		next := f.epoch()
		if i > 0 && next != epochs[i-1] && next != epochs[i-1]+1 {
			t.Fatalf("key %d: next epoch %d after %d", i, next, epochs[i-1])
		}
		if epochs[i] = f.add(h); epochs[i] != next {
			t.Fatalf("key %d joined epoch %d, want %d (epoch)", i, epochs[i], next)
		}
	}
	total := 0
	for e, l := range f.layers {
		want := epochFirstKeys
		if e > 0 {
			want = max(epochMinKeys, total/epochShare)
		}
		if l.keys != want {
			t.Fatalf("epoch %d sized for %d keys, want %d", e, l.keys, want)
		}
		total += l.keys
	}
	if len(f.layers) < 8 {
		t.Fatalf("%d epochs for %d keys: the test should make many", len(f.layers), n)
	}
	check := func(name string, f *keyFilter) {
		t.Helper()
		var cands []uint32
		extra := 0
		for i := range n {
			h := wamidHash(fmt.Sprint("in", i))
			cands = candidates(f, h, cands[:0])
			if !slices.Contains(cands, epochs[i]) {
				t.Fatalf("%s: key %d added to epoch %d, candidates %v", name, i, epochs[i], cands)
			}
			if !slices.IsSortedFunc(cands, func(a, b uint32) int { return cmp.Compare(b, a) }) {
				t.Fatalf("%s: candidates %v, want newest first", name, cands)
			}
			extra += len(cands) - 1
		}
		fp := 0
		for i := range n {
			if cands = candidates(f, wamidHash(fmt.Sprint("out", i)), cands[:0]); len(cands) > 0 {
				fp++
			}
		}
		layers := float64(len(f.layers))
		bound := 1.5 * filterFalsePositives * layers
		if rate := float64(fp) / n; rate > bound {
			t.Fatalf("%s: false positive rate %.5f over %.0f epochs, want at most %.5f", name, rate, layers, bound)
		}
		if rate := float64(extra) / n; rate > bound {
			t.Fatalf("%s: %.5f wrong candidates a key over %.0f epochs, want at most %.5f", name, rate, layers, bound)
		}
		if perKey := float64(f.bytes()*8) / n; perKey > filterBitsPerKey*1.2 {
			t.Fatalf("%s: %.1f bits per key over %.0f epochs, want at most %.0f", name, perKey, layers, filterBitsPerKey*1.2)
		}
	}
	check("grown", f)

	fb := newFilterBuilder(0)
	for i := range n { // in key order: epoch, then hash
		if i > 0 && epochs[i] < epochs[i-1] {
			t.Fatal("epochs out of order")
		}
		fb.add(epochs[i], wamidHash(fmt.Sprint("in", i)))
	}
	g := fb.filter()
	check("rebuilt", g)
	last := len(g.layers) - 1
	if g.layers[last].room != f.layers[last].room {
		t.Fatalf("rebuilt newest epoch has room for %d keys, want %d", g.layers[last].room, f.layers[last].room)
	}
	if e := g.add(wamidHash("new")); e != uint32(last) {
		t.Fatalf("a new key after the rebuild joined epoch %d, want the newest, %d", e, last)
	}
}

// TestFilterBuilderGaps rebuilds a filter whose index lost every message
// of some epochs (aborted before their first commit): the epochs keep
// their numbers, and the lost ones hold nothing. A first epoch alone,
// which may be a Loader's, is not grown into, and an epoch past maxEpoch
// is corruption.
func TestFilterBuilderGaps(t *testing.T) {
	fb := newFilterBuilder(64)
	for i := range 10 {
		fb.add(2, uint64(i)<<40)
	}
	for i := range 80 {
		fb.add(5, uint64(i)<<50)
	}
	f := fb.filter()
	if len(f.layers) != 6 {
		t.Fatalf("%d epochs, want 6", len(f.layers))
	}
	for _, e := range []int{0, 1, 3, 4} {
		if l := f.layers[e]; len(l.blocks) != 0 {
			t.Fatalf("lost epoch %d has %d blocks", e, len(l.blocks))
		}
	}
	if c := candidates(f, uint64(3)<<40, nil); !slices.Contains(c, 2) {
		t.Fatalf("candidates %v, want epoch 2", c)
	}
	if c := candidates(f, uint64(3)<<50, nil); !slices.Contains(c, 5) {
		t.Fatalf("candidates %v, want epoch 5", c)
	}
	if f.layers[5].room != 0 || f.epoch() != 6 {
		t.Fatalf("newest epoch: room %d, next epoch %d; want 0 and 6 (80 keys, more than a new epoch's 64)", f.layers[5].room, f.epoch())
	}

	fb = newFilterBuilder(64)
	for i := range 5000 {
		fb.add(0, uint64(i)<<32)
	}
	if f := fb.filter(); f.epoch() != 1 {
		t.Fatalf("a first epoch of 5000 keys (a Loader's) takes more: next epoch %d, want 1", f.epoch())
	}
	fb = newFilterBuilder(0)
	for i := range 10 {
		fb.add(0, uint64(i)<<32)
	}
	if f := fb.filter(); f.epoch() != 1 {
		t.Fatalf("a first epoch of 10 keys alone (a small Loader's) takes more: next epoch %d, want 1", f.epoch())
	}
	if newFilterBuilder(0).add(maxEpoch+1, 1) {
		t.Fatal("an index key past maxEpoch taken for sound")
	}
	if f := newFilterBuilder(0).filter(); f != nil {
		t.Fatalf("a filter of no keys: %v, want nil", f)
	}
}

// candidates appends to dst the epochs an epochScan of f yields for h.
func candidates(f *keyFilter, h uint64, dst []uint32) []uint32 {
	sc, _, _ := (&knownKeys{f: f}).scan(h)
	for e, ok := sc.next(); ok; e, ok = sc.next() {
		dst = append(dst, e)
	}
	return dst
}

// BenchmarkKeyFilter measures the scan of the filters of known messages
// of 10 million messages over 12 partitions, the largest state
// (833 thousand messages and 7 epochs a partition; 12 MiB of filters, more
// than the processor's caches keep of them between lookups), for a
// partition chosen at random: "new", a message no partition holds (the
// case the filter exists for: every epoch checked), and "recent", one of
// the newest epoch, whose first candidate a batch reads.
func BenchmarkKeyFilter(b *testing.B) {
	const parts, n = 12, 10_000_000 / 12
	ks := make([]*knownKeys, parts)
	for p := range ks {
		f := newKeyFilter(firstEpochKeys(0, 0), 0)
		for i := range n {
			f.add(wamidHash(fmt.Sprint("in", p, "-", i)))
		}
		ks[p] = &knownKeys{f: f}
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	type probe struct {
		k *knownKeys
		h uint64
	}
	probes := func(in bool) []probe {
		ps := make([]probe, 1<<16)
		for i := range ps {
			p := rnd.IntN(parts)
			h := wamidHash(fmt.Sprint("out", i))
			if in {
				h = wamidHash(fmt.Sprint("in", p, "-", n-1-rnd.IntN(n/16)))
			}
			ps[i] = probe{ks[p], h}
		}
		return ps
	}
	b.Run("new", func(b *testing.B) {
		ps := probes(false)
		fp := 0
		for i := 0; b.Loop(); i++ {
			p := ps[i&(len(ps)-1)]
			sc, _, _ := p.k.scan(p.h)
			for _, ok := sc.next(); ok; _, ok = sc.next() {
				fp++
			}
		}
		b.ReportMetric(float64(fp)/float64(b.N), "fp")
		b.ReportMetric(float64(len(ks[0].f.layers)), "epochs")
		b.ReportMetric(float64(ks[0].f.bytes()*8)/n, "bits/key")
	})
	b.Run("recent", func(b *testing.B) {
		ps := probes(true)
		newest := uint32(len(ks[0].f.layers) - 1)
		for i := 0; b.Loop(); i++ {
			p := ps[i&(len(ps)-1)]
			sc, _, _ := p.k.scan(p.h)
			if e, ok := sc.next(); !ok || e != newest {
				b.Fatalf("first candidate %d, %v; want %d", e, ok, newest)
			}
		}
	})
}
