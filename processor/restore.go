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

// restoreBatch is how many restored states go into one store batch.
const restoreBatch = 20_000

// RestoreProgress reports a partition's restore: records read so far out of
// about total (the partition's committed end offset minus its start).
type RestoreProgress func(partition int32, read, total int64)

// restorer rebuilds partitions of the store from the current topic.
type restorer struct {
	brokers []string
	opts    []kgo.Opt
	topic   string
	store   Store
	codec   *schemas.Codec
}

// RestoreFromCurrent replaces the store's state of each partition with the
// states of the same partition of the current topic, read with read_committed
// isolation from its start to its last stable offset, and sets the
// partition's next offset to next[partition] (a negative one leaves it
// unset). progress, if not nil, is called about once a second per partition.
//
// The partition is dropped first and its next offset is written last, so a
// crash in between leaves a partition with no state, which is restored again.
func RestoreFromCurrent(ctx context.Context, cfg Config, store Store, codec *schemas.Codec, next map[int32]int64, progress RestoreProgress) (int64, error) {
	cfg = cfg.withDefaults()
	r := restorer{brokers: cfg.Brokers, opts: cfg.ClientOpts, topic: cfg.CurrentTopic, store: store, codec: codec}
	var total int64
	for part, off := range next {
		n, err := r.restore(ctx, part, off, progress)
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// restore restores one partition and returns the number of records read.
func (r *restorer) restore(ctx context.Context, partition int32, next int64, progress RestoreProgress) (int64, error) {
	if err := r.store.DropPartition(partition); err != nil {
		return 0, fmt.Errorf("%w: drop partition %d: %w", ErrStore, partition, err)
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(r.brokers...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{r.topic: {partition: kgo.NewOffset().AtStart()}}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Control records advance the offset to the end even when the
		// partition ends with a transaction marker.
		kgo.KeepControlRecords(),
	}, r.opts...)...)
	if err != nil {
		return 0, fmt.Errorf("processor: restore client: %w", err)
	}
	defer cl.Close()

	adm := kadm.NewClient(cl)
	starts, err := listStartOffsets(ctx, adm, r.topic)
	if err != nil {
		return 0, err
	}
	// The last stable offset: the end of what read_committed can see.
	ends, err := listOffsets(ctx, "committed end", r.topic, adm.ListCommittedOffsets)
	if err != nil {
		return 0, err
	}
	start, _ := starts.Lookup(r.topic, partition)
	end, ok := ends.Lookup(r.topic, partition)
	if !ok {
		return 0, fmt.Errorf("processor: restore: %s has no partition %d", r.topic, partition)
	}
	total := end.Offset - max(start.Offset, 0)

	b := r.store.NewBatch(partition)
	defer b.Close()
	var (
		read    int64
		pending int
		last    = time.Now()
	)
	if progress != nil {
		progress(partition, 0, total)
	}
	for pos := max(start.Offset, 0); pos < end.Offset; {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return read, err
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) { ferr = errors.Join(ferr, err) })
		if ferr != nil {
			return read, fmt.Errorf("processor: restore %s[%d]: %w", r.topic, partition, ferr)
		}
		var rerr error
		fs.EachRecord(func(rec *kgo.Record) {
			pos = rec.Offset + 1
			if rec.Attrs.IsControl() || rerr != nil || rec.Offset >= end.Offset {
				return
			}
			read++
			if rec.Value == nil {
				return // a tombstone: nothing to restore
			}
			view, err := r.codec.DecodeMessageStatus(rec.Value)
			if err != nil {
				rerr = fmt.Errorf("processor: restore %s[%d]@%d: %w", r.topic, partition, rec.Offset, err)
				return
			}
			m, err := state.FromView(&view)
			if err != nil {
				rerr = fmt.Errorf("processor: restore %s[%d]@%d: %w", r.topic, partition, rec.Offset, err)
				return
			}
			if err := b.Restore(&m); err != nil {
				rerr = fmt.Errorf("%w: restore %s: %w", ErrStore, m.WAMID(), err)
				return
			}
			pending++
		})
		if rerr != nil {
			return read, rerr
		}
		if pending >= restoreBatch {
			if err := b.Commit(); err != nil {
				return read, fmt.Errorf("%w: restore commit: %w", ErrStore, err)
			}
			pending = 0
		}
		if progress != nil && time.Since(last) > time.Second {
			progress(partition, read, total)
			last = time.Now()
		}
	}
	if next >= 0 {
		b.SetNextOffset(next)
	}
	if err := b.Commit(); err != nil {
		return read, fmt.Errorf("%w: restore commit: %w", ErrStore, err)
	}
	if progress != nil {
		progress(partition, read, total)
	}
	return read, nil
}
