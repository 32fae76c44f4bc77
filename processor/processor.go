package processor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wastatus/wastatus/schemas"
)

// shutdownGrace bounds how long a batch in flight when Run's context is
// canceled may still take to produce and commit before it is abandoned
// (and redelivered to whoever owns the partition next).
const shutdownGrace = 30 * time.Second

// Processor folds the events topic into a Store and emits every changed
// state to the current topic. Create it with New and start it with Run.
type Processor struct {
	cfg   Config
	log   *slog.Logger
	store Store
	codec *schemas.Codec
	keyer kgo.TopicPartitioner

	mu         sync.RWMutex
	partitions int32 // of the events topic, known once Run has started
	joined     bool  // partitions were assigned at least once
	owned      map[int32]*worker

	running atomic.Bool
	stats   counters
}

// New returns a Processor over store, encoding and decoding records with
// codec. It does not touch the network; Run does.
func New(cfg Config, store Store, codec *schemas.Codec) (*Processor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if store == nil || codec == nil {
		return nil, fmt.Errorf("%w: a store and a codec are required", ErrConfig)
	}
	cfg = cfg.withDefaults()
	return &Processor{
		cfg:   cfg,
		log:   cfg.Logger,
		store: store,
		codec: codec,
		keyer: kgo.StickyKeyPartitioner(nil).ForTopic(cfg.EventsTopic),
		owned: make(map[int32]*worker),
	}, nil
}

// Stats returns a snapshot of the processor's counters.
func (p *Processor) Stats() Stats { return p.stats.snapshot() }

// Run creates missing topics, joins the consumer group and processes until
// ctx is canceled, when it finishes the batch in flight, leaves the group and
// returns nil. It returns an error when the topics are unusable, or when an
// output cannot be produced or the store fails: then nothing of the failed
// batch was stored or committed, and a restart picks it up again.
//
// Shutdown order: stop polling, let the batch in flight finish (workers
// produce and commit their Pebble batches), commit offsets, stop the
// partition workers, close the client.
func (p *Processor) Run(ctx context.Context) error {
	if !p.running.CompareAndSwap(false, true) {
		return fmt.Errorf("%w: Run called twice", ErrConfig)
	}
	defer p.running.Store(false)

	admCl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(p.cfg.Brokers...)}, p.cfg.ClientOpts...)...)
	if err != nil {
		return fmt.Errorf("processor: admin client: %w", err)
	}
	n, err := EnsureTopics(ctx, kadm.NewClient(admCl), p.cfg, !p.cfg.SkipCreateTopics)
	admCl.Close()
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.partitions, p.joined = n, false
	p.mu.Unlock()
	p.log.Info("topics ready", "topic", p.cfg.EventsTopic, "partitions", n)

	cl, err := kgo.NewClient(p.clientOpts()...)
	if err != nil {
		return fmt.Errorf("processor: client: %w", err)
	}
	defer func() {
		p.stopWorkers(nil)
		cl.CloseAllowingRebalance()
	}()

	for {
		fs := cl.PollRecords(ctx, p.cfg.MaxPollRecords)
		if fs.IsClientClosed() || ctx.Err() != nil {
			return nil
		}
		fs.EachError(func(topic string, partition int32, err error) {
			if !errors.Is(err, context.Canceled) {
				p.log.Warn("fetch error", "topic", topic, "partition", partition, "err", err)
			}
		})
		if err := p.process(ctx, cl, fs); err != nil {
			return err
		}
		cl.AllowRebalance()
	}
}

