package edge_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/goleak"

	"github.com/wastatus/wastatus/edge"
	"github.com/wastatus/wastatus/schemas"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	testRegion  = "eu-test"
	testSecret  = "app-secret"
	testToken   = "verify-me"
	eventsTopic = "test.events"
	dlqTopic    = "test.dlq"
	partitions  = 3
)

// testNow is the receive clock of every test receiver: after the samples'
// timestamps, so that none is rejected as more than a day in the future.
func testNow() time.Time { return time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC) }

// env is one receiver wired to its own in-process Kafka cluster.
type env struct {
	cluster *kfake.Cluster
	client  *kgo.Client
	codec   *schemas.Codec
	recv    *edge.Receiver
	mux     *http.ServeMux
}

// newEnv starts a kfake cluster with the two topics, a producer with
// edge.ProducerOpts and a receiver with a test config, changed by mod when
// it is not nil. Everything is closed when the test ends.
func newEnv(t testing.TB, mod func(*edge.Config), kopts ...kfake.Opt) *env {
	t.Helper()
	cluster, err := kfake.NewCluster(append([]kfake.Opt{
		kfake.NumBrokers(1),
		kfake.SeedTopics(partitions, eventsTopic, dlqTopic),
	}, kopts...)...)
	if err != nil {
		t.Fatalf("kfake.NewCluster: %v", err)
	}
	t.Cleanup(cluster.Close)
	client, err := kgo.NewClient(append(edge.ProducerOpts(), kgo.SeedBrokers(cluster.ListenAddrs()...))...)
	if err != nil {
		t.Fatalf("kgo.NewClient: %v", err)
	}
	t.Cleanup(client.Close) // runs before cluster.Close
	codec, err := schemas.NewCodec(schemas.IDs{})
	if err != nil {
		t.Fatalf("schemas.NewCodec: %v", err)
	}
	cfg := edge.Config{
		EventsTopic: eventsTopic,
		DLQTopic:    dlqTopic,
		Region:      testRegion,
		AppSecret:   []byte(testSecret),
		VerifyToken: testToken,
		Now:         testNow,
	}
	if mod != nil {
		mod(&cfg)
	}
	recv, err := edge.New(cfg, client, codec)
	if err != nil {
		t.Fatalf("edge.New: %v", err)
	}
	mux := http.NewServeMux()
	recv.Register(mux)
	return &env{cluster: cluster, client: client, codec: codec, recv: recv, mux: mux}
}

// post sends body to POST /webhook through the mux, signed with sig unless
// sig is empty, and returns the answer.
func (e *env) post(t testing.TB, body []byte, sig string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, edge.WebhookPath, bytes.NewReader(body))
	if sig != "" {
		req.Header.Set(edge.SignatureHeader, sig)
	}
	rec := httptest.NewRecorder()
	e.mux.ServeHTTP(rec, req)
	return rec
}

// postSigned posts body signed with the test secret.
func (e *env) postSigned(t testing.TB, body []byte) *httptest.ResponseRecorder {
	t.Helper()
	return e.post(t, body, edge.Sign(body, []byte(testSecret)))
}

// endOffsets returns how many records topic holds, summed over partitions.
func (e *env) endOffsets(t testing.TB, topic string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	ends, err := kadm.NewClient(e.client).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("ListEndOffsets(%s): %v", topic, err)
	}
	if err := ends.Error(); err != nil {
		t.Fatalf("ListEndOffsets(%s): %v", topic, err)
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n
}

// records consumes every record topic holds (its end offsets decide how
// many), ordered by partition then offset.
func (e *env) records(t testing.TB, topic string) []*kgo.Record {
	t.Helper()
	want := e.endOffsets(t, topic)
	if want == 0 {
		return nil
	}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(e.cluster.ListenAddrs()...),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	if err != nil {
		t.Fatalf("consumer: %v", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var got []*kgo.Record
	for int64(len(got)) < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d records from %s: %v", len(got), want, topic, ctx.Err())
		}
		fs.EachError(func(topic string, p int32, err error) {
			t.Fatalf("fetch %s/%d: %v", topic, p, err)
		})
		got = append(got, fs.Records()...)
	}
	slices.SortFunc(got, func(a, b *kgo.Record) int {
		if a.Partition != b.Partition {
			return int(a.Partition - b.Partition)
		}
		return int(a.Offset - b.Offset)
	})
	return got
}

// eventually polls cond until it holds, failing the test after timeout.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", timeout, what)
		}
		<-tick.C
	}
}

// header returns the value of the record's header key, and whether it is
// present.
func header(rec *kgo.Record, key string) (string, bool) {
	for _, h := range rec.Headers {
		if h.Key == key {
			return string(h.Value), true
		}
	}
	return "", false
}

// sample reads a fixture copied from ../shared/samples.
func sample(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// webhook returns a one-entry, one-change webhook body whose statuses[] are
// the given JSON texts, byte for byte, in order.
func webhook(statuses ...string) []byte {
	return []byte(`{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[` +
		`{"field":"messages","value":{"messaging_product":"whatsapp",` +
		`"metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},` +
		`"statuses":[` + strings.Join(statuses, ",") + `]}}]}]}`)
}

// status returns a status object's JSON; extra, when not empty, is a list
// of further members.
func status(wamid, st string, ts int64, extra string) string {
	s := `{"id":"` + wamid + `","status":"` + st + `","timestamp":"` + strconv.FormatInt(ts, 10) + `","recipient_id":"16505551234"`
	if extra != "" {
		s += "," + extra
	}
	return s + "}"
}

// answer is the JSON body of a 200.
func answer(accepted, rejected int) string {
	return `{"accepted":` + strconv.Itoa(accepted) + `,"rejected":` + strconv.Itoa(rejected) + "}\n"
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a logger.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// slogJSON returns a logger that writes every level to w.
func slogJSON(w io.Writer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
