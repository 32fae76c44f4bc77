package processor

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wastatus/wastatus/schemas"
)

// shutdownGrace bounds how long a transaction in flight when Run's context
// is canceled may still take to commit before it is abandoned (and its
// records read again by whoever owns the partitions next).
const shutdownGrace = 30 * time.Second

// Store metadata names.
const (
	metaInstance     = "processor.instance-id"
	metaEventsTopic  = "processor.events-topic-id"
	metaCurrentTopic = "processor.current-topic-id"
)

// Processor folds the events topic into a Store and emits every changed
// state to the current topic, exactly once. Create it with New and start it
// with Run.
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
	client     *kgo.Client  // the group's, once partitions were assigned
	closing    bool         // Run is closing its client: make no more workers
	eventsID   kadm.TopicID // the events topic Run started on
	fresh      bool         // the events topic was recreated: ignore the group's old offsets
	fail       context.CancelCauseFunc

	view    view
	waiters waiters
	running atomic.Bool
	stats   *counters

	revokedSinceEnd atomic.Bool  // a revoke reached us since the last transaction ended
	releasedAt      atomic.Int64 // unix nanoseconds of the last revoke or loss that reached us
	rebalanceWaits  atomic.Bool  // a rebalance callback waits for the poll loop (see retireUnlisted, end)
	endTxnWrites    atomic.Int64 // EndTxn requests the client wrote (see end)
	ending          atomic.Pointer[endWatch]

	// pollMu guards pollWake, which ends the idle wait of the poll in
	// progress, if any (see wakePoll).
	pollMu   sync.Mutex
	pollWake context.CancelFunc
}

// idleWake bounds how long one poll blocks when no records arrive.
const idleWake = 200 * time.Millisecond

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
		stats: newCounters(),
	}, nil
}

// Stats returns a snapshot of the processor's counters.
func (p *Processor) Stats() Stats { return p.stats.snapshot() }

// Run creates missing topics, joins the consumer group and processes until
// ctx is canceled, when it finishes the transaction in flight, leaves the
// group and returns nil. It returns an error when the topics are unusable,
// when a transaction cannot be ended (a rebalance only aborts and retries
// it), when the store fails, or when the events topic is recreated under it:
// then nothing of the failed batch was stored or committed, and a restart
// picks it up again.
//
// Shutdown order: stop polling, let the transaction in flight end, commit
// its store batches, stop the partition workers, close the client.
func (p *Processor) Run(ctx context.Context) error {
	if !p.running.CompareAndSwap(false, true) {
		return fmt.Errorf("%w: Run called twice", ErrConfig)
	}
	defer p.running.Store(false)

	txnID, err := p.setup(ctx)
	if err != nil {
		return err
	}
	runCtx, fail := context.WithCancelCause(ctx)
	// The view and the topic check use the store and the client: Run
	// returns only once they have stopped (after fail cancels them), so
	// that the caller may close the store. A store closed under the view
	// panicked in Pebble (a reader it still held).
	var background sync.WaitGroup
	defer background.Wait()
	defer fail(nil)
	p.mu.Lock()
	p.fail = fail
	p.mu.Unlock()

	sess, err := kgo.NewGroupTransactSession(p.clientOpts(txnID)...)
	if err != nil {
		return fmt.Errorf("processor: client: %w", err)
	}
	defer func() {
		p.mu.Lock()
		p.closing = true // no callback makes workers from here on
		p.mu.Unlock()
		p.stopAllWorkers()
		sess.CloseAllowingRebalance()
	}()
	background.Go(func() { p.watchTopic(runCtx, sess.Client()) })
	background.Go(func() { p.watchUnstarted(runCtx, sess.Client()) })
	if p.cfg.ServeAll {
		background.Go(func() {
			if err := p.runView(runCtx, p.partitions); err != nil {
				fail(err)
			}
		})
	}
	p.log.Info("processor started", "group", p.cfg.Group, "transactional_id", txnID, "protocol", p.cfg.GroupProtocol)

	for {
		batch := p.poll(runCtx, sess)
		if cause := context.Cause(runCtx); cause != nil && !errors.Is(cause, context.Canceled) {
			return cause
		}
		if batch == nil {
			// ctx canceled or client closed: store what Kafka committed.
			p.stopAllWorkers()
			if cause := context.Cause(runCtx); cause != nil && !errors.Is(cause, context.Canceled) {
				return cause
			}
			return nil
		}
		if len(batch) > 0 {
			if err := p.transact(ctx, sess, batch); err != nil {
				return err
			}
			p.revokedSinceEnd.Store(false) // ending it reset the session
		} else if p.revokedSinceEnd.Swap(false) {
			// franz-go's GroupTransactSession passes on no further revoke
			// until a transaction ends; an idle instance ends an empty one
			// so that it hears of the next revoke. With no transaction
			// open this only rewinds to the committed offsets, which an
			// idle instance has reached already.
			if _, err := sess.End(ctx, kgo.TryAbort); err != nil && ctx.Err() == nil {
				return fmt.Errorf("%w: reset after a revoke: %w", ErrTransaction, err)
			}
		}
		p.retireUnlisted(sess.Client(), batch)
		sess.AllowRebalance()
	}
}

