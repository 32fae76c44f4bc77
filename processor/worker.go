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

	"github.com/wastatus/wastatus/schemas"
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

// job is a worker's next task: fold records into the open transaction and
// answer on res, or, with commit set, store a transaction's batch once the
// transaction has committed.
type job struct {
	ctx     context.Context
	cl      *kgo.Client
	records []*kgo.Record
	res     chan<- result
	commit  *pending
}

type result struct {
	pending *pending
	err     error
}

// worker owns one partition: it prepares it (restore or catch-up) when it is
// assigned, then folds its batches into store batches and produces their
// outputs into the open transaction, and commits each store batch once its
// transaction has committed. One goroutine per worker; it exits when jobs
// is closed, after the jobs queued.
type worker struct {
	p         *Processor
	cl        *kgo.Client
	partition int32
	log       *slog.Logger
	jobs      chan job
	ctx       context.Context // canceled when the partition is revoked
	cancel    context.CancelFunc
	started   chan struct{} // closed by adjustOffsets once resume is set
	done      chan struct{}
	stopOnce  sync.Once
	created   time.Time // when the partition was assigned (see dropStaleUnstarted)
	// waitHinted: dropStaleUnstarted has warned that the worker waits
	// long for its offsets. Guarded by p.mu.
	waitHinted bool
	// unlisted counts the checks in a row, since records of the partition
	// were last polled, that found the partition assigned to this member
	// in neither of the group coordinator's assignments (checkStarted).
	// Guarded by p.mu.
	unlisted int

	// Set by adjustOffsets before started is closed; next is then the
	// worker's (the poll loop reads it after a fold's result, to rewind).
	resume   resumeDecision
	next     int64 // records below next are in the store already
	caughtUp atomic.Bool

	// batch is the partition's store batch, made by the first fold and
	// reused by every later one (its cache, entries and Pebble batches are
	// kept between transactions), closed when the worker exits. It is the
	// worker's, except that the poll loop resets it after an aborted
	// transaction, between the fold's result and the worker's next job.
	batch *state.Batch

	// view is the fold's scratch view of a changed state, encoded and
	// forgotten (state.Message.ViewInto).
	view schemas.MessageStatus
	// recordBytes is the mean size of the last transaction's output
	// records (key and value), which sizes the next one's buffers.
	recordBytes int
}

func newWorker(ctx context.Context, p *Processor, cl *kgo.Client, partition int32) *worker {
	ctx, cancel := context.WithCancel(ctx)
	return &worker{
		p:           p,
		cl:          cl,
		partition:   partition,
		log:         p.log.With("topic", p.cfg.EventsTopic, "partition", partition),
		jobs:        make(chan job, 2), // a commit and the next fold: sends never wait
		ctx:         ctx,
		cancel:      cancel,
		started:     make(chan struct{}),
		done:        make(chan struct{}),
		created:     time.Now(),
		recordBytes: 456, // a first guess: 513 bytes a record with the margin
	}
}

// stop cancels the worker and waits for it, after it has done the jobs
// queued (a commit). The poll loop never sends to a worker being stopped:
// stops happen in rebalance callbacks, which run only while no batch is in
// flight, in the poll loop itself between transactions (retireUnlisted), or
// after the poll loop ended; an unstarted worker, which never gets a job,
// may be stopped from anywhere.
//
// Stopping a worker twice waits for it twice and does nothing more: the
// poll loop and a rebalance callback may both drop one (retireUnlisted and
// assigned) should franz-go let a callback run while the loop is between
// polls.
func (w *worker) stop() {
	w.stopOnce.Do(func() {
		w.cancel()
		close(w.jobs)
	})
	<-w.done
}

// hasStarted reports whether adjustOffsets has started the worker.
func (w *worker) hasStarted() bool {
	select {
	case <-w.started:
		return true
	default:
		return false
	}
}

func (w *worker) run() {
	defer close(w.done)
	defer func() {
		if w.batch != nil {
			w.batch.Close()
		}
	}()
	select {
	case <-w.started:
	case <-w.ctx.Done():
		return
	}
	if !w.prepare() {
		return
	}
	for j := range w.jobs {
		if j.commit != nil {
			if err := j.commit.commit(); err != nil {
				// The next fold would fail on the store too; an idle
				// partition must stop Run all the same.
				w.log.Error("storing a committed transaction failed; stopping", "err", err)
				w.p.fail(err)
			}
			continue
		}
		pd, err := w.fold(j.ctx, j.cl, j.records)
		j.res <- result{pd, err}
	}
}

