package bench

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wastatus/wastatus/edge"
)

// latencyProcessor says what processor mode's p50/p99 are.
const latencyProcessor = "per-record commit latency: output record's produce timestamp (set by the system under test's client inside the transaction) to its visibility to a read_committed consumer, sampled on partition 0 of the output topic"

// runProcessor preloads the events topic, then drains it with the
// baseline and with the processor, each a child process on a fresh group;
// with Config.Rounds, that many times in turn, each round on fresh groups,
// output topics and store.
func (b *Bench) runProcessor(ctx context.Context) (*Report, error) {
	r := b.newReport(ModeProcessor)
	r.Latency = latencyProcessor
	events := b.topic("events")
	if err := b.createRoundTopics(ctx, events, 0); err != nil {
		return nil, err
	}
	began, ticks := time.Now(), readCPUTicks()
	n, msgs, err := b.preload(ctx, events)
	if err != nil {
		return nil, err
	}
	r.Events, r.Messages = n, msgs
	secs := time.Since(began).Seconds()
	r.phase("preload", secs, fmt.Sprintf("%d events produced straight to %s (idempotent producer), %.0f events/s", n, events, float64(n)/secs), machineSince(ticks, readCPUTicks()))
	ends, err := b.adm.ListEndOffsets(ctx, events)
	if err != nil {
		return nil, fmt.Errorf("bench: end offsets: %w", err)
	}
	if err := ends.Error(); err != nil {
		return nil, fmt.Errorf("bench: end offsets: %w", err)
	}

	rounds := make([]processorRound, 0, b.cfg.Rounds)
	for i := range b.cfg.Rounds {
		rd, err := b.runRound(ctx, r, i, events, ends)
		if err != nil {
			return nil, err
		}
		rounds = append(rounds, rd)
		if i < b.cfg.Rounds-1 {
			if err := b.dropRound(ctx, i); err != nil {
				return nil, err
			}
		}
	}
	// The headline is one whole round, the one with the median ratio (the
	// lower middle one of an even count), so that its figures belong
	// together; the rounds list them all.
	byRatio := slices.Clone(rounds)
	slices.SortStableFunc(byRatio, func(a, b processorRound) int { return cmp.Compare(a.ratio(), b.ratio()) })
	mid := byRatio[(len(byRatio)-1)/2]
	base, sut := mid.base, mid.sut
	if len(rounds) > 1 {
		for i, rd := range rounds {
			r.Rounds = append(r.Rounds, Round{
				Round: i + 1, EventsPerSec: round(rd.sut.rate, 0), BaselineEventsPerSec: round(rd.base.rate, 0),
				Ratio: round(rd.ratio(), 3), CPUSeconds: round(rd.sut.child.cpu.Seconds(), 3),
				BaselineCPUSeconds: round(rd.base.child.cpu.Seconds(), 3), PeakRSSBytes: rd.sut.child.peakRSS,
				EventsProcessed: rd.sut.done, BaselineEvents: rd.base.done,
				CPUGrowth: round(cpuGrowth(rd.sut.tenths), 3), BaselineCPUGrowth: round(cpuGrowth(rd.base.tenths), 3),
			})
		}
	}

	r.EventsPerSec, r.BaselineEventsPerSec = sut.rate, base.rate
	r.EventsProcessed, r.BaselineEvents = sut.done, base.done
	r.PeakRSSBytes, r.BaselinePeakRSSBytes = sut.child.peakRSS, base.child.peakRSS
	r.Tenths, r.CPUGrowth = roundTenths(sut.tenths), round(cpuGrowth(sut.tenths), 3)
	r.BaselineCPUGrowth = round(cpuGrowth(base.tenths), 3)
	r.CPUSeconds, r.BaselineCPUSeconds = sut.child.cpu.Seconds(), base.child.cpu.Seconds()
	p := sut.rec.percentiles(50, 99)
	r.P50Ms, r.P99Ms = p[0], p[1]
	bp := base.rec.percentiles(50, 99)
	r.BaselineP50Ms, r.BaselineP99Ms = bp[0], bp[1]
	r.LatencySamples = sut.rec.latencyCount()
	r.sut, r.base = sut.rec, base.rec
	peak := int64(0)
	for _, rd := range rounds {
		if rd.sut.done != r.Events {
			r.Errors += abs(r.Events - rd.sut.done)
		}
		peak = max(peak, rd.sut.child.peakRSS)
	}
	r.finish()
	r.Targets = append(r.Targets,
		Target{Name: "processor/baseline events per second", Want: ">= 0.6", Got: r.Ratio, Met: r.Ratio >= 0.6},
		Target{Name: "processor peak RSS MiB", Want: "<= 256", Got: round(float64(peak)/(1<<20), 1), Met: peak <= 256<<20},
	)
	if r.CPUGrowth > 0 {
		r.Targets = append(r.Targets, Target{Name: "processor CPU per event growth", Want: "<= " + strconv.FormatFloat(flatGrowth, 'g', -1, 64) + " (last tenth / second, on the line through tenths 2-10)", Got: r.CPUGrowth, Met: r.CPUGrowth <= flatGrowth})
	}
	return r, nil
}

