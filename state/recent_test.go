package state

import (
	"reflect"
	"testing"

	"github.com/wastatus/wastatus/schemas"
)

// sameBucket returns n wamid hashes of partition 0 that share one bucket
// of r, each with its own tag.
func sameBucket(r *recentSeqs, n int) []uint64 {
	c := uint64(1) * 0x9e3779b97f4a7c15 // partition 0's mix
	hs := make([]uint64, n)
	for i := range hs {
		hs[i] = (uint64(i+1)<<recentSeqBits | 5) ^ c
	}
	return hs
}

func TestRecentSeqs(t *testing.T) {
	r := newRecentSeqs()
	if _, ok := r.get(0, 42); ok {
		t.Fatalf("an empty table has a hint")
	}
	r.put(0, 42, 7)
	if seq, ok := r.get(0, 42); !ok || seq != 7 {
		t.Fatalf("get = %d, %t; want 7", seq, ok)
	}
	if _, ok := r.get(1, 42); ok {
		t.Errorf("a hint of partition 0 answers partition 1")
	}
	r.put(0, 42, 0) // seq 0 is a seq like any other
	if seq, ok := r.get(0, 42); !ok || seq != 0 {
		t.Errorf("after a put in place, get = %d, %t; want 0", seq, ok)
	}
	r.put(0, 43, recentSeqMax+1)
	if _, ok := r.get(0, 43); ok {
		t.Errorf("a seq past recentSeqMax was kept")
	}

	// A bucket keeps its last recentWays messages, first in first out,
	// and a put of one it holds moves nothing.
	hs := sameBucket(r, recentWays+1)
	first, _ := r.bucket(0, hs[0])
	last, _ := r.bucket(0, hs[recentWays])
	if &first[0] != &last[0] {
		t.Fatalf("sameBucket's hashes are not in one bucket")
	}
	for i, h := range hs[:recentWays] {
		r.put(0, h, uint64(100+i))
	}
	r.put(0, hs[0], 100)
	for i, h := range hs[:recentWays] {
		if seq, ok := r.get(0, h); !ok || seq != uint64(100+i) {
			t.Fatalf("message %d of a full bucket: %d, %t", i, seq, ok)
		}
	}
	r.put(0, hs[recentWays], 200)
	if _, ok := r.get(0, hs[0]); ok {
		t.Errorf("the bucket's first message survived a put into the full bucket")
	}
	for i, h := range hs[1:] {
		if _, ok := r.get(0, h); !ok {
			t.Errorf("message %d lost", i+1)
		}
	}
}

// TestRecentHints checks that a batch finds a message committed a moment
// ago by its hint, without reading the index, and that a hint is never
// trusted: one naming another message's record, one naming no record, and
// one of a partition dropped and refilled since change no answer; and
// that the lookup of a message the filter of known messages lets through
// but the partition does not hold counts as a false positive.
func TestRecentHints(t *testing.T) {
	s, _ := openMem(t, Options{})
	a, b := testWAMID, "wamid.b"
	commit(t, s, 0, 0, ev("sent", T, wamid(a)), ev("sent", T, wamid(b)))
	seqA, okA := s.recent.get(0, s.hash(a))
	seqB, okB := s.recent.get(0, s.hash(b))
	if !okA || !okB || seqA == seqB {
		t.Fatalf("hints after the first commit: %d, %t; %d, %t", seqA, okA, seqB, okB)
	}
	step := func(name string, off int64, e schemas.StatusEvent, want Outcome, hits, misses, fps int64) {
		t.Helper()
		if outs := commit(t, s, 0, off, e); !reflect.DeepEqual(outs, []Outcome{want}) {
			t.Errorf("%s: outcome %v, want %v", name, outs, want)
		}
		if st := s.Stats(); st.RecentHits != hits || st.RecentMisses != misses || st.KnownFalsePositives != fps {
			t.Errorf("%s: %d hits, %d misses, %d false positives; want %d, %d, %d", name, st.RecentHits, st.RecentMisses, st.KnownFalsePositives, hits, misses, fps)
		}
	}
	wantState := func(name, id string, evs ...schemas.StatusEvent) {
		t.Helper()
		for i := range evs {
			evs[i].WAMID = id
		}
		want, _ := fold(t, FailedWins, evs...)
		if got, ok := mustGet(t, s, 0, id); !ok || !got.Equal(&want) {
			t.Errorf("%s: %s is %s, %t; want %s", name, id, jsonString(got.View(FailedWins)), ok, jsonString(want.View(FailedWins)))
		}
	}

	step("found by its hint", 2, ev("delivered", T+1, wamid(a)), Advanced, 1, 0, 0)

	s.recent.put(0, s.hash(a), seqB)
	step("a hint naming another message", 3, ev("read", T+2, wamid(a)), Advanced, 1, 1, 0)
	wantState("a hint naming another message", a, ev("sent", T), ev("delivered", T+1), ev("read", T+2))
	wantState("a hint naming another message", b, ev("sent", T))
	if seq, ok := s.recent.get(0, s.hash(a)); !ok || seq != seqA {
		t.Errorf("the commit after a wrong hint left %d, %t; want %d", seq, ok, seqA)
	}

	s.recent.put(0, s.hash(a), seqA+seqB+1000)
	step("a hint naming no record", 4, ev("read", T+2, wamid(a)), Duplicate, 1, 2, 0)

	// Dropped and refilled, the partition's seqs name other messages, and
	// a's hint, had it outlived the drop, names c's record. x shares a's
	// hash, so that the filter of known messages may hold a and the hint
	// is read.
	if err := s.DropPartition(0); err != nil {
		t.Fatal(err)
	}
	s.hash = func(w string) uint64 {
		if w == "wamid.x" {
			return wamidHash(a)
		}
		return wamidHash(w)
	}
	commit(t, s, 0, 0, ev("sent", T, wamid("wamid.c")), ev("sent", T, wamid("wamid.x")))
	if seqC, _ := s.recent.get(0, s.hash("wamid.c")); seqC != seqA {
		t.Fatalf("the refilled partition's first message took seq %d, not a's %d", seqC, seqA)
	}
	s.recent.put(0, s.hash(a), seqA)
	// a is not in the partition now, but x, whose hash it shares, is: the
	// filter lets a through, and finding it costs a false positive.
	step("a hint from before a drop", 2, ev("delivered", T+1, wamid(a)), Advanced, 1, 2, 1)
	wantState("a hint from before a drop", a, ev("delivered", T+1))
	wantState("a hint from before a drop", "wamid.c", ev("sent", T))
	wantState("a hint from before a drop", "wamid.x", ev("sent", T))
}