// prepare brings the store up to the group's offset before the partition is
// consumed, if the resume decision says so: a restore from the current topic
// or a silent catch-up on the events topic, while the partition's fetches
// are paused. It retries until it succeeds or the partition is revoked, and
// reports whether it finished.
func (w *worker) prepare() bool {
	d, p := w.resume, w.p
	if !d.restore && d.catchUpFrom < 0 {
		return true
	}
	r := ranger{cfg: p.cfg, store: p.store, codec: p.codec}
	progress := func(_ int32, read, total int64) {
		p.stats.setPreparing(w.partition, read, total, false)
		w.log.Info("preparing partition", "why", d.why, "read", read, "total", total)
	}
	defer p.stats.setPreparing(w.partition, 0, 0, true)
	for attempt := 0; ; attempt++ {
		began := time.Now()
		var (
			n   int64
			err error
		)
		if d.restore {
			n, err = r.restore(w.ctx, w.partition, d.at, progress)
		} else {
			n, err = r.catchUp(w.ctx, w.partition, d.catchUpFrom, d.at, progress)
		}
		if err == nil {
			if d.restore {
				p.stats.restored.Add(uint64(n))
			} else {
				p.stats.replayed.Add(uint64(n))
			}
			w.log.Info("partition prepared", "why", d.why, "records", n,
				"took", time.Since(began).Round(time.Millisecond), "offset", d.at)
			w.next = d.at
			w.caughtUp.Store(true)
			w.cl.ResumeFetchPartitions(map[string][]int32{p.cfg.EventsTopic: {w.partition}})
			return true
		}
		if w.ctx.Err() != nil {
			return false
		}
		if errors.Is(err, ErrStore) {
			// A failed store (a full disk, corruption) does not heal by
			// retrying: stop Run with the error.
			w.log.Error("preparing partition failed; stopping", "why", d.why, "err", err)
			p.fail(err)
			return false
		}
		w.log.Error("preparing partition failed; retrying", "why", d.why, "attempt", attempt, "err", err)
		select {
		case <-w.ctx.Done():
			return false
		case <-time.After(min(time.Duration(attempt+1)*time.Second, 30*time.Second)):
		}
	}
}

// pending is one partition's part of a transaction: its store batch, not yet
// committed, and what it produced.
type pending struct {
	w       *worker
	b       *state.Batch
	last    int64 // offset of the last record folded
	outs    int
	dead    int
	count   outcomeCounts
	changed []string // wamids emitted, for the query API's waiters

	mu     sync.Mutex
	failed error // first produce error
}

type outcomeCounts struct {
	events, advanced, filled, stale, duplicates, failedAfter, unknown uint64

	byStatus map[StatusRegion]uint64
	received []int64 // edge receive times (unix ms) of the events folded
}

func (pd *pending) promise(r *kgo.Record, err error) {
	if err == nil {
		return
	}
	pd.mu.Lock()
	defer pd.mu.Unlock()
	if pd.failed == nil {
		pd.failed = fmt.Errorf("%w: %s[%d]: %w", ErrProduce, r.Topic, r.Partition, err)
	}
}

func (pd *pending) produceErr() error {
	pd.mu.Lock()
	defer pd.mu.Unlock()
	return pd.failed
}

// commit stores the batch with the partition's next offset, once the
// transaction holding its outputs has committed. It does not wait for the
// store's log sync: the next commit of the partition does (see "Where the
// time goes" in doc.go).
func (pd *pending) commit() error {
	pd.b.SetNextOffset(pd.last + 1)
	if err := pd.b.CommitNoSyncWait(); err != nil {
		return fmt.Errorf("%w: commit partition %d: %w", ErrStore, pd.w.partition, err)
	}
	pd.w.next = pd.last + 1
	pd.w.p.waiters.notify(pd.changed)
	s, c := pd.w.p.stats, &pd.count
	s.events.Add(c.events)
	s.advanced.Add(c.advanced)
	s.filled.Add(c.filled)
	s.stale.Add(c.stale)
	s.duplicates.Add(c.duplicates)
	s.failedAfter.Add(c.failedAfter)
	s.unknown.Add(c.unknown)
	s.emitted.Add(uint64(pd.outs))
	s.deadLetters.Add(uint64(pd.dead))
	s.addByStatus(c.byStatus)
	now := time.Now()
	for _, ms := range c.received {
		s.latency.Observe(now.Sub(time.UnixMilli(ms)))
	}
	return nil
}

// abort drops the batch's contents: the transaction did not commit, and its
// records will be read again.
func (pd *pending) abort() { pd.b.Reset() }

// storeBatch returns the worker's store batch, empty.
func (w *worker) storeBatch() *state.Batch {
	if w.batch == nil {
		w.batch = w.p.store.NewBatch(w.partition)
	}
	return w.batch
}