// roundNames are round i's topics, groups, children and phase labels.
// With one round they are the names of a run without rounds.
type roundNames struct {
	current, dlq, out    string // topics
	baseGroup, procGroup string
	base, proc           string // children (and their directories)
	label                string // after a phase's name
}

func (b *Bench) roundNames(i int) roundNames {
	suffix, label := "", ""
	if b.cfg.Rounds > 1 {
		suffix, label = fmt.Sprintf(".%d", i+1), fmt.Sprintf(" %d", i+1)
	}
	return roundNames{
		current: b.topic("current" + suffix), dlq: b.topic("dlq" + suffix), out: b.topic("passthrough" + suffix),
		baseGroup: b.topic("baseline" + suffix), procGroup: b.topic("processor" + suffix),
		base: "baseline" + suffix, proc: "processor" + suffix,
		label: label,
	}
}

// createRoundTopics creates round i's current, dead-letter and baseline
// output topics, and the events topic if it is not there yet.
func (b *Bench) createRoundTopics(ctx context.Context, events string, i int) error {
	n := b.roundNames(i)
	if err := b.createProductTopics(ctx, events, n.current, n.dlq); err != nil {
		return err
	}
	return b.createTopics(ctx, n.out)
}

// dropRound deletes what round i wrote once its figures are taken, so that
// later rounds do not share the disk, or the broker's log cleaner, with
// it: its current, dead-letter and baseline output topics (gigabytes at
// 10M messages) and the processor's store (`wastatus process` keeps it in
// state/ under its --data-dir). The last round's go with the run (Close).
// KeepWorkDir keeps them all.
func (b *Bench) dropRound(ctx context.Context, i int) error {
	if b.cfg.KeepWorkDir {
		return nil
	}
	n := b.roundNames(i)
	topics := []string{n.current, n.dlq, n.out}
	if err := b.deleteTopics(ctx, topics...); err != nil {
		return err
	}
	b.made = slices.DeleteFunc(b.made, func(t string) bool { return slices.Contains(topics, t) })
	if err := os.RemoveAll(filepath.Join(b.dir, n.proc, "state")); err != nil {
		return fmt.Errorf("bench: remove round %d's store: %w", i+1, err)
	}
	return nil
}

// processorRound is one baseline drain and one processor drain.
type processorRound struct{ base, sut *drained }

func (rd processorRound) ratio() float64 {
	if rd.base.rate <= 0 {
		return 0
	}
	return rd.sut.rate / rd.base.rate
}

// runRound drains the events topic (up to ends) with the baseline,
// then with the processor, on groups, output topics and a store of round
// i's own, and adds their phases to r.
func (b *Bench) runRound(ctx context.Context, r *Report, i int, events string, ends kadm.ListedOffsets) (processorRound, error) {
	n := b.roundNames(i)
	if i > 0 {
		if err := b.createRoundTopics(ctx, events, i); err != nil {
			return processorRound{}, err
		}
	}
	txn := []string{"--txn-max-records", strconv.Itoa(b.cfg.TxnMaxRecords), "--txn-max-wait", b.cfg.TxnMaxWait.String()}
	base, err := b.drain(ctx, drainSpec{
		name:  n.base,
		args:  append([]string{"bench", "passthrough", "--brokers", joinComma(b.brokers), "--in", events, "--out", n.out, "--group", n.baseGroup}, txn...),
		group: n.baseGroup, events: events, out: n.out, ends: ends,
	})
	if err != nil {
		return processorRound{}, err
	}
	r.phase("baseline"+n.label, base.seconds, fmt.Sprintf("passthrough drained the topic; started in %.3fs", base.startup), base.machine)

	dir, err := b.childDir(n.proc)
	if err != nil {
		return processorRound{}, err
	}
	httpAddr, err := freeAddr()
	if err != nil {
		return processorRound{}, err
	}
	args := append([]string{"process", "--brokers", joinComma(b.brokers),
		"--events-topic", events, "--current-topic", n.current, "--dlq-topic", n.dlq,
		"--partitions", strconv.Itoa(int(b.cfg.Partitions)), "--group", n.procGroup,
		"--data-dir", dir, "--http-addr", httpAddr, "--serve-all=false", "--log-level", "warn",
	}, txn...)
	// Profiles are of the first round's processor.
	profileAddr := ""
	if b.profiling() && i == 0 {
		args = append(args, "--pprof")
		profileAddr = httpAddr
	}
	sut, err := b.drain(ctx, drainSpec{
		name: n.proc, args: args, group: n.procGroup, events: events, out: n.current, ends: ends,
		profileAddr: profileAddr, metricsAddr: httpAddr,
	})
	if err != nil {
		return processorRound{}, err
	}
	r.phase("processor"+n.label, sut.seconds, fmt.Sprintf("wastatus process drained the topic; started in %.3fs", sut.startup), sut.machine)
	return processorRound{base: base, sut: sut}, nil
}

