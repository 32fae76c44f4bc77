package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wastatus/wastatus/internal/kafkatest"
	"github.com/wastatus/wastatus/processor"
	"github.com/wastatus/wastatus/schemas"
	"github.com/wastatus/wastatus/state"
)

// kafkaEnv is a cluster and topics for a command test.
type kafkaEnv struct {
	cluster *kafkatest.Cluster
	cfg     processor.Config
	codec   *schemas.Codec
	cl      *kgo.Client
}

func newKafkaEnv(t *testing.T, partitions int32) *kafkaEnv {
	t.Helper()
	return newKafkaEnvOn(t, kafkatest.New(t), partitions)
}

// newKafkaEnvOn is newKafkaEnv on cluster c.
func newKafkaEnvOn(t *testing.T, c *kafkatest.Cluster, partitions int32) *kafkaEnv {
	t.Helper()
	codec, err := schemas.NewCodec(schemas.IDs{})
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	e := &kafkaEnv{cluster: c, codec: codec, cl: cl, cfg: processor.Config{
		Brokers:      c.Brokers,
		Group:        kafkatest.Name(t, "group"),
		EventsTopic:  kafkatest.Name(t, "events"),
		CurrentTopic: kafkatest.Name(t, "current"),
		DLQTopic:     kafkatest.Name(t, "dlq"),
		Partitions:   partitions,
	}}
	if _, err := processor.EnsureTopics(t.Context(), kadm.NewClient(cl), e.cfg, true); err != nil {
		t.Fatal(err)
	}
	return e
}

// kafkaArgs are the command-line flags naming e's cluster and topics.
func (e *kafkaEnv) kafkaArgs() []string {
	return []string{"--brokers", strings.Join(e.cfg.Brokers, ","), "--events-topic", e.cfg.EventsTopic,
		"--current-topic", e.cfg.CurrentTopic, "--dlq-topic", e.cfg.DLQTopic}
}

