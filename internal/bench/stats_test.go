package bench

import (
	"math"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	vs := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for _, tc := range []struct{ p, want float64 }{{50, 5}, {99, 10}, {10, 1}, {100, 10}, {0, 1}} {
		if got := percentile(vs, tc.p); got != tc.want {
			t.Errorf("p%v = %v, want %v", tc.p, got, tc.want)
		}
	}
	if got := percentile(nil, 50); !math.IsNaN(got) {
		t.Errorf("p50 of nothing = %v, want NaN", got)
	}
}

// TestRateSkipsStartup checks that a system's start-up (nothing committed
// yet) does not count against its rate, and that per-second buckets add
// up to the total.
func TestRateSkipsStartup(t *testing.T) {
	start := time.Unix(1000, 0)
	r := newRecorder(start)
	at := func(s float64) time.Time { return start.Add(time.Duration(s * float64(time.Second))) }
	r.count(at(0.5), 0)
	r.count(at(2), 0)
	r.count(at(3), 1000) // first progress
	r.count(at(5), 5000)
	rate, secs := r.rate()
	if rate != 2000 || secs != 2 {
		t.Fatalf("rate %v over %vs, want 2000 over 2s", rate, secs)
	}
	for _, width := range []float64{1, 0.2, 0.05} {
		var sum float64
		for _, b := range r.buckets(width) {
			sum += b.Rate * b.Width
		}
		if math.Abs(sum-5000) > 1e-6 {
			t.Fatalf("buckets of %vs add up to %v events, want 5000", width, sum)
		}
	}
	if w := bucketWidth(5); w != 0.1 {
		t.Errorf("bucket width for a 5 s run = %v, want 0.1 (30 buckets or more)", w)
	}
	if w := bucketWidth(120); w != 1 {
		t.Errorf("bucket width for a 2 min run = %v, want 1", w)
	}
}
