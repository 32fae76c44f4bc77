package processor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wastatus/wastatus/schemas"
	"github.com/wastatus/wastatus/state"
)

// rangeBatch is how many records go into one store batch while catching
// up or rebuilding (a restore writes through a state.Loader instead).
const rangeBatch = 20_000

// rangeFetchBytes is the most a restore, catch-up or rebuild fetches of one
// partition at a time (compressed). A range client holds the fetch it is
// folding and the next one, decompressed (four to five times larger for
// the bench's records), and a processor that lost its disk prepares all its
// partitions at once: at 512 KiB, twelve partitions hold about 50 MiB.
// Larger fetches did not read much faster: BenchmarkRestore (1M states)
// read 470-545k records/s from a real broker with 256 KiB to 8 MiB
// (512 KiB: 499k; 8 MiB: 545k, for 80 MiB more peak RSS), and from kfake
// 490k with 512 KiB against 298k with 8 MiB.
const rangeFetchBytes = 512 << 10

// RestoreProgress reports a partition's restore or catch-up: records read so
// far out of about total.
type RestoreProgress func(partition int32, read, total int64)

// ranger reads ranges of partitions outside the consumer group, for restores
// and catch-ups. Its store writes are the partition worker's: it never runs
// while the partition's batches are folded.
type ranger struct {
	cfg   Config
	store Store
	codec *schemas.Codec
}

// readRange calls fn for every record of topic's partition from offset from
// up to, not including, offset to (or the partition's last stable offset
// when to is negative), reading with read_committed isolation on a client
// of its own. It returns the number of data records read.
func (r *ranger) readRange(ctx context.Context, topic string, partition int32, from, to int64,
	progress RestoreProgress, fn func(*kgo.Record) error) (int64, error) {
	cl, err := kgo.NewClient(r.clientOpts(topic, partition, from)...)
	if err != nil {
		return 0, fmt.Errorf("processor: range client: %w", err)
	}
	defer cl.Close()

	adm := kadm.NewClient(cl)
	starts, err := listStartOffsets(ctx, adm, topic)
	if err != nil {
		return 0, err
	}
	start, _ := starts.Lookup(topic, partition)
	if from < start.Offset {
		from = start.Offset
		cl.SetOffsets(map[string]map[int32]kgo.EpochOffset{topic: {partition: {Epoch: -1, Offset: from}}})
	}
	if to < 0 {
		if to, err = r.settledEnd(ctx, adm, topic, partition); err != nil {
			return 0, err
		}
	}
	total := to - from
	var (
		read int64
		last = time.Now()
	)
	if progress != nil {
		progress(partition, 0, total)
	}
	for pos := from; pos < to; {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return read, err
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) { ferr = errors.Join(ferr, err) })
		if ferr != nil {
			return read, fmt.Errorf("processor: read %s[%d]: %w", topic, partition, ferr)
		}
		var rerr error
		fs.EachRecord(func(rec *kgo.Record) {
			if rerr != nil || rec.Offset < pos || rec.Offset >= to {
				return
			}
			pos = rec.Offset + 1
			if rec.Attrs.IsControl() {
				return
			}
			read++
			rerr = fn(rec)
		})
		if rerr != nil {
			return read, rerr
		}
		if progress != nil && time.Since(last) > time.Second {
			progress(partition, read, total)
			last = time.Now()
		}
	}
	if progress != nil {
		progress(partition, read, total)
	}
	return read, nil
}

// clientOpts are the options of readRange's client, reading topic's
// partition from offset from.
func (r *ranger) clientOpts(topic string, partition int32, from int64) []kgo.Opt {
	return append([]kgo.Opt{
		kgo.SeedBrokers(r.cfg.Brokers...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {partition: kgo.NewOffset().At(max(from, 0))}}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Control records advance the offset to the end even when the
		// partition ends with a transaction marker.
		kgo.KeepControlRecords(),
		kgo.FetchMaxPartitionBytes(rangeFetchBytes),
		kgo.FetchMaxBytes(rangeFetchBytes),
	}, r.cfg.ClientOpts...)
}

