package chaos

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wastatus/wastatus/internal/kafkabroker"
)

// harness is one run: its broker, processes and counters. Its methods run
// on Run's goroutine, but for the broker bounce, which touches only the
// broker and the outage times, and reports on a channel.
type harness struct {
	cfg     Config
	log     *slog.Logger
	r       *rand.Rand
	dir     string
	tempDir bool // dir was made by the run
	bin     string
	broker  *kafkabroker.Broker
	brokers []string
	names   topics
	admCl   *kgo.Client
	adm     *kadm.Client

	processors []*proc
	edges      []*proc
	urls       []string // the edges' webhook URLs, by region
	secret     []byte
	began      time.Time
	sum        Summary
	v          violations

	outageMu   sync.Mutex // the bounce goroutine sets the outage's times
	outageFrom time.Time
	outageTo   time.Time
}

// Run runs the chaos: it starts a broker (unless cfg.Brokers names one),
// cfg.Processors `wastatus process` and cfg.Edges `wastatus ingest`
// processes, posts signed webhooks with Meta's disorder to the edges for
// cfg.Duration while it SIGKILLs and restarts processors and bounces the
// broker once, then retries every unacknowledged POST, waits until the
// processors have folded everything, and checks the topics (see verify).
//
// The error is for a run that could not be carried out; broken promises are
// Summary.Violations.
func Run(ctx context.Context, cfg Config) (sum Summary, err error) {
	if err := cfg.Validate(); err != nil {
		return Summary{}, err
	}
	cfg = cfg.withDefaults()
	if cfg.Seed == 0 {
		cfg.Seed = uint64(time.Now().UnixNano())
	}
	h := &harness{cfg: cfg, log: cfg.Log, r: rand.New(rand.NewPCG(cfg.Seed, 1)), began: time.Now()}
	h.sum.Seed, h.sum.Config = cfg.Seed, cfg
	defer func() {
		err = errors.Join(err, h.close())
		h.sum.Violations = h.v.list
		sum = h.sum
	}()
	if err := h.setup(ctx); err != nil {
		return Summary{}, err
	}
	if err := h.startAll(ctx); err != nil {
		return Summary{}, err
	}
	return Summary{}, h.chaos(ctx) // the deferred function fills the summary in
}

// setup makes the work dir, builds the binary and starts or finds the
// broker.
func (h *harness) setup(ctx context.Context) error {
	h.dir = h.cfg.Dir
	if h.dir == "" {
		d, err := os.MkdirTemp("", "wastatus-chaos-")
		if err != nil {
			return fmt.Errorf("chaos: work dir: %w", err)
		}
		h.dir, h.tempDir = d, true
	}
	if err := os.MkdirAll(filepath.Join(h.dir, "logs"), 0o755); err != nil {
		return fmt.Errorf("chaos: work dir: %w", err)
	}
	h.sum.Dir = h.dir
	h.bin = h.cfg.Binary
	if h.bin == "" {
		h.bin = filepath.Join(h.dir, "wastatus")
		began := time.Now()
		out, err := exec.CommandContext(ctx, "go", "build", "-o", h.bin, "github.com/wastatus/wastatus/cmd/wastatus").CombinedOutput()
		if err != nil {
			return fmt.Errorf("chaos: go build ./cmd/wastatus: %w\n%s", err, out)
		}
		h.log.Info("built wastatus", "took", time.Since(began).Round(time.Millisecond))
	}
	h.brokers = h.cfg.Brokers
	if len(h.brokers) == 0 {
		began := time.Now()
		b, err := kafkabroker.Start(ctx, filepath.Join(h.dir, "kafka"))
		if err != nil {
			return fmt.Errorf("chaos: %w", err)
		}
		h.broker, h.brokers = b, []string{b.Addr()}
		h.log.Info("broker started", "addr", b.Addr(), "took", time.Since(began).Round(time.Millisecond))
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(h.brokers...))
	if err != nil {
		return fmt.Errorf("chaos: admin client: %w", err)
	}
	h.admCl, h.adm = cl, kadm.NewClient(cl)
	h.sum.SessionTimeout = h.sessionTimeout(ctx)
	id := strconv.FormatUint(h.cfg.Seed, 36)
	h.names = topics{
		events:  "chaos." + id + ".events",
		current: "chaos." + id + ".current",
		dlq:     "chaos." + id + ".dlq",
		group:   "chaos." + id + ".processors",
	}
	return nil
}

// sessionTimeout reads the broker setting that decides how soon a SIGKILLed
// member's partitions move, for the summary.
func (h *harness) sessionTimeout(ctx context.Context) string {
	name := "group.consumer.session.timeout.ms"
	if h.cfg.GroupProtocol == "classic" {
		return "classic protocol: the client's session timeout (45 s in franz-go)"
	}
	meta, err := h.adm.BrokerMetadata(ctx)
	if err != nil {
		return fmt.Sprintf("%s unknown: %v", name, err)
	}
	rcs, err := h.adm.DescribeBrokerConfigs(ctx, meta.Brokers.NodeIDs()...)
	if err != nil {
		return fmt.Sprintf("%s unknown: %v", name, err)
	}
	for _, rc := range rcs {
		for _, c := range rc.Configs {
			if c.Key == name {
				return name + "=" + c.MaybeValue()
			}
		}
	}
	return name + " not reported"
}

// startAll starts the processors, the first one alone so that it creates
// the topics, then the edges, and waits until all are up.
func (h *harness) startAll(ctx context.Context) error {
	secret := []byte(crand.Text())
	common := []string{
		"--brokers", strings.Join(h.brokers, ","),
		"--events-topic", h.names.events,
		"--dlq-topic", h.names.dlq,
		"--log-format", "json",
	}
	for i := range h.cfg.Processors {
		name := fmt.Sprintf("p%d", i+1)
		h.processors = append(h.processors, &proc{
			name:   name,
			dir:    filepath.Join(h.dir, name),
			logDir: filepath.Join(h.dir, "logs"),
			args: append([]string{h.bin, "process"}, append(common,
				"--current-topic", h.names.current,
				"--group", h.names.group,
				"--group-protocol", h.cfg.GroupProtocol,
				"--partitions", strconv.Itoa(int(h.cfg.Partitions)),
				"--policy", h.cfg.Policy,
				"--serve-all=false",
				"--data-dir", filepath.Join(h.dir, name),
			)...),
		})
	}
	for _, rg := range Regions()[:h.cfg.Edges] {
		h.edges = append(h.edges, &proc{
			name:   "edge-" + rg.Name,
			logDir: filepath.Join(h.dir, "logs"),
			env:    []string{"WASTATUS_APP_SECRET=" + string(secret), "WASTATUS_VERIFY_TOKEN=chaos"},
			args:   append([]string{h.bin, "ingest", "--region", rg.Name}, common...),
		})
	}
	for i, p := range h.processors {
		if err := p.start(); err != nil {
			return err
		}
		if i == 0 {
			if err := p.waitFor(ctx, "/readyz", 2*time.Minute); err != nil {
				return err
			}
		}
	}
	for _, p := range h.processors {
		if err := p.waitFor(ctx, "/readyz", 2*time.Minute); err != nil {
			return err
		}
	}
	for _, e := range h.edges {
		if err := e.start(); err != nil {
			return err
		}
		if err := e.waitFor(ctx, "/metrics", time.Minute); err != nil {
			return err
		}
		h.urls = append(h.urls, "http://"+e.addr+"/webhook")
	}
	h.secret = secret
	h.log.Info("fleet up", "processors", len(h.processors), "edges", len(h.edges), "took", time.Since(h.began).Round(time.Millisecond))
	return nil
}
