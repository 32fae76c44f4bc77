package chaos

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/wastatus/wastatus/internal/gen"
)

// ErrConfig is returned by Validate, and by Run for a Config it rejects.
var ErrConfig = errors.New("chaos: config")

// EnvFastGroupRecovery is the environment variable that makes scripts/kafka
// write broker settings under which a SIGKILLed member of a consumer-protocol
// group is fenced in seconds (see scripts/README.md). kafkabroker passes the
// caller's environment to scripts/kafka, so the command and the test set it
// before Run starts the broker; Run reads the setting back from the broker
// and reports it either way.
const EnvFastGroupRecovery = "KAFKA_FAST_GROUP_RECOVERY"

// Config configures a chaos run. The zero value of every field is usable:
// withDefaults fills the documented defaults in one place.
type Config struct {
	// Duration is how long webhooks are posted while processors are killed.
	// The drain and the verification come after it. Default 2m.
	Duration time.Duration

	// Seed drives every random choice of the run: the workload, the kills,
	// the broker bounce. 0 picks one from the clock; the summary prints it.
	Seed uint64

	// KillEvery is the mean time between two SIGKILLs of a random
	// processor (each wait is drawn from half to one and a half of it).
	// Default 5s.
	KillEvery time.Duration

	// WipeRate is the share of killed processors restarted on an empty data
	// dir, so that they restore their partitions from the current topic.
	// Default 0.25; negative: never.
	WipeRate float64

	// Brokers names an existing cluster to run on. Empty starts a broker of
	// the run's own (internal/kafkabroker, in Dir), which is bounced once;
	// an existing one is never bounced.
	Brokers []string

	// Dir holds the binary, the data dirs, the logs and the own broker.
	// Default: a new temporary directory, removed at the end unless Keep.
	Dir string

	// Bounce is how the own broker is bounced: "kill" (SIGKILL, the
	// default), "stop" (SIGTERM, a controlled shutdown), "random", or
	// "none". A restart of a single-node Kafka 4.4 broker while transactions
	// commit can leave hanging transactions (docs/RELIABILITY.md), more
	// often after a controlled shutdown than after a SIGKILL. Every
	// transactional consumer of their partitions then stalls, wastatus
	// included, until an operator aborts them: the harness does, with
	// wastatus txn abort (heal.go). "none" leaves the broker alone.
	Bounce string

	// Keep keeps Dir (and the own broker's data, the broker stopped) for
	// debugging, and prints where it is.
	Keep bool

	// Binary is a built wastatus binary. Default: go build ./cmd/wastatus
	// into Dir (from within the module).
	Binary string

	// Rate is how many new messages are sent per second; each has about
	// three statuses, more for group messages, plus duplicates. Default 100.
	Rate int

	// Processors and Edges are how many `wastatus process` and `wastatus
	// ingest` processes run. Each edge serves one region of Regions.
	// Defaults 3 and 2; at most len(Regions()) edges.
	Processors int
	Edges      int

	// Partitions of the topics the processors create. Default 6.
	Partitions int32

	// GroupProtocol is the processors' --group-protocol. Default consumer
	// (KIP-848): with classic, a SIGKILLed member stalls every rebalance for
	// the client's session timeout, 45 s, which no flag lowers.
	GroupProtocol string

	// Policy is the processors' --policy, and the one the model folds by.
	// Default failed-wins.
	Policy string

	// DupRate is the share of events Meta sends twice. Default 0.2.
	DupRate float64

	// DrainTimeout bounds the end: posting what is still unacknowledged,
	// then waiting for the group's lag to reach 0. Default 3m.
	DrainTimeout time.Duration

	// Log receives the run's progress. Default: discard.
	Log *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Duration == 0 {
		c.Duration = 2 * time.Minute
	}
	if c.KillEvery == 0 {
		c.KillEvery = 5 * time.Second
	}
	if c.WipeRate == 0 {
		c.WipeRate = 0.25
	}
	if c.Bounce == "" {
		c.Bounce = "kill"
	}
	if c.Rate == 0 {
		c.Rate = 100
	}
	if c.Processors == 0 {
		c.Processors = 3
	}
	if c.Edges == 0 {
		c.Edges = 2
	}
	if c.Partitions == 0 {
		c.Partitions = 6
	}
	if c.GroupProtocol == "" {
		c.GroupProtocol = "consumer"
	}
	if c.Policy == "" {
		c.Policy = gen.FailedWins
	}
	if c.DupRate == 0 {
		c.DupRate = 0.2
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = 3 * time.Minute
	}
	if c.Log == nil {
		c.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return c
}

// Validate reports the first problem with c after defaults are applied.
func (c Config) Validate() error {
	c = c.withDefaults()
	switch {
	case c.Duration < 0 || c.KillEvery < 0 || c.DrainTimeout < 0:
		return fmt.Errorf("%w: durations must not be negative", ErrConfig)
	case c.Rate < 1:
		return fmt.Errorf("%w: rate must be positive, got %d", ErrConfig, c.Rate)
	case c.Processors < 1:
		return fmt.Errorf("%w: at least one processor, got %d", ErrConfig, c.Processors)
	case c.Edges < 1 || c.Edges > len(Regions()):
		return fmt.Errorf("%w: edges must be 1 to %d (one per region), got %d", ErrConfig, len(Regions()), c.Edges)
	case c.Partitions < 1:
		return fmt.Errorf("%w: partitions must be positive, got %d", ErrConfig, c.Partitions)
	case c.GroupProtocol != "classic" && c.GroupProtocol != "consumer":
		return fmt.Errorf("%w: group protocol %q is not classic or consumer", ErrConfig, c.GroupProtocol)
	case c.Policy != gen.FailedWins && c.Policy != gen.DeliveryWins:
		return fmt.Errorf("%w: policy %q is not %s or %s", ErrConfig, c.Policy, gen.FailedWins, gen.DeliveryWins)
	case c.Bounce != "kill" && c.Bounce != "stop" && c.Bounce != "random" && c.Bounce != "none":
		return fmt.Errorf("%w: bounce %q is not kill, stop, random or none", ErrConfig, c.Bounce)
	case c.WipeRate > 1 || c.DupRate < 0 || c.DupRate > 1:
		return fmt.Errorf("%w: rates must be at most 1", ErrConfig)
	}
	return nil
}
