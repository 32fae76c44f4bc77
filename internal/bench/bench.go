package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wastatus/wastatus/processor"
	"github.com/wastatus/wastatus/schemas"
)

// Bench is one bench run: a broker (embedded or given), a working
// directory, and the systems it starts as child processes.
type Bench struct {
	cfg     Config
	brokers []string
	kind    string // "kfake (in-process)" or "kafka"
	cluster *kfake.Cluster
	cl      *kgo.Client
	adm     *kadm.Client
	codec   *schemas.Codec
	dir     string
	runID   string
	made    []string // topics this run created, for dropRun
	secret  []byte
}

// New checks cfg, starts an embedded broker when cfg.Brokers is empty, and
// connects to it. Close releases what it holds.
func New(cfg Config) (*Bench, error) {
	cfg.fillDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Executable == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("bench: executable: %w", err)
		}
		cfg.Executable = exe
	}
	codec, err := schemas.NewCodec(schemas.IDs{})
	if err != nil {
		return nil, err
	}
	b := &Bench{cfg: cfg, brokers: cfg.Brokers, kind: "kafka", codec: codec, runID: strconv.FormatInt(time.Now().Unix(), 36) + randomID()[:4], secret: []byte(randomID() + randomID())}
	if len(b.brokers) == 0 {
		c, err := kfake.NewCluster(kfake.NumBrokers(1))
		if err != nil {
			return nil, fmt.Errorf("bench: embedded broker: %w", err)
		}
		b.cluster, b.brokers, b.kind = c, c.ListenAddrs(), "kfake (in-process)"
	}
	b.cl, err = kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(b.brokers...)}, cfg.ClientOpts...)...)
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("bench: client: %w", err)
	}
	b.adm = kadm.NewClient(b.cl)
	b.dir = cfg.WorkDir
	if b.dir == "" {
		if b.dir, err = os.MkdirTemp("", "wastatus-bench-"); err != nil {
			b.Close()
			return nil, fmt.Errorf("bench: work dir: %w", err)
		}
	} else if err := os.MkdirAll(b.dir, 0o755); err != nil {
		b.Close()
		return nil, fmt.Errorf("bench: work dir: %w", err)
	}
	return b, nil
}

// Close stops the embedded broker, or on a real one deletes the run's
// topics and groups, and removes the working directory (unless
// Config.KeepWorkDir, or for the directory a WorkDir was given).
func (b *Bench) Close() error {
	var errs []error
	if b.cluster == nil && b.adm != nil && !b.cfg.KeepWorkDir {
		ctx, cancel := context.WithTimeout(context.Background(), dropTimeout)
		errs = append(errs, b.dropRun(ctx))
		cancel()
	}
	if b.cl != nil {
		b.cl.Close()
	}
	if b.cluster != nil {
		b.cluster.Close()
	}
	if b.dir != "" && b.cfg.WorkDir == "" && !b.cfg.KeepWorkDir {
		errs = append(errs, os.RemoveAll(b.dir))
	}
	return errors.Join(errs...)
}

// dropTimeout bounds Close's clean-up on a real broker.
const dropTimeout = 30 * time.Second

// dropRun deletes the topics and consumer groups of this run from a real
// broker. Every run makes fresh ones, and a 10M-message run leaves
// gigabytes of them behind. The topics are the ones the run created, not a
// listing: a client answers a listing from metadata it may have cached.
func (b *Bench) dropRun(ctx context.Context) error {
	if err := b.deleteTopics(ctx, b.made...); err != nil {
		return err
	}
	prefix := b.topic("")
	groups, err := b.adm.ListGroups(ctx)
	if err != nil {
		return fmt.Errorf("bench: list groups to delete: %w", err)
	}
	var drop []string
	for _, g := range groups.Groups() {
		if strings.HasPrefix(g, prefix) {
			drop = append(drop, g)
		}
	}
	if len(drop) > 0 {
		resp, err := b.adm.DeleteGroups(ctx, drop...)
		if err == nil {
			err = resp.Error()
		}
		if err != nil {
			return fmt.Errorf("bench: delete the run's groups: %w", err)
		}
	}
	return nil
}

