package bench

import (
	"context"
	"fmt"
	"time"
)

const latencyEdge = "POST round trip: request sent to 200 received (the edge answers once Kafka acknowledged the record), over keep-alive connections"

// runEdge posts the workload as signed single-status webhooks to the
// baseline edge, then to wastatus ingest, each a child process.
func (b *Bench) runEdge(ctx context.Context) (*Report, error) {
	r := b.newReport(ModeEdge)
	r.Latency = latencyEdge
	events, dlq, raw := b.topic("edge.events"), b.topic("edge.dlq"), b.topic("edge.passthrough")
	if err := b.createTopics(ctx, events, dlq, raw); err != nil {
		return nil, err
	}
	n := b.cfg.Events
	base, err := b.postTo(ctx, "edge baseline", n, func(addr string) []string {
		return []string{"bench", "edge-passthrough", "--brokers", joinComma(b.brokers), "--topic", raw, "--http-addr", addr}
	})
	if err != nil {
		return nil, err
	}
	r.phase("edge baseline", base.seconds, "net/http + franz-go produce with the edge's producer options, no parsing"+base.failures(), base.machine)
	sut, err := b.postTo(ctx, "edge", n, func(addr string) []string {
		args := []string{"ingest", "--brokers", joinComma(b.brokers), "--events-topic", events, "--dlq-topic", dlq,
			"--http-addr", addr, "--region", "bench", "--log-level", "warn"}
		args = append(args, b.cfg.EdgeArgs...)
		if b.profiling() {
			args = append(args, "--pprof")
		}
		return args
	})
	if err != nil {
		return nil, err
	}
	r.phase("edge", sut.seconds, "wastatus ingest"+sut.failures(), sut.machine)

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
	r.Targets = append(r.Targets,
		Target{Name: "edge signed POSTs per second", Want: ">= 30000", Got: r.EventsPerSec, Met: r.EventsPerSec >= 30000 && r.Errors == 0},
		Target{Name: "edge POST p99 ms", Want: "<= 20", Got: r.P99Ms, Met: r.P99Ms >= 0 && r.P99Ms <= 20},
	)
	return r, nil
}

// postTo starts a child serving webhooks (args gets its listen address),
// waits for it, posts n webhooks closed-loop and stops it.
func (b *Bench) postTo(ctx context.Context, name string, n int, args func(addr string) []string) (*drained, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	c, err := b.start(name, args(addr))
	if err != nil {
		return nil, err
	}
	defer c.stop()
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	err = waitHTTP(wctx, c, "http://"+addr+"/metrics")
	cancel()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSystem, err)
	}
	var prof *profiler
	if name == "edge" && b.profiling() {
		prof = b.startProfiler(ctx, c, addr)
	}
	ps := newPoster("http://"+addr+"/webhook", b.cfg.Concurrency)
	d, ticks := &drained{child: c, rec: newRecorder(time.Now())}, readCPUTicks()
	b.closedLoop(ctx, ps, n, b.cfg.Concurrency, d.rec, b.newProgress(name, "posts", int64(n)))
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d.done, d.errors = ps.done.Load(), ps.errors.Load()
	if d.errors > 0 {
		// Reported (errors, and targets not met), not fatal: a 429 from
		// the edge's per-client limit is a finding, not a crash.
		d.firstErr = *ps.first.Load()
		b.cfg.Logger.Warn("posts failed", "system", name, "failed", d.errors, "of", n, "first", d.firstErr)
	}
	d.rate, d.seconds = d.rec.rate()
	d.machine = machineSince(ticks, readCPUTicks())
	if prof != nil {
		if err := prof.finish(ctx); err != nil {
			return nil, err
		}
	}
	if err := c.stop(); err != nil {
		return nil, err
	}
	return d, nil
}

// failures describes failed POSTs for a phase's detail.
func (d *drained) failures() string {
	if d.errors == 0 {
		return ""
	}
	return fmt.Sprintf("; %d POSTs failed, the first: %s", d.errors, d.firstErr)
}
