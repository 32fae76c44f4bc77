package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/plugin/kprom"
	"github.com/twmb/franz-go/plugin/kslog"

	"github.com/wastatus/wastatus/edge"
	"github.com/wastatus/wastatus/processor"
	"github.com/wastatus/wastatus/schemas"
	"github.com/wastatus/wastatus/state"
)

// kafkaFlags say where Kafka is and what the topics are called.
type kafkaFlags struct {
	brokers    []string
	registry   string
	events     string
	current    string
	dlq        string
	partitions int32
}

func (k *kafkaFlags) register(fs *pflag.FlagSet) {
	fs.StringSliceVar(&k.brokers, "brokers", nil, "Kafka seed brokers, comma separated (run: empty starts an embedded broker)")
	fs.StringVar(&k.registry, "schema-registry", "", "schema registry URL: register the schemas there and use its ids (else the fixed ids 1 and 2)")
	fs.StringVar(&k.events, "events-topic", processor.DefaultEventsTopic, "topic of raw status events")
	fs.StringVar(&k.current, "current-topic", processor.DefaultCurrentTopic, "compacted topic of current message states")
	fs.StringVar(&k.dlq, "dlq-topic", processor.DefaultDLQTopic, "dead-letter topic")
	fs.Int32Var(&k.partitions, "partitions", 12, "partitions of topics the processor creates")
}

// edgeFlags configure the webhook receiver.
type edgeFlags struct {
	secretFlags
	region         string
	maxBody        int64
	produceTimeout time.Duration
}

func (e *edgeFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&e.region, "region", "local", "region this edge serves, carried in every event")
	fs.StringVar(&e.appSecretFile, "app-secret-file", "", "file holding the Meta app secret (else "+envAppSecret+")")
	fs.StringVar(&e.verifyTokenFile, "verify-token-file", "", "file holding the webhook verify token (else "+envVerifyToken+")")
	fs.Int64Var(&e.maxBody, "max-body-bytes", 4<<20, "largest webhook body accepted")
	fs.DurationVar(&e.produceTimeout, "produce-timeout", 5*time.Second, "how long a webhook waits for Kafka before answering 503")
}

// processFlags configure the processor and its store.
type processFlags struct {
	serveAll      bool
	skipCreate    bool
	groupProtocol string
	txnMaxRecords int
	txnMaxWait    time.Duration
	group         string
	policy        string
	dataDir       string
	cacheBytes    int64
}

func (p *processFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&p.group, "group", processor.DefaultGroup, "consumer group of the processors")
	fs.StringVar(&p.groupProtocol, "group-protocol", "classic", "consumer group protocol: classic, or consumer (KIP-848, Kafka 4.0+)")
	fs.IntVar(&p.txnMaxRecords, "txn-max-records", 10_000, "most input records in one transaction")
	fs.DurationVar(&p.txnMaxWait, "txn-max-wait", 0, "keep filling a transaction this long after its first records (0: one poll per transaction)")
	fs.BoolVar(&p.serveAll, "serve-all", true, "keep a view of the whole current topic so the API answers for every message, not only those of the partitions it owns")
	fs.BoolVar(&p.skipCreate, "skip-create-topics", false, "do not create missing topics (an operator owns them); still checks their partition counts")
	fs.StringVar(&p.policy, "policy", "failed-wins", "failed after delivered: failed-wins (terminal) or delivery-wins")
	fs.StringVar(&p.dataDir, "data-dir", "./data", "directory for the state store (and the embedded broker)")
	fs.Int64Var(&p.cacheBytes, "cache-bytes", 64<<20, "Pebble block cache size")
}

// stack holds what a subcommand started, for one place to close it.
type stack struct {
	log     *slog.Logger
	reg     *prometheus.Registry
	kprom   *kprom.Metrics
	mux     *http.ServeMux
	codec   *schemas.Codec
	closers []func() error
}

