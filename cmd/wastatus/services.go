package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
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

// kafkaFlags say where Kafka is, how to connect to it and what the topics
// are called.
type kafkaFlags struct {
	brokers    []string
	registry   string
	events     string
	current    string
	dlq        string
	partitions int32
	security   kafkaSecurityFlags
}

func (k *kafkaFlags) register(fs *pflag.FlagSet) {
	fs.StringSliceVar(&k.brokers, "brokers", nil, "Kafka seed brokers, comma separated (run: empty starts an embedded broker)")
	fs.StringVar(&k.registry, "schema-registry", "", "schema registry URL: register the schemas there and use its ids (else the fixed ids 1 and 2)")
	fs.StringVar(&k.events, "events-topic", processor.DefaultEventsTopic, "topic of raw status events")
	k.registerOutputs(fs)
	fs.Int32Var(&k.partitions, "partitions", 12, "partitions of topics the processor creates")
	k.security.register(fs)
}

// registerOutputs registers the flags of the processors' output topics.
func (k *kafkaFlags) registerOutputs(fs *pflag.FlagSet) {
	fs.StringVar(&k.current, "current-topic", processor.DefaultCurrentTopic, "compacted topic of current message states")
	fs.StringVar(&k.dlq, "dlq-topic", processor.DefaultDLQTopic, "dead-letter topic")
}

// registerForAdmin registers what a command that only inspects the
// processors' topics needs: the brokers, the output topics and how to
// connect.
func (k *kafkaFlags) registerForAdmin(fs *pflag.FlagSet) {
	fs.StringSliceVar(&k.brokers, "brokers", nil, "Kafka seed brokers, comma separated")
	k.registerOutputs(fs)
	k.security.register(fs)
}

// edgeFlags configure the webhook receiver.
type edgeFlags struct {
	secretFlags
	region          string
	maxBody         int64
	produceTimeout  time.Duration
	bodyReadTimeout time.Duration
	clientRate      float64
	clientBurst     int
	maxClients      int
	trustedProxies  []string
}

func (e *edgeFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&e.region, "region", "local", "region this edge serves, carried in every event")
	fs.StringVar(&e.appSecretFile, "app-secret-file", "", "file holding the Meta app secret (else "+envAppSecret+")")
	fs.StringVar(&e.verifyTokenFile, "verify-token-file", "", "file holding the webhook verify token (else "+envVerifyToken+")")
	fs.BoolVar(&e.insecureSkipSignature, "insecure-skip-signature", false, "DANGEROUS, demos only: accept webhook POSTs without checking X-Hub-Signature-256 (no app secret then)")
	fs.Int64Var(&e.maxBody, "max-body-bytes", 4<<20, "largest webhook body accepted")
	fs.DurationVar(&e.produceTimeout, "produce-timeout", 5*time.Second, "how long a webhook waits for Kafka before answering 503")
	fs.DurationVar(&e.bodyReadTimeout, "body-read-timeout", edge.DefaultBodyReadTimeout, "how long a webhook body may take to arrive before 408")
	fs.Float64Var(&e.clientRate, "client-rate", edge.DefaultClientRate, "webhook requests a second one client address may make (429 beyond); negative: no limit")
	fs.IntVar(&e.clientBurst, "client-burst", 0, "webhook requests one client may make at once (0: two seconds of --client-rate)")
	fs.IntVar(&e.maxClients, "max-clients", edge.DefaultMaxClients, "client addresses the rate limiter remembers")
	fs.StringSliceVar(&e.trustedProxies, "trusted-proxies", nil, "CIDR prefixes of load balancers whose X-Forwarded-For is believed for rate limiting")
}

