package bench

import (
	"math"
	"slices"
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

// TestTenths cuts a drain whose rate halves and whose CPU per event
// doubles in its second half into tenths, from its first progress.
func TestTenths(t *testing.T) {
	start := time.Unix(1000, 0)
	at := func(s float64) time.Time { return start.Add(time.Duration(s * float64(time.Second))) }
	const total = 1000
	r := newRecorder(start)
	r.countCPU(at(0.5), 0, 400*time.Millisecond) // start-up: no part of any tenth
	// From t=1 on, 100 events a second using 0.1 ms of CPU each up to 500
	// events (0.05 ms in the first tenth: a store too small to compact),
	// then 40 a second using 0.2 ms each; a sample every 0.25 s.
	done, cpu, sec := int64(0), 500*time.Millisecond, 1.0
	r.countCPU(at(sec), done, cpu)
	for done < total {
		rate, each := int64(25), 100*time.Microsecond
		if done < total/10 {
			each = 50 * time.Microsecond
		}
		if done >= total/2 {
			rate, each = 10, 200*time.Microsecond
		}
		n := min(rate, total-done)
		done, cpu, sec = done+n, cpu+time.Duration(n)*each, sec+0.25
		r.countCPU(at(sec), done, cpu)
	}
	ts := r.tenths(total)
	if len(ts) != 10 {
		t.Fatalf("%d tenths, want 10: %+v", len(ts), ts)
	}
	if ts[0].From != 25 || ts[9].To != total {
		t.Errorf("tenths span events %d-%d, want 25 (the first progress) to %d", ts[0].From, ts[9].To, total)
	}
	for i, x := range ts {
		if i > 0 && x.From != ts[i-1].To {
			t.Errorf("tenth %d starts at %d, the one before ended at %d", i+1, x.From, ts[i-1].To)
		}
		wantRate, wantCPU := 100.0, 100.0
		if i == 0 {
			wantCPU = 50
		}
		if x.From >= total/2 {
			wantRate, wantCPU = 40, 200
		}
		if math.Abs(x.EventsPerSec-wantRate) > 1e-6 || math.Abs(x.CPUMicros-wantCPU) > 1e-6 {
			t.Errorf("tenth %d (events %d-%d): %.1f events/s and %.3f µs each, want %v and %v", i+1, x.From, x.To, x.EventsPerSec, x.CPUMicros, wantRate, wantCPU)
		}
	}
	// The least-squares line through tenths 2-10 (100 µs four times, then
	// 200 five times) runs from 88.9 µs to 222.2: 2.5. The last tenth over
	// the second is 2, over the first 4.
	if g := cpuGrowth(ts); math.Abs(g-2.5) > 1e-9 {
		t.Errorf("CPU growth %v, want 2.5 (the line through tenths 2-10)", g)
	}
	// A cost that grows evenly grows by as much on the line as between
	// the tenths: 100 µs at the second tenth up to 180 at the last.
	even := slices.Clone(ts)
	for i := range even {
		even[i].CPUMicros = 100 + 10*float64(i-1)
	}
	if g := cpuGrowth(even); math.Abs(g-1.8) > 1e-9 {
		t.Errorf("CPU growth of an even rise %v, want 1.8", g)
	}

	// Without the CPU time, the rates only.
	r = newRecorder(start)
	for i := range 21 {
		r.count(at(float64(i)), int64(i*50))
	}
	ts = r.tenths(total)
	if len(ts) != 10 || ts[4].CPUMicros != -1 || ts[4].EventsPerSec != 50 {
		t.Fatalf("tenths without CPU times: %+v", ts)
	}
	if ts[4].GCsPerMillion != -1 || ts[4].AllocBytes != -1 {
		t.Errorf("tenth 5 without the runtime's figures: %+v, want -1 for them", ts[4])
	}
	if g := cpuGrowth(ts); g != -1 {
		t.Errorf("CPU growth without CPU times %v, want -1", g)
	}

	// Too few samples to cut: none.
	r = newRecorder(start)
	r.countCPU(at(1), 0, 0)
	r.countCPU(at(2), 600, time.Second)
	r.countCPU(at(3), total, 2*time.Second)
	if ts := r.tenths(total); ts != nil {
		t.Errorf("tenths of three samples: %+v, want none", ts)
	}
}

// TestTenthsCollector checks each tenth's collections and allocations,
// from the runtime's cumulative figures at the samples that cut it: 2,000
// bytes an event throughout, a collection every 100 events up to the
// half, then every 50 (a live heap that leaves each one less room), and
// no figures where a read failed.
func TestTenthsCollector(t *testing.T) {
	start := time.Unix(1000, 0)
	at := func(s float64) time.Time { return start.Add(time.Duration(s * float64(time.Second))) }
	const total = 10_000
	r := newRecorder(start)
	var gcs float64
	for i := range 41 {
		done := int64(i * 250)
		if done > total/2 {
			gcs += 5 // 250 events since the last sample
		} else if done > 0 {
			gcs += 2.5
		}
		r.countCPU(at(float64(i)), done, time.Duration(i)*time.Second)
		if done == 3*total/10 {
			continue // a failed read: tenths 3 and 4 have no figures
		}
		r.runtimeNow(goRuntime{ok: true, gcs: gcs, allocs: 2000 * float64(done)})
	}
	ts := r.tenths(total)
	if len(ts) != 10 {
		t.Fatalf("%d tenths, want 10: %+v", len(ts), ts)
	}
	for i, x := range ts {
		wantGCs, wantAlloc := 10_000.0, 2000.0
		if x.From >= total/2 {
			wantGCs = 20_000
		}
		if i == 2 || i == 3 {
			wantGCs, wantAlloc = -1, -1
		}
		if math.Abs(x.GCsPerMillion-wantGCs) > 1e-6 || math.Abs(x.AllocBytes-wantAlloc) > 1e-6 {
			t.Errorf("tenth %d (events %d-%d): %v collections per million events and %v bytes an event, want %v and %v",
				i+1, x.From, x.To, x.GCsPerMillion, x.AllocBytes, wantGCs, wantAlloc)
		}
	}
}
