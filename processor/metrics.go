package processor

import "sync/atomic"

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
}

type counters struct {
	events, advanced, filled, stale, duplicates, failedAfter atomic.Uint64
	unknown, deadLetters, emitted, replayed, batches         atomic.Uint64
	restored, aborted                                        atomic.Uint64
}

func (c *counters) snapshot() Stats {
	return Stats{
		Events:      c.events.Load(),
		Advanced:    c.advanced.Load(),
		Filled:      c.filled.Load(),
		Stale:       c.stale.Load(),
		Duplicates:  c.duplicates.Load(),
		FailedAfter: c.failedAfter.Load(),
		Unknown:     c.unknown.Load(),
		DeadLetters: c.deadLetters.Load(),
		Emitted:     c.emitted.Load(),
		Replayed:    c.replayed.Load(),
		Batches:     c.batches.Load(),
		Restored:    c.restored.Load(),
		Aborted:     c.aborted.Load(),
	}
}
