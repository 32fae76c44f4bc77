package processor

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// endGrace is how long a transaction's End that tries to commit may go on
// once franz-go signals a rebalance callback waiting for the poll loop (see
// end). A healthy End has asked the broker to end the transaction well
// within it: one offsets commit and one heartbeat round trip.
const endGrace = time.Second

// Causes of a cancelled End.
var (
	errCallbackWaits = errors.New("a rebalance callback waited for the transaction's end")
	errEndTimedOut   = errors.New("the transaction's end outlasted the transaction timeout")
)

// end ends the session's transaction with try and says whether it
// committed.
//
// franz-go's End can wait for ever. In a consumer-protocol group, once a
// heartbeat has brought a new assignment, the heartbeat loop stops
// answering the heartbeat that End forces before it commits, until the
// rebalance callback has run; with BlockRebalanceOnPoll that callback
// waits for the poll loop, which waits in End. transact ends with an abort
// when the callback already waits (End then forces no heartbeat), but the
// signal comes a moment after the heartbeat, and an End begun within that
// moment still waits: a crash test on a real broker saw two processors
// wait out the transaction timeout at the same moment.
//
// So an End that tries to commit is cancelled once the callback has waited
// endGrace for it, unless the client has by then written an EndTxn; and
// any End is cancelled past the transaction timeout (the broker aborts the
// transaction by then anyway). After a cancelled End franz-go aborts the
// transaction on the next End with TryAbort: it re-initialises the
// producer id, which fences what the broker still holds open, or, when
// End was cancelled before it reached EndTransaction, sends the abort.
// When the cancelled End tried to commit and wrote an EndTxn, whether it
// committed is unknown, and end returns an error that stops Run: a restart
// resumes from what Kafka and the store say (see the resume rules in
// doc.go). Otherwise nothing was committed: end aborts, returns not
// committed, and the records are read again; the callback runs once the
// poll loop lets it.
//
// The hook counts a write once it is done, and a cancelled request stops
// waiting for its write: an EndTxn that went out just as End was cancelled
// may be counted only later. The abort that follows goes to the same
// coordinator on the same connection, after it, so end counts again once
// the abort is done, and stops Run if an EndTxn was counted meanwhile (the
// abort's own EndTxn, sent only when End was cancelled in its flush, which
// transact has done already, counts too: a needless stop, never a wrong
// fold). Only were the coordinator to move in between could a committed
// transaction be taken for an aborted one; its records would then be
// folded, and their states emitted, a second time, equal to the first:
// nothing is lost.
func (p *Processor) end(tctx context.Context, sess *kgo.GroupTransactSession, try kgo.TransactionEndTry) (bool, error) {
	bound := p.endTimeout()
	bctx, cancelBound := context.WithTimeoutCause(tctx, bound, errEndTimedOut)
	defer cancelBound()
	ectx, cancel := context.WithCancelCause(bctx)
	defer cancel(nil)
	w := &endWatch{cancel: cancel, writes: p.endTxnWrites.Load(), grace: p.grace()}
	if try == kgo.TryCommit {
		p.ending.Store(w)
		if p.rebalanceWaits.Load() {
			w.arm(&p.endTxnWrites)
		}
	}
	committed, err := sess.End(ectx, try)
	p.ending.Store(nil)
	w.disarm()
	if err == nil {
		return committed, nil
	}
	cause := context.Cause(ectx)
	if !errors.Is(cause, errCallbackWaits) && !errors.Is(cause, errEndTimedOut) {
		return false, err
	}
	unknown := func() error {
		return fmt.Errorf("transaction end cancelled once it had asked the broker to end the transaction (%w), so whether it committed is unknown: %w",
			cause, err)
	}
	mayCommit := try == kgo.TryCommit
	if mayCommit && p.endTxnWrites.Load() != w.writes {
		return false, unknown()
	}
	hctx, hcancel := context.WithTimeout(tctx, bound)
	defer hcancel()
	if _, herr := sess.End(hctx, kgo.TryAbort); herr != nil {
		return false, fmt.Errorf("abort after %w: %w", cause, errors.Join(err, herr))
	}
	if mayCommit && p.endTxnWrites.Load() != w.writes {
		return false, unknown()
	}
	p.stats.endsCancelled.Add(1)
	p.log.Warn("transaction end cancelled and its transaction aborted; its records will be read again", "why", cause)
	return false, nil
}

// endTimeout bounds a transaction's End: the transaction timeout, past
// which the broker has aborted the transaction anyway (it counts from the
// transaction's first write, before End began), and which is below the
// group's session timeout (45 s by default), past which another member
// takes the partitions of a member that stopped heartbeating.
func (p *Processor) endTimeout() time.Duration { return p.cfg.TransactionTimeout }

// grace is endGrace, or the test's (Testing.EndGrace).
func (p *Processor) grace() time.Duration {
	if g := p.cfg.Testing.EndGrace; g > 0 {
		return g
	}
	return endGrace
}

// callbackBlocked is franz-go's signal that a rebalance callback waits for
// the poll loop: the next transaction aborts, and an End in progress that
// tries to commit is given endGrace (see end).
func (p *Processor) callbackBlocked(context.Context, *kgo.Client) {
	p.rebalanceWaits.Store(true)
	if w := p.ending.Load(); w != nil {
		w.arm(&p.endTxnWrites)
	}
}

// endWatch is an End in progress that the rebalance signal may cancel.
type endWatch struct {
	cancel context.CancelCauseFunc
	writes int64 // the client's EndTxn writes when End began
	grace  time.Duration

	mu    sync.Mutex
	timer *time.Timer
	done  bool // End returned
}

// arm cancels End after its grace unless, by then, it has returned or the
// client has written an EndTxn since it began. Arming twice is arming once.
func (w *endWatch) arm(writes *atomic.Int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done || w.timer != nil {
		return
	}
	w.timer = time.AfterFunc(w.grace, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		if !w.done && writes.Load() == w.writes {
			w.cancel(errCallbackWaits)
		}
	})
}

// disarm is called once End has returned: the watch cancels nothing after.
func (w *endWatch) disarm() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.done = true
	if w.timer != nil {
		w.timer.Stop()
	}
}

// endTxnCounter counts the EndTxn requests the client writes, whole or
// not, so that end can tell whether a cancelled End may have committed.
type endTxnCounter struct{ n *atomic.Int64 }

// OnBrokerWrite implements kgo.HookBrokerWrite.
func (c endTxnCounter) OnBrokerWrite(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, _ error) {
	if key == int16(kmsg.EndTxn) {
		c.n.Add(1)
	}
}
