package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wastatus/wastatus/edge"
	"github.com/wastatus/wastatus/internal/gen"
	"github.com/wastatus/wastatus/internal/kafkatest"
	"github.com/wastatus/wastatus/processor"
	"github.com/wastatus/wastatus/schemas"
	"github.com/wastatus/wastatus/state"
)

var testSecret = []byte("e2e-app-secret")

// env is one scenario's cluster, topic names and codec.
type env struct {
	t       *testing.T
	cluster *kafkatest.Cluster
	codec   *schemas.Codec
	events  string
	current string
	dlq     string
	group   string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	codec, err := schemas.NewCodec(schemas.IDs{})
	if err != nil {
		t.Fatal(err)
	}
	return &env{
		t:       t,
		cluster: kafkatest.New(t),
		codec:   codec,
		events:  kafkatest.Name(t, "events"),
		current: kafkatest.Name(t, "current"),
		dlq:     kafkatest.Name(t, "dlq"),
		group:   kafkatest.Name(t, "group"),
	}
}

func (e *env) processorConfig() processor.Config {
	return processor.Config{
		Brokers:      e.cluster.Brokers,
		Group:        e.group,
		EventsTopic:  e.events,
		CurrentTopic: e.current,
		DLQTopic:     e.dlq,
		Partitions:   6,
	}
}

// startEdge serves an edge for region and returns its webhook URL.
func (e *env) startEdge(region string) string {
	e.t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(e.cluster.Brokers...)}, edge.ProducerOpts()...)...)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(cl.Close)
	r, err := edge.New(edge.Config{
		EventsTopic:    e.events,
		DLQTopic:       e.dlq,
		Region:         region,
		AppSecret:      testSecret,
		VerifyToken:    "token",
		ProduceTimeout: 20 * time.Second,
	}, cl, e.codec)
	if err != nil {
		e.t.Fatal(err)
	}
	mux := http.NewServeMux()
	r.Register(mux)
	srv := httptest.NewServer(mux)
	e.t.Cleanup(srv.Close)
	return srv.URL + "/webhook"
}

// runningProcessor is a processor with its own store, running.
type runningProcessor struct {
	proc   *processor.Processor
	store  *state.Store
	cancel context.CancelFunc
	done   chan error
}

func (e *env) startProcessor(dir string) *runningProcessor {
	e.t.Helper()
	store, err := state.Open(dir, state.Options{})
	if err != nil {
		e.t.Fatal(err)
	}
	proc, err := processor.New(e.processorConfig(), store, e.codec)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(e.t.Context())
	rp := &runningProcessor{proc: proc, store: store, cancel: cancel, done: make(chan error, 1)}
	go func() { rp.done <- proc.Run(ctx) }()
	kafkatest.Eventually(e.t, 60*time.Second, func() error {
		select {
		case err := <-rp.done:
			e.t.Fatalf("processor stopped: %v", err)
		default:
		}
		if ok, why := proc.Ready(); !ok {
			return errors.New(why)
		}
		return nil
	})
	return rp
}

// stop cancels the processor, checks it returned nil, and closes its store.
func (rp *runningProcessor) stop(t *testing.T) {
	t.Helper()
	rp.cancel()
	if err := <-rp.done; err != nil {
		t.Errorf("processor Run: %v", err)
	}
	if err := rp.store.Close(); err != nil {
		t.Errorf("store close: %v", err)
	}
}

func post(t *testing.T, url string, body []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Hub-Signature-256", edge.Sign(body, testSecret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: %d %s", url, resp.StatusCode, b)
	}
}

// currentReader reads the current topic with read_committed isolation from
// its start, keeping the latest state of every key and checking that no
// key's status ever goes back.
type currentReader struct {
	e  *env
	cl *kgo.Client

	mu        sync.Mutex
	latest    map[string]schemas.MessageStatus
	records   int
	backwards []string
}

func (e *env) readCurrent() *currentReader {
	e.t.Helper()
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(e.cluster.Brokers...),
		kgo.ConsumeTopics(e.current),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(cl.Close)
	return &currentReader{e: e, cl: cl, latest: make(map[string]schemas.MessageStatus)}
}

// poll reads whatever is available now.
func (r *currentReader) poll(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	fs := r.cl.PollFetches(ctx)
	var errs []error
	fs.EachError(func(topic string, p int32, err error) {
		if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
			errs = append(errs, fmt.Errorf("%s[%d]: %w", topic, p, err))
		}
	})
	r.mu.Lock()
	defer r.mu.Unlock()
	fs.EachRecord(func(rec *kgo.Record) {
		r.records++
		v, err := r.e.codec.DecodeMessageStatus(rec.Value)
		if err != nil {
			errs = append(errs, fmt.Errorf("decode %s: %w", rec.Key, err))
			return
		}
		if string(rec.Key) != v.WAMID {
			errs = append(errs, fmt.Errorf("key %s carries state of %s", rec.Key, v.WAMID))
		}
		if prev, ok := r.latest[v.WAMID]; ok && rankOf(v.Status) < rankOf(prev.Status) {
			r.backwards = append(r.backwards, fmt.Sprintf("%s: %s after %s (offset %d)", v.WAMID, v.Status, prev.Status, rec.Offset))
		}
		r.latest[v.WAMID] = v
	})
	return errors.Join(errs...)
}

func rankOf(status string) int {
	s, err := state.ParseStatus(status)
	if err != nil {
		return 0
	}
	return int(s)
}

func dataDir(t *testing.T, name string) string { return filepath.Join(t.TempDir(), name) }

// waitFold polls until the current topic holds, for every message of want,
// the expected fold.
func (r *currentReader) waitFold(t *testing.T, want map[string]gen.Expected) {
	t.Helper()
	kafkatest.Eventually(t, 90*time.Second, func() error {
		if err := r.poll(t.Context()); err != nil {
			return err
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		for wamid, x := range want {
			got, ok := r.latest[wamid]
			if !ok {
				return fmt.Errorf("%s: no state in the current topic yet (%d of %d messages seen)", wamid, len(r.latest), len(want))
			}
			if err := matches(got, x); err != nil {
				return err
			}
		}
		return nil
	})
}
