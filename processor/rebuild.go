package processor

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/wastatus/wastatus/schemas"
)

// RebuildFromEvents replaces the store's state of each of partitions with
// the fold of the same partition of the events topic, read with
// read_committed isolation from the log's start to its last stable offset
// as of the call, and emits nothing. Records the processor dead-letters
// (ReasonTooLarge, ReasonUndecodable, ReasonKeyMismatch, ReasonUnknownStatus,
// ReasonInvalidEvent) are skipped, as its workers skip them. The store
// normally is a fresh one; a partition that has state is dropped first.
//
// Each partition's next events offset is written last, with the end it was
// read to, so a store rebuilt to the end can serve a processor (which
// resumes there, or restores from the current topic if the group's offset
// disagrees), and a rebuild that stopped half-way leaves no offset, which a
// processor never trusts. The events topic's id is recorded, as Run records
// it, so a processor notices if the topic is recreated afterwards.
//
// It reads with clients of its own and writes only store, so it runs safely
// beside live processors, which it neither waits for nor disturbs. Up to
// GOMAXPROCS partitions are folded at once. progress, if not nil, is
// called about once a second per partition (never concurrently). It returns
// the number of event records read.
func RebuildFromEvents(ctx context.Context, cfg Config, store Store, codec *schemas.Codec, partitions []int32, progress RestoreProgress) (int64, error) {
	if err := cfg.Validate(); err != nil {
		return 0, err
	}
	if store == nil || codec == nil {
		return 0, fmt.Errorf("%w: a store and a codec are required", ErrConfig)
	}
	cfg = cfg.withDefaults()
	admCl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(cfg.Brokers...)}, cfg.ClientOpts...)...)
	if err != nil {
		return 0, fmt.Errorf("processor: admin client: %w", err)
	}
	spans, id, err := topicSpans(ctx, kadm.NewClient(admCl), cfg.EventsTopic)
	admCl.Close()
	if err != nil {
		return 0, err
	}
	for _, part := range partitions {
		if _, ok := spans[part]; !ok {
			return 0, fmt.Errorf("processor: %s has no partition %d", cfg.EventsTopic, part)
		}
	}
	if err := store.SetMeta(metaEventsTopic, id[:]); err != nil {
		return 0, fmt.Errorf("%w: %w", ErrStore, err)
	}

	r := ranger{cfg: cfg, store: store, codec: codec}
	return inParallel(ctx, partitions, progress, func(ctx context.Context, part int32, progress RestoreProgress) (int64, error) {
		return r.rebuild(ctx, part, spans[part], progress)
	})
}

// inParallel runs fn for each partition, up to GOMAXPROCS at once, with
// progress calls serialized, and returns the records they read in all.
func inParallel(ctx context.Context, partitions []int32, progress RestoreProgress,
	fn func(context.Context, int32, RestoreProgress) (int64, error)) (int64, error) {
	var mu sync.Mutex
	if progress != nil {
		inner := progress
		progress = func(part int32, read, total int64) {
			mu.Lock()
			defer mu.Unlock()
			inner(part, read, total)
		}
	}
	var (
		read   int64
		readMu sync.Mutex
	)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.GOMAXPROCS(0))
	for _, part := range partitions {
		g.Go(func() error {
			n, err := fn(gctx, part, progress)
			readMu.Lock()
			read += n
			readMu.Unlock()
			return err
		})
	}
	err := g.Wait()
	return read, err
}

// rebuild drops partition's state and folds the events of span into it.
func (r *ranger) rebuild(ctx context.Context, partition int32, span Span, progress RestoreProgress) (int64, error) {
	began := time.Now()
	if err := r.store.DropPartition(partition); err != nil {
		return 0, fmt.Errorf("%w: drop partition %d: %w", ErrStore, partition, err)
	}
	// The span bounds the messages: a small partition gets a small filter.
	b, err := r.store.NewLoadBatch(partition, int(min(span.Len(), 1<<30)))
	if err != nil {
		return 0, fmt.Errorf("%w: rebuild partition %d: %w", ErrStore, partition, err)
	}
	defer b.Close()
	var skipped int64
	pending := 0
	n, err := r.readRange(ctx, r.cfg.EventsTopic, partition, span.Start, span.End, progress, func(rec *kgo.Record) error {
		ev, _, err := admitRecord(r.cfg.MaxRecordBytes, r.codec, rec.Key, rec.Value)
		if err == nil {
			_, _, err = b.Apply(&ev, rec.Offset)
			if err != nil && !isPoison(err) {
				return fmt.Errorf("%w: rebuild %s: %w", ErrStore, ev.WAMID, err)
			}
		}
		if err != nil {
			skipped++
		}
		if pending++; pending >= rangeBatch {
			pending = 0
			if err := b.Commit(); err != nil {
				return fmt.Errorf("%w: rebuild commit: %w", ErrStore, err)
			}
		}
		return nil
	})
	if err != nil {
		return n, err
	}
	b.SetNextOffset(span.End)
	if err := b.Commit(); err != nil {
		return n, fmt.Errorf("%w: rebuild commit: %w", ErrStore, err)
	}
	r.cfg.Logger.Info("partition rebuilt from events", "topic", r.cfg.EventsTopic, "partition", partition,
		"records", n, "skipped", skipped, "offset", span.End, "took", time.Since(began).Round(time.Millisecond))
	return n, nil
}
