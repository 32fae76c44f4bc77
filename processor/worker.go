package processor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

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
	cl        *kgo.Client
	partition int32
	log       *slog.Logger
	jobs      chan job
	ctx       context.Context // canceled when the partition is revoked
	cancel    context.CancelFunc
	started   chan struct{} // closed by adjustOffsets once the fields below are set
	done      chan struct{}

	// Set by adjustOffsets before started is closed, then the worker's own.
	next        int64 // records below next are already in the store
	silentUntil int64 // records below silentUntil fold without emitting
	restoreTo   int64 // ≥ 0: restore from the current topic first, then resume here
	caughtUp    atomic.Bool
}

func newWorker(ctx context.Context, p *Processor, cl *kgo.Client, partition int32) *worker {
	ctx, cancel := context.WithCancel(ctx)
	return &worker{
		p:         p,
		cl:        cl,
		partition: partition,
		log:       p.log.With("topic", p.cfg.EventsTopic, "partition", partition),
		jobs:      make(chan job),
		ctx:       ctx,
		cancel:    cancel,
		started:   make(chan struct{}),
		done:      make(chan struct{}),
		restoreTo: -1,
	}
}

// stop cancels the worker and waits for it. The poll loop never sends to a
// worker being stopped: stops happen in rebalance callbacks, which run only
// while no batch is in flight, or after the poll loop ended.
func (w *worker) stop() {
	w.cancel()
	close(w.jobs)
	<-w.done
}

func (w *worker) run() {
	defer close(w.done)
	select {
	case <-w.started:
	case <-w.ctx.Done():
		return
	}
	if w.restoreTo >= 0 && !w.restore() {
		return
	}
	for j := range w.jobs {
		j.res <- w.handle(j.ctx, j.cl, j.records)
	}
}

// restore rebuilds the partition from the current topic while its fetches
// are paused, retrying until it succeeds or the partition is revoked, then
// resumes fetching at restoreTo. It reports whether it finished.
func (w *worker) restore() bool {
	p := w.p
	r := restorer{brokers: p.cfg.Brokers, opts: p.cfg.ClientOpts, topic: p.cfg.CurrentTopic, store: p.store, codec: p.codec}
	for attempt := 0; ; attempt++ {
		began := time.Now()
		n, err := r.restore(w.ctx, w.partition, w.restoreTo, func(_ int32, read, total int64) {
			w.log.Info("restoring", "read", read, "total", total)
		})
		if err == nil {
			p.stats.restored.Add(uint64(n))
			w.log.Info("restored from the current topic", "records", n, "took", time.Since(began).Round(time.Millisecond), "offset", w.restoreTo)
			w.next, w.silentUntil = w.restoreTo, w.restoreTo
			w.caughtUp.Store(true)
			w.cl.ResumeFetchPartitions(map[string][]int32{p.cfg.EventsTopic: {w.partition}})
			return true
		}
		if w.ctx.Err() != nil {
			return false
		}
		w.log.Error("restore failed; retrying", "attempt", attempt, "err", err)
		select {
		case <-w.ctx.Done():
			return false
		case <-time.After(min(time.Duration(attempt+1)*time.Second, 30*time.Second)):
		}
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