// awaitTopics creates and checks the topics, retrying with backoff while
// Kafka cannot be reached or answers with a retriable error, so that an
// instance started during a broker outage waits for the broker instead of
// exiting. Wrong settings (partition counts, authorization, a bad config)
// fail at once.
func (p *Processor) awaitTopics(ctx context.Context, adm *kadm.Client) (int32, kadm.TopicDetails, error) {
	for attempt := 0; ; attempt++ {
		n, err := EnsureTopics(ctx, adm, p.cfg, !p.cfg.SkipCreateTopics)
		var details kadm.TopicDetails
		if err == nil {
			if details, err = adm.ListTopics(ctx, p.cfg.EventsTopic, p.cfg.CurrentTopic); err != nil {
				err = fmt.Errorf("processor: describe topics: %w", err)
			}
		}
		if err == nil || ctx.Err() != nil || !transient(err) {
			return n, details, err
		}
		wait := min(time.Duration(1<<min(attempt, 6))*250*time.Millisecond, 15*time.Second)
		p.log.Warn("kafka not ready; retrying", "err", err, "attempt", attempt+1, "in", wait)
		select {
		case <-ctx.Done():
			return 0, nil, fmt.Errorf("processor: waiting for kafka: %w (last error: %w)", ctx.Err(), err)
		case <-time.After(wait):
		}
	}
}

// transient reports whether err may pass by itself: the broker cannot be
// dialled or timed out, or Kafka answered with a retriable error code.
func transient(err error) bool {
	if errors.Is(err, ErrPartitionMismatch) || errors.Is(err, ErrConfig) {
		return false
	}
	var netErr net.Error
	var kafkaErr *kerr.Error
	switch {
	case errors.As(err, &netErr), errors.Is(err, context.DeadlineExceeded):
		return true
	case errors.As(err, &kafkaErr):
		return kafkaErr.Retriable
	}
	return false
}

// setup creates and checks the topics, notices a recreated events topic,
// and returns the transactional id.
func (p *Processor) setup(ctx context.Context) (string, error) {
	admCl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(p.cfg.Brokers...)}, p.cfg.ClientOpts...)...)
	if err != nil {
		return "", fmt.Errorf("processor: admin client: %w", err)
	}
	defer admCl.Close()
	adm := kadm.NewClient(admCl)
	n, details, err := p.awaitTopics(ctx, adm)
	if err != nil {
		return "", err
	}
	eventsID, currentID := details[p.cfg.EventsTopic].ID, details[p.cfg.CurrentTopic].ID
	fresh, err := p.checkTopicIdentity(n, metaEventsTopic, eventsID)
	if err != nil {
		return "", err
	}
	if _, err := p.checkTopicIdentity(0, metaCurrentTopic, currentID); err != nil {
		return "", err
	}
	p.mu.Lock()
	p.partitions, p.joined, p.eventsID, p.fresh = n, false, eventsID, fresh
	p.mu.Unlock()
	p.log.Info("topics ready", "topic", p.cfg.EventsTopic, "partitions", n, "recreated", fresh)

	if p.cfg.TransactionalID != "" {
		return p.cfg.TransactionalID, nil
	}
	id, ok, err := p.meta().Meta(metaInstance)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrStore, err)
	}
	if !ok {
		id = []byte(rand.Text()[:16])
		if err := p.meta().SetMeta(metaInstance, id); err != nil {
			return "", fmt.Errorf("%w: %w", ErrStore, err)
		}
	}
	return p.cfg.Group + "." + string(id), nil
}

