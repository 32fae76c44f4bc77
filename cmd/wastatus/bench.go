package main

import (
	"errors"
	"slices"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/wastatus/wastatus/edge"
	"github.com/wastatus/wastatus/internal/bench"
)

// benchOwnKafkaFlags are the Kafka flags the bench sets for its children
// itself; every other Kafka flag given to the bench (TLS, SASL, a schema
// registry) is passed on to them.
var benchOwnKafkaFlags = []string{"brokers", "events-topic", "current-topic", "dlq-topic", "partitions"}

// newBenchCmd is `wastatus bench`: flags into a bench.Config, then
// bench.New and Run. The logic lives in internal/bench.
func newBenchCmd(g *globals) *cobra.Command {
	var (
		cfg      bench.Config
		k        kafkaFlags
		jsonOut  bool
		seed     uint64
		keepWork bool
	)
	kfs := pflag.NewFlagSet("kafka", pflag.ContinueOnError)
	k.register(kfs)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure the processor, the edge or the whole pipeline against a raw franz-go baseline",
		Long: `Measure wastatus against what the Kafka client and broker allow, in one run.

  --mode processor  produce --events status events over --messages messages
                    straight to a fresh events topic, then drain it with a raw
                    franz-go exactly-once passthrough (the baseline) and with
                    'wastatus process', each a child process on a fresh group,
                    the same transaction sizing for both
  --mode edge       POST signed single-status webhooks over keep-alive HTTP to
                    a baseline edge (net/http + produce) and to 'wastatus ingest'
  --mode pipeline   POST at --rate for --duration through an edge and a
                    processor; time each event until its effect is visible to
                    a read_committed consumer
  --mode all        the three

The workload has the real thing's disorder: three regions with different
delays, about 20% duplicates (some late), skipped delivered, failed after
delivered, played, group messages. Without --brokers an in-process kfake
broker is used. The systems under test run as child processes of this binary,
so their peak RSS (VmHWM) is theirs alone.

It prints a table, or with --json one JSON object; progress goes to stderr (a
bar on a terminal). See docs/PERFORMANCE.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			s, err := newStack(log, false)
			if err != nil {
				return err
			}
			defer s.close()
			if len(k.brokers) > 0 {
				if err := s.useCluster(cmd.Context(), &k); err != nil {
					return err
				}
			}
			cfg.Brokers, cfg.Partitions, cfg.Seed, cfg.KeepWorkDir = k.brokers, k.partitions, seed, keepWork
			cfg.ClientOpts = s.clientOpts("bench")
			cfg.Logger = log
			kfs.VisitAll(func(f *pflag.Flag) {
				if f.Changed && !slices.Contains(benchOwnKafkaFlags, f.Name) {
					cfg.ChildArgs = append(cfg.ChildArgs, "--"+f.Name+"="+f.Value.String())
				}
			})
			// The bench posts from one address: the edge's per-client limit
			// would measure the limiter, not the edge. A later
			// --ingest-flag=--client-rate=N wins.
			cfg.EdgeArgs = append([]string{"--client-rate=-1"}, cfg.EdgeArgs...)
			cfg.Progress, cfg.Terminal = cmd.ErrOrStderr(), isTerminal(cmd.ErrOrStderr())
			b, err := bench.New(cfg)
			if err != nil {
				return err
			}
			defer b.Close()
			r, err := b.Run(cmd.Context())
			if err != nil {
				return err
			}
			if jsonOut {
				return r.WriteJSON(cmd.OutOrStdout())
			}
			return r.WriteTable(cmd.OutOrStdout())
		},
	}
	fs := cmd.Flags()
	fs.AddFlagSet(kfs)
	for _, name := range []string{"events-topic", "current-topic", "dlq-topic"} {
		_ = fs.MarkHidden(name) // the bench makes fresh topics of its own
	}
	fs.StringVar(&cfg.Mode, "mode", bench.ModeProcessor, "what to measure: processor, edge, pipeline or all")
	fs.IntVar(&cfg.Events, "events", 0, "events to send (default 1000000; edge mode 200000)")
	fs.IntVar(&cfg.Messages, "messages", 0, "distinct messages the events are about (default events/5)")
	fs.Float64Var(&cfg.DupRate, "dup-rate", 0.2, "share of events delivered again")
	fs.Uint64Var(&seed, "seed", 1, "workload seed")
	fs.IntVar(&cfg.TxnMaxRecords, "txn-max-records", 10_000, "most input records in one transaction (processor and baseline)")
	fs.DurationVar(&cfg.TxnMaxWait, "txn-max-wait", 0, "keep filling a transaction this long (processor and baseline)")
	fs.IntVar(&cfg.Rounds, "rounds", 1, "processor mode: drain the preloaded topic this many times with the baseline and then wastatus, in turn; the figures are the round with the median ratio's, and every round is listed (profiles are of the first, which runs a little slower for it)")
	fs.IntVar(&cfg.Rate, "rate", 10_000, "pipeline mode: events posted per second")
	fs.DurationVar(&cfg.Duration, "duration", 30*time.Second, "pipeline mode: how long to post")
	fs.IntVar(&cfg.Concurrency, "concurrency", 64, "edge mode: POSTs in flight")
	fs.BoolVar(&jsonOut, "json", false, "print one JSON object instead of a table")
	fs.StringVar(&cfg.Plot, "plot", "", "write a PNG of throughput and latency over time to this file")
	fs.StringVar(&cfg.CPUProfile, "cpuprofile", "", "write the system under test's CPU profile here (processor, or ingest in edge mode)")
	fs.StringVar(&cfg.MemProfile, "memprofile", "", "write the system under test's heap profile here, taken at the end of its run")
	fs.StringVar(&cfg.WorkDir, "work-dir", "", "directory for the children's stores and logs (default: a temporary one, removed)")
	fs.StringArrayVar(&cfg.EdgeArgs, "ingest-flag", nil, "a flag for the 'wastatus ingest' children, repeatable (e.g. --ingest-flag=--log-level=debug)")
	fs.BoolVar(&keepWork, "keep-work-dir", false, "keep the temporary work directory (children's logs) and, on a real broker, the run's topics and groups after the run")
	cmd.AddCommand(newBenchPassthroughCmd(g), newBenchEdgePassthroughCmd(g))
	return cmd
}

// newBenchPassthroughCmd is the baseline the bench runs as a child, the
// same way it runs `wastatus process`.
func newBenchPassthroughCmd(g *globals) *cobra.Command {
	var (
		k   kafkaFlags
		cfg bench.PassthroughConfig
	)
	cmd := &cobra.Command{
		Use:    "passthrough",
		Short:  "The bench's baseline: a raw franz-go exactly-once consume-transform-produce passthrough",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := clusterStack(cmd, g, &k, false)
			if err != nil {
				return err
			}
			defer s.close()
			cfg.Brokers, cfg.ClientOpts, cfg.Logger = k.brokers, s.clientOpts("passthrough"), s.log
			return bench.RunPassthrough(cmd.Context(), cfg)
		},
	}
	fs := cmd.Flags()
	k.register(fs)
	fs.StringVar(&cfg.In, "in", "", "topic to read")
	fs.StringVar(&cfg.Out, "out", "", "topic to write, same partition")
	fs.StringVar(&cfg.Group, "group", "", "consumer group")
	fs.IntVar(&cfg.TxnMaxRecords, "txn-max-records", 10_000, "most input records in one transaction")
	fs.DurationVar(&cfg.TxnMaxWait, "txn-max-wait", 0, "keep filling a transaction this long")
	return cmd
}

// newBenchEdgePassthroughCmd is the edge's baseline: HTTP in, one record
// out, acked before 200, no parsing.
func newBenchEdgePassthroughCmd(g *globals) *cobra.Command {
	var (
		k   kafkaFlags
		cfg bench.EdgePassthroughConfig
	)
	cmd := &cobra.Command{
		Use:    "edge-passthrough",
		Short:  "The bench's edge baseline: POST body to one Kafka record, 200 once acked",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := clusterStack(cmd, g, &k, false)
			if err != nil {
				return err
			}
			defer s.close()
			if cfg.Topic == "" {
				return errors.New("--topic is required")
			}
			cfg.Brokers, cfg.ClientOpts, cfg.Logger = k.brokers, s.clientOpts("edge-passthrough"), s.log
			return ignoreCanceled(bench.RunEdgePassthrough(cmd.Context(), cfg, edge.ProducerOpts()))
		},
	}
	fs := cmd.Flags()
	k.register(fs)
	fs.StringVar(&cfg.Topic, "topic", "", "topic to write")
	fs.StringVar(&cfg.Addr, "http-addr", "127.0.0.1:8080", "listen address")
	return cmd
}
