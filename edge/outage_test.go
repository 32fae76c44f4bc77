package edge_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/wastatus/wastatus/edge"
	"github.com/wastatus/wastatus/internal/kafkatest"
	"github.com/wastatus/wastatus/schemas"
)

// outageMargin is what a 503 may take beyond ProduceTimeout: scheduling on
// a loaded 2-core machine under the race detector, not waiting on Kafka.
const outageMargin = time.Second

// TestOutageBounded503 makes Kafka unusable in each way a producer can wait
// and checks that every POST is answered 503 within ProduceTimeout: the
// broker never answers, answers late, the producer's buffer is full (kgo's
// Produce blocks), or the topic's metadata never comes. Runs on kfake,
// without Java.
func TestOutageBounded503(t *testing.T) {
	const timeout = 300 * time.Millisecond
	swallow := func(e *env) {
		e.cluster.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
			e.cluster.KeepControl()
			return nil, nil, true // never answered
		})
	}
	tests := []struct {
		name  string
		mod   func(*edge.Config)
		kopts []kgo.Opt
		setup func(t *testing.T, e *env)
	}{
		{name: "broker never answers", setup: func(t *testing.T, e *env) { swallow(e) }},
		{name: "broker answers late", setup: func(t *testing.T, e *env) {
			e.cluster.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
				e.cluster.KeepControl()
				e.cluster.SleepControl(func() { time.Sleep(3 * timeout) })
				return nil, nil, false
			})
		}},
		{name: "producer buffer full", kopts: []kgo.Opt{kgo.MaxBufferedRecords(2)}, setup: func(t *testing.T, e *env) {
			swallow(e)
			// Two records stuck in flight fill the buffer: the next
			// POST's Produce blocks until its context ends.
			body := webhook(status("wamid.FILL1", "sent", 1750030073, ""), status("wamid.FILL2", "sent", 1750030073, ""))
			if rec := e.postSigned(t, body); rec.Code != http.StatusServiceUnavailable {
				t.Fatalf("filling POST: %d, want 503", rec.Code)
			}
		}},
		{name: "topic never appears", mod: func(c *edge.Config) { c.EventsTopic = "no.such.topic" }},
		{name: "cluster gone", setup: func(t *testing.T, e *env) { e.cluster.Close() }},
	}
	var worst time.Duration
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnvClient(t, func(c *edge.Config) {
				c.ProduceTimeout = timeout
				if tt.mod != nil {
					tt.mod(c)
				}
			}, tt.kopts...)
			if tt.mod == nil { // connect and learn the topics first, as a running edge has
				if rec := e.postSigned(t, webhook(status("wamid.WARM", "sent", 1750030073, ""))); rec.Code != 200 {
					t.Fatalf("warm-up POST: %d %s", rec.Code, rec.Body)
				}
			}
			if tt.setup != nil {
				tt.setup(t, e)
			}
			body := webhook(status("wamid.O1", "sent", 1750030073, ""), status("wamid.O2", "delivered", 1750030074, ""),
				status("wamid.O3", "read", 1750030075, ""))
			for range 3 {
				start := time.Now()
				rec := e.postSigned(t, body)
				took := time.Since(start)
				worst = max(worst, took)
				if rec.Code != http.StatusServiceUnavailable {
					t.Fatalf("code = %d, want 503 (body %q)", rec.Code, rec.Body)
				}
				if !strings.Contains(rec.Body.String(), edge.ErrNotAcknowledged.Error()) {
					t.Errorf("body = %q, want %q", rec.Body, edge.ErrNotAcknowledged)
				}
				if took > timeout+outageMargin {
					t.Errorf("answered after %s, want within %s (+%s)", took, timeout, outageMargin)
				}
			}
		})
	}
	t.Logf("ProduceTimeout %s: slowest 503 took %s", timeout, worst)
}