// checkTopicIdentity compares a topic's id with the one the store recorded.
// When they differ the topic was deleted and created again: with drop > 0,
// the state of partitions [0, drop) is dropped, since it was folded from the
// old topic, and true is returned. The new id is recorded.
func (p *Processor) checkTopicIdentity(drop int32, name string, id kadm.TopicID) (bool, error) {
	stored, ok, err := p.meta().Meta(name)
	if err != nil {
		return false, fmt.Errorf("%w: %w", ErrStore, err)
	}
	if ok && string(stored) == string(id[:]) {
		return false, nil
	}
	recreated := ok && drop > 0
	if recreated {
		p.log.Warn("events topic was recreated: dropping the state folded from the old topic", "topic", p.cfg.EventsTopic)
		for part := range drop {
			if err := p.store.DropPartition(part); err != nil {
				return false, fmt.Errorf("%w: %w", ErrStore, err)
			}
		}
	}
	if err := p.meta().SetMeta(name, id[:]); err != nil {
		return false, fmt.Errorf("%w: %w", ErrStore, err)
	}
	return recreated, nil
}

func (p *Processor) meta() MetaStore { return p.store }

func (p *Processor) clientOpts(txnID string) []kgo.Opt {
	opts := []kgo.Opt{
		kgo.SeedBrokers(p.cfg.Brokers...),
		kgo.ConsumerGroup(p.cfg.Group),
		kgo.ConsumeTopics(p.cfg.EventsTopic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsAssigned(p.assigned),
		kgo.OnPartitionsRevoked(p.revoked),
		kgo.OnPartitionsLost(p.lost),
		kgo.OnPartitionsCallbackBlocked(p.callbackBlocked),
		kgo.AdjustFetchOffsetsFn(p.adjustOffsets),
		kgo.TransactionalID(txnID),
		kgo.TransactionTimeout(p.cfg.TransactionTimeout),
		kgo.RecordPartitioner(samePartition()),
		// A transaction flushes before it ends; lingering only delays it.
		kgo.ProducerLinger(0),
		// Fetched records are most of the heap: see FetchMaxBytes.
		kgo.FetchMaxBytes(FetchMaxBytes),
		kgo.FetchMaxPartitionBytes(FetchMaxPartitionBytes),
		kgo.MetadataMinAge(MetadataMinAge),
	}
	opts = append(opts, kgo.WithHooks(append([]kgo.Hook{endTxnCounter{&p.endTxnWrites}}, p.cfg.Hooks...)...))
	if p.cfg.GroupProtocol == "consumer" {
		opts = append(opts, kgo.ServerSideBalancer(), kgo.Balancers(kgo.StickyBalancer()))
	}
	return append(opts, p.cfg.ClientOpts...)
}

// poll returns the next transaction's records by partition: one poll, or
// several until TxnMaxRecords or TxnMaxWait. It returns nil when ctx is
// done or the client closed.
func (p *Processor) poll(ctx context.Context, sess *kgo.GroupTransactSession) map[int32][]*kgo.Record {
	batch := make(map[int32][]*kgo.Record)
	n := 0
	add := func(fs kgo.Fetches) {
		fs.EachError(func(topic string, partition int32, err error) {
			if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
				p.log.Warn("fetch error", "topic", topic, "partition", partition, "err", err)
			}
		})
		fs.EachPartition(func(ftp kgo.FetchTopicPartition) {
			if ftp.Topic == p.cfg.EventsTopic && len(ftp.Records) > 0 {
				batch[ftp.Partition] = append(batch[ftp.Partition], ftp.Records...)
				n += len(ftp.Records)
				last := ftp.Records[len(ftp.Records)-1].Offset
				p.stats.setLag(ftp.Partition, max(ftp.HighWatermark-last-1, 0))
			}
		})
	}
	// A poll that waits for records lets rebalances run. A revoke or a
	// loss ends its wait (wakePoll), and one that came before it began
	// ends it at once, so that Run resets the session, almost always
	// before the group revokes again; idle polls also wake now and then.
	pctx, cancel := context.WithTimeout(ctx, idleWake)
	p.pollMu.Lock()
	p.pollWake = cancel
	p.pollMu.Unlock()
	if p.revokedSinceEnd.Load() {
		cancel()
	}
	fs := sess.PollRecords(pctx, p.cfg.TxnMaxRecords)
	p.pollMu.Lock()
	p.pollWake = nil
	p.pollMu.Unlock()
	cancel()
	if fs.IsClientClosed() || ctx.Err() != nil {
		return nil
	}
	if p.recreated(fs) {
		return nil
	}
	add(fs)
	if p.cfg.TxnMaxWait > 0 && n > 0 {
		deadline := time.Now().Add(p.cfg.TxnMaxWait)
		for n < p.cfg.TxnMaxRecords && time.Now().Before(deadline) && ctx.Err() == nil {
			pctx, cancel := context.WithDeadline(ctx, deadline)
			more := sess.PollRecords(pctx, p.cfg.TxnMaxRecords-n)
			cancel()
			if p.recreated(more) {
				return nil
			}
			add(more)
		}
	}
	return batch
}

