// Package bench is the `wastatus bench` command's library: it measures the
// processor, the edge and the whole pipeline against raw franz-go
// baselines on the same broker, in one run, and reports throughput,
// latency, peak RSS and CPU as a table or one JSON object.
//
// # Method
//
// The systems under test run as child processes of the bench binary
// (`wastatus process`, `wastatus ingest`, and the hidden baselines `wastatus
// bench passthrough` and `wastatus bench edge-passthrough`), so each one's
// peak RSS is its own VmHWM from /proc and never counts the embedded kfake
// broker, which lives in the bench process. Baseline and wastatus run one
// after the other on the same broker, workload and transaction sizing, and
// are compared as a ratio: on a shared machine absolute figures move, the
// ratio much less.
//
//   - processor: the workload (internal/gen's Stream: regions with different
//     delays, about 20% duplicates, late retries, skipped delivered, failed
//     after delivered, played, group messages) is produced straight to a
//     fresh events topic by an idempotent producer, as the records the edge
//     writes: the StatusEvent ParseWebhook would make of each status's
//     webhook, built from the arrival's fields (parsing costs twenty times
//     as much, 9.8 µs against 0.46 µs a record, and held a 30M-event
//     preload to ~25k events/s), encoded by the same codec, keyed by wamid,
//     with the region header; a test holds them to ParseWebhook's. The
//     producer lingers for 1 MB batches. Then the
//     baseline (RunPassthrough: GroupTransactSession, read_committed, each
//     record to the same partition of an output topic, no state) and the
//     processor each drain it on a fresh group. Progress is the group's
//     committed offsets (kadm) against the topic's end offsets, sampled every
//     100 ms; the rate counts from the first committed progress to the end,
//     so a process's start and group join are not counted (they are in the
//     phases). Latency is per record: from an output record's produce
//     timestamp, set by the system's client inside the transaction, to the
//     moment a read_committed consumer of partition 0 of the output sees it,
//     which is when the transaction committed (plus a fetch).
//   - edge: signed single-status webhooks, closed loop over keep-alive
//     connections (Config.Concurrency in flight), first to a baseline
//     (RunEdgePassthrough: net/http, one record per body with the edge's
//     producer options, 200 once acked, no signature check or parsing) then
//     to `wastatus ingest`. Latency is the POST's round trip.
//   - pipeline: an edge and a processor child each (the baselines, then
//     wastatus), POSTs at a fixed rate, open loop, and a read_committed
//     consumer of the output topic that notices when each event's effect is
//     visible: for wastatus a state of its message with that status's time
//     set (on its participant for a group); for the baseline the record whose
//     key is the POST's sequence number. Latency runs from the POST's
//     scheduled time, so a system that falls behind is not let off.
//
// Each phase also reports what the whole machine's CPUs did meanwhile
// (MachineCPU, from /proc/stat, where there is one): busy, idle and stolen
// cores. A phase with idle cores left was not CPU-bound. The exactly-once
// passthrough is usually in that state: it waits on the broker's
// transaction round trips. The processor is usually CPU-bound. So their
// rates vary independently from run to run, and the ratio is read over
// several runs, or over several rounds of one (Config.Rounds: the
// preloaded topic drained by the baseline and then the processor, in turn,
// each round on fresh groups, output topics and store; the report's figures
// are the round with the median ratio's, and it lists every round).
//
// A processor's state grows as it drains: each message joins the store at
// its first event. So the report also cuts the drain into tenths of its
// events (Tenth), sampling the child's CPU time (/proc/<pid>/stat) with
// each committed-progress sample, and gives each tenth's rate and CPU time
// per event, and how much the CPU per event grew from the second tenth to
// the last (Report.CPUGrowth): in a 10M-message run, the cost with 9-10M
// messages in state against 1-2M, issue 7's "flat from 1M to 10M
// messages", measured in one process within minutes, which a comparison
// of two runs cannot do on a machine whose speed drifts by a sixth between
// them. It is read off the least-squares line through tenths 2-10, which
// one tenth's compaction or a neighbour's burst moves less than it moves
// the ratio of two tenths. The first tenth is left out: it is folded into
// a store that starts empty and that Pebble has barely flushed, let alone
// compacted into levels, so it is usually a run's cheapest tenth, whatever
// size the run ends at (0.88-1.04 of the second's in nine 10M runs, 0.93
// on their mean); the table and the JSON give it all the same. Each tenth
// also gives the child's Go collector, its collections per million events
// and bytes allocated per event, from its /metrics (Prometheus' Go
// collector, parsed with expfmt) read at the samples that cut the tenths:
// eleven reads a run, so reading costs the child nothing that shows. The
// baseline's drain is cut the same way, and its growth
// (Report.BaselineCPUGrowth) is a control: the baseline keeps no state,
// so what it shows is what the broker and the machine add over a run.
//
// # Files
//
//	config.go      Config, defaults, Validate
//	bench.go       New, Run, Close: the broker, topics, children
//	processor.go   processor mode: preload, drain, committed offsets, commit latency
//	edgemode.go    edge mode
//	pipeline.go    pipeline mode and the matchers of visible effects
//	post.go        signed POSTs, the closed loop
//	passthrough.go the baselines run as children
//	workload.go    the workload as webhook bodies and as the edge's event records
//	child.go       child processes, VmHWM and CPU time, free ports, readiness
//	stats.go       the recorder: counts over time, tenths, latency percentiles
//	profile.go     CPU and heap profiles of a child over /debug/pprof
//	goruntime.go   a child's collections and allocations from its /metrics
//	report.go      Report, JSON and the table
//	machine.go     the machine's CPU time in each phase
//	plot.go        the PNG of throughput and latency over time
//	progress.go    a bar on a terminal, log lines otherwise
//
// # Brokers
//
// The embedded kfake broker keeps every record in the bench process's
// memory: about 0.4 GB per million events once the baseline's output and
// the current topic are counted, so a 10M-message run (30M events) wants a
// real broker (`--brokers`). The bench creates fresh topics and groups,
// named bench.<run>.*, with Config.Partitions partitions, and on a broker
// it did not start Close deletes them again (unless KeepWorkDir).
//
// Goroutines: Run's; while a system runs, a sampler of latency or
// visibility (a consumer), the POST workers, a 100 ms sampler of progress,
// and, when profiling, one that takes successive CPU profile windows.
//
// # Libraries
//
// Plots use gonum.org/v1/plot (v0.17.0): maintained by the gonum project,
// pure Go (no cgo, no system libraries, so the binary stays one static
// file), and it draws PNG directly with its vgimg backend. CPU profiles of
// a child are taken in 5 s windows over its /debug/pprof/profile (the run's
// length is not known in advance) and merged into one file with
// github.com/google/pprof/profile, the package `go tool pprof` itself is
// built on. Progress uses github.com/schollz/progressbar/v3, as `wastatus
// rebuild` does.
package bench
