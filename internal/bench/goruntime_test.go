package bench

import (
	"context"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// TestReadGoRuntime reads the collector's figures from /metrics served as
// wastatus serves it (client_golang's Go collector), and refuses a
// /metrics without them.
func TestReadGoRuntime(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector())
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	ctx := context.Background()

	a, err := readGoRuntime(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	runtime.GC()
	b, err := readGoRuntime(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	if !a.ok || !b.ok {
		t.Fatalf("figures not marked read: %+v, %+v", a, b)
	}
	if b.gcs < a.gcs+2 {
		t.Errorf("collections %v then %v, after two runtime.GC: want 2 more at least", a.gcs, b.gcs)
	}
	if a.allocs <= 0 || b.allocs < a.allocs {
		t.Errorf("bytes allocated %v then %v: want positive and growing", a.allocs, b.allocs)
	}

	// A /metrics without the Go collector, and no /metrics at all.
	other := prometheus.NewRegistry()
	other.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "something_total"}))
	srv2 := httptest.NewServer(promhttp.HandlerFor(other, promhttp.HandlerOpts{}))
	defer srv2.Close()
	if rt, err := readGoRuntime(ctx, strings.TrimPrefix(srv2.URL, "http://")); err == nil || !strings.Contains(err.Error(), metricGCs) {
		t.Errorf("metrics without the Go collector: %+v, %v; want an error naming %s", rt, err, metricGCs)
	}
	srv3 := httptest.NewServer(http.NotFoundHandler())
	defer srv3.Close()
	if rt, err := readGoRuntime(ctx, strings.TrimPrefix(srv3.URL, "http://")); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("no /metrics: %+v, %v; want an error with its status", rt, err)
	}
}