// watchTopic stops Run with ErrTopicRecreated when the events topic's id
// changes, so a recreated topic is noticed even before records arrive.
func (p *Processor) watchTopic(ctx context.Context, cl *kgo.Client) {
	adm := kadm.NewClient(cl)
	every(ctx, p.cfg.TopicCheckInterval, func() bool {
		details, err := adm.ListTopics(ctx, p.cfg.EventsTopic)
		if err != nil {
			return true
		}
		d := details[p.cfg.EventsTopic]
		if d.Err == nil && d.ID != p.eventsID {
			p.log.Error("events topic was recreated while running; stopping", "topic", p.cfg.EventsTopic)
			p.fail(ErrTopicRecreated)
			return false
		}
		return true
	})
}

// every calls fn every d until ctx is done or fn returns false.
func every(ctx context.Context, d time.Duration, fn func() bool) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if !fn() {
				return
			}
		}
	}
}

// recreated reports whether fs holds records of an events topic other than
// the one Run started on (Kafka 3.1+ returns topic ids in fetches), and then
// stops Run with ErrTopicRecreated before anything of it is folded.
func (p *Processor) recreated(fs kgo.Fetches) bool {
	for _, f := range fs {
		for _, t := range f.Topics {
			if t.Topic == p.cfg.EventsTopic && t.TopicID != [16]byte{} && t.TopicID != p.eventsID {
				p.log.Error("events topic was recreated while running; stopping", "topic", p.cfg.EventsTopic)
				p.fail(ErrTopicRecreated)
				return true
			}
		}
	}
	return false
}

