// Package state holds what wastatus knows about each WhatsApp message: the
// status lattice, the fold of status events into it, its compact binary
// encoding, and the Pebble store that keeps it per Kafka partition.
//
// It imports schemas (the event and record types) and Pebble; no Kafka
// client. Everything here is deterministic: nothing reads a clock.
//
// # The lattice
//
// A [Message] is the state of one message (wamid). Meta reports a message's
// lifecycle as separate events, in any order, duplicated, with steps
// skipped, so the state is built only from joins: every field is a minimum,
// a maximum, a set union or a first-by-fixed-order. Folding is therefore
// commutative, associative and idempotent: any permutation of any multiset
// of a message's events gives byte-identical state ([Message.AppendBinary])
// and an identical [Message.View]. The zero Message is the bottom: nothing
// seen.
//
// The state holds, per participant (the recipient_participant_id of a group
// message; "" for a one-to-one message), the earliest payload timestamp of
// each of the five statuses: sent, delivered, read, played, failed. So a read
// without a delivered leaves delivered_at empty, a delivered arriving after
// the read still fills delivered_at, and a retry with a later timestamp
// changes nothing. Timestamps come from the payload only (one-second
// resolution, so ties are common and harmless); a [schemas.StatusEvent]
// with an unknown status, an empty wamid or a timestamp that is not
// positive is never folded.
//
// The top-level timestamps of a message are the minimum over its
// participants. [Message.Status] is derived, not stored: the status of
// highest rank, under a [Policy], among the statuses seen by any participant.
//
//   - [FailedWins] (the default): sent 1 < delivered 2 < read 3 < played 4 <
//     failed 5. A failed is terminal, so a delivery error is never masked.
//   - [DeliveryWins]: sent 1 < failed 2 < delivered 3 < read 4 < played 5.
//     Providers report a failed after a delivered for multi-device users; it
//     is recorded (failed_at, errors) but the status stays delivered. A
//     failed with nothing past sent is still the status.
//
// Either way the status is a function of the set of statuses seen, so it
// never depends on arrival order, and under a fixed policy it never moves to
// a lower rank ([Policy.Rank]). A participant's own status is derived the
// same way from its own statuses.
//
// The first receive time (the edge's clock, for latency metrics only) is the
// minimum positive ReceivedAt.
//
// # Attributes and their preference
//
// Eleven attributes are merged, each on its own: recipient_id,
// recipient_user_id, parent_user_id, recipient_type, conversation, pricing,
// errors, biz_opaque_callback_data, phone_number_id, display_phone_number
// and waba_id. An event carries an attribute when its value is present: a
// non-empty string, a conversation or pricing with some field set, a
// non-empty errors list. An event that does not carry an attribute never
// erases it.
//
// Among the events that carry an attribute, the state keeps the value of the
// preferred one, comparing in order:
//
//  1. the event's canonical status rank (sent 1 ... failed 5, whatever the
//     policy): higher wins;
//  2. the event's payload timestamp: later wins;
//  3. the value's bytes: greater wins (bytewise; a string by its UTF-8 bytes,
//     a conversation, pricing or errors list by its canonical encoding, see
//     encoding.go).
//
// This is a total order, so the choice is a join. Objects are kept whole: a
// conversation, pricing or errors list is the preferred event's, never a mix
// of fields from several events. Identifiers are separate attributes so
// that, for example, a delivered carrying only recipient_user_id (as Meta
// sends since 2026) does not hide the recipient_id that the sent carried.
//
// The winner's status and timestamp are kept as the attribute's source
// ([schemas.AttributeSource]), so that a state can be compared with a later
// event, or another state, without the events it came from.
//
// # Views, joins and restore
//
// [Message.View] is the Avro-facing record ([schemas.MessageStatus]): the
// top-level statuses and timestamps, the attributes and their sources, and,
// for a group message (any participant other than ""), every participant's
// sub-state sorted by id. [FromView] is its exact inverse: FromView(View(m))
// equals m under either policy, so a partition restored from the current
// topic keeps folding exactly as the original would. [Message.Join] merges
// two states (restoring into what a store already holds); folding events
// into separate states and joining them equals folding them all into one.
// [Message.AppendBinary] is the compact canonical encoding: equal states,
// equal bytes.
//
// A [Loader] restores a whole partition from such states: it encodes them,
// sorts them in runs of Options.LoadRunBytes (spilling full runs to files
// under the store's directory), joins the states of a message given more
// than once, and ingests the merged runs as sstables in one atomic step.
// A partition that never held a key (a new or lost store, or one
// DropPartition found empty) has nothing in the LSM to sit above, so its
// tables land in the bottom level and are never rewritten.
//
// # Outcomes
//
// [Message.Apply] and [Batch.Apply] return an [Outcome]: Advanced (the
// message's status moved up), Filled (the state changed otherwise), Stale (no
// change; the event ranks below its participant's status) or Duplicate (no
// change). A record is emitted exactly when [Outcome.Changed].
//
// # The store
//
// A [Store] is one Pebble database per process, holding every partition the
// process owns. Keys start with the partition number, so [Store.DropPartition]
// is one range delete. Each message is one record: its encoding, then its
// bounded history (the events folded into it, in arrival order, for the
// timeline: [Store.History]). The processor reads the record for every
// event anyway, so history costs no extra read, and state and history are
// never apart. Records are keyed by the message's seq, the partition's
// count of messages when it was first written (at its first arrival, or in
// a Loader's hash order), so that the statuses of recent messages rewrite a
// narrow range of recent keys and compactions leave the rest alone. An
// index keyed by an epoch and an 8-byte hash of the wamid (wamids share a
// long common prefix) finds a message's seq; the epoch is that of the
// partition's filter of known messages (below) that the message joined,
// so new entries too fall in a narrow range (keys.go). Pebble writes the
// records to blob files when it flushes them, and its compactions then
// move only references to them (value separation), not the records; the
// index entries stay in the sstables. A format version
// key guards the layout; a store of an earlier format is emptied at Open,
// and its partitions restore from the current topic. Point lookups use bloom filters, 16 KiB blocks (so that index
// blocks stay small enough to stay cached) and a block cache sized by
// [Options]; the store's memory is about CacheSize + 2 × MemTableSize,
// because Pebble charges its memtables to the block cache (the cache is
// created that much larger). Pebble allocates that cache with C's malloc,
// and glibc's per-thread arenas then hold up to as much again
// (BenchmarkScale, 10M messages over 12 partitions, default Options: 317
// MiB peak RSS, 217 MiB with MALLOC_ARENA_MAX=2), so run the process with
// MALLOC_ARENA_MAX=2.
//
// All the writes for one polled batch of one partition go through one
// [Batch]: [Batch.Apply] per event, [Batch.SetNextOffset], then
// [Batch.Commit], which writes every touched record and the partition's
// next offset in one synced Pebble batch. State and offset are never apart:
// after a crash at any point, [Store.NextOffset] is the offset after the
// last committed batch and the states are exactly the fold of the input
// before it. A batch that is not committed (a Kafka transaction that
// aborted) is dropped with [Batch.Reset].
//
// [Batch.CommitNoSyncWait] commits the same way but returns once Pebble has
// applied the batch, before its log sync: the processor commits a
// partition's store batch only after the Kafka transaction holding its
// outputs committed, so what it reads back before the sync is already
// Kafka's truth, and a crash before the sync only loses a suffix of whole
// commits, which the processor folds again. The batch's next commit (or
// [Batch.SyncWait], or Close) waits for the sync, and a failed sync fails
// the store as a failed synced commit does.
//
// # Known messages
//
// The store keeps, per partition, a bloom filter of every message the
// partition holds (known.go, filter.go; 14 bits a message, in a layer per
// epoch of 131,072 messages or more, so about 18 MB for 10 million in 12
// partitions) whenever it can vouch for it: it reads the partition's index
// at the partition's first use since Open (17-byte keys: about a second
// for ten million messages), or finds it empty after emptying it
// (DropPartition, NewLoadBatch, NewLoader), and sees every write since;
// messages are only written by batches and Loaders, which add every
// message they write and do not find before they can write it, and key its
// index entry by the epoch it joined. A batch skips the Pebble lookup of a
// message the filter has never seen, since there is nothing to find, and
// looks a known one up in the epochs whose layer may hold it.
// That lookup (a seek down the memtable's skiplist, then a bloom filter
// check per sstable, for its index entry) is the dearest part of folding
// a message's first event: a fifth of a restore's CPU (BenchmarkLoad, 1M
// messages: 107k records/s without the filter, 430k with it), and a third
// of the live processor's (processor BenchmarkProcess: 3,240 CPU ns an
// event without, 2,240 with). With format 1, which keyed records by hash
// and wamid, learning a partition's messages meant reading every record,
// and a processor restarted on its store had no filter. A false positive
// costs a Pebble lookup of an index entry that is not there, 10-20 µs
// of CPU at 10 million messages while the store is written and compacted
// (7.5 µs at rest), and each full layer adds about 0.2%: 0.65% of new
// messages over a run to 10 million messages in 12 partitions
// (Stats.KnownFalsePositives; 3.2% with the 10 bits a message of before).
//
// # Recent messages
//
// Most lookups of a stored message are of one written a moment ago: Meta
// reports a message's statuses within seconds to minutes of each other.
// The store keeps the seqs of the last 131,072 or so messages its batches
// committed, over all partitions, in a table of 1 MiB (recent.go). For a
// message that the filter of known messages may hold, a batch reads the
// record at the seq the table gives before it reads the message's index
// entry: a hit finds the message in one Pebble point lookup rather than
// two, and skips the one that grows dearer as the store grows (the newest
// epoch's index entries span every level). The table is a hint, checked
// against the record's wamid, so a stale or wrong entry costs one more
// read and changes nothing (BenchmarkFoldStream: 97.8% of the lookups of
// stored messages answered at 10M messages; Stats.RecentHits and
// RecentMisses).
//
// # Files
//
//	doc.go       this overview
//	errors.go    sentinel errors
//	status.go    Status, Policy (ranks, derivation), Outcome
//	message.go   Message: Apply, Join, View, FromView, the attribute preference
//	encoding.go  the compact canonical versioned binary encoding of a Message
//	keys.go      the Pebble key layout and the format version
//	history.go   HistoryEntry and the record: state plus bounded history
//	store.go     Options, Store (Open, Get, History, NextOffset, DropPartition, Scan, Stats)
//	batch.go     Batch: the per-partition write path and its cache; load batches
//	loader.go    Loader: fills an empty partition by sorting and ingesting sstables
//	filter.go    the bloom filter of a partition's known messages, in epochs
//	recent.go    recentSeqs: the seqs of recently committed messages, as hints
//	known.go     knownKeys: which partitions' messages the store knows
//	seq.go       seqCounter: the seqs of a partition's new messages
//	disk.go      diskGuard: the free-space check that stops the store before
//	             the disk is full
//
// The package starts one goroutine per Store, the disk guard's (stopped by
// Close or by the store's failure), when the file system reports its free
// space; Pebble runs its own flushes and compactions. A Store is safe for
// concurrent use; a Batch and a Message are not.
//
// # Disk space
//
// Pebble cannot stop cleanly on a full disk (a failed log rotation is a
// fatal error of the process), so the store does not let the disk fill:
// below Options.MinFreeBytes of free space it fails (ErrFailed wrapping
// ErrDiskFull), as on any storage fault, and Open refuses below a quarter
// more than that, so that a store opened on a disk just above the minimum
// does not stop again a second later (disk.go).
package state