// proxies parses --trusted-proxies.
func (e *edgeFlags) proxies() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range e.trustedProxies {
		p, err := netip.ParsePrefix(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("--trusted-proxies: %w", err)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// processFlags configure the processor and its store.
type processFlags struct {
	serveAll       bool
	skipCreate     bool
	groupProtocol  string
	sessionTimeout time.Duration
	txnMaxRecords  int
	txnMaxWait     time.Duration
	group          string
	policy         string
	dataDir        string
	cacheBytes     int64
	memTableBytes  int64
	minFreeDisk    int64
	memoryLimit    int64
}

func (p *processFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&p.group, "group", processor.DefaultGroup, "consumer group of the processors")
	fs.StringVar(&p.groupProtocol, "group-protocol", "classic", "consumer group protocol: classic, or consumer (KIP-848, Kafka 4.0+)")
	fs.DurationVar(&p.sessionTimeout, "session-timeout", 45*time.Second, "classic protocol: how long the group waits for a silent (crashed) member before moving its partitions, within the broker's group.min/max.session.timeout.ms (the consumer protocol's is the broker's group.consumer.session.timeout.ms)")
	fs.IntVar(&p.txnMaxRecords, "txn-max-records", 10_000, "most input records in one transaction")
	fs.DurationVar(&p.txnMaxWait, "txn-max-wait", 0, "keep filling a transaction this long after its first records (0: one poll per transaction)")
	fs.BoolVar(&p.serveAll, "serve-all", true, "keep a view of the whole current topic so the API answers for every message, not only those of the partitions it owns")
	fs.BoolVar(&p.skipCreate, "skip-create-topics", false, "do not create missing topics (an operator owns them); still checks their partition counts")
	fs.StringVar(&p.policy, "policy", "failed-wins", "failed after delivered: failed-wins (terminal) or delivery-wins")
	fs.StringVar(&p.dataDir, "data-dir", "./data", "directory for the state store (and the embedded broker)")
	registerMinFreeDisk(fs, &p.minFreeDisk)
	fs.Int64Var(&p.cacheBytes, "cache-bytes", defaultCacheBytes, "Pebble block cache size; it and two memtables (--memtable-bytes) count against --memory-limit")
	fs.Int64Var(&p.memTableBytes, "memtable-bytes", defaultMemTableBytes, "size of each of Pebble's memtables, at least 1 MiB and below 4 GiB; up to two exist at a time, and they count against --memory-limit")
	fs.Int64Var(&p.memoryLimit, "memory-limit", defaultMemoryLimit, "bytes the process aims to stay within: Pebble's cache and memtables, plus the Go runtime's soft memory limit (GOMEMLIMIT) set to the rest; 0: no Go limit (GOMEMLIMIT, when set, wins)")
}

// stack holds what a subcommand started, for one place to close it.
type stack struct {
	log     *slog.Logger
	reg     *prometheus.Registry
	kprom   *kprom.Metrics
	mux     *http.ServeMux
	codec   *schemas.Codec
	kafka   []kgo.Opt // TLS and SASL, for every client; set by useCluster
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
	if err := s.useCluster(cmd.Context(), k); err != nil {
		return nil, errors.Join(err, s.close())
	}
	return s, nil
}

// useCluster prepares the stack for the cluster k names: the TLS and SASL
// options of every client, checked once against the brokers, and the
// schema registry.
func (s *stack) useCluster(ctx context.Context, k *kafkaFlags) error {
	opts, err := k.security.opts(s.log)
	if err != nil {
		return err
	}
	if err := checkKafka(ctx, k.brokers, append(s.clientOpts("check"), opts...), &k.security, s.log); err != nil {
		return err
	}
	s.kafka = opts
	s.log.Info("kafka connection", "brokers", strings.Join(k.brokers, ","), "security", k.security.describe())
	return s.useSchemaRegistry(ctx, k)
}

// useSchemaRegistry registers the schemas with the registry that k names,
// if any, and makes the stack's codec use its ids (and resolve older
// versions).
func (s *stack) useSchemaRegistry(ctx context.Context, k *kafkaFlags) error {
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

// clientOpts are the options every Kafka client of this process shares,
// TLS and SASL included: every client is built from them (the processor
// takes its brokers from its Config, and its hooks apart).
func (s *stack) clientOpts(name string) []kgo.Opt {
	return append([]kgo.Opt{
		kgo.ClientID("wastatus-" + name),
		kgo.WithLogger(kslog.New(clientLogger(s.log).With("client", name))),
	}, s.kafka...)
}

// startEdge builds the webhook receiver and its producer on s.mux.
func (s *stack) startEdge(k *kafkaFlags, e *edgeFlags, sec secrets) (*edge.Receiver, error) {
	proxies, err := e.proxies()
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(append(append(s.clientOpts("edge"), kgo.SeedBrokers(k.brokers...), kgo.WithHooks(s.kprom)), edge.ProducerOpts()...)...)
	if err != nil {
		return nil, fmt.Errorf("edge client: %w", err)
	}
	s.closers = append(s.closers, func() error { cl.Close(); return nil })
	r, err := edge.New(edge.Config{
		EventsTopic:           k.events,
		DLQTopic:              k.dlq,
		Region:                e.region,
		AppSecret:             sec.appSecret,
		InsecureSkipSignature: e.insecureSkipSignature,
		VerifyToken:           sec.verifyToken,
		MaxBodyBytes:          e.maxBody,
		ProduceTimeout:        e.produceTimeout,
		BodyReadTimeout:       e.bodyReadTimeout,
		ClientRate:            e.clientRate,
		ClientBurst:           e.clientBurst,
		MaxClients:            e.maxClients,
		TrustedProxies:        proxies,
		Logger:                s.log.With("component", "edge"),
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
	minFree, err := minFreeBytes(p.minFreeDisk)
	if err != nil {
		return nil, err
	}
	if p.memTableBytes < minMemTableBytes || p.memTableBytes >= 4<<30 {
		return nil, fmt.Errorf("--memtable-bytes %d: want at least %d and below 4 GiB", p.memTableBytes, int64(minMemTableBytes))
	}
	if err := applyMemoryLimit(p.memoryLimit, p.cacheBytes, p.memTableBytes, s.log); err != nil {
		return nil, err
	}
	store, err := state.Open(filepath.Join(p.dataDir, "state"), state.Options{
		CacheSize:    p.cacheBytes,
		MemTableSize: uint64(p.memTableBytes),
		Logger:       s.log.With("component", "store"),
		Policy:       policy,
		MinFreeBytes: minFree,
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
		ClientOpts:       append(s.clientOpts("processor"), kgo.SessionTimeout(p.sessionTimeout)),
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

// hostPort turns a listen address into one a client on this machine can dial.
func hostPort(addr net.Addr) string {
	s := addr.String()
	if strings.HasPrefix(s, "[::]:") || strings.HasPrefix(s, "0.0.0.0:") {
		_, port, _ := net.SplitHostPort(s)
		return net.JoinHostPort("127.0.0.1", port)
	}
	return s
}

// registerMinFreeDisk registers --min-free-disk into v.
func registerMinFreeDisk(fs *pflag.FlagSet, v *int64) {
	fs.Int64Var(v, "min-free-disk", state.DefaultMinFreeBytes,
		"free bytes the store keeps on its disk: below them it stops cleanly before Pebble runs out of room, and it starts only with a quarter more; 0: no check")
}

// minFreeBytes is state.Options.MinFreeBytes for --min-free-disk, whose 0
// turns the check off (the Options' 0 means the default).
func minFreeBytes(flag int64) (int64, error) {
	switch {
	case flag < 0:
		return 0, fmt.Errorf("--min-free-disk %d: want a number of bytes, or 0 for no check", flag)
	case flag == 0:
		return -1, nil
	}
	return flag, nil
}