// transact folds one batch in one transaction: every partition's worker
// folds its records and produces the changed states and dead letters into
// the transaction; ending it commits the outputs and the consumed offsets
// together; only then are the store batches committed. A transaction a
// rebalance aborted is dropped and its records are read again.
func (p *Processor) transact(ctx context.Context, sess *kgo.GroupTransactSession, batch map[int32][]*kgo.Record) error {
	// A transaction in flight at shutdown may finish within shutdownGrace.
	tctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stop := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(shutdownGrace, cancel)
		context.AfterFunc(tctx, func() { t.Stop() })
	})
	defer stop()

	if err := sess.Begin(); err != nil {
		return fmt.Errorf("%w: begin: %w", ErrTransaction, err)
	}
	cl := sess.Client()
	res := make(chan result, len(batch))
	sent := 0
	p.mu.RLock()
	workers := make([]*worker, 0, len(batch))
	var unowned []int32
	for part := range batch {
		if w := p.owned[part]; w != nil {
			workers = append(workers, w)
		} else {
			// Cannot happen with BlockRebalanceOnPoll, unless a worker
			// was dropped on the coordinator's word and franz-go, which
			// has not yet heard the answer the coordinator gave it,
			// still consumes the partition (retireUnlisted). Never fold
			// for a partition we do not own, and never commit its
			// offsets either, which would skip its records for good:
			// abort.
			unowned = append(unowned, part)
		}
	}
	p.mu.RUnlock()
	if len(unowned) > 0 {
		err := fmt.Errorf("%w: records of partitions %v, which no worker owns", ErrTransaction, unowned)
		if _, aerr := sess.End(tctx, kgo.TryAbort); aerr != nil {
			err = errors.Join(err, aerr)
		}
		return err
	}
	for _, w := range workers {
		w.jobs <- job{ctx: tctx, cl: cl, records: batch[w.partition], res: res}
		sent++
	}
	var (
		pendings []*pending
		errs     []error
	)
	for range sent {
		r := <-res
		if r.err != nil {
			errs = append(errs, r.err)
		}
		if r.pending != nil {
			pendings = append(pendings, r.pending)
		}
	}
	abortAll := func() {
		for _, pd := range pendings {
			pd.abort()
		}
	}
	if err := cl.Flush(tctx); err != nil {
		errs = append(errs, err)
	}
	for _, pd := range pendings {
		if err := pd.produceErr(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		abortAll()
		if _, aerr := sess.End(tctx, kgo.TryAbort); aerr != nil {
			err = errors.Join(err, aerr)
		}
		if ctx.Err() != nil && tctx.Err() != nil {
			return nil // abandoned at shutdown: read again later
		}
		return err
	}
	if hook := p.cfg.Testing.BeforeTxnEnd; hook != nil {
		hook()
	}
	// A rebalance callback that waits for this loop means a revoke may be
	// on its way: abort, as End would on the revoke, without waiting for
	// it (see end).
	try := kgo.TryCommit
	if p.rebalanceWaits.Load() && !p.cfg.Testing.CommitDespiteWaitingCallback {
		try = kgo.TryAbort
	}
	committed, err := p.end(tctx, sess, try)
	if err != nil {
		abortAll()
		if ctx.Err() != nil && tctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("%w: %w", ErrTransaction, err)
	}
	if !committed {
		abortAll()
		p.stats.aborted.Add(1)
		// The session rewinds only partitions that have a committed
		// offset; rewind every partition of the batch to where its
		// store stands, which is where the batch began.
		rewind := make(map[int32]kgo.EpochOffset, len(workers))
		for _, w := range workers {
			rewind[w.partition] = kgo.EpochOffset{Epoch: -1, Offset: w.next}
		}
		cl.SetOffsets(map[string]map[int32]kgo.EpochOffset{p.cfg.EventsTopic: rewind})
		p.log.Info("transaction aborted by a rebalance; its records will be read again")
		return nil
	}
	p.stats.batches.Add(1)
	if hook := p.cfg.Testing.AfterTxnCommit; hook != nil {
		hook()
	}
	// Each worker stores its batch before its next fold, while this loop
	// polls and begins the next transaction; the workers commit in
	// parallel, so Pebble syncs its log once for several of them. A
	// failure stops Run (Processor.fail).
	for _, pd := range pendings {
		pd.w.jobs <- job{commit: pd}
	}
	return nil
}

