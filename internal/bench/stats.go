package bench

import (
	"math"
	"slices"
	"sync"
	"time"
)

// recorder collects what one system did over time: a cumulative count of
// events done, sampled, and latency samples, each with the time it was
// taken. Safe for concurrent use.
type recorder struct {
	start time.Time

	mu     sync.Mutex
	counts []countPoint
	lats   []latPoint
}

type countPoint struct {
	t    float64 // seconds since start
	done int64
	cpu  float64 // the system's CPU seconds so far; -1 where not read
	rt   goRuntime
}

// goRuntime is what a Go system's runtime reported of its collector so
// far (its Prometheus metrics, at the moment of a count); ok is false where
// it was not read.
type goRuntime struct {
	ok     bool
	gcs    float64 // collections completed (go_gc_duration_seconds_count)
	allocs float64 // bytes allocated on the heap (go_memstats_alloc_bytes_total)
}

type latPoint struct {
	t  float32 // seconds since start
	ms float32
}

func newRecorder(start time.Time) *recorder { return &recorder{start: start} }

// count records that done events were done in all by now.
func (r *recorder) count(now time.Time, done int64) { r.add(now, done, -1) }

// countCPU is count with the system's CPU time so far.
func (r *recorder) countCPU(now time.Time, done int64, cpu time.Duration) {
	r.add(now, done, cpu.Seconds())
}

func (r *recorder) add(now time.Time, done int64, cpu float64) {
	r.mu.Lock()
	r.counts = append(r.counts, countPoint{t: now.Sub(r.start).Seconds(), done: done, cpu: cpu})
	r.mu.Unlock()
}

// runtimeNow adds what the system's Go runtime reported to the last count.
func (r *recorder) runtimeNow(rt goRuntime) {
	r.mu.Lock()
	if n := len(r.counts); n > 0 {
		r.counts[n-1].rt = rt
	}
	r.mu.Unlock()
}

// Tenth is one tenth of the events a system did in a drain, in the order
// it did them: how fast, and how much CPU time each took. A processor's
// state grows as it drains (each message joins it at its first event), so
// the first tenth is folded into the smallest store and the last into the
// largest, in one process on one machine within minutes: how the cost
// grows with the state, without comparing two runs.
type Tenth struct {
	From         int64   `json:"from_event"` // events done at its start
	To           int64   `json:"to_event"`   // and at its end
	Seconds      float64 `json:"seconds"`
	EventsPerSec float64 `json:"events_per_sec"`
	// CPUMicros is the system's CPU time (user and system, all its
	// threads) per event; -1 where it was not read.
	CPUMicros float64 `json:"cpu_us_per_event"`
	// GCsPerMillion is how many collections the system's Go runtime
	// completed per million events, and AllocBytes how many bytes it
	// allocated on the heap per event; -1 where not read (a system that
	// serves no Go metrics). Under a fixed memory limit, a live heap that
	// grows with the state leaves each collection less room, so the same
	// allocations make more collections: this is where that shows.
	GCsPerMillion float64 `json:"gcs_per_million_events"`
	AllocBytes    float64 `json:"alloc_bytes_per_event"`
}

// tenths cuts the counts from the first progress to total events done into
// ten parts of about total/10 events each, at the samples where the count
// first reached each tenth. It returns nil when the samples are too coarse
// for that (a part would hold no sample), as in a run of a second or two.
func (r *recorder) tenths(total int64) []Tenth {
	r.mu.Lock()
	defer r.mu.Unlock()
	i := slices.IndexFunc(r.counts, func(c countPoint) bool { return c.done > 0 })
	if i < 0 || total <= 0 {
		return nil
	}
	cs := r.counts[i:]
	out := make([]Tenth, 0, 10)
	a := cs[0]
	for k := int64(1); k <= 10; k++ {
		j := slices.IndexFunc(cs, func(c countPoint) bool { return c.done >= total*k/10 })
		if j < 0 {
			return nil
		}
		b := cs[j]
		if b.done <= a.done || b.t <= a.t {
			return nil
		}
		n := float64(b.done - a.done)
		t := Tenth{From: a.done, To: b.done, Seconds: b.t - a.t, EventsPerSec: n / (b.t - a.t), CPUMicros: -1, GCsPerMillion: -1, AllocBytes: -1}
		if a.cpu >= 0 && b.cpu >= 0 {
			t.CPUMicros = (b.cpu - a.cpu) * 1e6 / n
		}
		if a.rt.ok && b.rt.ok {
			t.GCsPerMillion = (b.rt.gcs - a.rt.gcs) * 1e6 / n
			t.AllocBytes = (b.rt.allocs - a.rt.allocs) / n
		}
		out = append(out, t)
		a = b
	}
	return out
}

