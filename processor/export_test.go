package processor

import (
	"context"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// EndGrace exposes endGrace to the external tests.
const EndGrace = endGrace

// Ending reports whether a transaction's End is under way with a commit.
func (p *Processor) Ending() bool { return p.ending.Load() != nil }

// ResumeDecision exposes decide's answer to the external tests.
type ResumeDecision struct {
	At, CatchUpFrom int64
	Restore         bool
}

// Decide exposes decide to the external tests.
func Decide(stored bool, next, committed, logStart int64) ResumeDecision {
	d := decide(stored, next, committed, logStart)
	return ResumeDecision{At: d.at, CatchUpFrom: d.catchUpFrom, Restore: d.restore}
}

// AddUnstartedWorker gives p an unstarted worker for part, made age ago, as
// a revoke that never reached p would leave one behind.
func (p *Processor) AddUnstartedWorker(part int32, age time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	w := newWorker(p.client.Context(), p, p.client, part)
	w.created = time.Now().Add(-age)
	p.owned[part] = w
	go w.run()
}

// DropStaleUnstarted runs the check watchUnstarted runs, with grace.
func (p *Processor) DropStaleUnstarted(ctx context.Context, grace time.Duration) []int32 {
	p.mu.RLock()
	cl := p.client
	p.mu.RUnlock()
	parts := p.dropStaleUnstarted(ctx, cl, time.Now().Add(-grace), time.Now().Add(-p.waitHint()))
	slices.Sort(parts)
	return parts
}

// MemberPartitions returns the partitions the group coordinator lists for
// p's member, sorted.
func (p *Processor) MemberPartitions(ctx context.Context) ([]int32, error) {
	p.mu.RLock()
	cl := p.client
	p.mu.RUnlock()
	held, err := p.memberPartitions(ctx, cl)
	if err != nil {
		return nil, err
	}
	parts := make([]int32, 0, len(held))
	for part := range held {
		parts = append(parts, part)
	}
	slices.Sort(parts)
	return parts, nil
}

// FetchedOffset runs adjustOffsets as franz-go does once it has fetched the
// group's offset for part, and then stops the worker that made: the test
// only looks at what adjustOffsets did.
func (p *Processor) FetchedOffset(ctx context.Context, part int32, at int64) (made, started bool, err error) {
	offsets := map[string]map[int32]kgo.Offset{p.cfg.EventsTopic: {part: kgo.NewOffset().At(at)}}
	if _, err := p.adjustOffsets(ctx, offsets); err != nil {
		return false, false, err
	}
	p.mu.RLock()
	w := p.owned[part]
	p.mu.RUnlock()
	if w == nil {
		return false, false, nil
	}
	started = w.hasStarted()
	p.stopWorkers([]int32{part})
	return true, started, nil
}

// GroupOffsetsPartition is groupOffsetsPartition.
func GroupOffsetsPartition(group string, n int32) int32 { return groupOffsetsPartition(group, n) }

// WarnLongWaits runs the check watchUnstarted runs, warning of every held
// worker that has waited for its offsets longer than hint.
func (p *Processor) WarnLongWaits(ctx context.Context, hint time.Duration) {
	p.mu.RLock()
	cl := p.client
	p.mu.RUnlock()
	now := time.Now()
	p.dropStaleUnstarted(ctx, cl, now.Add(-hint), now.Add(-hint))
}

// MarkUnlisted sets the count of checks in a row that did not list part for
// p's member, as checkStarted would have counted them.
func (p *Processor) MarkUnlisted(part int32, n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if w := p.owned[part]; w != nil {
		w.unlisted = n
	}
}

// Unlisted returns part's count of checks in a row that did not list it;
// -1 when p has no worker for part.
func (p *Processor) Unlisted(part int32) int {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if w := p.owned[part]; w != nil {
		return w.unlisted
	}
	return -1
}

// RebalanceWaits reports whether franz-go has signalled a rebalance
// callback waiting for p's poll loop since the loop last looked.
func (p *Processor) RebalanceWaits() bool { return p.rebalanceWaits.Load() }
