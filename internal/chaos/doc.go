// Package chaos is wastatus's chaos harness: a real Kafka broker, several
// `wastatus process` and `wastatus ingest` OS processes, and a generator
// that posts signed webhooks with Meta's disorder to the edges while
// processors are SIGKILLed (some on a wiped data dir) and the broker is
// bounced once. When posting ends it retries every unacknowledged POST,
// waits until the processors have folded everything, and checks from the
// topics alone that nothing acknowledged was lost, that the current topic
// is exactly the fold of the acknowledged events by internal/gen's
// independent model, and that no key's state ever went backwards in the
// current topic's read_committed log. docs/RELIABILITY.md says what this
// proves and the last figures.
//
// A restart of a single-node Kafka 4.4 broker can leave hanging
// transactions, which stall every transactional consumer of their
// partitions (docs/RELIABILITY.md). From the bounce to the end of the
// drain, the harness does what an operator does then: it runs `wastatus txn
// abort --yes --unattributed` every few seconds (heal.go), and the summary
// names what it aborted. The checks then say whether the processors
// recovered from the aborts without loss.
//
// Run is the one code path: `go run ./tools/chaos` calls it with flags, and
// TestChaos with a shorter duration (WASTATUS_TEST_OWN_BROKER=1).
//
// # The workload
//
// New messages are created at Config.Rate per second, each with a
// lifecycle from gen.Message (skipped delivered, failed after delivered,
// played, group messages). The payload clock runs 600 times faster than
// the wall clock, so a status posted 10-40 s late is hours behind in
// payload time. Each status goes through a random region, whose edge it is
// posted to after the region's delay; DupRate of them are sent again. A
// POST not answered 200 is sent again, same body, until it is; every
// acknowledged status is recorded.
//
// # Group recovery
//
// The processors use the consumer group protocol (KIP-848), whose session
// timeout the broker sets: 45 s by default. The harness's own broker runs
// with KAFKA_FAST_GROUP_RECOVERY=1 (scripts/kafka), so a killed member's
// partitions move in about 4 s; the summary prints the setting it found.
//
// # Files and goroutines
//
//	config.go     Config, defaults, Validate
//	chaos.go      Run, setup (work dir, build, broker), starting the fleet
//	run.go        the posting phase: kills, the bounce, reaping; the drain
//	fleet.go      one OS process per start of an instance, their logs
//	generator.go  the workload, regions, duplicates, late retries, POSTs
//	heal.go       aborting hanging transactions after the bounce, as an operator would
//	verify.go     the checks against the topics
//	summary.go    Summary and its printed form
//
// Goroutines: Run's goroutine drives everything and alone touches the
// processes; the generator's scheduler goroutine and its posting workers
// (six per region) share its counters under a mutex; the broker bounce
// runs on a goroutine of its own and reports on a channel, and so does the
// healer; one goroutine per OS process waits for it to end.
package chaos