// fold folds one batch into a store batch and produces the changed states
// and the dead letters into the open transaction, without waiting for them:
// ending the transaction flushes.
func (w *worker) fold(ctx context.Context, cl *kgo.Client, records []*kgo.Record) (*pending, error) {
	p := w.p
	pd := &pending{w: w, b: w.storeBatch(), last: -1}
	var dead []*kgo.Record
	for _, r := range records {
		if r.Offset < w.next {
			continue // in the store already
		}
		pd.last = r.Offset
		pd.count.events++
		reason, err := w.foldOne(pd, r)
		if err == nil {
			continue
		}
		if errors.Is(err, ErrStore) {
			pd.abort()
			return nil, err
		}
		w.log.Warn("dead letter", "offset", r.Offset, "reason", reason, "err", err)
		dead = append(dead, w.deadLetter(r, reason, err))
	}
	if pd.last < 0 {
		pd.abort()
		return nil, nil
	}
	policy := p.store.Policy()
	changed := pd.b.Changed()
	// Every record's key and value are cut from one buffer, sized by the
	// mean size of the worker's last transaction's records, with an eighth
	// more (a new buffer when it runs low; records keep the old one alive):
	// two allocations fewer per record, and the produced bytes are never
	// written again. The buffers live until the transaction ends, so they
	// follow what the records take: a group message's state, one entry a
	// participant, is several times the bench's 465 bytes.
	var buf []byte
	pd.changed = make([]string, 0, len(changed))
	view := &w.view
	perRecord := w.recordBytes + w.recordBytes/8
	outBytes := 0
	for i, m := range changed {
		m.ViewInto(view, policy)
		if cap(buf)-len(buf) < 1024 {
			outBytes += len(buf)
			size := min(max(len(changed)-i, 8), 1<<20/perRecord+1) * perRecord
			buf = make([]byte, 0, max(size, 4<<10))
		}
		start := len(buf)
		buf = append(buf, view.WAMID...)
		keyEnd := len(buf)
		var err error
		buf, err = p.codec.AppendMessageStatus(buf, view)
		if err != nil {
			pd.abort()
			return nil, fmt.Errorf("%w: encode state of %s: %w", ErrStore, m.WAMID(), err)
		}
		pd.outs++
		pd.changed = append(pd.changed, view.WAMID)
		cl.Produce(ctx, &kgo.Record{
			Topic:     p.cfg.CurrentTopic,
			Partition: w.partition,
			Key:       buf[start:keyEnd:keyEnd],
			Value:     buf[keyEnd:len(buf):len(buf)],
		}, pd.promise)
	}
	if outBytes += len(buf); len(changed) > 0 {
		w.recordBytes = outBytes / len(changed)
	}
	for _, r := range dead {
		pd.dead++
		cl.Produce(ctx, r, pd.promise)
	}
	return pd, nil
}

// foldOne decodes and folds one record. A non-nil error with a reason means
// the record is poison and goes to the dead-letter topic; ErrStore is fatal.
func (w *worker) foldOne(pd *pending, r *kgo.Record) (string, error) {
	p := w.p
	ev, reason, err := admitRecord(p.cfg.MaxRecordBytes, p.codec, r.Key, r.Value)
	if errors.Is(err, schemas.ErrRegistry) {
		// The registry is down, not the record bad: stop, don't dead-letter.
		return "", fmt.Errorf("%w: %w", ErrStore, err)
	}
	if err != nil {
		return reason, err
	}
	if pd.count.byStatus == nil {
		pd.count.byStatus = make(map[StatusRegion]uint64)
	}
	pd.count.byStatus[StatusRegion{ev.Status, ev.Region}]++
	if ev.ReceivedAt > 0 {
		pd.count.received = append(pd.count.received, ev.ReceivedAt)
	}
	outcome, m, err := pd.b.Apply(&ev, r.Offset)
	switch {
	case errors.Is(err, state.ErrUnknownStatus):
		pd.count.unknown++
		return ReasonUnknownStatus, err
	case isPoison(err):
		return ReasonInvalidEvent, err
	case err != nil:
		// Anything else is the store's failure (a read error, a corrupt
		// value), not the record's: stop rather than fold wrong state.
		return "", fmt.Errorf("%w: %w", ErrStore, err)
	}
	if ev.Status == "failed" && outcome.Changed() && (m.Seen(state.Delivered) || m.Seen(state.Read) || m.Seen(state.Played)) {
		pd.count.failedAfter++ // multi-device users: a failed for a message that reached the phone
	}
	switch outcome {
	case state.Advanced:
		pd.count.advanced++
	case state.Filled:
		pd.count.filled++
	case state.Stale:
		pd.count.stale++
	case state.Duplicate:
		pd.count.duplicates++
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
		Partition: r.Partition, // see samePartition
		Key:       r.Key,
		Value:     r.Value,
		Headers:   headers,
	}
}
