// Command chaos runs the chaos harness of internal/chaos: a real Kafka
// broker, three `wastatus process` and two `wastatus ingest` processes, a
// generator posting signed webhooks with Meta's disorder, SIGKILLed
// processors and a bounced broker; then it checks the topics and prints a
// summary. It exits 1 on any violation, 2 if the run could not be carried
// out.
//
//	go run ./tools/chaos --duration 2m
//	go run ./tools/chaos --duration 30m --kill-every 3s --keep
//	go run ./tools/chaos --brokers 127.0.0.1:9092   # an existing broker, not bounced
//
// It runs from within the module (it builds ./cmd/wastatus) and needs Java
// 17 and Maven for its own broker, as scripts/kafka does. Its own broker
// runs with KAFKA_FAST_GROUP_RECOVERY=1 unless the environment says
// otherwise (see scripts/README.md).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/wastatus/wastatus/internal/chaos"
)

func main() {
	os.Exit(run())
}

func run() int {
	var (
		cfg     chaos.Config
		brokers string
	)
	flag.DurationVar(&cfg.Duration, "duration", 2*time.Minute, "how long to post webhooks while killing processors")
	flag.Uint64Var(&cfg.Seed, "seed", 0, "seed of every random choice (0: from the clock; the summary prints it)")
	flag.DurationVar(&cfg.KillEvery, "kill-every", 5*time.Second, "mean time between SIGKILLs of a random processor")
	flag.Float64Var(&cfg.WipeRate, "wipe-rate", 0.25, "share of killed processors restarted on an empty data dir (negative: never)")
	flag.BoolVar(&cfg.Keep, "keep", false, "keep the work dir (binary, data dirs, logs, broker data) for debugging")
	flag.StringVar(&cfg.Dir, "dir", "", "work dir (default: a new temporary one)")
	flag.StringVar(&brokers, "brokers", "", "use this existing cluster (comma separated) and do not bounce it")
	flag.IntVar(&cfg.Rate, "rate", 100, "new messages per second (about 3.5 events each, duplicates included)")
	flag.IntVar(&cfg.Processors, "processors", 3, "wastatus process instances")
	flag.IntVar(&cfg.Edges, "edges", 2, "wastatus ingest instances, one per region (at most 3)")
	flag.StringVar(&cfg.GroupProtocol, "group-protocol", "consumer", "the processors' --group-protocol (classic stalls 45 s per SIGKILL)")
	flag.StringVar(&cfg.Bounce, "bounce", "kill", "how the own broker is bounced: kill (SIGKILL; can hit a Kafka bug), stop (SIGTERM; hits it), random, or none (see docs/RELIABILITY.md)")
	flag.StringVar(&cfg.Policy, "policy", "failed-wins", "the processors' --policy, and the model's")
	flag.DurationVar(&cfg.DrainTimeout, "drain-timeout", 3*time.Minute, "how long the end may take: retrying unacknowledged POSTs, then the processors catching up")
	verbose := flag.Bool("v", false, "log progress at debug level")
	flag.Parse()
	if brokers != "" {
		cfg.Brokers = strings.Split(brokers, ",")
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if _, set := os.LookupEnv(chaos.EnvFastGroupRecovery); !set && len(cfg.Brokers) == 0 {
		// Read by scripts/kafka when kafkabroker starts the run's broker.
		if err := os.Setenv(chaos.EnvFastGroupRecovery, "1"); err != nil {
			fmt.Fprintln(os.Stderr, "chaos:", err)
			return 2
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sum, err := chaos.Run(ctx, cfg)
	if sum.Seed != 0 {
		sum.Write(os.Stdout)
	}
	if cfg.Keep && sum.Dir != "" {
		fmt.Printf("  kept:        %s (logs/ has every process's log)\n", sum.Dir)
	}
	switch {
	case err != nil && !errors.Is(err, context.Canceled):
		fmt.Fprintln(os.Stderr, err)
		return 2
	case err != nil:
		fmt.Fprintln(os.Stderr, "chaos: interrupted")
		return 2
	case !sum.OK():
		return 1
	}
	return 0
}
