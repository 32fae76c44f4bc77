package edge_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/wastatus/wastatus/edge"
)

// BenchmarkHandler measures a signed single-status POST through the handler:
// read, verify, parse, encode, produce and wait for Kafka's acknowledgement
// from an in-process kfake broker that discards the record bytes (so that
// its memory does not grow with b.N). "serial" is one POST at a time (the
// latency of an acknowledged write); "parallel" is GOMAXPROCS*8 concurrent
// POSTs (throughput, with records of concurrent POSTs sharing batches).
// Both run without the per-client rate limit, which every POST here (one
// client address) would exceed; "parallel-limited" runs it at a rate it
// never reaches, for its cost with every POST from one address, as from a
// load balancer.
func BenchmarkHandler(b *testing.B) {
	unlimited := func(c *edge.Config) { c.ClientRate = -1 }
	limited := func(c *edge.Config) { c.ClientRate, c.ClientBurst = 1e9, 1e9 }
	for _, bm := range []struct {
		name     string
		parallel bool
		cfg      func(*edge.Config)
	}{{"serial", false, unlimited}, {"parallel", true, unlimited}, {"parallel-limited", true, limited}} {
		b.Run(bm.name, func(b *testing.B) {
			e := newEnv(b, bm.cfg, kfake.BlackholeProduce())
			body := sample(b, "sent_with_conversation_and_pricing.json")
			sig := edge.Sign(body, []byte(testSecret))
			post := func() {
				req := httptest.NewRequest(http.MethodPost, edge.WebhookPath, bytes.NewReader(body))
				req.Header.Set(edge.SignatureHeader, sig)
				rec := httptest.NewRecorder()
				e.mux.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Errorf("code = %d, body %q", rec.Code, rec.Body)
				}
			}
			post() // connect and load metadata outside the timing
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			b.ResetTimer()
			if bm.parallel {
				b.SetParallelism(8)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						post()
					}
				})
			} else {
				for b.Loop() {
					post()
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "posts/s")
		})
	}
}
