package bench

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wastatus/wastatus/schemas"
)

const latencyPipeline = "end to end: a signed POST's scheduled send time (open loop, so a slow system is not let off) to its event's effect visible to a read_committed consumer of the output topic; wastatus: first arrivals of each message, participant and status (duplicates change nothing visible); baseline: every POST"

// runPipeline posts at Config.Rate for Config.Duration through an edge and
// a processor (the baselines', then wastatus's), timing each event until
// its effect is visible.
func (b *Bench) runPipeline(ctx context.Context) (*Report, error) {
	r := b.newReport(ModePipeline)
	r.Latency = latencyPipeline
	r.RatePerSec, r.DurationSeconds = b.cfg.Rate, b.cfg.Duration.Seconds()
	n := int(float64(b.cfg.Rate) * b.cfg.Duration.Seconds())
	txn := []string{"--txn-max-records", strconv.Itoa(b.cfg.TxnMaxRecords), "--txn-max-wait", b.cfg.TxnMaxWait.String()}

	bin, bout := b.topic("pipe.base.in"), b.topic("pipe.base.out")
	if err := b.createTopics(ctx, bin, bout); err != nil {
		return nil, err
	}
	bgroup := b.topic("pipe.baseline")
	base, err := b.pipe(ctx, "pipeline baseline", n, bout, newSeqMatcher(),
		func(addr string) []string {
			return []string{"bench", "edge-passthrough", "--brokers", joinComma(b.brokers), "--topic", bin, "--http-addr", addr}
		},
		append([]string{"bench", "passthrough", "--brokers", joinComma(b.brokers), "--in", bin, "--out", bout, "--group", bgroup}, txn...), "")
	if err != nil {
		return nil, err
	}
	r.phase("pipeline baseline", base.seconds, "edge passthrough + exactly-once passthrough", base.machine)

	events, current, dlq := b.topic("pipe.events"), b.topic("pipe.current"), b.topic("pipe.dlq")
	if err := b.createProductTopics(ctx, events, current, dlq); err != nil {
		return nil, err
	}
	dir, err := b.childDir("pipeline processor")
	if err != nil {
		return nil, err
	}
	procAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	procArgs := append([]string{"process", "--brokers", joinComma(b.brokers),
		"--events-topic", events, "--current-topic", current, "--dlq-topic", dlq,
		"--partitions", strconv.Itoa(int(b.cfg.Partitions)), "--group", b.topic("pipe.processor"),
		"--data-dir", dir, "--http-addr", procAddr, "--serve-all=false", "--log-level", "warn"}, txn...)
	sut, err := b.pipe(ctx, "pipeline", n, current, newStateMatcher(b.codec),
		func(addr string) []string {
			return append([]string{"ingest", "--brokers", joinComma(b.brokers), "--events-topic", events, "--dlq-topic", dlq,
				"--http-addr", addr, "--region", "bench", "--log-level", "warn"}, b.cfg.EdgeArgs...)
		}, procArgs, procAddr)
	if err != nil {
		return nil, err
	}
	r.phase("pipeline", sut.seconds, "wastatus ingest + wastatus process", sut.machine)

	r.Events, r.Messages = int64(n), b.messages(n)
	r.EventsPerSec, r.BaselineEventsPerSec = sut.rate, base.rate
	r.EventsProcessed, r.BaselineEvents = sut.done, base.done
	r.PeakRSSBytes, r.BaselinePeakRSSBytes = sut.child.peakRSS, base.child.peakRSS
	r.CPUSeconds, r.BaselineCPUSeconds = sut.child.cpu.Seconds(), base.child.cpu.Seconds()
	p, bp := sut.rec.percentiles(50, 99), base.rec.percentiles(50, 99)
	r.P50Ms, r.P99Ms, r.BaselineP50Ms, r.BaselineP99Ms = p[0], p[1], bp[0], bp[1]
	r.LatencySamples = sut.rec.latencyCount()
	r.Errors = sut.errors + base.errors
	r.sut, r.base = sut.rec, base.rec
	r.finish()
	r.Targets = append(r.Targets, Target{
		Name: fmt.Sprintf("end-to-end p99 ms at %d events/s", b.cfg.Rate), Want: "<= 25", Got: r.P99Ms,
		Met: r.P99Ms >= 0 && r.P99Ms <= 25 && r.Errors == 0,
	})
	return r, nil
}

