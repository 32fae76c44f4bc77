package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kfake"
	"golang.org/x/sync/errgroup"
)

type runFlags struct {
	kafka         kafkaFlags
	edge          edgeFlags
	proc          processFlags
	http          httpFlags
	api           apiFlags
	httpAddr      string
	embeddedKafka string
	demo          bool
}

func newRunCmd(g *globals) *cobra.Command {
	f := &runFlags{}
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run everything in one process: edge, processor, query API (and an embedded Kafka broker when --brokers is empty)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			return runAll(cmd.Context(), f, g, log, cmd.OutOrStdout())
		},
	}
	fs := cmd.Flags()
	f.kafka.register(fs)
	f.edge.register(fs)
	f.proc.register(fs)
	// run may hold an embedded broker's records in the same heap: a Go
	// memory limit sized for a processor alone would make the collector
	// run without end. --memory-limit still sets one when asked.
	f.proc.memoryLimit = 0
	fs.Lookup("memory-limit").DefValue = "0"
	f.http.register(fs)
	f.api.register(fs)
	fs.StringVar(&f.httpAddr, "http-addr", "127.0.0.1:8080", "listen address of the webhook receiver, query API and metrics")
	fs.StringVar(&f.embeddedKafka, "embedded-kafka-addr", "127.0.0.1:9092", "listen address of the embedded broker (used when --brokers is empty)")
	// One process owns every partition: no view needed by default.
	f.proc.serveAll = false
	fs.Lookup("serve-all").DefValue = "false"
	fs.BoolVar(&f.demo, "demo", false, "after start, post the reference article's test (read, then delivered) and print what the API says")
	return cmd
}

func runAll(ctx context.Context, f *runFlags, g *globals, log *slog.Logger, out io.Writer) error {
	if err := f.http.validate(f.edge.produceTimeout); err != nil {
		return err
	}
	sec, err := f.edge.load(f.proc.dataDir)
	if err != nil {
		return err
	}
	token, err := f.api.token()
	if err != nil {
		return err
	}
	if f.demo && (token != "" || f.http.tlsCertFile != "") {
		return errors.New("--demo reads the API over plain HTTP without a token: drop --tls-cert-file and the API token, or --demo")
	}
	if len(f.kafka.brokers) == 0 {
		if f.kafka.security.enabled() {
			return errors.New("--kafka-tls* and --kafka-sasl-* need --brokers: the embedded broker speaks plain Kafka on its local address")
		}
		cluster, err := startEmbedded(f.embeddedKafka, filepath.Join(f.proc.dataDir, "kafka"))
		if err != nil {
			return err
		}
		defer cluster.Close()
		f.kafka.brokers = cluster.ListenAddrs()
		log.Info("embedded kafka broker started", "addr", strings.Join(f.kafka.brokers, ","))
	}

	s, err := newStack(log, g.pprof)
	if err != nil {
		return err
	}
	defer func() {
		if err := s.close(); err != nil {
			log.Error("close", "err", err)
		}
	}()
	if err := s.useCluster(ctx, &f.kafka); err != nil {
		return err
	}
	if _, err := s.startEdge(&f.kafka, &f.edge, sec); err != nil {
		return err
	}
	proc, err := s.startProcessor(&f.kafka, &f.proc)
	if err != nil {
		return err
	}
	handler := newAPIGuard(s.mux, token, f.httpAddr, f.http.writeTimeout, s.reg, log)
	l, err := net.Listen("tcp", f.httpAddr)
	if err != nil {
		return fmt.Errorf("http listen: %w", err)
	}
	base := f.http.scheme() + "://" + hostPort(l.Addr())
	printBanner(out, base, f, sec)

	gr, gctx := errgroup.WithContext(ctx)
	gr.Go(func() error { return proc.Run(gctx) })
	gr.Go(func() error { return f.http.serve(gctx, l, handler, log) })
	if f.demo {
		gr.Go(func() error { return runDemo(gctx, out, base, sec) })
	}
	err = gr.Wait()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

// startEmbedded starts franz-go's kfake as a one-broker Kafka cluster that
// keeps its data under dir and listens on addr.
func startEmbedded(addr, dir string) (*kfake.Cluster, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("--embedded-kafka-addr: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("embedded kafka: %w", err)
	}
	c, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.DataDir(dir),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			return net.Listen(network, net.JoinHostPort(host, port))
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("embedded kafka on %s: %w", addr, err)
	}
	return c, nil
}

func printBanner(out io.Writer, base string, f *runFlags, sec secrets) {
	fmt.Fprintf(out, `
wastatus is running
  webhook (Meta → here)  %[1]s/webhook
  query API              %[1]s/v1/messages/{wamid}
  metrics                %[1]s/metrics
  kafka                  %[2]s
  state                  %[3]s
`, base, strings.Join(f.kafka.brokers, ","), filepath.Join(f.proc.dataDir, "state"))
	if sec.generated {
		// Only secrets this run made up itself are printed: never one
		// that was given.
		fmt.Fprintf(out, `
  !!! DEMO SECRETS: no %s / %s was set, so these were generated
  !!! and kept in %s. Never use them in production.
`, envAppSecret, envVerifyToken, sec.demoFile)
		if sec.genSecret {
			fmt.Fprintf(out, "  !!!   %s=%s\n", envAppSecret, sec.appSecret)
		}
		if sec.genToken {
			fmt.Fprintf(out, "  !!!   %s=%s\n", envVerifyToken, sec.verifyToken)
		}
	}
	if f.edge.insecureSkipSignature {
		fmt.Fprintf(out, "\n  !!! WEBHOOK SIGNATURES ARE NOT CHECKED (--insecure-skip-signature): demos only.\n")
	}
	fmt.Fprintf(out, `
Post a signed sample, then ask for it:
  go run ./cmd/wastatus post --url %[1]s/webhook --data-dir %[2]s examples/walkthrough/1-read.json examples/walkthrough/2-delivered.json
  curl -s %[1]s/v1/messages/wamid.HBgLMTY1MDU1NTExMTEXMjg0Nzc0Mjk2Mjk2

`, base, f.proc.dataDir)
}
