package processor

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// A worker waits, unstarted, from its partition's assignment until franz-go
// has fetched the group's offsets for it (adjustOffsets starts it). Should
// the partition be revoked meanwhile with a revoke GroupTransactSession
// swallowed (see wakePoll), and no later offset fetch come to tell
// (dropUnassigned), the worker would wait for ever and hold Ready at
// "catching up". So the processor asks the group coordinator about the
// workers that have waited longer than unstartedGrace, every
// unstartedCheck, and drops those whose partitions it no longer lists for
// this member.
//
// Dropping such a worker is safe even when the coordinator's answer is
// stale: a worker that never started never got a job, and should franz-go
// fetch the partition's offsets after all, adjustOffsets makes a worker for
// it again.
//
// The grace is far above the milliseconds an offset fetch takes, so a
// healthy group never asks; with the check's period, a stale worker goes
// 15-20 s after it was made. A fetch can wait longer, for a transaction of
// another member to end (UNSTABLE_OFFSET_COMMIT) or for a coordinator to
// come back; the coordinator then still lists the partition, and the
// worker stays. A classic group that is rebalancing lists no assignments,
// so it tells nothing until it is stable again.
//
// A started worker whose revoke was swallowed is worse off: it keeps
// answering reads of a partition another member now folds, with states that
// no longer change, and Ready stays true. A swallowed revoke comes only
// after one that reached the processor and before the next transaction
// ends, so for a while after each revoke or loss (startedWatch) the check
// also asks about the started workers, and counts, for each, the checks in a
// row that found its partition listed for this member in neither
// assignment. Such a partition is no longer the member's, or is about to
// stop being it: a consumer-protocol coordinator lists a partition whose
// revoke the member has yet to acknowledge in neither (Kafka's describe
// leaves out the partitions pending revocation), and a classic group lists
// the assignment of its stable generation, which a member may still be
// taking in. Either way the revoke runs at the poll loop's next
// AllowRebalance, before any further poll (franz-go gives a waiting
// rebalance priority), and drops the partition's buffered records. So the
// poll loop drops a worker only once unlistedChecks checks in a row,
// unstartedCheck apart, did not list its partition, and no records of it
// were polled since the first of them (retireUnlisted), between two
// transactions: where the revoke callback itself would have dropped it.
// Should records of it come after all, the transaction aborts and Run
// stops, as for any partition no worker owns; nothing is committed past
// records never folded.
//
// A worker its member still holds that waits much longer than any member's
// transaction can last is most likely held by a hanging transaction on the
// group's offsets (hanging.go), which no coordinator will ever end: the
// check then warns once, naming the command that finds and aborts it.
const (
	unstartedGrace = 15 * time.Second
	unstartedCheck = 5 * time.Second
	unlistedChecks = 2
)

// waitHint is how long a held worker waits for its offsets before the
// check warns of a hanging transaction: twice the transaction timeout,
// past which the broker aborts a member's transaction, and at least a
// minute.
func (p *Processor) waitHint() time.Duration {
	return max(2*p.cfg.TransactionTimeout, time.Minute)
}

// startedWatch is how long after a revoke or a loss reached the processor
// the check looks for started workers whose revoke did not: the waitHint,
// past which the transaction under way when it came, whose end lets the
// next revoke through, has ended or been aborted by the broker.
func (p *Processor) startedWatch() time.Duration { return p.waitHint() }

// watchUnstarted drops stale unstarted workers, and marks started ones
// whose revoke never came, until ctx is done.
func (p *Processor) watchUnstarted(ctx context.Context, cl *kgo.Client) {
	if p.cfg.Testing.NoUnstartedCheck {
		return
	}
	every(ctx, unstartedCheck, func() bool {
		now := time.Now()
		p.dropStaleUnstarted(ctx, cl, now.Add(-unstartedGrace), now.Add(-p.waitHint()))
		p.checkStarted(ctx, cl, now)
		return true
	})
}