// pipe runs an edge child and a processor child, posts n webhooks at the
// configured rate, and waits until every tracked event is visible in out
// (or 30 s after the last POST). Peak RSS and CPU are the processor's.
func (b *Bench) pipe(ctx context.Context, name string, n int, out string, m matcher, edgeArgs func(string) []string, procArgs []string, procAddr string) (*drained, error) {
	proc, err := b.start(name+" processor", procArgs)
	if err != nil {
		return nil, err
	}
	defer proc.stop()
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	ed, err := b.start(name+" edge", edgeArgs(addr))
	if err != nil {
		return nil, err
	}
	defer ed.stop()
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	err = waitHTTP(wctx, ed, "http://"+addr+"/metrics")
	if err == nil && procAddr != "" {
		err = waitHTTP(wctx, proc, "http://"+procAddr+"/readyz")
	}
	cancel()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSystem, err)
	}

	start, ticks := time.Now(), readCPUTicks()
	d := &drained{child: proc, rec: newRecorder(start)}
	vctx, stopVis := context.WithCancel(ctx)
	defer stopVis()
	visDone := make(chan struct{})
	go func() {
		defer close(visDone)
		b.watchVisible(vctx, out, m, d.rec)
	}()
	ps := newPoster("http://"+addr+"/webhook", 256)
	prog := b.newProgress(name, "events", int64(n))
	b.openLoop(ctx, ps, n, m, d.rec, prog)
	// Wait for the stragglers.
	deadline := time.Now().Add(30 * time.Second)
	for m.pending() > 0 && time.Now().Before(deadline) && ctx.Err() == nil {
		if err := proc.exited(); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrSystem, err)
		}
		time.Sleep(50 * time.Millisecond) // a poll of the consumer's progress, not a wait for an event
	}
	stopVis()
	<-visDone
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rec := d.rec
	rec.count(time.Now(), ps.done.Load())
	d.done = ps.done.Load()
	d.errors = ps.errors.Load() + int64(m.pending())
	d.rate, d.seconds = d.rec.rate()
	d.machine = machineSince(ticks, readCPUTicks())
	if err := ed.stop(); err != nil {
		return nil, err
	}
	if err := proc.stop(); err != nil {
		return nil, err
	}
	return d, nil
}

// openLoop posts n webhooks at the configured rate whatever the edge
// does, registering each with m before it is sent.
func (b *Bench) openLoop(ctx context.Context, ps *poster, n int, m matcher, rec *recorder, prog *progress) {
	jobs := make(chan post, 1<<16)
	var wg sync.WaitGroup
	for range 256 {
		wg.Go(func() {
			for p := range jobs {
				ps.send(ctx, &p)
			}
		})
	}
	s := b.stream(n)
	start := time.Now()
	interval := time.Second / time.Duration(b.cfg.Rate)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	sent := 0
	for sent < n && ctx.Err() == nil {
		now := <-tick.C
		due := min(int(now.Sub(start)/interval), n)
		for ; sent < due; sent++ {
			a, ok := s.Next()
			if !ok {
				break
			}
			p := b.newPost(int64(sent), a)
			p.sched = start.Add(time.Duration(sent) * interval)
			m.expect(&p)
			jobs <- p
		}
		rec.count(now, ps.done.Load())
		prog.set(int64(sent))
	}
	close(jobs)
	wg.Wait()
	prog.finish(int64(sent))
}

// watchVisible reads topic read_committed from the start and hands each
// record to m, recording the latency of every event it makes visible.
func (b *Bench) watchVisible(ctx context.Context, topic string, m matcher, rec *recorder) {
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(b.brokers...),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(50 * time.Millisecond),
	}, b.cfg.ClientOpts...)...)
	if err != nil {
		b.cfg.Logger.Warn("visibility consumer", "err", err)
		return
	}
	defer cl.Close()
	for ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		now := time.Now()
		fs.EachRecord(func(r *kgo.Record) {
			for _, sched := range m.visible(r) {
				rec.latency(now, now.Sub(sched))
			}
		})
	}
}