// Run measures what Config.Mode says and returns the report. With
// ModeAll the report is the processor's, with the edge's and the
// pipeline's inside it.
func (b *Bench) Run(ctx context.Context) (*Report, error) {
	var (
		r   *Report
		err error
	)
	switch b.cfg.Mode {
	case ModeProcessor:
		r, err = b.runProcessor(ctx)
	case ModeEdge:
		r, err = b.runEdge(ctx)
	case ModePipeline:
		r, err = b.runPipeline(ctx)
	case ModeAll:
		if r, err = b.runProcessor(ctx); err != nil {
			return nil, err
		}
		if r.Edge, err = b.runEdge(ctx); err != nil {
			return nil, err
		}
		r.Pipeline, err = b.runPipeline(ctx)
		r.Mode = ModeAll
	}
	if err != nil {
		return nil, err
	}
	if b.cfg.Plot != "" {
		if err := b.plotAll(r); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// newReport fills what every mode's report says about the run.
func (b *Bench) newReport(mode string) *Report {
	return &Report{
		Mode:          mode,
		Broker:        b.kind,
		Brokers:       strings.Join(b.brokers, ","),
		GoVersion:     runtime.Version(),
		GOMAXPROCS:    runtime.GOMAXPROCS(0),
		NumCPU:        runtime.NumCPU(),
		Partitions:    b.cfg.Partitions,
		TxnMaxRecords: b.cfg.TxnMaxRecords,
		TxnMaxWaitMs:  float64(b.cfg.TxnMaxWait) / float64(time.Millisecond),
		Started:       time.Now().UTC().Format(time.RFC3339),
	}
}

// topic names a topic of this run, so runs never share state.
func (b *Bench) topic(name string) string { return "bench." + b.runID + "." + name }

// createTopics creates fresh topics with the run's partition count.
func (b *Bench) createTopics(ctx context.Context, names ...string) error {
	b.remember(names...)
	res, err := b.adm.CreateTopics(ctx, b.cfg.Partitions, -1, nil, names...)
	if err != nil {
		return fmt.Errorf("bench: create topics: %w", err)
	}
	for _, t := range res.Sorted() {
		if t.Err != nil && !errors.Is(t.Err, kerrTopicExists) {
			return fmt.Errorf("bench: create topic %s: %w", t.Topic, t.Err)
		}
	}
	return nil
}

// createProductTopics creates the events, current and dead-letter topics
// as the processor would (compacted current topic, retention), before any
// child starts, so the bench's consumers of them start at once.
func (b *Bench) createProductTopics(ctx context.Context, events, current, dlq string) error {
	b.remember(events, current, dlq)
	_, err := processor.EnsureTopics(ctx, b.adm, processor.Config{
		EventsTopic: events, CurrentTopic: current, DLQTopic: dlq, Partitions: b.cfg.Partitions,
	}, true)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	return nil
}

// deleteTopics deletes topics the run made; one already gone is no error.
func (b *Bench) deleteTopics(ctx context.Context, topics ...string) error {
	if len(topics) == 0 {
		return nil
	}
	resp, err := b.adm.DeleteTopics(ctx, topics...)
	if err != nil {
		return fmt.Errorf("bench: delete topics: %w", err)
	}
	for _, r := range resp.Sorted() {
		if r.Err != nil && !errors.Is(r.Err, kerr.UnknownTopicOrPartition) {
			return fmt.Errorf("bench: delete topic %s: %w", r.Topic, r.Err)
		}
	}
	return nil
}

// remember notes topics the run created, for Close, each once.
func (b *Bench) remember(names ...string) {
	for _, n := range names {
		if !slices.Contains(b.made, n) {
			b.made = append(b.made, n)
		}
	}
}

// childDir is a fresh directory for one child.
func (b *Bench) childDir(name string) (string, error) {
	d := filepath.Join(b.dir, name)
	if err := os.MkdirAll(d, 0o755); err != nil {
		return "", fmt.Errorf("bench: %w", err)
	}
	return d, nil
}

// start runs a wastatus subcommand as a child, with the extra child flags.
func (b *Bench) start(name string, args []string) (*child, error) {
	d, err := b.childDir(name)
	if err != nil {
		return nil, err
	}
	env := []string{"WASTATUS_APP_SECRET=" + string(b.secret), "WASTATUS_VERIFY_TOKEN=bench"}
	return startChild(name, b.cfg.Executable, append(args, b.cfg.ChildArgs...), env, filepath.Join(d, "log"))
}