// checkStarted asks the group coordinator about the started workers while a
// revoke or a loss that reached the processor is recent, or a worker's count
// is under way, and counts for each worker the checks in a row that did not
// list its partition for this member. It changes no count when the
// coordinator cannot answer.
func (p *Processor) checkStarted(ctx context.Context, cl *kgo.Client, now time.Time) {
	recent := now.Sub(time.Unix(0, p.releasedAt.Load())) < p.startedWatch()
	p.mu.RLock()
	var started []*worker
	counting := false
	for _, w := range p.owned {
		if w.hasStarted() {
			started = append(started, w)
			counting = counting || w.unlisted > 0
		}
	}
	p.mu.RUnlock()
	if len(started) == 0 || !recent && !counting {
		return
	}
	held, err := p.memberPartitions(ctx, cl)
	if err != nil {
		// A classic group tells nothing while it rebalances; the next
		// revoke that gets through opens the window again.
		p.log.Debug("cannot tell whether started partitions are still assigned", "err", err)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, w := range started {
		switch {
		case p.owned[w.partition] != w:
		case held[w.partition]:
			w.unlisted = 0
		default:
			w.unlisted++
		}
	}
}

// retireUnlisted drops the started workers whose partitions unlistedChecks
// checks in a row did not list for this member, and restarts the count of
// those with records in batch, which franz-go still consumes. The poll loop
// calls it between transactions, when no worker has a fold to do, and just
// before it lets rebalances run. While a rebalance callback waits for that
// (franz-go signals it), it drops nothing: a revoke held back by a long
// transaction is late, not lost, and drops its workers itself; a worker
// whose revoke is lost is dropped on the next round.
func (p *Processor) retireUnlisted(cl *kgo.Client, batch map[int32][]*kgo.Record) {
	waits := p.rebalanceWaits.Swap(false)
	p.mu.RLock()
	counting := false
	for _, w := range p.owned {
		counting = counting || w.unlisted > 0
	}
	p.mu.RUnlock()
	if !counting {
		return
	}
	p.mu.Lock()
	var drop []*worker
	for part, w := range p.owned {
		switch {
		case w.unlisted == 0:
		case len(batch[part]) > 0:
			w.unlisted = 0
		case w.unlisted >= unlistedChecks && !waits:
			delete(p.owned, part)
			drop = append(drop, w)
		}
	}
	p.mu.Unlock()
	if len(drop) == 0 {
		return
	}
	parts := p.dropMissed(drop, func(w *worker) {
		w.log.Warn("partition no longer assigned to this member, and its revoke never reached the processor; dropped its worker",
			"checks", unlistedChecks, "check_interval", unstartedCheck)
	})
	// One that was restoring or catching up is still paused.
	cl.ResumeFetchPartitions(map[string][]int32{p.cfg.EventsTopic: parts})
}

// dropStaleUnstarted drops the workers made before cutoff that have not
// started and whose partitions the group coordinator lists for this member
// in neither its current nor its target assignment, and returns their
// partitions. It keeps every worker when the coordinator cannot answer.
// Of the workers it keeps, it warns once of each made before hintCutoff.
func (p *Processor) dropStaleUnstarted(ctx context.Context, cl *kgo.Client, cutoff, hintCutoff time.Time) []int32 {
	p.mu.RLock()
	var waiting []*worker
	for _, w := range p.owned {
		if !w.hasStarted() && w.created.Before(cutoff) {
			waiting = append(waiting, w)
		}
	}
	p.mu.RUnlock()
	if len(waiting) == 0 {
		return nil
	}
	held, err := p.memberPartitions(ctx, cl)
	if err != nil {
		if ctx.Err() == nil {
			p.log.Info("cannot tell whether partitions waiting for their offsets are still assigned; keeping their workers",
				"waiting", len(waiting), "err", err)
		}
		return nil
	}
	var drop, hint []*worker
	p.mu.Lock()
	for _, w := range waiting {
		// adjustOffsets starts workers under p.mu: one that started
		// since the scan above stays.
		switch {
		case p.owned[w.partition] != w || w.hasStarted():
		case !held[w.partition]:
			delete(p.owned, w.partition)
			drop = append(drop, w)
		case !w.waitHinted && w.created.Before(hintCutoff):
			w.waitHinted = true
			hint = append(hint, w)
		}
	}
	p.mu.Unlock()
	for _, w := range hint {
		w.log.Warn("partition still waiting for the group's committed offsets, longer than any member's transaction lasts; "+
			"a hanging transaction may hold them: see wastatus txn hanging",
			"group", p.cfg.Group, "waited", time.Since(w.created).Round(time.Second))
	}
	return p.dropMissed(drop, func(w *worker) {
		w.log.Warn("partition no longer assigned to this member, and its revoke never reached the processor; dropped the worker waiting for its offsets",
			"waited", time.Since(w.created).Round(time.Second))
	})
}

// dropMissed stops the workers of partitions whose revoke never reached the
// processor, already taken out of p.owned, forgets their gauges, counts them
// and warns of each, and returns their partitions. p.mu must not be held: a
// worker's stop waits for it.
func (p *Processor) dropMissed(ws []*worker, warn func(*worker)) []int32 {
	parts := make([]int32, 0, len(ws))
	for _, w := range ws {
		w.stop()
		p.stats.forget(w.partition)
		p.stats.missedRevokes.Add(1)
		warn(w)
		parts = append(parts, w.partition)
	}
	return parts
}

// memberPartitions returns the events topic's partitions that the group
// coordinator lists for this client's member: in its current or its target
// assignment with the consumer protocol, in its assignment with the classic
// one.
func (p *Processor) memberPartitions(ctx context.Context, cl *kgo.Client) (map[int32]bool, error) {
	member, _ := cl.GroupMetadata()
	if member == "" {
		return nil, errNotMember
	}
	p.mu.RLock()
	topicID := [16]byte(p.eventsID)
	p.mu.RUnlock()
	held := make(map[int32]bool)
	if p.cfg.GroupProtocol == "consumer" {
		req := kmsg.NewPtrConsumerGroupDescribeRequest()
		req.Groups = []string{p.cfg.Group}
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			return nil, fmt.Errorf("processor: describe group %s: %w", p.cfg.Group, err)
		}
		for _, g := range resp.Groups {
			if err := kerr.ErrorForCode(g.ErrorCode); err != nil {
				return nil, fmt.Errorf("processor: describe group %s: %w", p.cfg.Group, err)
			}
			for _, m := range g.Members {
				if m.MemberID != member {
					continue
				}
				for _, a := range []kmsg.Assignment{m.Assignment, m.TargetAssignment} {
					for _, tp := range a.TopicPartitions {
						// Brokers name the topic by id; some also by name.
						if tp.TopicID == topicID || tp.Topic == p.cfg.EventsTopic {
							for _, part := range tp.Partitions {
								held[part] = true
							}
						}
					}
				}
				return held, nil
			}
		}
		return nil, errNotMember
	}
	described, err := kadm.NewClient(cl).DescribeGroups(ctx, p.cfg.Group)
	if err != nil {
		return nil, fmt.Errorf("processor: describe group %s: %w", p.cfg.Group, err)
	}
	g := described[p.cfg.Group]
	if g.Err != nil {
		return nil, fmt.Errorf("processor: describe group %s: %w", p.cfg.Group, g.Err)
	}
	if g.State != "Stable" {
		// A classic group lists its members' assignments only
		// between rebalances.
		return nil, fmt.Errorf("processor: group %s is %s, so its description lists no assignments", p.cfg.Group, g.State)
	}
	for _, m := range g.Members {
		if m.MemberID != member {
			continue
		}
		if a, ok := m.Assigned.AsConsumer(); ok {
			for _, t := range a.Topics {
				if t.Topic == p.cfg.EventsTopic {
					for _, part := range t.Partitions {
						held[part] = true
					}
				}
			}
		}
		return held, nil
	}
	return nil, errNotMember
}
