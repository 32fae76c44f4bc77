package bench

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Modes of a run.
const (
	ModeProcessor = "processor" // events produced straight to the topic, folded by the processor
	ModeEdge      = "edge"      // signed single-status POSTs to the edge
	ModePipeline  = "pipeline"  // POSTs at a fixed rate, timed until their effect is visible
	ModeAll       = "all"       // the three, one after another
)

// Config says what to measure and where. Zero fields take the defaults
// written beside them (see fillDefaults).
type Config struct {
	Mode string // default ModeProcessor

	// Workload.
	Events    int     // processor and edge modes: events to send; default 1,000,000 (edge: 200,000)
	Messages  int     // distinct messages; default a fifth of each mode's events
	DupRate   float64 // base share of events delivered again; default 0.2
	LateRate  float64 // share of duplicates delivered late; default 0.1
	GroupRate float64 // share of group messages; default 0.05
	Seed      uint64  // default 1

	// Kafka. Without Brokers an in-process kfake broker is started.
	Brokers    []string
	ClientOpts []kgo.Opt // extra options for the bench's own clients (TLS, SASL)
	ChildArgs  []string  // extra flags for every child process (TLS, SASL)
	EdgeArgs   []string  // extra flags for the `wastatus ingest` children (e.g. its per-client rate limit)
	Partitions int32     // default 12

	// Transactions, the same for the processor and the baseline.
	TxnMaxRecords int           // default 10,000
	TxnMaxWait    time.Duration // default 0: one poll per transaction

	// Rounds is how many times processor mode drains the preloaded topic
	// with the baseline and then the processor, in turn; default 1. The
	// report's figures are the round with the median ratio's, and it
	// lists every round: the two rates vary independently on a shared
	// machine, so one round's ratio can mislead.
	Rounds int

	// Edge and pipeline modes.
	Concurrency int           // edge mode: POSTs in flight; default 64
	Rate        int           // pipeline mode: events per second; default 10,000
	Duration    time.Duration // pipeline mode: how long to post; default 30s

	// Executable is the wastatus binary the systems under test run from,
	// as child processes (default: this process's executable).
	Executable string
	// WorkDir holds the children's stores and logs; default a temporary
	// directory removed at the end (unless KeepWorkDir).
	WorkDir string
	// KeepWorkDir keeps the temporary WorkDir and, on a real broker, the
	// run's topics and groups (deleted by Close otherwise), for a
	// post-mortem.
	KeepWorkDir bool

	// Output.
	CPUProfile string // write the system under test's CPU profile here
	MemProfile string // write its heap profile (taken at the end of its run) here
	Plot       string // write a PNG of throughput and latency over time here

	Logger   *slog.Logger // default: discard
	Progress io.Writer    // where progress goes (a bar when Terminal); nil: none
	Terminal bool         // Progress is a terminal: draw a bar rather than log lines
}

// ErrConfig is returned, wrapped, for a Config that cannot run.
var ErrConfig = errors.New("bench: bad config")

func (c *Config) fillDefaults() {
	if c.Mode == "" {
		c.Mode = ModeProcessor
	}
	if c.Events == 0 {
		c.Events = 1_000_000
		if c.Mode == ModeEdge {
			c.Events = 200_000
		}
	}
	if c.DupRate == 0 {
		c.DupRate = 0.2
	}
	if c.LateRate == 0 {
		c.LateRate = 0.1
	}
	if c.GroupRate == 0 {
		c.GroupRate = 0.05
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.Partitions == 0 {
		c.Partitions = 12
	}
	if c.TxnMaxRecords == 0 {
		c.TxnMaxRecords = 10_000
	}
	if c.Rounds == 0 {
		c.Rounds = 1
	}
	if c.Concurrency == 0 {
		c.Concurrency = 64
	}
	if c.Rate == 0 {
		c.Rate = 10_000
	}
	if c.Duration == 0 {
		c.Duration = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports the first setting that cannot run.
func (c *Config) Validate() error {
	switch c.Mode {
	case ModeProcessor, ModeEdge, ModePipeline, ModeAll:
	default:
		return fmt.Errorf("%w: mode %q is not processor, edge, pipeline or all", ErrConfig, c.Mode)
	}
	switch {
	case c.Events < 0 || c.Messages < 0:
		return fmt.Errorf("%w: events and messages must be positive", ErrConfig)
	case c.Partitions < 0:
		return fmt.Errorf("%w: partitions must be positive", ErrConfig)
	case c.Rounds < 0:
		return fmt.Errorf("%w: rounds must be positive", ErrConfig)
	case c.Rounds > 1 && (c.Mode == ModeEdge || c.Mode == ModePipeline):
		return fmt.Errorf("%w: rounds are of processor mode (and of all's processor run), not %s", ErrConfig, c.Mode)
	case c.TxnMaxRecords < 0 || c.TxnMaxWait < 0:
		return fmt.Errorf("%w: transaction sizing must be positive", ErrConfig)
	case c.Rate < 0 || c.Duration < 0 || c.Concurrency < 0:
		return fmt.Errorf("%w: rate, duration and concurrency must be positive", ErrConfig)
	case c.DupRate < 0 || c.LateRate < 0 || c.LateRate > 1 || c.GroupRate < 0 || c.GroupRate > 1:
		return fmt.Errorf("%w: rates must be fractions", ErrConfig)
	}
	return nil
}
