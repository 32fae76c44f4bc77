// Package processor folds the events topic into the state store and emits
// every changed message state to the compacted current topic.
//
// # The loop
//
// A franz-go consumer group reads whatsapp.status.events with read_committed
// isolation. Every instance polls with BlockRebalanceOnPoll, so a rebalance
// waits while a polled batch is in flight. The poll loop splits a batch by
// partition and hands each part to that partition's worker; every worker
// folds its records into one state.Batch, produces the changed states (the
// whole folded state, keyed by wamid) to the SAME partition number of
// whatsapp.status.current, and dead letters to whatsapp.status.dlq, waits
// until Kafka has acknowledged every record, and then commits its Pebble
// batch: states, history and the partition's next offset together. When
// every worker is done the poll loop commits the consumed offsets and lets
// rebalances through.
//
// This is at-least-once: a crash after the Pebble commit and before the
// offset commit leaves the store ahead of the group (P > C); on assignment
// the worker resumes at P, so nothing is folded or emitted twice. A crash
// before the Pebble commit re-folds and re-emits the same states, which a
// compacted topic absorbs: a state is never emitted before the states it
// contains, so the output of a key never goes backwards.
//
// # Resuming a partition
//
// On assignment (AdjustFetchOffsetsFn) the store's next offset P is compared
// with the group's committed offset C and the start of the events log:
//
//   - P ≥ C: resume at P; the records in between are in the store already and
//     were emitted before the offset commit was lost.
//   - P < C (another instance owned the partition meanwhile): resume at P and
//     fold up to C without emitting, since the other owner already emitted
//     those states, so no older state is ever written after a newer one.
//   - no state and nothing committed: a new partition, folded from the start.
//   - no state although the group has progressed (a lost disk, a new
//     instance), or P below the log's start (retention deleted what the store
//     missed): drop the partition's state and restore it from the current
//     topic, read_committed to its last stable offset, then resume at C. The
//     partition's fetches are paused meanwhile; the restore runs on the
//     partition's worker and is abandoned if the partition is revoked. Its
//     next offset is written last, so a crash mid-restore restores again.
//
// A restored state may already include events after C (at-least-once output
// runs ahead of offset commits); folding them again changes nothing, because
// the fold is idempotent. /readyz stays false until every owned partition has
// restored and caught up.
//
// # Poison
//
// A record that cannot be decoded, is over the size limit, carries a status
// value this version does not know, cannot be folded (no wamid, a timestamp
// that is not positive), or whose key is not its wamid, goes to
// the dead-letter topic with headers reason, error, source (processor), source.topic,
// source.partition and source.offset, and the pipeline keeps going. A
// failure to produce or to write the store is not poison: Run returns the
// error and nothing of that batch is stored or committed.
//
// # Query API
//
// Register mounts GET /v1/messages/{wamid}, /healthz and /readyz. A message
// is served by the instance that owns its partition (the partition Kafka's
// default murmur2 partitioner gives its wamid); another instance answers 503.
//
// # Files and goroutines
//
//	config.go     Config, defaults, Validate
//	topics.go     topic specs, creation with kadm, the partition-count check
//	processor.go  New, Run, the poll loop, group callbacks, offset decisions
//	worker.go     the per-partition worker: fold, emit, dead letters, commit
//	restore.go    rebuilding partitions of the store from the current topic
//	api.go        HTTP query API and its JSON forms
//	store.go      the Store interface the processor needs
//	metrics.go    Stats counters
//	errors.go     sentinel errors
//
// Goroutines: the caller's Run goroutine polls; franz-go's group goroutine
// runs the assign/revoke callbacks (never during a batch); one worker
// goroutine per owned partition, started on assignment and stopped (and
// waited for) on revocation, loss and shutdown; a restoring worker runs a
// consumer client of its own for the current topic until it is done.
package processor