// assigned creates a worker for every newly assigned partition. It runs in
// the group's goroutine while no batch is in flight; the workers start once
// adjustOffsets has decided where each partition resumes.
func (p *Processor) assigned(ctx context.Context, cl *kgo.Client, assigned map[string][]int32) {
	p.mu.Lock()
	if p.closing {
		p.mu.Unlock()
		return
	}
	p.joined = true
	p.client = cl
	var stale []*worker
	for _, part := range assigned[p.cfg.EventsTopic] {
		if old := p.owned[part]; old != nil {
			// Assigned again without a revoke in between: franz-go's
			// GroupTransactSession does not pass on a second revoke
			// before the next transaction ends. Start afresh.
			stale = append(stale, old)
		}
	}
	p.mu.Unlock()
	for _, w := range stale {
		w.stop()
		p.log.Warn("partition assigned again without being revoked; restarting its worker", "topic", p.cfg.EventsTopic, "partition", w.partition)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, part := range assigned[p.cfg.EventsTopic] {
		w := newWorker(ctx, p, cl, part)
		p.owned[part] = w
		go w.run()
		p.log.Info("partition assigned", "topic", p.cfg.EventsTopic, "partition", part)
	}
}

// revoked stops the workers of revoked partitions and waits for them, so no
// worker writes state for a partition it no longer owns. GroupTransactSession
// passes on a cooperative revoke of nothing without counting it as a revoke,
// so only a revoke of something wakes the poll.
func (p *Processor) revoked(_ context.Context, cl *kgo.Client, revoked map[string][]int32) {
	p.release(cl, revoked, len(revoked) > 0)
}

// lost stops the workers of lost partitions, as revoked does, and always
// wakes the poll: the session passes on no loss after the first until a
// transaction ends.
func (p *Processor) lost(_ context.Context, cl *kgo.Client, lost map[string][]int32) {
	p.release(cl, lost, true)
}

// release stops the workers of partitions revoked or lost, and wakes the
// poll in progress if wake is set (see wakePoll).
func (p *Processor) release(cl *kgo.Client, revoked map[string][]int32, wake bool) {
	p.revokedSinceEnd.Store(true)
	p.releasedAt.Store(time.Now().UnixNano())
	if wake {
		defer p.wakePoll()
	}
	parts := revoked[p.cfg.EventsTopic]
	if swallow := p.cfg.Testing.SwallowRevoke; swallow != nil {
		parts = slices.DeleteFunc(slices.Clone(parts), swallow)
	}
	if len(parts) == 0 {
		return
	}
	p.stopWorkers(parts)
	for _, part := range parts {
		p.stats.forget(part)
	}
	// A partition revoked while it was restoring is still paused.
	cl.ResumeFetchPartitions(map[string][]int32{p.cfg.EventsTopic: parts})
	for _, part := range parts {
		p.log.Info("partition revoked", "topic", p.cfg.EventsTopic, "partition", part)
	}
}

// wakePoll ends the idle wait of the poll in progress, so that Run ends the
// session's transaction, empty or not, before the group calls back again.
//
// franz-go's GroupTransactSession passes on no revoke after the first, and
// no loss after the first, until a transaction ends. A consumer-protocol
// group can revoke twice a few milliseconds apart as it spreads out: when
// Run reset the session only once an idle poll's 200 ms ran out, the
// second revoke never reached the processor, which went on claiming the
// partition. The poll woken here waits for the rebalance under way to
// finish, then blocks the next (BlockRebalanceOnPoll) until Run has ended
// the transaction. The group's next revoke needs the acknowledgement of
// this one to make a round trip to the coordinator first, so the poll
// almost always gets there first: a race won by a wide margin, not a
// guarantee. For a worker that never started, what it leaves behind is
// caught by adjustOffsets (dropUnassigned) or by the coordinator check
// (reconcile.go); for a started one, by the same check, which the poll loop
// acts on between transactions (retireUnlisted).
// TestRevokesInQuickSuccession makes those two revokes.
func (p *Processor) wakePoll() {
	p.pollMu.Lock()
	defer p.pollMu.Unlock()
	if p.pollWake != nil {
		p.pollWake()
	}
}

// stopWorkers stops the workers of parts and waits for them.
func (p *Processor) stopWorkers(parts []int32) {
	p.mu.Lock()
	var stopping []*worker
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

// stopAllWorkers stops every worker, at shutdown.
func (p *Processor) stopAllWorkers() {
	p.mu.RLock()
	parts := make([]int32, 0, len(p.owned))
	for part := range p.owned {
		parts = append(parts, part)
	}
	p.mu.RUnlock()
	p.stopWorkers(parts)
}

// resumeDecision is where a partition resumes and how.
type resumeDecision struct {
	at          int64 // the first events offset the group consumes
	catchUpFrom int64 // ≥ 0: first fold [catchUpFrom, at) without emitting
	restore     bool  // first rebuild the partition from the current topic
	why         string
}

// decide applies the resume rules to a partition's stored next offset P
// (stored false when the store has no state for it), the group's committed
// offset C (negative when none) and the events log's start offset. With
// exactly-once processing the store commits after the transaction, so
// P ≤ C: P = C resumes, P < C catches up silently (the transaction
// committed but the store did not, or another instance owned the partition
// meanwhile). Anything else cannot be trusted and is restored from the
// current topic, which holds exactly the states committed with C.
func decide(stored bool, next, committed, logStart int64) resumeDecision {
	logStart = max(logStart, 0)
	switch {
	case committed < 0 && !stored:
		return resumeDecision{at: logStart, catchUpFrom: -1, why: "new partition: folding from the start of the log"}
	case committed < 0 && next >= logStart:
		return resumeDecision{at: next, catchUpFrom: -1, why: "no group offset: resuming from the store"}
	case committed < 0:
		return resumeDecision{at: logStart, catchUpFrom: -1, restore: true, why: "no group offset and a store older than the log: restoring from the current topic"}
	case stored && next == committed:
		return resumeDecision{at: next, catchUpFrom: -1, why: "store at the group's offset"}
	case stored && next < committed && next >= logStart:
		return resumeDecision{at: committed, catchUpFrom: next, why: "store behind the group's offset: catching up without emitting"}
	case !stored:
		return resumeDecision{at: max(committed, logStart), catchUpFrom: -1, restore: true, why: "no state: restoring from the current topic"}
	case next > committed:
		return resumeDecision{at: max(committed, logStart), catchUpFrom: -1, restore: true, why: "store ahead of the group's offset: restoring from the current topic"}
	default:
		return resumeDecision{at: max(committed, logStart), catchUpFrom: -1, restore: true, why: "store older than the log's start: restoring from the current topic"}
	}
}

// adjustOffsets decides where each newly assigned partition resumes (see
// decide), pauses the partitions that must first be restored or caught up,
// and starts their workers. It also notices an events topic that was
// recreated while Run ran, and stops Run with ErrTopicRecreated.
func (p *Processor) adjustOffsets(ctx context.Context, offsets map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	parts := offsets[p.cfg.EventsTopic]
	var unassigned []*worker
	defer func() { // after the unlock below: a worker's stop waits for it
		p.dropMissed(unassigned, func(w *worker) {
			w.log.Warn("partition no longer fetched, and its revoke never reached the processor; dropped its worker, which never started")
		})
	}()
	p.mu.Lock()
	defer p.mu.Unlock()
	unassigned = p.dropUnassigned(parts)
	cl := p.client
	if cl == nil || p.closing {
		// Nothing is consumed any more while closing; and partitions
		// are assigned, which sets the client, before their offsets
		// are fetched.
		return offsets, nil
	}
	for part := range parts {
		if p.owned[part] == nil {
			// Its worker was dropped as stale (dropStaleUnstarted) on
			// an answer of the coordinator that was out of date, or its
			// partition came back: franz-go consumes it from here on.
			w := newWorker(cl.Context(), p, cl, part)
			p.owned[part] = w
			go w.run()
			w.log.Warn("offsets fetched for a partition without a worker; made one")
		}
	}
	adm := kadm.NewClient(cl)
	details, err := adm.ListTopics(ctx, p.cfg.EventsTopic)
	if err == nil && details[p.cfg.EventsTopic].Err == nil && details[p.cfg.EventsTopic].ID != p.eventsID {
		p.log.Error("events topic was recreated while running; stopping", "topic", p.cfg.EventsTopic)
		p.fail(ErrTopicRecreated)
		return nil, ErrTopicRecreated
	}
	starts, err := listStartOffsets(ctx, adm, p.cfg.EventsTopic)
	if err != nil {
		return nil, err
	}
	for part, off := range parts {
		w := p.owned[part]
		committed := off.EpochOffset().Offset
		if p.fresh {
			committed = -1 // offsets of the old topic mean nothing here
		}
		next, ok, err := p.store.NextOffset(part)
		if err != nil {
			err = fmt.Errorf("%w: next offset of partition %d: %w", ErrStore, part, err)
			p.fail(err) // franz-go would only retry: stop Run
			return nil, err
		}
		logStart, _ := starts.Lookup(p.cfg.EventsTopic, part)
		d := decide(ok, next, committed, logStart.Offset)
		w.resume, w.next = d, d.at
		prepare := d.restore || d.catchUpFrom >= 0
		if prepare {
			cl.PauseFetchPartitions(map[string][]int32{p.cfg.EventsTopic: {part}})
		}
		w.caughtUp.Store(!prepare)
		w.log.Info("partition resumes", "offset", d.at, "stored", ok, "stored_offset", next,
			"committed", committed, "log_start", logStart.Offset, "why", d.why)
		parts[part] = kgo.NewOffset().At(d.at).WithEpoch(-1)
		close(w.started)
	}
	return offsets, nil
}

// dropUnassigned removes from p.owned, and returns, the workers that never
// started whose partitions franz-go is no longer fetching offsets for: the
// fetch whose offsets adjustOffsets is given covers every partition the
// client holds and has not started consuming (franz-go carries a canceled
// fetch over to the next and drops what was lost). Such a partition was
// revoked, and GroupTransactSession swallowed the revoke: it passes on none
// after the first until a transaction ends, and two can come milliseconds
// apart as a consumer-protocol group spreads out. Its worker never got a
// job, so stopping it is safe. Left in p.owned, it kept Ready false for
// ever. p.mu is held.
func (p *Processor) dropUnassigned(fetching map[int32]kgo.Offset) []*worker {
	var drop []*worker
	for part, w := range p.owned {
		if _, ok := fetching[part]; ok || w.hasStarted() {
			continue
		}
		drop = append(drop, w)
		delete(p.owned, part)
	}
	return drop
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