func (e *kafkaEnv) produce(t *testing.T, recs ...*kgo.Record) {
	t.Helper()
	if err := e.cl.ProduceSync(t.Context(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

func (e *kafkaEnv) event(t *testing.T, wamid, status string, ts int64) *kgo.Record {
	t.Helper()
	ev := schemas.StatusEvent{WAMID: wamid, Status: status, Timestamp: ts, RecipientID: "16505551234", Region: "test", ReceivedAt: ts * 1000, Raw: []byte(`{}`)}
	v, err := e.codec.AppendStatusEvent(nil, &ev)
	if err != nil {
		t.Fatal(err)
	}
	return &kgo.Record{Topic: e.cfg.EventsTopic, Key: []byte(wamid), Value: v, Headers: []kgo.RecordHeader{{Key: "region", Value: []byte("test")}}}
}

// runWastatus runs the command line args in-process and returns its stdout,
// its stderr and its error.
func runWastatus(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut syncBuffer
	cmd := newRootCmd()
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	err := cmd.ExecuteContext(t.Context())
	return out.String(), errOut.String(), err
}

// startProcessor runs a processor on e until the test ends.
func startProcessor(t *testing.T, e *kafkaEnv) *processor.Processor {
	t.Helper()
	store, err := state.Open(t.TempDir(), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := processor.New(e.cfg, store, e.codec)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("processor: %v", err)
		}
		if err := store.Close(); err != nil {
			t.Errorf("store: %v", err)
		}
	})
	kafkatest.Eventually(t, 60*time.Second, func() error {
		if ok, why := p.Ready(); !ok {
			return errors.New(why)
		}
		return nil
	})
	return p
}

// TestRebuildCommand rebuilds, from the events topic and from the current
// topic, while a processor runs, and verifies both; refuses a state
// directory that holds data unless --force; and fails --verify once the
// current topic was tampered with, naming the message.
func TestRebuildCommand(t *testing.T) {
	e := newKafkaEnv(t, 3)
	p := startProcessor(t, e)
	var recs []*kgo.Record
	for i := range 30 {
		w := fmt.Sprintf("wamid.CMD%02d", i)
		recs = append(recs, e.event(t, w, "read", 1_750_000_100), e.event(t, w, "sent", 1_750_000_000), e.event(t, w, "delivered", 1_750_000_050))
	}
	e.produce(t, recs...)
	kafkatest.Eventually(t, 60*time.Second, func() error {
		if st := p.Stats(); st.Events < uint64(len(recs)) {
			return fmt.Errorf("%d of %d events folded", st.Events, len(recs))
		}
		return nil
	})

	dir := t.TempDir()
	out, errOut, err := runWastatus(t, append([]string{"rebuild", "--from", "events", "--verify", "--data-dir", dir}, e.kafkaArgs()...)...)
	if err != nil {
		t.Fatalf("rebuild --from events: %v\nstdout:\n%s\nstderr:\n%s", err, out, errOut)
	}
	for _, want := range []string{"rebuilt 3 partitions from " + e.cfg.EventsTopic + ": 90 records", "verified 30 messages", "30 equal", "no differences"} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	// Not a terminal: structured progress lines, no bar.
	for _, want := range []string{"msg=rebuilding", "msg=\"rebuild done\"", "msg=\"partition rebuilt from events\""} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}

	out, errOut, err = runWastatus(t, append([]string{"rebuild", "--from", "current", "--verify", "--data-dir", t.TempDir()}, e.kafkaArgs()...)...)
	if err != nil || !strings.Contains(out, "no differences") || !strings.Contains(out, "30 records") {
		t.Fatalf("rebuild --from current: %v\nstdout:\n%s\nstderr:\n%s", err, out, errOut)
	}

	_, _, err = runWastatus(t, append([]string{"rebuild", "--from", "events", "--data-dir", dir}, e.kafkaArgs()...)...)
	if err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("rebuild into a used dir: %v, want a refusal", err)
	}
	if out, errOut, err := runWastatus(t, append([]string{"rebuild", "--from", "events", "--force", "--verify", "--data-dir", dir}, e.kafkaArgs()...)...); err != nil {
		t.Fatalf("rebuild --force: %v\nstdout:\n%s\nstderr:\n%s", err, out, errOut)
	}

	// A state in the current topic that the events do not give.
	const tampered = "wamid.CMD07"
	var m state.Message
	for _, ev := range []schemas.StatusEvent{
		{WAMID: tampered, Status: "read", Timestamp: 1_750_000_100, RecipientID: "16505551234", ReceivedAt: 1_750_000_000_000},
		{WAMID: tampered, Status: "sent", Timestamp: 1_750_000_000, RecipientID: "16505551234", ReceivedAt: 1_750_000_000_000},
	} {
		if _, err := m.Apply(&ev, state.FailedWins); err != nil {
			t.Fatal(err)
		}
	}
	v := m.View(state.FailedWins)
	val, err := e.codec.AppendMessageStatus(nil, &v)
	if err != nil {
		t.Fatal(err)
	}
	e.produce(t, &kgo.Record{Topic: e.cfg.CurrentTopic, Key: []byte(tampered), Value: val})
	out, _, err = runWastatus(t, append([]string{"rebuild", "--from", "events", "--verify", "--data-dir", t.TempDir()}, e.kafkaArgs()...)...)
	if err == nil || !strings.Contains(err.Error(), "1 of 30 messages differ") {
		t.Fatalf("verify of a tampered topic: %v, want 1 of 30 messages differing\n%s", err, out)
	}
	if !strings.Contains(out, tampered+": differs (store-ahead)") || !strings.Contains(out, "delivered_at store=1750000050 topic=0") {
		t.Errorf("stdout does not name the difference:\n%s", out)
	}
}

func TestRebuildCommandFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"rebuild", "--brokers", "127.0.0.1:1", "--data-dir", "x"}, "--from"},
		{[]string{"rebuild", "--from", "events", "--data-dir", "x"}, "--brokers"},
		{[]string{"rebuild", "--from", "current", "--brokers", "127.0.0.1:1"}, "--data-dir"},
		{[]string{"rebuild", "--from", "current", "--brokers", "127.0.0.1:1", "--data-dir", "x", "--policy", "x"}, "--policy"},
		{[]string{"rebuild", "--from", "current", "--brokers", "127.0.0.1:1", "--data-dir", "x", "--min-free-disk", "-1"}, "--min-free-disk"},
	} {
		_, _, err := runWastatus(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error about %s", tc.args, err, tc.want)
		}
	}
}