// newEnvClient is newEnv with extra producer options.
func newEnvClient(t *testing.T, mod func(*edge.Config), kopts ...kgo.Opt) *env {
	t.Helper()
	e := newEnv(t, mod)
	if len(kopts) == 0 {
		return e
	}
	client, err := kgo.NewClient(append(append(edge.ProducerOpts(), kgo.SeedBrokers(e.cluster.ListenAddrs()...)), kopts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.Close)
	cfg := edge.Config{EventsTopic: eventsTopic, DLQTopic: dlqTopic, Region: testRegion, AppSecret: []byte(testSecret), Now: testNow}
	if mod != nil {
		mod(&cfg)
	}
	recv, err := edge.New(cfg, client, e.codec)
	if err != nil {
		t.Fatal(err)
	}
	e.client, e.recv, e.mux = client, recv, http.NewServeMux()
	recv.Register(e.mux)
	return e
}

// TestBodyReadTimeout sends headers and part of a body, then stalls: the
// edge answers 408 once BodyReadTimeout has passed. A body that arrives in
// time and then waits on a slow Kafka is not cut by that deadline.
func TestBodyReadTimeout(t *testing.T) {
	const readTimeout = 300 * time.Millisecond
	e := newEnv(t, func(c *edge.Config) { c.BodyReadTimeout, c.ProduceTimeout = readTimeout, 10*time.Second })
	srv := httptest.NewServer(e.mux)
	t.Cleanup(srv.Close)

	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: edge\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"object\":", edge.WebhookPath)
	if err := conn.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to a stalled body: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	took := time.Since(start)
	if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(b), edge.ErrBodyTimeout.Error()) {
		t.Fatalf("answer %d %s, want 408 %q", resp.StatusCode, b, edge.ErrBodyTimeout)
	}
	if took < readTimeout || took > readTimeout+5*time.Second {
		t.Errorf("answered after %s, want about %s", took, readTimeout)
	}
	if got := e.recv.Stats().TimedOut; got != 1 {
		t.Errorf("Stats().TimedOut = %d, want 1", got)
	}

	// Kafka holds the records for longer than the read deadline.
	var once sync.Once
	e.cluster.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		once.Do(func() { e.cluster.SleepControl(func() { time.Sleep(3 * readTimeout) }) })
		return nil, nil, false
	})
	body := sample(t, "sent_minimal_v24.json")
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+edge.WebhookPath, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(edge.SignatureHeader, edge.Sign(body, []byte(testSecret)))
	client := srv.Client()
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("a slow Kafka after a prompt body: %d, want 200", resp.StatusCode)
	}
}