// matcher tells which posted events a record of the output topic makes
// visible.
type matcher interface {
	expect(p *post)
	visible(r *kgo.Record) []time.Time // the scheduled times of the events r shows
	pending() int
	seen() int
}

// seqMatcher matches the baseline's records by the sequence number the
// edge passthrough put in the key.
type seqMatcher struct {
	mu    sync.Mutex
	sched map[int64]time.Time
	n     int
}

func newSeqMatcher() *seqMatcher { return &seqMatcher{sched: make(map[int64]time.Time)} }

func (m *seqMatcher) expect(p *post) {
	m.mu.Lock()
	m.sched[p.seq] = p.sched
	m.mu.Unlock()
}

func (m *seqMatcher) visible(r *kgo.Record) []time.Time {
	seq, err := strconv.ParseInt(string(r.Key), 10, 64)
	if err != nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.sched[seq]
	if !ok {
		return nil
	}
	delete(m.sched, seq)
	m.n++
	return []time.Time{t}
}

func (m *seqMatcher) pending() int { m.mu.Lock(); defer m.mu.Unlock(); return len(m.sched) }
func (m *seqMatcher) seen() int    { m.mu.Lock(); defer m.mu.Unlock(); return m.n }

// stateMatcher matches wastatus's current-topic records: an event is
// visible once a state of its message has its status's time set (for a
// group message, on its participant). Only the first arrival of each
// message, participant and status is tracked; a duplicate changes nothing
// a consumer could see.
type stateMatcher struct {
	codec *schemas.Codec

	mu      sync.Mutex
	tracked map[string]bool // wamid|participant|status ever expected
	waiting map[string][]waitingEvent
	n, left int
}

type waitingEvent struct {
	participant, status string
	sched               time.Time
}

func newStateMatcher(codec *schemas.Codec) *stateMatcher {
	return &stateMatcher{codec: codec, tracked: make(map[string]bool), waiting: make(map[string][]waitingEvent)}
}

func (m *stateMatcher) expect(p *post) {
	k := p.a.WAMID + "|" + p.a.Participant + "|" + p.a.Status.Status
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.tracked[k] {
		return
	}
	m.tracked[k] = true
	m.waiting[p.a.WAMID] = append(m.waiting[p.a.WAMID], waitingEvent{p.a.Participant, p.a.Status.Status, p.sched})
	m.left++
}

func (m *stateMatcher) visible(r *kgo.Record) []time.Time {
	m.mu.Lock()
	ws := m.waiting[string(r.Key)]
	m.mu.Unlock()
	if len(ws) == 0 {
		return nil
	}
	st, err := m.codec.DecodeMessageStatus(r.Value)
	if err != nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	ws = m.waiting[string(r.Key)]
	var out []time.Time
	kept := ws[:0]
	for _, w := range ws {
		if statusAt(&st, w.participant, w.status) != 0 {
			out = append(out, w.sched)
			continue
		}
		kept = append(kept, w)
	}
	if len(kept) == 0 {
		delete(m.waiting, string(r.Key))
	} else {
		m.waiting[string(r.Key)] = kept
	}
	m.n += len(out)
	m.left -= len(out)
	return out
}

func (m *stateMatcher) pending() int { m.mu.Lock(); defer m.mu.Unlock(); return m.left }
func (m *stateMatcher) seen() int    { m.mu.Lock(); defer m.mu.Unlock(); return m.n }

// statusAt is the time a state shows for status, on participant when one
// is named.
func statusAt(s *schemas.MessageStatus, participant, status string) int64 {
	sent, delivered, read, played, failed := s.SentAt, s.DeliveredAt, s.ReadAt, s.PlayedAt, s.FailedAt
	if participant != "" {
		found := false
		for _, p := range s.Participants {
			if p.ID == participant {
				sent, delivered, read, played, failed = p.SentAt, p.DeliveredAt, p.ReadAt, p.PlayedAt, p.FailedAt
				found = true
				break
			}
		}
		if !found {
			return 0
		}
	}
	switch status {
	case "sent":
		return sent
	case "delivered":
		return delivered
	case "read":
		return read
	case "played":
		return played
	case "failed":
		return failed
	}
	return 0
}