func (p *Processor) clientOpts() []kgo.Opt {
	opts := []kgo.Opt{
		kgo.SeedBrokers(p.cfg.Brokers...),
		kgo.ConsumerGroup(p.cfg.Group),
		kgo.ConsumeTopics(p.cfg.EventsTopic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsAssigned(p.assigned),
		kgo.OnPartitionsRevoked(p.revoked),
		kgo.OnPartitionsLost(p.revoked),
		kgo.AdjustFetchOffsetsFn(p.adjustOffsets),
		kgo.RecordPartitioner(samePartition()),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		// The batch waits for its outputs anyway; lingering only delays it.
		kgo.ProducerLinger(0),
	}
	return append(opts, p.cfg.ClientOpts...)
}

// process hands each partition's records to its worker, waits for all of
// them, and commits the consumed offsets. Rebalances are blocked meanwhile.
func (p *Processor) process(ctx context.Context, cl *kgo.Client, fs kgo.Fetches) error {
	// A batch in flight at shutdown may finish within shutdownGrace.
	bctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stop := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(shutdownGrace, cancel)
		context.AfterFunc(bctx, func() { t.Stop() })
	})
	defer stop()

	type pending struct {
		w       *worker
		records []*kgo.Record
		res     chan error
	}
	var waiting []pending
	p.mu.RLock()
	fs.EachPartition(func(ftp kgo.FetchTopicPartition) {
		if ftp.Topic != p.cfg.EventsTopic || len(ftp.Records) == 0 {
			return
		}
		w := p.owned[ftp.Partition]
		if w == nil {
			// Cannot happen with BlockRebalanceOnPoll; never fold for a
			// partition we do not own.
			p.log.Error("records for a partition not owned", "topic", ftp.Topic, "partition", ftp.Partition)
			return
		}
		waiting = append(waiting, pending{w, ftp.Records, make(chan error, 1)})
	})
	p.mu.RUnlock()
	for _, pd := range waiting {
		pd.w.jobs <- job{ctx: bctx, cl: cl, records: pd.records, res: pd.res}
	}

	var errs []error
	for _, pd := range waiting {
		if err := <-pd.res; err != nil {
			errs = append(errs, fmt.Errorf("partition %d: %w", pd.w.partition, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		if ctx.Err() != nil && bctx.Err() != nil {
			return nil // abandoned at shutdown: redelivered later
		}
		return err
	}
	if len(waiting) == 0 {
		return nil
	}
	p.stats.batches.Add(1)
	// At-least-once: state and outputs are durable before the offsets are
	// committed, so a failed commit only means the batch is seen again,
	// and the worker skips what its store already holds.
	if err := cl.CommitUncommittedOffsets(bctx); err != nil {
		p.log.Warn("offset commit failed", "err", err)
	}
	return nil
}

// assigned creates a worker for every newly assigned partition. It runs in
// the group's goroutine while no batch is in flight; the workers start once
// adjustOffsets has decided where each partition resumes.
func (p *Processor) assigned(ctx context.Context, cl *kgo.Client, assigned map[string][]int32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.joined = true
	for _, part := range assigned[p.cfg.EventsTopic] {
		if _, ok := p.owned[part]; ok {
			continue
		}
		w := newWorker(ctx, p, cl, part)
		p.owned[part] = w
		go w.run()
		p.log.Info("partition assigned", "topic", p.cfg.EventsTopic, "partition", part)
	}
}

// revoked stops the workers of revoked or lost partitions and waits for
// them, so no worker writes state for a partition it no longer owns.
func (p *Processor) revoked(_ context.Context, cl *kgo.Client, revoked map[string][]int32) {
	parts := revoked[p.cfg.EventsTopic]
	p.stopWorkers(parts)
	// A partition revoked while it was restoring is still paused.
	cl.ResumeFetchPartitions(map[string][]int32{p.cfg.EventsTopic: parts})
	for _, part := range parts {
		p.log.Info("partition revoked", "topic", p.cfg.EventsTopic, "partition", part)
	}
}

// stopWorkers stops the workers of parts, or of every owned partition when
// parts is nil.
func (p *Processor) stopWorkers(parts []int32) {
	p.mu.Lock()
	var stopping []*worker
	if parts == nil {
		for part, w := range p.owned {
			stopping = append(stopping, w)
			delete(p.owned, part)
		}
	}
	for _, part := range parts {
		if w := p.owned[part]; w != nil {
			stopping = append(stopping, w)
			delete(p.owned, part)
		}
	}
	p.mu.Unlock()
	for _, w := range stopping {
		w.stop()
	}
}

// resumeDecision is where a partition resumes and how.
type resumeDecision struct {
	at          int64 // the first events offset to fetch
	silentUntil int64 // fold without emitting below this offset
	restore     bool  // rebuild from the current topic first
	why         string
}

// decide applies the resume rules to a partition's stored next offset
// (stored false when the store has no state for it), the group's committed
// offset (negative when none) and the events log's start offset.
func decide(stored bool, next, committed, logStart int64) resumeDecision {
	logStart = max(logStart, 0)
	switch {
	case stored && next >= committed && next >= logStart:
		return resumeDecision{at: next, silentUntil: next, why: "store at or past the group's offset"}
	case stored && next >= logStart:
		return resumeDecision{at: next, silentUntil: committed, why: "store behind the group's offset: catching up without emitting"}
	case !stored && committed < 0:
		return resumeDecision{at: logStart, silentUntil: logStart, why: "new partition: folding from the start of the log"}
	default:
		// No state although the group has progressed, or a store older
		// than the log's start: the current topic holds every state the
		// group has emitted.
		at := max(committed, logStart)
		return resumeDecision{at: at, silentUntil: at, restore: true, why: "restoring from the current topic"}
	}
}

// adjustOffsets decides where each newly assigned partition resumes, from
// the store's next offset P, the group's committed offset C and the start
// of the events log (see decide and the package doc), then starts the
// partition's worker.
func (p *Processor) adjustOffsets(ctx context.Context, offsets map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	parts := offsets[p.cfg.EventsTopic]
	p.mu.Lock()
	defer p.mu.Unlock()
	var cl *kgo.Client
	for part := range parts {
		if w := p.owned[part]; w != nil {
			cl = w.cl
			break
		}
	}
	if cl == nil {
		return offsets, nil
	}
	starts, err := listStartOffsets(ctx, kadm.NewClient(cl), p.cfg.EventsTopic)
	if err != nil {
		return nil, err
	}
	for part, off := range parts {
		w := p.owned[part]
		if w == nil {
			continue
		}
		committed := off.EpochOffset().Offset
		next, ok, err := p.store.NextOffset(part)
		if err != nil {
			return nil, fmt.Errorf("%w: next offset of partition %d: %w", ErrStore, part, err)
		}
		logStart, _ := starts.Lookup(p.cfg.EventsTopic, part)
		d := decide(ok, next, committed, logStart.Offset)
		w.next, w.silentUntil = d.at, d.silentUntil
		if d.restore {
			w.restoreTo = d.at
			cl.PauseFetchPartitions(map[string][]int32{p.cfg.EventsTopic: {part}})
		}
		w.caughtUp.Store(!d.restore && d.at >= d.silentUntil)
		w.log.Info("partition resumes", "offset", d.at, "stored", ok, "stored_offset", next,
			"committed", committed, "log_start", logStart.Offset, "why", d.why)
		parts[part] = kgo.NewOffset().At(d.at).WithEpoch(-1)
		close(w.started)
	}
	return offsets, nil
}

// samePartition writes every record to the partition number it carries: the
// current topic's records to their input's partition (so the current topic is
// the changelog), dead letters to their source's partition, folded into the
// dead-letter topic's partition count should it have fewer.
func samePartition() kgo.Partitioner {
	return kgo.BasicConsistentPartitioner(func(string) func(*kgo.Record, int) int {
		return func(r *kgo.Record, n int) int { return int(r.Partition) % n }
	})
}

// listStartOffsets lists the start offsets of topic's partitions.
func listStartOffsets(ctx context.Context, adm *kadm.Client, topic string) (kadm.ListedOffsets, error) {
	return listOffsets(ctx, "start", topic, adm.ListStartOffsets)
}

// listOffsets calls list for topic, retrying the retriable errors of a topic
// whose metadata is still settling.
func listOffsets(ctx context.Context, which, topic string, list func(context.Context, ...string) (kadm.ListedOffsets, error)) (kadm.ListedOffsets, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		offsets, err := list(ctx, topic)
		if err == nil {
			err = offsets.Error()
		}
		if err == nil {
			return offsets, nil
		}
		if !kerr.IsRetriable(err) || time.Now().After(deadline) {
			return nil, fmt.Errorf("processor: list %s offsets of %s: %w", which, topic, err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
