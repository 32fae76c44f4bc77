package main

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"
)

func newIngestCmd(g *globals) *cobra.Command {
	var (
		k        kafkaFlags
		e        edgeFlags
		h        httpFlags
		httpAddr string
	)
	cmd := &cobra.Command{
		Use:   "ingest",
		Short: "Run an edge receiver: Meta's webhooks in, one Avro record per status to Kafka",
		Long: `Run an edge receiver. It answers Meta's verification handshake on GET /webhook,
checks X-Hub-Signature-256 on every POST, writes one record per status object to
the events topic keyed by wamid, and answers 200 only once Kafka acknowledged
every record (503 otherwise: Meta retries). Stateless: run one or more per region.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := h.validate(e.produceTimeout); err != nil {
				return err
			}
			sec, err := e.load("")
			if err != nil {
				return err
			}
			s, err := clusterStack(cmd, g, &k, g.pprof)
			if err != nil {
				return err
			}
			defer s.close()
			log := s.log
			if _, err := s.startEdge(&k, &e, sec); err != nil {
				return err
			}
			l, err := net.Listen("tcp", httpAddr)
			if err != nil {
				return fmt.Errorf("http listen: %w", err)
			}
			log.Info("edge listening", "addr", l.Addr().String(), "scheme", h.scheme(), "region", e.region)
			return ignoreCanceled(h.serve(cmd.Context(), l, s.mux, log))
		},
	}
	k.register(cmd.Flags())
	e.register(cmd.Flags())
	h.register(cmd.Flags())
	cmd.Flags().StringVar(&httpAddr, "http-addr", "127.0.0.1:8080", "listen address of the webhook receiver and metrics")
	return cmd
}

func newProcessCmd(g *globals) *cobra.Command {
	var (
		k        kafkaFlags
		p        processFlags
		h        httpFlags
		api      apiFlags
		httpAddr string
	)
	cmd := &cobra.Command{
		Use:   "process",
		Short: "Run a processor: fold the events topic into state, emit the current-status topic, serve the query API",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := h.validate(0); err != nil {
				return err
			}
			token, err := api.token()
			if err != nil {
				return err
			}
			s, err := clusterStack(cmd, g, &k, g.pprof)
			if err != nil {
				return err
			}
			defer s.close()
			log := s.log
			handler := newAPIGuard(s.mux, token, httpAddr, h.writeTimeout, s.reg, log)
			proc, err := s.startProcessor(&k, &p)
			if err != nil {
				return err
			}
			l, err := net.Listen("tcp", httpAddr)
			if err != nil {
				return fmt.Errorf("http listen: %w", err)
			}
			log.Info("processor api listening", "addr", l.Addr().String(), "scheme", h.scheme())
			gr, ctx := errgroup.WithContext(cmd.Context())
			gr.Go(func() error { return proc.Run(ctx) })
			gr.Go(func() error { return h.serve(ctx, l, handler, log) })
			return ignoreCanceled(gr.Wait())
		},
	}
	k.register(cmd.Flags())
	p.register(cmd.Flags())
	h.register(cmd.Flags())
	api.register(cmd.Flags())
	cmd.Flags().StringVar(&httpAddr, "http-addr", "127.0.0.1:8081", "listen address of the query API and metrics")
	return cmd
}

func ignoreCanceled(err error) error {
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}
