package processor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wastatus/wastatus/state"
)

// Dead-letter reasons, in the "reason" header of a dead-letter record.
const (
	ReasonUndecodable   = "undecodable"
	ReasonUnknownStatus = "unknown-status"
	ReasonTooLarge      = "too-large"
	ReasonKeyMismatch   = "key-mismatch"
	ReasonInvalidEvent  = "invalid-event"
)

type job struct {
	ctx     context.Context
	cl      *kgo.Client
	records []*kgo.Record
	res     chan<- error
}

// worker owns one partition: it folds that partition's batches into the
// store and produces their outputs. One goroutine per worker; it exits when
// jobs is closed.
type worker struct {
	p         *Processor
	partition int32
	log       *slog.Logger
	jobs      chan job
	done      chan struct{}

	// Set by adjustOffsets before the first job, read by the worker only.
	next        int64 // records below next are already in the store
	silentUntil int64 // records below silentUntil fold without emitting
	caughtUp    atomic.Bool
}

func newWorker(p *Processor, partition int32) *worker {
	return &worker{
		p:         p,
		partition: partition,
		log:       p.log.With("topic", p.cfg.EventsTopic, "partition", partition),
		jobs:      make(chan job),
		done:      make(chan struct{}),
	}
}

func (w *worker) run() {
	defer close(w.done)
	for j := range w.jobs {
		j.res <- w.handle(j.ctx, j.cl, j.records)
	}
}

// handle folds one batch into one store batch, produces the changed states
// and the dead letters, waits for Kafka to acknowledge them all, and only
// then commits the store batch with the partition's next offset.
func (w *worker) handle(ctx context.Context, cl *kgo.Client, records []*kgo.Record) error {
	p := w.p
	b := p.store.NewBatch(w.partition)
	defer b.Close()

	var (
		last  int64 = -1
		dead  []*kgo.Record
		stats = &p.stats
	)
	for _, r := range records {
		if r.Offset < w.next {
			continue // already folded before a lost offset commit
		}
		last = r.Offset
		silent := r.Offset < w.silentUntil
		stats.events.Add(1)
		if silent {
			stats.replayed.Add(1)
		}
		reason, err := w.fold(b, r)
		if err == nil {
			continue
		}
		if errors.Is(err, ErrStore) {
			return err
		}
		if silent {
			continue // the previous owner dead-lettered it already
		}
		w.log.Warn("dead letter", "offset", r.Offset, "reason", reason, "err", err)
		dead = append(dead, w.deadLetter(r, reason, err))
	}
	if last < 0 {
		return nil
	}

	var outs []*kgo.Record
	if last >= w.silentUntil {
		for _, m := range b.Changed() {
			view := m.View(p.store.Policy())
			val, err := p.codec.AppendMessageStatus(nil, &view)
			if err != nil {
				return fmt.Errorf("%w: encode state of %s: %w", ErrStore, m.WAMID(), err)
			}
			outs = append(outs, &kgo.Record{
				Topic:     p.cfg.CurrentTopic,
				Partition: w.partition,
				Key:       []byte(view.WAMID),
				Value:     val,
			})
		}
	}
	if err := produceAll(ctx, cl, append(outs, dead...)); err != nil {
		return err
	}
	stats.emitted.Add(uint64(len(outs)))
	stats.deadLetters.Add(uint64(len(dead)))

	b.SetNextOffset(last + 1)
	if err := b.Commit(); err != nil {
		return fmt.Errorf("%w: commit: %w", ErrStore, err)
	}
	w.next = last + 1
	w.caughtUp.Store(w.next >= w.silentUntil)
	return nil
}

// fold decodes and folds one record. A non-nil error with a reason means the
// record is poison and goes to the dead-letter topic; ErrStore is fatal.
func (w *worker) fold(b *state.Batch, r *kgo.Record) (string, error) {
	p := w.p
	if len(r.Value) > p.cfg.MaxRecordBytes {
		return ReasonTooLarge, fmt.Errorf("value of %d bytes exceeds the %d-byte limit", len(r.Value), p.cfg.MaxRecordBytes)
	}
	ev, err := p.codec.DecodeStatusEvent(r.Value)
	if err != nil {
		return ReasonUndecodable, err
	}
	if string(r.Key) != ev.WAMID {
		return ReasonKeyMismatch, fmt.Errorf("record key %q is not the event's wamid %q", r.Key, ev.WAMID)
	}
	outcome, m, err := b.Apply(&ev, r.Offset)
	switch {
	case errors.Is(err, state.ErrUnknownStatus):
		p.stats.unknown.Add(1)
		return ReasonUnknownStatus, err
	case errors.Is(err, state.ErrInvalidEvent), errors.Is(err, state.ErrWAMIDMismatch):
		return ReasonInvalidEvent, err
	case err != nil:
		// Anything else is the store's failure (a read error, a corrupt
		// value), not the record's: stop rather than fold wrong state.
		return "", fmt.Errorf("%w: %w", ErrStore, err)
	}
	if ev.Status == "failed" && outcome.Changed() {
		// Multi-device users: a failed for a message that reached the
		// phone. Rare enough that a View here costs nothing.
		if v := m.View(p.store.Policy()); v.DeliveredAt != 0 || v.ReadAt != 0 || v.PlayedAt != 0 {
			p.stats.failedAfter.Add(1)
		}
	}
	switch outcome {
	case state.Advanced:
		p.stats.advanced.Add(1)
	case state.Filled:
		p.stats.filled.Add(1)
	case state.Stale:
		p.stats.stale.Add(1)
	case state.Duplicate:
		p.stats.duplicates.Add(1)
	}
	return "", nil
}

func (w *worker) deadLetter(r *kgo.Record, reason string, err error) *kgo.Record {
	headers := append([]kgo.RecordHeader{
		{Key: "reason", Value: []byte(reason)},
		{Key: "error", Value: []byte(err.Error())},
		{Key: "source", Value: []byte("processor")},
		{Key: "source.topic", Value: []byte(r.Topic)},
		{Key: "source.partition", Value: strconv.AppendInt(nil, int64(r.Partition), 10)},
		{Key: "source.offset", Value: strconv.AppendInt(nil, r.Offset, 10)},
	}, r.Headers...)
	return &kgo.Record{
		Topic:     w.p.cfg.DLQTopic,
		Partition: r.Partition, // see partitioner
		Key:       r.Key,
		Value:     r.Value,
		Headers:   headers,
	}
}

// produceAll writes recs and waits until Kafka acknowledged every one.
func produceAll(ctx context.Context, cl *kgo.Client, recs []*kgo.Record) error {
	if len(recs) == 0 {
		return nil
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	wg.Add(len(recs))
	for _, r := range recs {
		cl.Produce(ctx, r, func(r *kgo.Record, err error) {
			defer wg.Done()
			if err != nil {
				mu.Lock()
				if first == nil {
					first = fmt.Errorf("%w: %s[%d]: %w", ErrProduce, r.Topic, r.Partition, err)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return first
}