func abs(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}

// Producer tuning of the preload. The records are the edge's, but the
// batching is not: the edge sends each POST's records at once (no linger),
// while the preload has tens of millions to write before anything is timed.
const (
	// preloadLinger lets each partition's batch fill to preloadBatchBytes
	// rather than go out a few records at a time.
	preloadLinger = 20 * time.Millisecond
	// preloadBatchBytes stays under the 1 MiB max.message.bytes a Kafka
	// broker ships with, so the bench runs on any broker's defaults.
	preloadBatchBytes = 1_000_000
	// preloadBufferedBytes bounds what the producer holds unacked: enough for
	// a full batch on every partition of a wide topic and more behind it.
	preloadBufferedBytes = 64 << 20
)

// preload produces the workload's events straight to topic, with acks from
// all in-sync replicas and an idempotent producer as the edge's, and
// returns how many events and distinct messages it wrote. Each record is
// built from its arrival (recordBuilder), not parsed from a webhook body.
func (b *Bench) preload(ctx context.Context, topic string) (int64, int, error) {
	opts := append(edge.ProducerOpts(), kgo.SeedBrokers(b.brokers...))
	opts = append(opts, b.cfg.ClientOpts...)
	cl, err := kgo.NewClient(append(opts,
		kgo.ProducerLinger(preloadLinger),
		kgo.ProducerBatchMaxBytes(preloadBatchBytes),
		kgo.MaxBufferedBytes(preloadBufferedBytes),
		kgo.MaxBufferedRecords(1<<20),
	)...)
	if err != nil {
		return 0, 0, fmt.Errorf("bench: preload client: %w", err)
	}
	defer cl.Close()
	s := b.stream(b.cfg.Events)
	prog := b.newProgress("preload", "events", int64(s.Len()))
	var (
		acked    atomic.Int64
		firstErr atomic.Pointer[error]
		rb       = newRecordBuilder(b.codec, topic)
		now      = time.Now().UnixMilli()
		n        int64
	)
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			firstErr.CompareAndSwap(nil, &err)
		}
		acked.Add(1)
	}
	for a, ok := s.Next(); ok; a, ok = s.Next() {
		if n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return 0, 0, err
			}
			if p := firstErr.Load(); p != nil {
				return 0, 0, fmt.Errorf("bench: preload: %w", *p)
			}
			now = time.Now().UnixMilli()
			prog.set(acked.Load())
		}
		rec, err := rb.record(&a, now)
		if err != nil {
			return 0, 0, err
		}
		cl.Produce(ctx, rec, promise)
		n++
	}
	if err := cl.Flush(ctx); err != nil {
		return 0, 0, fmt.Errorf("bench: preload flush: %w", err)
	}
	if p := firstErr.Load(); p != nil {
		return 0, 0, fmt.Errorf("bench: preload: %w", *p)
	}
	prog.finish(acked.Load())
	return n, s.Messages(), nil
}

// drainSpec is one system to run until its group has consumed the topic.
type drainSpec struct {
	name        string
	args        []string
	group       string
	events, out string
	ends        kadm.ListedOffsets
	profileAddr string // the child's HTTP address serving /debug/pprof, if profiled
	metricsAddr string // the child's HTTP address serving /metrics, if it does
}

type drained struct {
	child    *child
	rec      *recorder
	rate     float64
	seconds  float64 // of steady progress
	startup  float64 // from start to the first committed progress
	done     int64
	errors   int64
	firstErr string
	machine  *MachineCPU // during the load: see drain, postTo, pipe
	tenths   []Tenth     // drain only; nil if too short to cut
}