// settledEnd returns the end of topic's partition once no transaction is
// open on it: its last stable offset, once that equals the high watermark.
//
// Reading a transactional topic to its last stable offset while a
// transaction is open would stop at that transaction's first record and
// miss every transaction committed after it: a processor killed in the middle
// of a transaction leaves one open on the current topic until a restart of
// the same instance fences it or the transaction timeout aborts it, and a
// restore that stopped there would miss the states the next owner committed
// meanwhile. The partition being restored has no other writer (its new owner
// is the caller), so waiting for the open transactions to end is bounded by
// the transaction timeout.
func (r *ranger) settledEnd(ctx context.Context, adm *kadm.Client, topic string, partition int32) (int64, error) {
	deadline := time.Now().Add(r.cfg.TransactionTimeout + 30*time.Second)
	for {
		stable, err := listOffsets(ctx, "committed end", topic, adm.ListCommittedOffsets)
		if err != nil {
			return 0, err
		}
		high, err := listOffsets(ctx, "end", topic, adm.ListEndOffsets)
		if err != nil {
			return 0, err
		}
		s, ok1 := stable.Lookup(topic, partition)
		h, ok2 := high.Lookup(topic, partition)
		if !ok1 || !ok2 {
			return 0, fmt.Errorf("processor: %s has no partition %d", topic, partition)
		}
		if s.Offset >= h.Offset {
			return s.Offset, nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("processor: %s[%d] still has a transaction open from offset %d after the transaction timeout", topic, partition, s.Offset)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// restore replaces the store's state of partition with the states of the
// same partition of the current topic, and then sets the partition's next
// events offset to next (unless next is negative). The partition is dropped
// first, its states are ingested at once, and the offset is written last,
// so a crash in between leaves a partition without an offset, which is
// restored again.
func (r *ranger) restore(ctx context.Context, partition int32, next int64, progress RestoreProgress) (int64, error) {
	if err := r.store.DropPartition(partition); err != nil {
		return 0, fmt.Errorf("%w: drop partition %d: %w", ErrStore, partition, err)
	}
	l, err := r.store.NewLoader(partition, 0)
	if err != nil {
		return 0, fmt.Errorf("%w: restore partition %d: %w", ErrStore, partition, err)
	}
	defer l.Close()
	n, err := r.readRange(ctx, r.cfg.CurrentTopic, partition, 0, -1, progress, func(rec *kgo.Record) error {
		if rec.Value == nil {
			return nil // a tombstone: nothing to restore
		}
		view, err := r.codec.DecodeMessageStatus(rec.Value)
		if err != nil {
			return fmt.Errorf("processor: restore %s[%d]@%d: %w", rec.Topic, partition, rec.Offset, err)
		}
		m, err := state.FromView(&view)
		if err != nil {
			return fmt.Errorf("processor: restore %s[%d]@%d: %w", rec.Topic, partition, rec.Offset, err)
		}
		if err := l.Add(&m); err != nil {
			return fmt.Errorf("%w: restore %s: %w", ErrStore, m.WAMID(), err)
		}
		return nil
	})
	if err != nil {
		return n, err
	}
	if next >= 0 {
		l.SetNextOffset(next)
	}
	if err := l.Finish(ctx); err != nil {
		return n, fmt.Errorf("%w: restore partition %d: %w", ErrStore, partition, err)
	}
	return n, nil
}

// catchUp folds the events of partition from offset from up to offset to
// into the store without emitting anything: the instance that owned the
// partition meanwhile emitted those states already. The store's next offset
// advances with every store batch, so a crash resumes where it stopped.
// Poison is skipped: the other instance dead-lettered it.
func (r *ranger) catchUp(ctx context.Context, partition int32, from, to int64, progress RestoreProgress) (int64, error) {
	b := r.store.NewBatch(partition)
	defer b.Close()
	pending, next := 0, from
	n, err := r.readRange(ctx, r.cfg.EventsTopic, partition, from, to, progress, func(rec *kgo.Record) error {
		next = rec.Offset + 1
		// By the workers' rules, so every instance folds the same events.
		ev, _, err := admitRecord(r.cfg.MaxRecordBytes, r.codec, rec.Key, rec.Value)
		if errors.Is(err, schemas.ErrRegistry) {
			return fmt.Errorf("processor: catch up: %w", err)
		}
		if err == nil {
			if _, _, err := b.Apply(&ev, rec.Offset); err != nil && !isPoison(err) {
				return fmt.Errorf("%w: catch up %s: %w", ErrStore, ev.WAMID, err)
			}
		}
		if pending++; pending >= rangeBatch {
			pending = 0
			b.SetNextOffset(next)
			if err := b.Commit(); err != nil {
				return fmt.Errorf("%w: catch-up commit: %w", ErrStore, err)
			}
		}
		return nil
	})
	if err != nil {
		return n, err
	}
	b.SetNextOffset(max(next, to))
	if err := b.Commit(); err != nil {
		return n, fmt.Errorf("%w: catch-up commit: %w", ErrStore, err)
	}
	return n, nil
}

// isPoison reports whether a fold error is the event's fault.
func isPoison(err error) bool {
	return errors.Is(err, state.ErrUnknownStatus) || errors.Is(err, state.ErrInvalidEvent) || errors.Is(err, state.ErrWAMIDMismatch)
}

// RestoreFromCurrent replaces the store's state of each partition in next
// with the states of the same partition of the current topic, read with
// read_committed isolation from its start to its last stable offset, and
// sets the partition's next events offset to next[partition] (a negative
// one leaves it unset). progress, if not nil, is called about once a second
// per partition, never concurrently. Up to GOMAXPROCS partitions are
// restored at once. It returns the number of records read.
func RestoreFromCurrent(ctx context.Context, cfg Config, store Store, codec *schemas.Codec, next map[int32]int64, progress RestoreProgress) (int64, error) {
	r := ranger{cfg: cfg.withDefaults(), store: store, codec: codec}
	parts := make([]int32, 0, len(next))
	for part := range next {
		parts = append(parts, part)
	}
	return inParallel(ctx, parts, progress, func(ctx context.Context, part int32, progress RestoreProgress) (int64, error) {
		return r.restore(ctx, part, next[part], progress)
	})
}