func newStack(log *slog.Logger, profiles bool) (*stack, error) {
	codec, err := schemas.NewCodec(schemas.IDs{})
	if err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s := &stack{
		log:   log,
		reg:   reg,
		kprom: kprom.NewMetrics("wastatus_kafka", kprom.Registerer(reg), kprom.Gatherer(reg), kprom.WithClientLabel()),
		mux:   http.NewServeMux(),
		codec: codec,
	}
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	if profiles {
		s.mux.HandleFunc("/debug/pprof/", pprof.Index)
		s.mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		s.mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		s.mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		s.mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return s, nil
}

// clusterStack starts what a subcommand against a given cluster needs: the
// logger, a check that brokers were given, the stack, and the schema
// registry's codec when one is named. The caller closes the stack.
func clusterStack(cmd *cobra.Command, g *globals, k *kafkaFlags, profiles bool) (*stack, error) {
	log, err := g.logger(cmd.ErrOrStderr())
	if err != nil {
		return nil, err
	}
	if len(k.brokers) == 0 {
		return nil, errors.New("--brokers is required")
	}
	s, err := newStack(log, profiles)
	if err != nil {
		return nil, err
	}
	if err := s.useRegistry(cmd.Context(), k); err != nil {
		return nil, errors.Join(err, s.close())
	}
	return s, nil
}

// useRegistry registers the schemas with the registry that k names, if any,
// and makes the stack's codec use its ids (and resolve older versions).
func (s *stack) useRegistry(ctx context.Context, k *kafkaFlags) error {
	if k.registry == "" {
		return nil
	}
	cl, err := sr.NewClient(sr.URLs(k.registry))
	if err != nil {
		return fmt.Errorf("--schema-registry: %w", err)
	}
	codec, err := schemas.NewRegistryCodec(ctx, cl, schemas.TopicSubjects(k.events, k.current))
	if err != nil {
		return fmt.Errorf("--schema-registry %s: %w", k.registry, err)
	}
	ids := codec.IDs()
	s.log.Info("schemas registered", "status_event_id", ids.StatusEvent, "message_status_id", ids.MessageStatus)
	s.codec = codec
	return nil
}

func (s *stack) close() error {
	var errs []error
	for i := len(s.closers) - 1; i >= 0; i-- {
		errs = append(errs, s.closers[i]())
	}
	return errors.Join(errs...)
}

// clientOpts are the options every Kafka client of this process shares
// (the processor takes its brokers from its Config, and its hooks apart).
func (s *stack) clientOpts(name string) []kgo.Opt {
	return []kgo.Opt{
		kgo.ClientID("wastatus-" + name),
		kgo.WithLogger(kslog.New(clientLogger(s.log).With("client", name))),
	}
}

// startEdge builds the webhook receiver and its producer on s.mux.
func (s *stack) startEdge(k *kafkaFlags, e *edgeFlags, sec secrets) (*edge.Receiver, error) {
	cl, err := kgo.NewClient(append(append(s.clientOpts("edge"), kgo.SeedBrokers(k.brokers...), kgo.WithHooks(s.kprom)), edge.ProducerOpts()...)...)
	if err != nil {
		return nil, fmt.Errorf("edge client: %w", err)
	}
	s.closers = append(s.closers, func() error { cl.Close(); return nil })
	r, err := edge.New(edge.Config{
		EventsTopic:    k.events,
		DLQTopic:       k.dlq,
		Region:         e.region,
		AppSecret:      sec.appSecret,
		VerifyToken:    sec.verifyToken,
		MaxBodyBytes:   e.maxBody,
		ProduceTimeout: e.produceTimeout,
		Logger:         s.log.With("component", "edge"),
	}, cl, s.codec)
	if err != nil {
		return nil, err
	}
	r.Register(s.mux)
	s.reg.MustRegister(edgeCollector(r))
	return r, nil
}

// startProcessor opens the store and builds the processor and its API on
// s.mux. The caller runs it.
func (s *stack) startProcessor(k *kafkaFlags, p *processFlags) (*processor.Processor, error) {
	policy, err := state.ParsePolicy(p.policy)
	if err != nil {
		return nil, fmt.Errorf("--policy: %w", err)
	}
	store, err := state.Open(filepath.Join(p.dataDir, "state"), state.Options{
		CacheSize: p.cacheBytes,
		Logger:    s.log.With("component", "store"),
		Policy:    policy,
	})
	if err != nil {
		return nil, err
	}
	s.closers = append(s.closers, store.Close)
	s.reg.MustRegister(storeCollector(store))
	knobs, err := crashKnobs()
	if err != nil {
		return nil, err
	}
	proc, err := processor.New(processor.Config{
		Testing:          knobs,
		Brokers:          k.brokers,
		Group:            p.group,
		EventsTopic:      k.events,
		CurrentTopic:     k.current,
		DLQTopic:         k.dlq,
		Partitions:       k.partitions,
		SkipCreateTopics: p.skipCreate,
		ServeAll:         p.serveAll,
		GroupProtocol:    p.groupProtocol,
		TxnMaxRecords:    p.txnMaxRecords,
		TxnMaxWait:       p.txnMaxWait,
		ClientOpts:       s.clientOpts("processor"),
		Hooks:            []kgo.Hook{s.kprom},
		Logger:           s.log.With("component", "processor"),
	}, store, s.codec)
	if err != nil {
		return nil, err
	}
	proc.Register(s.mux)
	s.reg.MustRegister(processorCollector(proc))
	return proc, nil
}

// serve runs the HTTP server on l until ctx is done, then shuts it down.
func serve(ctx context.Context, l net.Listener, h http.Handler, log *slog.Logger) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      time.Minute, // longer than any --produce-timeout worth setting
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return fmt.Errorf("http: %w", err)
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		return fmt.Errorf("http shutdown: %w", err)
	}
	return nil
}

// hostPort turns a listen address into one a client on this machine can dial.
func hostPort(addr net.Addr) string {
	s := addr.String()
	if strings.HasPrefix(s, "[::]:") || strings.HasPrefix(s, "0.0.0.0:") {
		_, port, _ := net.SplitHostPort(s)
		return net.JoinHostPort("127.0.0.1", port)
	}
	return s
}