// TestOutageRealBroker posts continuously to an edge whose real Kafka broker
// is stopped (SIGTERM) and later killed (SIGKILL), each time then restarted:
// while it is down every POST is answered 503 within ProduceTimeout, once
// it is back POSTs are answered 200 again, and every status of every POST
// answered 200 is in the events topic at the end.
//
//	WASTATUS_TEST_OWN_BROKER=1 go test -race -run Outage ./edge/
func TestOutageRealBroker(t *testing.T) {
	b := kafkatest.OwnBroker(t)
	const timeout = time.Second
	events, dlq := kafkatest.Name(t, "events"), kafkatest.Name(t, "dlq")
	client, err := kgo.NewClient(append(edge.ProducerOpts(), kgo.SeedBrokers(b.Addr()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ctx := t.Context()
	if _, err := kadm.NewClient(client).CreateTopics(ctx, 3, 1, nil, events, dlq); err != nil {
		t.Fatal(err)
	}
	codec, err := schemas.NewCodec(schemas.IDs{})
	if err != nil {
		t.Fatal(err)
	}
	recv, err := edge.New(edge.Config{EventsTopic: events, DLQTopic: dlq, Region: testRegion, AppSecret: []byte(testSecret),
		ProduceTimeout: timeout}, client, codec)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	recv.Register(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	transport := &http.Transport{MaxIdleConnsPerHost: 8}
	defer transport.CloseIdleConnections()
	hc := &http.Client{Transport: transport, Timeout: 30 * time.Second}

	p := &posters{url: srv.URL + edge.WebhookPath, hc: hc}
	stop := p.start(4)
	waitFor := func(what string, cond func(outageCounts) bool) {
		t.Helper()
		kafkatest.Eventually(t, 3*time.Minute, func() error {
			if c := p.counts(); !cond(c) {
				return fmt.Errorf("%s: %+v", what, c)
			}
			return nil
		})
	}
	waitFor("POSTs accepted before the outage", func(c outageCounts) bool { return c.ok >= 50 })
	for _, down := range []struct {
		name string
		do   func(context.Context) error
	}{{"stop", b.Stop}, {"kill", b.Kill}} {
		before := p.counts()
		if err := down.do(ctx); err != nil {
			t.Fatalf("%s the broker: %v", down.name, err)
		}
		downAt := time.Now()
		waitFor("POSTs answered 503 while the broker is down", func(c outageCounts) bool { return c.unavailable >= before.unavailable+20 })
		t.Logf("%s: first 20 POSTs answered 503 within %s of the broker going down", down.name, time.Since(downAt).Round(time.Millisecond))
		if err := b.Restart(ctx); err != nil {
			t.Fatalf("restart the broker: %v", err)
		}
		upAt, mid := time.Now(), p.counts()
		waitFor("POSTs accepted after the restart", func(c outageCounts) bool { return c.ok >= mid.ok+50 })
		t.Logf("%s: 50 POSTs accepted %s after the broker came back", down.name, time.Since(upAt).Round(time.Millisecond))
	}
	results := stop()

	var okWAMIDs []string
	var worst503, worstAll time.Duration
	codes := map[int]int{}
	for _, r := range results {
		codes[r.code]++
		worstAll = max(worstAll, r.took)
		switch r.code {
		case http.StatusOK:
			okWAMIDs = append(okWAMIDs, r.wamids...)
		case http.StatusServiceUnavailable:
			worst503 = max(worst503, r.took)
		default:
			t.Errorf("a POST was answered %d (%v)", r.code, r.err)
		}
	}
	t.Logf("%d POSTs: %v; slowest 503 %s, slowest answer %s (ProduceTimeout %s)", len(results), codes, worst503, worstAll, timeout)
	if worst503 > timeout+outageMargin {
		t.Errorf("slowest 503 took %s, want within %s (+%s)", worst503, timeout, outageMargin)
	}

	// Every status of every POST answered 200 is in the events topic.
	have := readKeys(t, b.Addr(), events, okWAMIDs)
	missing := 0
	for _, w := range okWAMIDs {
		if !have[w] {
			missing++
			if missing <= 5 {
				t.Errorf("acknowledged status %s is not in the events topic", w)
			}
		}
	}
	t.Logf("%d acknowledged statuses, %d in the events topic, %d missing", len(okWAMIDs), len(okWAMIDs)-missing, missing)
}

// outageResult is one POST of the posters.
type outageResult struct {
	wamids []string
	code   int
	err    error
	took   time.Duration
}

type outageCounts struct{ ok, unavailable, other int }

// posters post signed three-status webhooks, each with new wamids, from a
// few goroutines until stopped.
type posters struct {
	url string
	hc  *http.Client
	seq atomic.Int64

	mu      sync.Mutex
	results []outageResult
	c       outageCounts
}

func (p *posters) start(n int) (stop func() []outageResult) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				p.post()
			}
		})
	}
	return func() []outageResult {
		close(done)
		wg.Wait()
		p.mu.Lock()
		defer p.mu.Unlock()
		return slices.Clone(p.results)
	}
}

func (p *posters) post() {
	i := p.seq.Add(1)
	r := outageResult{wamids: []string{
		fmt.Sprintf("wamid.OUTAGE.%d.a", i), fmt.Sprintf("wamid.OUTAGE.%d.b", i), fmt.Sprintf("wamid.OUTAGE.%d.c", i)}}
	body := webhook(status(r.wamids[0], "sent", time.Now().Unix(), ""), status(r.wamids[1], "delivered", time.Now().Unix(), ""),
		status(r.wamids[2], "read", time.Now().Unix(), ""))
	start := time.Now()
	req, err := http.NewRequest(http.MethodPost, p.url, bytes.NewReader(body))
	if err == nil {
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(edge.SignatureHeader, edge.Sign(body, []byte(testSecret)))
		var resp *http.Response
		if resp, err = p.hc.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			r.code = resp.StatusCode
		}
	}
	r.err, r.took = err, time.Since(start)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.results = append(p.results, r)
	switch r.code {
	case http.StatusOK:
		p.c.ok++
	case http.StatusServiceUnavailable:
		p.c.unavailable++
	default:
		p.c.other++
	}
}

func (p *posters) counts() outageCounts {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.c
}

// readKeys reads topic from its start to its end offsets and returns the
// keys seen.
func readKeys(t *testing.T, addr, topic string, want []string) map[string]bool {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil || ends.Error() != nil {
		t.Fatalf("end offsets: %v %v", err, ends.Error())
	}
	var total int64
	ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
	have := make(map[string]bool, len(want))
	for n := int64(0); n < total; {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records of %s", n, total, topic)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("fetch: %v", err) })
		fs.EachRecord(func(r *kgo.Record) {
			have[string(r.Key)] = true
			n++
		})
	}
	return have
}
