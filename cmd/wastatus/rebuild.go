package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/term"

	"github.com/wastatus/wastatus/processor"
	"github.com/wastatus/wastatus/state"
)

type rebuildFlags struct {
	kafka      kafkaFlags
	from       string
	verify     bool
	dataDir    string
	force      bool
	policy     string
	cacheBytes int64
	minFree    int64
}

// newRebuildCmd is `wastatus rebuild`. On a terminal it shows progress with
// github.com/schollz/progressbar/v3: it is maintained, has the rate and the
// ETA built in (no arithmetic of ours to get wrong), and writes to any
// io.Writer, here stderr, so stdout stays for results. Off a terminal (a
// pipe, a file, a log collector) a bar is noise, so progress goes out as
// structured slog lines instead; golang.org/x/term's IsTerminal on the output
// file descriptor decides which.
func newRebuildCmd(g *globals) *cobra.Command {
	f := &rebuildFlags{}
	cmd := &cobra.Command{
		Use:   "rebuild --from events|current --data-dir DIR",
		Short: "Rebuild a state store by replaying the events topic, or from the current topic, and optionally verify it",
		Long: `Rebuild a state store in DIR/state, a fresh directory, so that DIR can be
a processor's --data-dir.

  --from events    folds the whole events topic, from the start of its log to
                   its end, into the store, exactly as the processors fold it
                   (dead letters skipped), emitting nothing. Use it to check
                   the pipeline end to end, or to recover when the current
                   topic is suspect.
  --from current   restores every message's state from the compacted current
                   topic (read_committed), as a processor restores a lost
                   partition.

Both only read the topics, with clients of their own, and write only the new
store: they run safely while the live processors run, and disturb nothing.
Each partition's events offset is recorded with --from events, so a
processor started on DIR resumes there, or restores from the current topic
if the group has moved on (with --from current it always restores).

--verify then reads the current topic (read_committed, to its end) and
compares it with the rebuilt store message by message, printing every
difference: a message missing on either side, or the fields that differ and
which side is ahead. It exits non-zero when anything differs. While
processors run, messages that changed between the rebuild and the read show
up as store-behind or store-ahead; a diverged state, or a difference that
persists once the processors have caught up, is a fault.

Progress: a bar with rate and ETA when stderr is a terminal, else structured
log lines. The state directory must be empty or absent; --force rebuilds into
one that has data (every partition rebuilt is dropped first; a store that a
processor has open is refused by its lock).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			return runRebuild(cmd.Context(), f, log, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fs := cmd.Flags()
	f.kafka.register(fs)
	fs.StringVar(&f.from, "from", "", "what to rebuild from: events (replay every event) or current (the compacted status topic)")
	fs.BoolVar(&f.verify, "verify", false, "compare the rebuilt store with the current topic and print every difference; exit non-zero when any")
	fs.StringVar(&f.dataDir, "data-dir", "", "directory for the rebuilt store (DIR/state, which must be empty or absent)")
	fs.BoolVar(&f.force, "force", false, "rebuild into a state directory that already holds data")
	fs.StringVar(&f.policy, "policy", "failed-wins", "failed after delivered: failed-wins or delivery-wins (the processors' policy)")
	fs.Int64Var(&f.cacheBytes, "cache-bytes", 64<<20, "Pebble block cache size")
	registerMinFreeDisk(fs, &f.minFree)
	return cmd
}

func runRebuild(ctx context.Context, f *rebuildFlags, log *slog.Logger, out, progressOut io.Writer) error {
	switch {
	case f.from != "events" && f.from != "current":
		return fmt.Errorf("--from: want events or current, got %q", f.from)
	case len(f.kafka.brokers) == 0:
		return errors.New("--brokers is required")
	case f.dataDir == "":
		return errors.New("--data-dir is required: a fresh directory for the rebuilt store")
	}
	policy, err := state.ParsePolicy(f.policy)
	if err != nil {
		return fmt.Errorf("--policy: %w", err)
	}
	minFree, err := minFreeBytes(f.minFree)
	if err != nil {
		return err
	}
	dir := filepath.Join(f.dataDir, "state")
	if err := checkFresh(dir, f.force); err != nil {
		return err
	}
	s, err := newStack(log, false)
	if err != nil {
		return err
	}
	defer s.close()
	if err := s.useCluster(ctx, &f.kafka); err != nil {
		return err
	}
	cfg := processor.Config{
		Brokers:      f.kafka.brokers,
		EventsTopic:  f.kafka.events,
		CurrentTopic: f.kafka.current,
		DLQTopic:     f.kafka.dlq,
		ClientOpts:   s.clientOpts("rebuild"),
		Logger:       log.With("component", "rebuild"),
	}
	parts, err := topicPartitions(ctx, cfg)
	if err != nil {
		return err
	}
	store, err := state.Open(dir, state.Options{CacheSize: f.cacheBytes, Logger: log.With("component", "store"), Policy: policy, MinFreeBytes: minFree})
	if err != nil {
		return err
	}
	s.closers = append(s.closers, store.Close)

	topic := cfg.EventsTopic
	if f.from == "current" {
		topic = cfg.CurrentTopic
	}
	spans, err := processor.Spans(ctx, cfg, topic)
	if err != nil {
		return err
	}
	var total int64
	for _, p := range parts {
		total += spans[p].Len()
	}
	log.Info("rebuilding", "from", topic, "partitions", len(parts), "records", total, "store", dir)
	prog := newProgress("rebuild from "+f.from, total, progressOut, log)
	began := time.Now()
	var read int64
	if f.from == "events" {
		read, err = processor.RebuildFromEvents(ctx, cfg, store, s.codec, parts, prog.update)
	} else {
		next := make(map[int32]int64, len(parts))
		for _, p := range parts {
			next[p] = -1 // unknown: a processor on this store restores again
		}
		read, err = processor.RestoreFromCurrent(ctx, cfg, store, s.codec, next, prog.update)
	}
	prog.finish(err == nil)
	if err != nil {
		return fmt.Errorf("rebuild from %s: %w", topic, err)
	}
	took := time.Since(began)
	fmt.Fprintf(out, "rebuilt %d partitions from %s: %d records in %s (%.0f records/s) into %s\n",
		len(parts), topic, read, took.Round(time.Millisecond), float64(read)/max(took.Seconds(), 1e-9), dir)
	if !f.verify {
		return nil
	}
	return verifyStore(ctx, cfg, store, s, parts, log, out)
}

// verifyStore compares store with the current topic, printing every
// difference and a summary; it fails when anything differs.
func verifyStore(ctx context.Context, cfg processor.Config, store *state.Store, s *stack, parts []int32, log *slog.Logger, out io.Writer) error {
	log.Info("verifying against the current topic", "topic", cfg.CurrentTopic, "partitions", len(parts))
	began := time.Now()
	res, err := processor.Verify(ctx, cfg, store, s.codec, parts, func(d processor.Difference) {
		fmt.Fprintln(out, d.String())
	})
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	fmt.Fprintf(out, "verified %d messages against %s in %s: %d equal, %d missing in the store, %d missing in the topic, %d differing, %d unreadable\n",
		res.Messages, cfg.CurrentTopic, time.Since(began).Round(time.Millisecond),
		res.Equal, res.MissingInStore, res.MissingInTopic, res.Differing, res.Unreadable)
	if n := res.Differences(); n > 0 {
		return fmt.Errorf("verify: %d of %d messages differ", n, res.Messages)
	}
	fmt.Fprintln(out, "no differences")
	return nil
}

// checkFresh refuses a state directory that holds anything, unless force.
func checkFresh(dir string, force bool) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("state dir: %w", err)
	case len(entries) > 0 && !force:
		return fmt.Errorf("state dir %s is not empty: rebuild into a fresh --data-dir, or pass --force to rebuild over it", dir)
	}
	return nil
}

// topicPartitions checks that the events and current topics exist with one
// partition count, and returns their partitions.
func topicPartitions(ctx context.Context, cfg processor.Config) ([]int32, error) {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(cfg.Brokers...)}, cfg.ClientOpts...)...)
	if err != nil {
		return nil, fmt.Errorf("admin client: %w", err)
	}
	defer cl.Close()
	n, err := processor.EnsureTopics(ctx, kadm.NewClient(cl), cfg, false)
	if err != nil {
		return nil, err
	}
	parts := make([]int32, n)
	for i := range parts {
		parts[i] = int32(i)
	}
	return parts, nil
}

// progress aggregates the per-partition progress of a rebuild into a bar
// on a terminal, or a log line every few seconds elsewhere.
type progress struct {
	what  string
	total int64
	log   *slog.Logger
	bar   *progressbar.ProgressBar // nil: log lines

	mu      sync.Mutex
	read    map[int32]int64
	began   time.Time
	logged  time.Time
	lastSum int64
}

// progressLogEvery is how often progress is logged off a terminal.
const progressLogEvery = 5 * time.Second

func newProgress(what string, total int64, w io.Writer, log *slog.Logger) *progress {
	p := &progress{what: what, total: total, log: log, read: make(map[int32]int64), began: time.Now()}
	p.logged = p.began
	if isTerminal(w) {
		p.bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription(what),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("records"),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionFullWidth(),
			progressbar.OptionSetRenderBlankState(true),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
		)
	}
	return p
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// update is a processor.RestoreProgress.
func (p *progress) update(partition int32, read, _ int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.read[partition] = read
	var sum int64
	for _, n := range p.read {
		sum += n
	}
	p.lastSum = sum
	if p.bar != nil {
		if sum > p.bar.GetMax64() {
			p.bar.ChangeMax64(sum)
		}
		_ = p.bar.Set64(sum)
		return
	}
	if now := time.Now(); now.Sub(p.logged) >= progressLogEvery {
		p.logged = now
		p.logLine("rebuild progress", sum, now)
	}
}

func (p *progress) logLine(msg string, sum int64, now time.Time) {
	elapsed := now.Sub(p.began)
	rate := float64(sum) / max(elapsed.Seconds(), 1e-9)
	attrs := []any{"what", p.what, "read", sum, "total", p.total, "rate_per_s", int64(rate), "elapsed", elapsed.Round(time.Second)}
	if p.total > 0 {
		attrs = append(attrs, "percent", min(100, 100*sum/p.total))
	}
	if rate > 0 && sum < p.total {
		attrs = append(attrs, "eta", (time.Duration(float64(p.total-sum)/rate) * time.Second).Round(time.Second))
	}
	p.log.Info(msg, attrs...)
}

// finish completes the bar, or logs the final line.
func (p *progress) finish(ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar != nil {
		if ok {
			_ = p.bar.Finish()
		} else {
			_ = p.bar.Exit()
		}
		return
	}
	if ok {
		p.logLine("rebuild done", p.lastSum, time.Now())
	}
}