// drain starts spec's child and watches its group's committed offsets
// until they reach the end of the events topic, sampling the output's
// commit latency meanwhile; then it stops the child.
func (b *Bench) drain(ctx context.Context, spec drainSpec) (*drained, error) {
	var total int64
	spec.ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
	c, err := b.start(spec.name, spec.args)
	if err != nil {
		return nil, err
	}
	start, started := time.Now(), readCPUTicks()
	d := &drained{child: c, rec: newRecorder(start)}
	var ticks cpuTicks // at the first committed progress, where the rate starts
	stopped := false
	defer func() {
		if !stopped {
			_ = c.stop()
		}
	}()
	lctx, stopLat := context.WithCancel(ctx)
	latDone := make(chan struct{})
	go func() {
		defer close(latDone)
		b.sampleCommitLatency(lctx, spec.out, d.rec)
	}()
	defer func() { stopLat(); <-latDone }()
	var prof *profiler
	if spec.profileAddr != "" {
		prof = b.startProfiler(ctx, c, spec.profileAddr)
	}

	prog := b.newProgress(spec.name, "events", total)
	// The collector's figures are read where tenths start and end: at the
	// first progress, and where the count first reaches each tenth of the
	// total, the samples recorder.tenths cuts at.
	cut, tenth := int64(1), int64(0)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-tick.C:
		}
		if err := c.exited(); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrSystem, err)
		}
		done, complete, err := b.committed(ctx, spec.group, spec.events, spec.ends)
		if err != nil {
			continue // the group may not exist yet
		}
		now := time.Now()
		if cpu, err := procCPU(c.cmd.Process.Pid); err == nil {
			d.rec.countCPU(now, done, cpu)
		} else {
			d.rec.count(now, done) // not Linux: no tenths' CPU
		}
		if spec.metricsAddr != "" && done >= cut {
			if rt, err := readGoRuntime(ctx, spec.metricsAddr); err == nil {
				d.rec.runtimeNow(rt)
			}
			for cut <= done && tenth < 10 {
				tenth++
				cut = total * tenth / 10
			}
			if cut <= done {
				cut = math.MaxInt64
			}
		}
		if done > 0 && d.startup == 0 {
			d.startup = now.Sub(start).Seconds()
			ticks = readCPUTicks()
		}
		prog.set(done)
		if complete {
			d.done = done
			d.tenths = d.rec.tenths(total)
			prog.finish(done)
			break
		}
	}
	d.rate, d.seconds = d.rec.rate()
	end := readCPUTicks()
	if d.machine = machineSince(ticks, end); d.machine == nil {
		d.machine = machineSince(started, end) // drained in one step
	}
	if prof != nil {
		if err := prof.finish(ctx); err != nil {
			return nil, err
		}
	}
	stopLat()
	<-latDone
	stopped = true
	if err := c.stop(); err != nil {
		return nil, err
	}
	return d, nil
}

// committed sums group's committed offsets on topic and says whether every
// partition reached its end.
func (b *Bench) committed(ctx context.Context, group, topic string, ends kadm.ListedOffsets) (int64, bool, error) {
	resp, err := b.adm.FetchOffsets(ctx, group)
	if err != nil {
		return 0, false, err
	}
	var done int64
	complete := true
	ends.Each(func(e kadm.ListedOffset) {
		o, ok := resp.Lookup(topic, e.Partition)
		at := int64(0)
		if ok && o.Err == nil && o.At > 0 {
			at = o.At
		}
		done += at
		if at < e.Offset {
			complete = false
		}
	})
	return done, complete, nil
}

// sampleCommitLatency reads partition 0 of topic read_committed and
// records, for each record, the time from its produce timestamp to now.
func (b *Bench) sampleCommitLatency(ctx context.Context, topic string, rec *recorder) {
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(b.brokers...),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}),
		kgo.FetchMaxWait(100 * time.Millisecond),
		// Find the output topic at once if it is created after this starts.
		kgo.MetadataMinAge(100 * time.Millisecond),
		kgo.MetadataMaxAge(time.Second),
	}, b.cfg.ClientOpts...)...)
	if err != nil {
		b.cfg.Logger.Warn("latency sampler", "err", err)
		return
	}
	defer cl.Close()
	for ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		now := time.Now()
		fs.EachRecord(func(r *kgo.Record) { rec.latency(now, now.Sub(r.Timestamp)) })
	}
}

func joinComma(ss []string) string {
	out := ""
	for i, s := range ss {
		if i > 0 {
			out += ","
		}
		out += s
	}
	return out
}
