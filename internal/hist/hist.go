// Package hist is a fixed-bucket latency histogram that library packages
// update with atomics and cmd exports to Prometheus at scrape time, so no
// package needs a Prometheus import or a global registry.
package hist

import (
	"sync/atomic"
	"time"
)

// defaultBounds are the upper bounds, in seconds: 1 ms to 2 minutes, for
// latencies from a webhook's receipt to its state's emission.
func defaultBounds() []float64 {
	return []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120}
}

// Histogram counts observations into buckets. The zero value is not usable;
// use New.
type Histogram struct {
	bounds []float64
	counts []atomic.Uint64 // one per bound, plus +Inf
	sumNs  atomic.Int64
	n      atomic.Uint64
}

// New returns a histogram with the default bounds.
func New() *Histogram {
	b := defaultBounds()
	return &Histogram{bounds: b, counts: make([]atomic.Uint64, len(b)+1)}
}

// Observe adds one duration.
func (h *Histogram) Observe(d time.Duration) {
	s := d.Seconds()
	i := 0
	for i < len(h.bounds) && s > h.bounds[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sumNs.Add(int64(d))
	h.n.Add(1)
}

// Snapshot is a histogram's state: cumulative counts by upper bound in
// seconds (Prometheus's form), the count and the sum in seconds.
type Snapshot struct {
	Buckets map[float64]uint64
	Count   uint64
	Sum     float64
}

// Snapshot returns the histogram's state now.
func (h *Histogram) Snapshot() Snapshot {
	s := Snapshot{Buckets: make(map[float64]uint64, len(h.bounds))}
	var cum uint64
	for i, b := range h.bounds {
		cum += h.counts[i].Load()
		s.Buckets[b] = cum
	}
	s.Count = cum + h.counts[len(h.bounds)].Load()
	s.Sum = time.Duration(h.sumNs.Load()).Seconds()
	return s
}
