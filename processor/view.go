package processor

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wastatus/wastatus/schemas"
	"github.com/wastatus/wastatus/state"
)

// viewBase places the view in the store apart from the owned state: the view
// of partition p is kept as store partition viewBase+p.
const viewBase int32 = 1 << 30

// view is every instance's read-only copy of the whole current topic, so the
// query API answers for any message from any instance with the state its
// owner committed (read_committed), whichever partitions this instance owns.
type view struct {
	ready atomic.Bool
}

// runView follows every partition of the current topic into the view until
// ctx is done. It resumes from the offsets the view stored, so a restart
// reads only what it missed. Every record is joined into the view (states
// are lattice elements), so reading one twice or out of order is harmless.
func (p *Processor) runView(ctx context.Context, partitions int32) error {
	start := make(map[int32]kgo.Offset, partitions)
	next := make(map[int32]int64, partitions)
	for part := range partitions {
		off, ok, err := p.store.NextOffset(viewBase + part)
		if err != nil {
			return fmt.Errorf("%w: view offset: %w", ErrStore, err)
		}
		if ok {
			start[part] = kgo.NewOffset().At(off)
			next[part] = off
		} else {
			start[part] = kgo.NewOffset().AtStart()
		}
	}
	cl, err := kgo.NewClient(p.viewClientOpts(start)...)
	if err != nil {
		return fmt.Errorf("processor: view client: %w", err)
	}
	defer cl.Close()

	// The view is ready once it has read what was committed when it began.
	ends, err := listOffsets(ctx, "committed end", p.cfg.CurrentTopic, kadm.NewClient(cl).ListCommittedOffsets)
	if err != nil {
		return err
	}
	behind := make(map[int32]int64)
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > next[o.Partition] {
			behind[o.Partition] = o.Offset
		}
	})
	p.view.ready.Store(len(behind) == 0)
	began := time.Now()

	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil || fs.IsClientClosed() {
			return nil
		}
		fs.EachError(func(topic string, part int32, err error) {
			if !errors.Is(err, context.Canceled) {
				p.log.Warn("view fetch error", "topic", topic, "partition", part, "err", err)
			}
		})
		var ferr error
		fs.EachPartition(func(ftp kgo.FetchTopicPartition) {
			if ferr != nil || len(ftp.Records) == 0 {
				return
			}
			ferr = p.applyView(ftp.Partition, ftp.Records)
			last := ftp.Records[len(ftp.Records)-1].Offset
			if end, ok := behind[ftp.Partition]; ok && last+1 >= end {
				delete(behind, ftp.Partition)
				if len(behind) == 0 && !p.view.ready.Load() {
					p.view.ready.Store(true)
					p.log.Info("view caught up with the current topic", "took", time.Since(began).Round(time.Millisecond))
				}
			}
		})
		if ferr != nil {
			return ferr
		}
	}
}

// viewClientOpts are the options of the view's client, reading the current
// topic's partitions from start.
func (p *Processor) viewClientOpts(start map[int32]kgo.Offset) []kgo.Opt {
	return append([]kgo.Opt{
		kgo.SeedBrokers(p.cfg.Brokers...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{p.cfg.CurrentTopic: start}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
		// The view reads the whole current topic at start: the same
		// bounds as the group's fetches (FetchMaxBytes).
		kgo.FetchMaxBytes(FetchMaxBytes),
		kgo.FetchMaxPartitionBytes(FetchMaxPartitionBytes),
	}, p.cfg.ClientOpts...)
}

// applyView joins one partition's records into the view in one store batch.
func (p *Processor) applyView(part int32, recs []*kgo.Record) error {
	b := p.store.NewBatch(viewBase + part)
	defer b.Close()
	changed := make([]string, 0, len(recs))
	for _, rec := range recs {
		if rec.Attrs.IsControl() || rec.Value == nil {
			continue
		}
		v, err := p.codec.DecodeMessageStatus(rec.Value)
		if errors.Is(err, schemas.ErrRegistry) {
			return fmt.Errorf("processor: view: %w", err)
		}
		if err != nil {
			p.log.Warn("view: undecodable state skipped", "topic", rec.Topic, "partition", part, "offset", rec.Offset, "err", err)
			continue
		}
		m, err := state.FromView(&v)
		if err != nil {
			p.log.Warn("view: invalid state skipped", "topic", rec.Topic, "partition", part, "offset", rec.Offset, "err", err)
			continue
		}
		if err := b.Restore(&m); err != nil {
			return fmt.Errorf("%w: view: %w", ErrStore, err)
		}
		changed = append(changed, v.WAMID)
	}
	b.SetNextOffset(recs[len(recs)-1].Offset + 1)
	if err := b.Commit(); err != nil {
		return fmt.Errorf("%w: view commit: %w", ErrStore, err)
	}
	p.waiters.notify(changed)
	return nil
}
