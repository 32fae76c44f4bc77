package processor_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wastatus/wastatus/internal/kafkatest"
	"github.com/wastatus/wastatus/processor"
)

func serve(t *testing.T, p *processor.Processor) string {
	t.Helper()
	mux := http.NewServeMux()
	p.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Error(err)
		return 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			t.Errorf("%s: %v: %s", url, err, b)
		}
	}
	return resp.StatusCode
}

// TestWaitForRead holds many requests for a read receipt: a sent does not
// release them, the read does, all at once, without polling.
func TestWaitForRead(t *testing.T) {
	f := newFixture(t, 2)
	r := f.start(t.TempDir())
	defer r.stop(t)
	base := serve(t, r.p)

	const waiters = 300
	var (
		wg       sync.WaitGroup
		returned atomic.Int64
		codes    = make([]int, waiters)
		statuses = make([]string, waiters)
	)
	for i := range waiters {
		wg.Go(func() {
			var m processor.Message
			codes[i] = getJSON(t, base+"/v1/messages/wamid.W?wait_for=read&timeout=30s", &m)
			statuses[i] = m.Status
			returned.Add(1)
		})
	}
	f.produce(f.event("wamid.W", "sent", 10))
	kafkatest.Eventually(t, 30*time.Second, func() error {
		v, _, err := r.p.Get("wamid.W")
		if err != nil {
			return err
		}
		if v.Status != "sent" {
			return fmt.Errorf("status %s", v.Status)
		}
		return nil
	})
	if n := returned.Load(); n != 0 {
		t.Fatalf("%d waiters returned on sent", n)
	}
	f.produce(f.event("wamid.W", "read", 20))
	wg.Wait()
	for i := range waiters {
		if codes[i] != http.StatusOK || statuses[i] != "read" {
			t.Fatalf("waiter %d: %d %q", i, codes[i], statuses[i])
		}
	}

	// Reached already: no wait. A failed passes read under failed-wins.
	if code := getJSON(t, base+"/v1/messages/wamid.W?wait_for=delivered", nil); code != http.StatusOK {
		t.Errorf("wait for a status passed already: %d", code)
	}
	var body struct {
		State processor.Message `json:"state"`
	}
	if code := getJSON(t, base+"/v1/messages/wamid.W?wait_for=played&timeout=50ms", &body); code != http.StatusRequestTimeout || body.State.Status != "read" {
		t.Errorf("timeout: %d %+v, want 408 with the state so far", code, body.State)
	}
	for _, q := range []string{"wait_for=seen", "wait_for=read&timeout=forever", "wait_for=read&timeout=1h"} {
		if code := getJSON(t, base+"/v1/messages/wamid.W?"+q, nil); code != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", q, code)
		}
	}
}

// TestTimeline runs the reference article's test, read then delivered, with
// a duplicate: the timeline shows each event and what it did, and names the
// anomalies.
func TestTimeline(t *testing.T) {
	f := newFixture(t, 1)
	r := f.start(t.TempDir())
	defer r.stop(t)
	base := serve(t, r.p)

	f.produce(f.event("wamid.T", "read", 40), f.event("wamid.T", "delivered", 10), f.event("wamid.T", "read", 40))
	var tl processor.Timeline
	kafkatest.Eventually(t, 30*time.Second, func() error {
		if code := getJSON(t, base+"/v1/messages/wamid.T/timeline", &tl); code != http.StatusOK || len(tl.Events) < 3 {
			return fmt.Errorf("%d, %d events", code, len(tl.Events))
		}
		return nil
	})
	var effects, kinds []string
	for _, e := range tl.Events {
		effects = append(effects, e.Status+":"+e.Effect)
	}
	for _, a := range tl.Anomalies {
		kinds = append(kinds, a.Kind)
	}
	if want := []string{"read:advanced", "delivered:filled", "read:duplicate"}; !slices.Equal(effects, want) {
		t.Errorf("effects %v, want %v", effects, want)
	}
	for _, k := range []string{"out-of-order", "duplicate", "never-sent"} {
		if !slices.Contains(kinds, k) {
			t.Errorf("anomalies %v lack %s", kinds, k)
		}
	}
	if tl.Status != "read" {
		t.Errorf("status %s", tl.Status)
	}
	if code := getJSON(t, base+"/v1/messages/wamid.none/timeline", nil); code != http.StatusNotFound {
		t.Errorf("unknown message: %d", code)
	}
}
