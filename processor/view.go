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

// viewLoadRunBytes is the run size of each view partition's Loader: every
// partition of a new view loads at once, so each gets a share of what one
// restore's Loader holds.
const viewLoadRunBytes = 2 << 20

// runView follows every partition of the current topic into the view until
// ctx is done. It resumes from the offsets the view stored, so a restart
// reads only what it missed. Every record is joined into the view (states
// are lattice elements), so reading one twice or out of order is harmless.
//
// A partition the view holds nothing of (a new instance, a lost store) is
// read up to the end it had when the view began through a state.Loader, as
// a restore is, instead of batch by batch: its states become visible at
// once when that end is reached, and the view is not ready before anyway.
func (p *Processor) runView(ctx context.Context, partitions int32) error {
	start := make(map[int32]kgo.Offset, partitions)
	next := make(map[int32]int64, partitions)
	fresh := make(map[int32]bool)
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
			fresh[part] = true
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
	loads, err := p.viewLoaders(fresh, behind)
	defer func() {
		for _, l := range loads {
			l.Close() // unfinished: the next start loads the partition again
		}
	}()
	if err != nil {
		return err
	}

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
			recs := ftp.Records
			if l := loads[ftp.Partition]; l != nil {
				var done bool
				recs, done, ferr = p.loadView(ctx, l, ftp.Partition, recs, behind[ftp.Partition])
				if done {
					delete(loads, ftp.Partition)
				}
			}
			if ferr == nil && len(recs) > 0 {
				ferr = p.applyView(ftp.Partition, recs)
			}
			if ferr != nil {
				return
			}
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

// viewLoaders returns a Loader for each fresh view partition (no offset
// stored) that has records to read, emptied first: a load that a crash
// interrupted may have ingested its states without writing the offset.
func (p *Processor) viewLoaders(fresh map[int32]bool, behind map[int32]int64) (map[int32]*state.Loader, error) {
	loads := make(map[int32]*state.Loader)
	for part := range fresh {
		if _, ok := behind[part]; !ok {
			continue // nothing committed yet: followed batch by batch
		}
		if err := p.store.DropPartition(viewBase + part); err != nil {
			return loads, fmt.Errorf("%w: view partition %d: %w", ErrStore, part, err)
		}
		l, err := p.store.NewLoader(viewBase+part, viewLoadRunBytes)
		if err != nil {
			return loads, fmt.Errorf("%w: view partition %d: %w", ErrStore, part, err)
		}
		loads[part] = l
	}
	return loads, nil
}

// loadView adds the records of recs below end to l, a fresh view
// partition's Loader, and finishes it once the partition is read up to end
// (its offset is then end). It returns the records left for applyView: those
// from end on, once the load is done. Waiters are woken when it is, to read
// again: the Loader cannot name the messages it changed.
func (p *Processor) loadView(ctx context.Context, l *state.Loader, part int32, recs []*kgo.Record, end int64) (rest []*kgo.Record, done bool, err error) {
	i := 0
	for ; i < len(recs) && recs[i].Offset < end; i++ {
		m, ok, err := p.viewState(part, recs[i])
		if err != nil {
			return nil, false, err
		}
		if !ok {
			continue
		}
		if err := l.Add(&m); err != nil {
			return nil, false, fmt.Errorf("%w: view load: %w", ErrStore, err)
		}
	}
	if i == len(recs) && recs[i-1].Offset+1 < end {
		return nil, false, nil // more to read
	}
	l.SetNextOffset(end)
	if err := l.Finish(ctx); err != nil {
		return nil, true, fmt.Errorf("%w: view load of partition %d: %w", ErrStore, part, err)
	}
	p.log.Info("view partition loaded", "partition", part, "states", l.Loaded(), "end", end)
	p.waiters.notifyAll()
	return recs[i:], true, nil
}

// viewState decodes a record of the current topic for the view. It
// returns false when there is nothing to join: a control record, a
// tombstone, or a state that is undecodable or invalid (logged and
// skipped). A schema registry failure is an error: the view stops rather
// than skip states it could read later.
func (p *Processor) viewState(part int32, rec *kgo.Record) (state.Message, bool, error) {
	if rec.Attrs.IsControl() || rec.Value == nil {
		return state.Message{}, false, nil
	}
	v, err := p.codec.DecodeMessageStatus(rec.Value)
	if errors.Is(err, schemas.ErrRegistry) {
		return state.Message{}, false, fmt.Errorf("processor: view: %w", err)
	}
	if err != nil {
		p.log.Warn("view: undecodable state skipped", "topic", rec.Topic, "partition", part, "offset", rec.Offset, "err", err)
		return state.Message{}, false, nil
	}
	m, err := state.FromView(&v)
	if err != nil {
		p.log.Warn("view: invalid state skipped", "topic", rec.Topic, "partition", part, "offset", rec.Offset, "err", err)
		return state.Message{}, false, nil
	}
	return m, true, nil
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
		m, ok, err := p.viewState(part, rec)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		if err := b.Restore(&m); err != nil {
			return fmt.Errorf("%w: view: %w", ErrStore, err)
		}
		changed = append(changed, m.WAMID())
	}
	b.SetNextOffset(recs[len(recs)-1].Offset + 1)
	if err := b.Commit(); err != nil {
		return fmt.Errorf("%w: view commit: %w", ErrStore, err)
	}
	p.waiters.notify(changed)
	return nil
}
