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
// is consumed, and only a revoke callback may stop it), stays. In a CI run
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