// cpuGrowth is how much the CPU time per event grew from the second tenth
// to the last, read off the least-squares line through the CPU times of
// the second to the last tenth (its value at the last over its value at
// the second); -1 without them all. In a run to 10M messages that is the
// cost with 9-10M messages in state over the cost with 1-2M: issue 7's
// "flat from 1M to 10M messages". The first tenth is not the cost at 1M
// but from an empty store up to 1M, which Pebble has not yet flushed and
// compacted into levels: usually a run's cheapest tenth, whatever the size
// it ends at. A line through nine tenths rather than the ratio of two:
// one tenth is 10-13 s of a 10M drain, and a compaction or a neighbour's
// burst moves it by a tenth.
func cpuGrowth(ts []Tenth) float64 {
	if len(ts) < 3 {
		return -1
	}
	ys := ts[1:]
	var mx, my float64
	for i, t := range ys {
		if t.CPUMicros <= 0 {
			return -1
		}
		mx += float64(i)
		my += t.CPUMicros
	}
	n := float64(len(ys))
	mx, my = mx/n, my/n
	var sxy, sxx float64
	for i, t := range ys {
		dx := float64(i) - mx
		sxy += dx * (t.CPUMicros - my)
		sxx += dx * dx
	}
	slope := sxy / sxx
	first, last := my-slope*mx, my+slope*(n-1-mx)
	if first <= 0 {
		return -1
	}
	return last / first
}

// latency records one latency observed at now.
func (r *recorder) latency(now time.Time, d time.Duration) {
	r.mu.Lock()
	r.lats = append(r.lats, latPoint{float32(now.Sub(r.start).Seconds()), float32(d.Seconds() * 1000)})
	r.mu.Unlock()
}

// percentiles returns the p-th percentiles (0-100) of the latencies in ms,
// NaN with no samples.
func (r *recorder) percentiles(ps ...float64) []float64 {
	r.mu.Lock()
	ms := make([]float64, len(r.lats))
	for i, l := range r.lats {
		ms[i] = float64(l.ms)
	}
	r.mu.Unlock()
	slices.Sort(ms)
	out := make([]float64, len(ps))
	for i, p := range ps {
		out[i] = percentile(ms, p)
	}
	return out
}

func (r *recorder) latencyCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.lats)
}

// percentile of sorted values by the nearest-rank method.
func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	k := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[min(max(k, 0), len(sorted)-1)]
}

// point is one bucket of a run, for plots.
type point struct {
	T        float64 // end of the bucket, seconds since start
	Width    float64 // seconds the bucket spans (the last may be shorter)
	Rate     float64 // events per second done in it
	P50, P99 float64 // ms, NaN when no latency was taken in it
}

// end returns the time of the run's last count or latency sample.
func (r *recorder) end() float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	end := 0.0
	if n := len(r.counts); n > 0 {
		end = r.counts[n-1].t
	}
	for _, l := range r.lats {
		end = max(end, float64(l.t))
	}
	return end
}

// bucketWidth picks a bucket width that cuts a run of end seconds into 30
// or more buckets, down to 50 ms: one-second buckets would draw a
// two-second run as two points.
func bucketWidth(end float64) float64 {
	for _, w := range []float64{1, 0.5, 0.2, 0.1} {
		if end/w >= 30 {
			return w
		}
	}
	return 0.05
}

// buckets cuts the run into buckets of width seconds; the last ends with
// the run, so its rate is not diluted by time after it.
func (r *recorder) buckets(width float64) []point {
	end := r.end()
	r.mu.Lock()
	defer r.mu.Unlock()
	n := int(math.Ceil(end / width))
	out := make([]point, n)
	byB := make([][]float64, n)
	for _, l := range r.lats {
		i := min(int(float64(l.t)/width), n-1)
		byB[i] = append(byB[i], float64(l.ms))
	}
	for i := range out {
		t0, t1 := float64(i)*width, min(float64(i+1)*width, end)
		out[i].T, out[i].Width = t1, t1-t0
		if t1 > t0 {
			out[i].Rate = (r.doneAt(t1) - r.doneAt(t0)) / (t1 - t0)
		}
		slices.Sort(byB[i])
		out[i].P50, out[i].P99 = percentile(byB[i], 50), percentile(byB[i], 99)
	}
	return out
}

// doneAt interpolates the cumulative count at t. Callers hold mu.
func (r *recorder) doneAt(t float64) float64 {
	cs := r.counts
	i, _ := slices.BinarySearchFunc(cs, t, func(c countPoint, t float64) int {
		switch {
		case c.t < t:
			return -1
		case c.t > t:
			return 1
		}
		return 0
	})
	switch {
	case len(cs) == 0:
		return 0
	case i == 0:
		return float64(cs[0].done) * min(t/max(cs[0].t, 1e-9), 1)
	case i == len(cs):
		return float64(cs[len(cs)-1].done)
	}
	a, b := cs[i-1], cs[i]
	return float64(a.done) + float64(b.done-a.done)*(t-a.t)/max(b.t-a.t, 1e-9)
}

// rate is the steady throughput: events done from the first sample that
// showed progress to the last, over that time, so a system's start (a
// process starting, a group joining) is not counted against it; with too
// few samples to tell, all events over all the time.
func (r *recorder) rate() (perSec float64, seconds float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	cs := r.counts
	if len(cs) == 0 {
		return 0, 0
	}
	last := cs[len(cs)-1]
	for i, c := range cs {
		if c.done > 0 {
			if i < len(cs)-1 && last.t-c.t > 0.5 {
				return float64(last.done-c.done) / (last.t - c.t), last.t - c.t
			}
			break
		}
	}
	return float64(last.done) / max(last.t, 1e-9), last.t
}
