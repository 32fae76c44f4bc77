package processor

import (
	"sync"
	"sync/atomic"

	"github.com/wastatus/wastatus/internal/hist"
)

// Stats is a snapshot of the processor's counters since it was created.
type Stats struct {
	Events      uint64 // input records read
	Advanced    uint64 // events that raised a message's status
	Filled      uint64 // events that changed state without raising the status
	Stale       uint64 // events older than the state (arrived out of order)
	Duplicates  uint64 // events that changed nothing
	FailedAfter uint64 // failed events for a message already delivered, read or played
	Unknown     uint64 // events with a status value this version does not know
	DeadLetters uint64 // records written to the dead-letter topic
	Emitted     uint64 // states written to the current topic
	Replayed    uint64 // events folded without emitting while catching up
	Batches     uint64 // transactions committed
	Restored    uint64 // states read from the current topic by restores
	Aborted     uint64 // transactions a rebalance aborted (their records are read again)
	// MissedRevokes counts the workers dropped because their partition
	// was revoked and the revoke never reached the processor (reconcile.go).
	MissedRevokes uint64
	// EndsCancelled counts transaction ends cancelled because franz-go
	// held them for a rebalance callback that waited for them, or past the
	// transaction timeout, and whose transactions were then aborted; they
	// count in Aborted too (see end).
	EndsCancelled uint64

	// ByStatus counts committed events by status value and region.
	ByStatus map[StatusRegion]uint64
	// Lag is each owned partition's consumer lag: the events after the
	// last polled one, as of the last poll.
	Lag map[int32]int64
	// Preparing is the progress of partitions being restored or caught up:
	// records read and about how many in all.
	Preparing map[int32][2]int64
	// Latency is the time from an event's receipt at the edge to the
	// commit of the transaction that emitted its message's state.
	Latency hist.Snapshot
}

// StatusRegion keys Stats.ByStatus.
type StatusRegion struct{ Status, Region string }

type counters struct {
	events, advanced, filled, stale, duplicates, failedAfter atomic.Uint64
	unknown, deadLetters, emitted, replayed, batches         atomic.Uint64
	restored, aborted, missedRevokes, endsCancelled          atomic.Uint64
	latency                                                  *hist.Histogram

	mu        sync.Mutex
	byStatus  map[StatusRegion]uint64
	lag       map[int32]int64
	preparing map[int32][2]int64
}

func newCounters() *counters {
	return &counters{
		latency:   hist.New(),
		byStatus:  make(map[StatusRegion]uint64),
		lag:       make(map[int32]int64),
		preparing: make(map[int32][2]int64),
	}
}

func (c *counters) addByStatus(m map[StatusRegion]uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, n := range m {
		c.byStatus[k] += n
	}
}

func (c *counters) setLag(part int32, lag int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lag[part] = lag
}

// forget drops a partition's gauges when it is revoked.
func (c *counters) forget(part int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.lag, part)
	delete(c.preparing, part)
}

func (c *counters) setPreparing(part int32, read, total int64, done bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if done {
		delete(c.preparing, part)
		return
	}
	c.preparing[part] = [2]int64{read, total}
}

func (c *counters) snapshot() Stats {
	s := Stats{
		Events:        c.events.Load(),
		Advanced:      c.advanced.Load(),
		Filled:        c.filled.Load(),
		Stale:         c.stale.Load(),
		Duplicates:    c.duplicates.Load(),
		FailedAfter:   c.failedAfter.Load(),
		Unknown:       c.unknown.Load(),
		DeadLetters:   c.deadLetters.Load(),
		Emitted:       c.emitted.Load(),
		Replayed:      c.replayed.Load(),
		Batches:       c.batches.Load(),
		Restored:      c.restored.Load(),
		Aborted:       c.aborted.Load(),
		MissedRevokes: c.missedRevokes.Load(),
		EndsCancelled: c.endsCancelled.Load(),
		Latency:       c.latency.Snapshot(),
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s.ByStatus = make(map[StatusRegion]uint64, len(c.byStatus))
	for k, v := range c.byStatus {
		s.ByStatus[k] = v
	}
	s.Lag = make(map[int32]int64, len(c.lag))
	for k, v := range c.lag {
		s.Lag[k] = v
	}
	s.Preparing = make(map[int32][2]int64, len(c.preparing))
	for k, v := range c.preparing {
		s.Preparing[k] = v
	}
	return s
}
