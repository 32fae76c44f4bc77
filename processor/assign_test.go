package processor

import (
	"context"
	"log/slog"
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestDropUnassigned checks the rule adjustOffsets applies to a revoke that
// GroupTransactSession swallowed: a worker that never started, for a
// partition the client's offset fetch no longer covers, is dropped; a
// worker whose partition is being fetched, or that started (its partition
// is consumed, and only a revoke callback or the coordinator check may stop
// it), stays. In a CI run
// a consumer-protocol group revoked partitions 3-5 and then 2 of one
// instance 4 ms apart; the second revoke never reached the processor, and
// its unstarted worker for partition 2 held Ready at "partition 2
// catching up" for good.
func TestDropUnassigned(t *testing.T) {
	p := &Processor{log: slog.New(slog.DiscardHandler), owned: make(map[int32]*worker)}
	for part := range int32(4) {
		p.owned[part] = newWorker(context.Background(), p, nil, part)
	}
	close(p.owned[0].started) // started, and not in the fetch: a revoke callback's to stop
	close(p.owned[1].started) // started, in the fetch
	// 2: not started, in the fetch: its offsets are on their way
	// 3: not started, not in the fetch: revoked without a callback
	fetching := map[int32]kgo.Offset{1: kgo.NewOffset(), 2: kgo.NewOffset()}

	dropped := p.dropUnassigned(fetching)
	var parts []int32
	for _, w := range dropped {
		parts = append(parts, w.partition)
	}
	if !slices.Equal(parts, []int32{3}) {
		t.Fatalf("dropped partitions %v, want [3]", parts)
	}
	for _, part := range []int32{0, 1, 2} {
		if p.owned[part] == nil {
			t.Errorf("partition %d's worker was dropped", part)
		}
	}
	if p.owned[3] != nil {
		t.Error("partition 3's worker is still owned")
	}
	if again := p.dropUnassigned(fetching); len(again) != 0 {
		t.Errorf("a second pass dropped %d workers", len(again))
	}
}

// TestRetireUnlisted checks the rules by which the poll loop drops started
// workers whose partitions the coordinator did not list: only once counted
// unlistedChecks times, only with no records of theirs in the batch just
// folded (which restarts the count), and not while a rebalance callback
// waits for the loop, whose revoke, late rather than lost, drops them
// itself; the next round drops what is left.
func TestRetireUnlisted(t *testing.T) {
	cl, err := kgo.NewClient(kgo.SeedBrokers("127.0.0.1:1"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	p := &Processor{log: slog.New(slog.DiscardHandler), owned: make(map[int32]*worker), stats: newCounters()}
	counts := []int{0, 1, unlistedChecks, unlistedChecks, unlistedChecks + 1}
	for part, n := range counts {
		w := newWorker(context.Background(), p, cl, int32(part))
		close(w.started)
		close(w.done) // never run: stop has nothing to wait for
		w.unlisted = n
		p.owned[int32(part)] = w
	}
	// 0 is not counted; 1 is counted once; 2 and 4 twice and more, with
	// no records polled; 3 twice, with records in the first round's batch:
	// still consumed.
	rounds := []struct {
		waits  bool
		batch  map[int32][]*kgo.Record
		owned  []int32
		missed uint64
		count1 int
		count3 int
	}{
		{waits: true, batch: map[int32][]*kgo.Record{3: {{}}}, owned: []int32{0, 1, 2, 3, 4}, count1: 1, count3: 0},
		{owned: []int32{0, 1, 3}, missed: 2, count1: 1, count3: 0},
		{owned: []int32{0, 1, 3}, missed: 2, count1: 1, count3: 0},
	}
	for i, r := range rounds {
		p.rebalanceWaits.Store(r.waits)
		p.retireUnlisted(cl, r.batch)
		got := p.Owned()
		slices.Sort(got)
		if !slices.Equal(got, r.owned) {
			t.Fatalf("round %d (a callback waiting: %t): owned %v, want %v", i+1, r.waits, got, r.owned)
		}
		if n := p.stats.missedRevokes.Load(); n != r.missed {
			t.Errorf("round %d: counted %d missed revokes, want %d", i+1, n, r.missed)
		}
		if c1, c3 := p.owned[1].unlisted, p.owned[3].unlisted; c1 != r.count1 || c3 != r.count3 {
			t.Errorf("round %d: the counts of 1 and 3 are %d and %d, want %d and %d", i+1, c1, c3, r.count1, r.count3)
		}
	}
}
