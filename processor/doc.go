// Package processor folds the events topic into the state store and emits
// every changed message state to the compacted current topic.
//
// # The loop, exactly once
//
// A franz-go GroupTransactSession reads whatsapp.status.events in a consumer
// group with read_committed isolation, polling with BlockRebalanceOnPoll so
// a rebalance waits while a transaction is in flight. Each transaction takes
// one poll (or several, up to Config.TxnMaxRecords records and
// Config.TxnMaxWait): the poll loop splits it by partition and hands each part
// to that partition's worker, which folds its records into one state.Batch and
// produces the changed states (the whole folded state, keyed by wamid) to
// the SAME partition number of whatsapp.status.current, and poison to
// whatsapp.status.dlq, inside the transaction. Ending the transaction flushes
// and commits those outputs and the consumed offsets atomically. Only then
// is each partition's store batch committed, by its worker before its next
// fold: states, history and the partition's next offset together, the
// workers in parallel so that Pebble syncs its log once for several, and
// without waiting for the sync (the partition's next commit does). A
// transaction that a rebalance aborts is dropped, store batches and
// all, and its records are read again; any other failure to end it stops Run.
//
// So the store never runs ahead of Kafka: its next offset P is at most the
// group's committed offset C, unless the offsets are moved back after the
// fact (below). A crash between the two commits leaves P < C,
// which the next owner catches up without emitting (below). The output log of
// a key never goes backwards, because a state is only emitted by the owner of
// its partition after folding everything before it.
//
// Each instance's transactional id is the group name and an instance id kept
// in its store, so a restarted instance fences its crashed predecessor and
// aborts the transaction it left open at once, instead of after the
// transaction timeout.
//
// # Resuming a partition
//
// On assignment (AdjustFetchOffsetsFn) the store's next offset P is compared
// with the group's committed offset C and the start of the events log:
//
//   - P = C: resume.
//   - P < C (a crash between the transaction and the store commit, or
//     another instance owned the partition meanwhile): fold the events from
//     P to C without emitting, since those states were emitted already, then
//     resume at C.
//   - no state although the group has progressed (a lost disk, a new
//     instance), P > C (the group's offsets were reset, or a hanging
//     offsets commit of a transaction the processor was told committed was
//     aborted: wastatus txn abort, hanging.go), or P below the log's
//     start (retention deleted what the store missed): drop the partition's
//     state and restore it from the current topic, read_committed to its last
//     stable offset, which holds exactly the states committed with C (or
//     more, once offsets were moved back: folding events again onto states
//     that hold them changes nothing), then resume at C.
//   - no state and nothing committed: a new partition, folded from the start.
//
// A restore first waits until no transaction is open on the partition of
// the current topic: a processor killed mid-transaction leaves one open until
// the transaction timeout, and reading only to the last stable offset would
// miss what the next owner committed after it.
//
// Catch-ups and restores run on the partition's worker with a consumer of
// their own, while the group's fetches of that partition are paused, so the
// group's committed offset never moves back; they are abandoned if the
// partition is revoked. A restore writes the partition's next offset last,
// and a catch-up advances it with every store batch, so a crash in the middle
// resumes safely. /readyz stays false until every owned partition is ready.
//
// The store records the id of the events topic it folded. At start a
// different id means the topic was deleted and created again: the state
// folded from the old topic is dropped and the new topic is folded from its
// start, ignoring the group's offsets of the old one. A topic recreated while
// Run runs stops it with ErrTopicRecreated (noticed at the next rebalance),
// so no state of the old topic is served past the restart.
//
// # Poison
//
// A record that cannot be decoded, is over the size limit, carries a status
// value this version does not know, cannot be folded (no wamid, a timestamp
// that is not positive), or whose key is not its wamid, goes to
// the dead-letter topic with headers reason, error, source (processor), source.topic,
// source.partition and source.offset, and the pipeline keeps going. A
// failure to produce or to write the store is not poison: Run returns the
// error, the transaction is aborted, and nothing of that batch is stored.
//
// # Query API, from any instance
//
// Register mounts GET /v1/messages/{wamid}, /healthz and /readyz. With
// Config.ServeAll every instance also follows the whole current topic
// (read_committed) into a view kept in its store beside the owned state, so
// any instance answers for any message with the state its owner committed:
// from its own store when it owns the message's partition (the partition
// Kafka's default murmur2 partitioner gives its wamid), else from the view.
//
// Routing each request to the owner was the alternative. It needs every
// instance to know every other's address and ownership, which changes with
// each rebalance, and a hop that fails exactly when instances come and go;
// the view needs nothing but the topic the product publishes anyway, costs
// one more copy of the states on each instance (on disk, with Pebble's
// bounded cache), and lags the owner by one read of the current topic. States
// are lattice elements, so the view joins what it reads: duplicates and
// restarts cannot move it backwards. A view partition the store holds
// nothing of (a new instance, a lost disk) is first read in bulk, up to the
// end it had when the view started, through a state.Loader as a restore
// is; later records are joined batch by batch. Without ServeAll (one
// instance owning everything, as in `wastatus run`) another instance's
// messages answer 503.
//
// # Where the time goes, and the settings that follow
//
// Profiles (BenchmarkProcess, BenchmarkRestore, BenchmarkRebuildFromEvents
// here; BenchmarkBatchApply, BenchmarkLoad, BenchmarkScale in state) decide
// these. On a shared machine compare BenchmarkProcess's cpu-ns/event, which
// other load disturbs far less than its rates, and profile the processor
// alone with WASTATUS_BENCH_CPUPROFILE:
//
//   - Restores and rebuilds fill a partition they have just dropped. A
//     restore's states need no fold, only sorting: it writes them through
//     a state.Loader, which sorts them in runs and ingests them as sstables,
//     around Pebble's log, memtable, flushes and compactions (memtable
//     inserts and compactions were two thirds of a restore's CPU; see
//     docs/PERFORMANCE.md). A rebuild folds events, so it writes through a
//     load batch (state.Store.NewLoadBatch), which skips the Pebble lookup
//     of every message it has not written itself (20% of its CPU), in
//     store batches of rangeBatch records (20,000) that amortize each
//     synced commit. Up to GOMAXPROCS partitions load at once, since one
//     partition's work runs on one goroutine. Their fetches stay small
//     (rangeFetchBytes, 512 KiB a partition): larger ones read no faster
//     and cost memory.
//   - Each worker keeps its store batch across transactions (its cache
//     entries, history buffers and Pebble batch are reused, up to what its
//     last transaction needed: what twelve workers keep is live heap, and
//     under the Go memory limit every MB of it is one less of the
//     collector's headroom), encodes each changed state through one reused
//     view (state.Message.ViewInto), and cuts the keys and values of a
//     transaction's output records from one buffer sized by the last
//     transaction's records, so a transaction allocates per changed message
//     only what the record itself needs.
//   - On a new store, Pebble lookups of messages that do not exist yet (the
//     first event of every message) were a third of the processor's CPU:
//     a seek down a 32 MiB memtable's skiplist that misses the CPU's caches
//     at every level, then the sstables' bloom filters. The store now keeps
//     a filter of every partition's messages when it can vouch for it (a
//     new store, a dropped or restored partition; see state's doc) and
//     skips those lookups. BenchmarkProcess, 600k events, three pairs back
//     to back: 2,920 CPU ns an event without the filter, 2,100 with it;
//     550k to 765k events/s, ratio 0.39 to 0.55. `wastatus bench --mode
//     processor` (five events a message, spread over thousands of events)
//     gains less, since most of its lookups find a message: 229k to 240k
//     events/s, one run each. A processor restarted on a store that holds
//     messages looks them all up, as before.
//   - The store commit runs on each partition's worker, queued after the
//     transaction ends and done before the worker's next fold, so the poll
//     loop polls and begins the next transaction meanwhile, and the
//     workers' commits run in parallel (Pebble syncs its log once for
//     several). It does not wait for the log sync
//     (state.Batch.CommitNoSyncWait); the partition's next commit does. The
//     crash rules hold: a store batch is still applied only after its
//     transaction committed, so the store's next offset never passes the
//     group's; the next fold reads what Kafka committed; a crash before
//     the sync loses whole commits, offset and states together, which the
//     catch-up folds again; a failed sync fails the store, and the worker
//     stops Run. BenchmarkProcess: 428k to 457k events/s (median of four
//     pairs); the fsync here takes 0.4 ms, so not waiting for it buys
//     little on this disk and more on slower ones. This and the filter
//     together, `wastatus bench --mode pipeline --rate 10000 --duration
//     15s`: p99 22-26 ms, p50 5.5-6.2 ms (and one outlier run at 368 ms on
//     the busy machine); before them, p99 37-44 ms, p50 8.4-10.4 ms.
//   - Tried and dropped, measured: a cache of recently committed message
//     states per batch (36% of lookups hit it in BenchmarkBatchApply's
//     arrival order, but those were the cheap lookups of memtable-resident
//     messages; its upkeep cost more than it saved: 3.5 to 4.0 µs an
//     event); reading a transaction's messages in key order (no change in
//     lookup CPU: neighbouring seeks still miss the caches); committing in
//     key order (memtable insert CPU 0.38 to 0.35 s, the sort ate it);
//     smaller memtables (4 and 8 MiB: slower, more flushes and sstables to
//     check); 16 MiB memtables with the 32 MiB they free given to Go's
//     soft limit (the collections flat as the state grew, the CPU the
//     same); index entries of the open epoch written once, sorted and
//     ingested when it is sealed, found meanwhile by a table in memory
//     (compactions 29% less CPU at 10M, but the 8.4 MiB table and the
//     seals cost as much: docs/PERFORMANCE.md, "The open epoch's index
//     written once").
//   - Config.TxnMaxRecords (10,000) bounds a transaction under a backlog,
//     where its fixed costs (the flush, EndTxn and the offset commit, and
//     the store commit that the next fold waits for) are amortized. Under a steady load below
//     capacity a transaction is one poll of whatever arrived during the
//     previous one, so the end-to-end latency is about two transaction
//     times; Config.TxnMaxWait stays 0, since waiting only adds to it.
//
// A broker with transactions of version 2 (Kafka 4.0 and up) may answer a
// transaction's first produce with CONCURRENT_TRANSACTIONS while it writes
// the markers of the one before, and franz-go retries the batch after a
// metadata refresh. Its default minimum between refreshes, 5 s, stalled a
// processor that met this soon after its start for seconds; the
// transactional client allows one every MetadataMinAge (250 ms).
//
// # Where the memory goes
//
// A processor's memory is Pebble's (cache and memtables, bounded by
// state.Options), the records Kafka clients fetched, and what the workers
// fold. franz-go's fetch defaults (50 MiB a fetch, 1 MiB a partition) let
// the group's client hold a fetch of up to 12 MiB compressed, 50 MiB and
// more decompressed, beside the one being folded: with 1M events over 300k
// messages that was 140 of a 215 MiB live Go heap, and with GOGC=100 the
// heap peaked at twice that. So every consuming client bounds its fetches:
// the group's and the view's to FetchMaxBytes (1 MiB) and
// FetchMaxPartitionBytes (256 KiB), restores and catch-ups to
// rangeFetchBytes. A transaction under a backlog is then about one fetch
// (7,000-9,000 of the bench's events); raise both with Config.ClientOpts
// and TxnMaxRecords together. The Go runtime's soft memory limit that the
// command sets (`wastatus process --memory-limit`) does the rest.
//
// # Files and goroutines
//
//	config.go     Config, defaults, Validate
//	topics.go     topic specs, creation with kadm, the partition-count check
//	processor.go  New, Run, the poll loop, group callbacks, offset decisions
//	worker.go     the per-partition worker: fold, emit, dead letters, commit
//	reconcile.go  dropping workers, waiting or started, whose revoke never came
//	hanging.go    FindHanging, AbortHanging: transactions no coordinator will end
//	restore.go    restores from the current topic, silent catch-ups on the events topic
//	view.go       the view of the whole current topic behind the query API
//	waiters.go    requests waiting for a message to change (?wait_for=)
//	rebuild.go    RebuildFromEvents: a fresh store folded from the events topic
//	verify.go     Verify: a store compared with the current topic, message by message
//	topicread.go  reading whole topics to the ends captured at the start
//	admit.go      the record checks of the workers, without a store (dead-letter replay)
//	api.go        HTTP query API and its JSON forms
//	store.go      the Store interface the processor needs
//	metrics.go    Stats counters
//	errors.go     sentinel errors
//
// Goroutines: the caller's Run goroutine polls; franz-go's group goroutine
// runs the assign/revoke callbacks (never during a batch); one worker
// goroutine per owned partition, started on assignment and stopped (and
// waited for) on revocation, loss and shutdown; a worker that restores or
// catches up runs a consumer client of its own until it is done.
//
// franz-go's GroupTransactSession passes on no revoke (and no loss) after
// the first until a transaction ends. Five things make up for it: a revoke
// or a loss ends the idle poll's wait at once (wakePoll), and Run then ends
// an empty transaction, almost always before the group calls back again,
// so that the instance hears of the next; a revoke that still came first
// is noticed
// when the client fetches the offsets of what it holds: a worker that never
// started, for a partition that fetch does not cover, is dropped
// (adjustOffsets); failing that, a worker that has waited 15-20 s for its
// offsets is dropped if the group coordinator no longer lists its
// partition for the member (reconcile.go), and adjustOffsets makes a
// worker for any partition whose offsets come without one; and a
// partition assigned again without a revoke replaces its worker; and for a
// while after each revoke that did reach it, the same check counts the
// started workers whose partitions the coordinator lists for the member in
// neither assignment, and the poll loop drops, between transactions, those
// counted twice in a row with no records of theirs polled since. Run also
// starts goroutines that watch the events topic's id and the unstarted
// workers and, with ServeAll, one that follows the current topic into the
// view.
//
// A transaction never ends with a commit while franz-go signals a rebalance
// callback waiting for the poll loop: in a consumer-protocol group End
// would then wait for a heartbeat that franz-go holds back until that
// callback has run, which waits for End. It aborts. An End already under
// way when the signal comes is cancelled a second later, and any End past
// the transaction timeout; its transaction is then aborted and its records
// read again, unless it tried to commit and had asked the broker to end
// the transaction, when whether it committed is unknown and Run stops (see
// end).
package processor
