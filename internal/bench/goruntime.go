package bench

import (
	"context"
	"fmt"
	"net/http"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// The Go runtime's collector as a child reports it on its /metrics (the
// Prometheus Go collector that every wastatus service registers).
const (
	metricGCs    = "go_gc_duration_seconds" // a summary: its count
	metricAllocs = "go_memstats_alloc_bytes_total"
)

// scrapeTimeout bounds one read of a child's /metrics. A read is taken
// only where a tenth of a drain starts or ends (eleven a run), so a slow
// one costs that tenth its collector figures, never the drain.
const scrapeTimeout = time.Second

// readGoRuntime reads how many collections the Go runtime of the child
// serving HTTP at addr has completed, and how many bytes it has allocated,
// from its /metrics.
func readGoRuntime(ctx context.Context, addr string) (goRuntime, error) {
	ctx, cancel := context.WithTimeout(ctx, scrapeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return goRuntime{}, fmt.Errorf("bench: metrics of %s: %w", addr, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return goRuntime{}, fmt.Errorf("bench: metrics of %s: %w", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return goRuntime{}, fmt.Errorf("bench: metrics of %s: %s", addr, resp.Status)
	}
	// Text format only: the request asks for no other.
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return goRuntime{}, fmt.Errorf("bench: metrics of %s: %w", addr, err)
	}
	gcs, ok := single(fams[metricGCs], func(m *dto.Metric) float64 { return float64(m.GetSummary().GetSampleCount()) })
	if !ok {
		return goRuntime{}, fmt.Errorf("bench: metrics of %s: no %s", addr, metricGCs)
	}
	allocs, ok := single(fams[metricAllocs], func(m *dto.Metric) float64 { return m.GetCounter().GetValue() })
	if !ok {
		return goRuntime{}, fmt.Errorf("bench: metrics of %s: no %s", addr, metricAllocs)
	}
	return goRuntime{ok: true, gcs: gcs, allocs: allocs}, nil
}

// single returns the value of a family's one metric.
func single(f *dto.MetricFamily, value func(*dto.Metric) float64) (float64, bool) {
	if f == nil || len(f.GetMetric()) != 1 {
		return 0, false
	}
	return value(f.GetMetric()[0]), true
}
