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
// A worker its member still holds that waits much longer than any member's
// transaction can last is most likely held by a hanging transaction on the
// group's offsets (hanging.go), which no coordinator will ever end: the
// check then warns once, naming the command that finds and aborts it.
const (
	unstartedGrace = 15 * time.Second
	unstartedCheck = 5 * time.Second
)

// waitHint is how long a held worker waits for its offsets before the
// check warns of a hanging transaction: twice the transaction timeout,
// past which the broker aborts a member's transaction, and at least a
// minute.
func (p *Processor) waitHint() time.Duration {
	return max(2*p.cfg.TransactionTimeout, time.Minute)
}

// watchUnstarted drops stale unstarted workers until ctx is done.
func (p *Processor) watchUnstarted(ctx context.Context, cl *kgo.Client) {
	if p.cfg.Testing.NoUnstartedCheck {
		return
	}
	every(ctx, unstartedCheck, func() bool {
		now := time.Now()
		p.dropStaleUnstarted(ctx, cl, now.Add(-unstartedGrace), now.Add(-p.waitHint()))
		return true
	})
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
	parts := make([]int32, 0, len(drop))
	for _, w := range drop {
		w.stop()
		p.stats.forget(w.partition)
		w.log.Warn("partition no longer assigned to this member, and its revoke never reached the processor; dropped the worker waiting for its offsets",
			"waited", time.Since(w.created).Round(time.Second))
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
