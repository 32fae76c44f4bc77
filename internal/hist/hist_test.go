package hist

import (
	"testing"
	"time"
)

func TestHistogram(t *testing.T) {
	h := New()
	for _, d := range []time.Duration{500 * time.Microsecond, 3 * time.Millisecond, 3 * time.Millisecond, 200 * time.Millisecond, 10 * time.Minute} {
		h.Observe(d)
	}
	s := h.Snapshot()
	for bound, want := range map[float64]uint64{0.001: 1, 0.0025: 1, 0.005: 3, 0.1: 3, 0.25: 4, 120: 4} {
		if got := s.Buckets[bound]; got != want {
			t.Errorf("bucket le=%v: %d, want %d", bound, got, want)
		}
	}
	if s.Count != 5 {
		t.Errorf("count %d, want 5 (one beyond every bound)", s.Count)
	}
	want := (500*time.Microsecond + 6*time.Millisecond + 200*time.Millisecond + 10*time.Minute).Seconds()
	if s.Sum < want-1e-9 || s.Sum > want+1e-9 {
		t.Errorf("sum %v, want %v", s.Sum, want)
	}
}
