package processor_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/goleak"

	"github.com/wastatus/wastatus/internal/kafkatest"
	"github.com/wastatus/wastatus/processor"
	"github.com/wastatus/wastatus/schemas"
	"github.com/wastatus/wastatus/state"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// kfake's and franz-go's background goroutines end shortly after Close.
		goleak.IgnoreTopFunction("github.com/twmb/franz-go/pkg/kgo.(*Client).updateMetadataLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}

type fixture struct {
	t       *testing.T
	cluster *kafkatest.Cluster
	codec   *schemas.Codec
	cfg     processor.Config
	cl      *kgo.Client
}

func newFixture(t *testing.T, partitions int32, opts ...kfake.Opt) *fixture {
	t.Helper()
	return newFixtureOn(t, kafkatest.New(t, opts...), partitions)
}

// newFixtureOn is newFixture on cluster c.
func newFixtureOn(t *testing.T, c *kafkatest.Cluster, partitions int32) *fixture {
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
	return &fixture{t: t, cluster: c, codec: codec, cl: cl, cfg: processor.Config{
		Brokers:      c.Brokers,
		Group:        kafkatest.Name(t, "group"),
		EventsTopic:  kafkatest.Name(t, "events"),
		CurrentTopic: kafkatest.Name(t, "current"),
		DLQTopic:     kafkatest.Name(t, "dlq"),
		Partitions:   partitions,
	}}
}

type running struct {
	p      *processor.Processor
	store  *state.Store
	cancel context.CancelFunc
	done   chan error
}

func (f *fixture) start(dir string) *running {
	f.t.Helper()
	return f.startOn(f.cfg, openStore(f.t, dir))
}

// openStore opens a store in dir with the default options; the caller
// closes it (running.stop does).
func openStore(t *testing.T, dir string) *state.Store {
	t.Helper()
	s, err := state.Open(dir, state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// startOn starts a processor on store, with cfg, and waits until it is
// ready; the caller closes the store.
func (f *fixture) startOn(cfg processor.Config, store *state.Store) *running {
	f.t.Helper()
	r := f.launch(cfg, store)
	p := r.p
	kafkatest.Eventually(f.t, 60*time.Second, func() error {
		select {
		case err := <-r.done:
			f.t.Fatalf("Run returned: %v", err)
		default:
		}
		if ok, why := p.Ready(); !ok {
			return errors.New(why)
		}
		return nil
	})
	return r
}

// launch starts a processor on store, with cfg, without waiting for it;
// its Run's result comes on done.
func (f *fixture) launch(cfg processor.Config, store *state.Store) *running {
	f.t.Helper()
	p, err := processor.New(cfg, store, f.codec)
	if err != nil {
		f.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(f.t.Context())
	r := &running{p: p, store: store, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- p.Run(ctx) }()
	return r
}

func (r *running) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	if err := <-r.done; err != nil {
		t.Errorf("Run: %v", err)
	}
	if err := r.store.Close(); err != nil {
		t.Errorf("store: %v", err)
	}
}

func (f *fixture) event(wamid, status string, ts int64) *kgo.Record {
	f.t.Helper()
	ev := schemas.StatusEvent{WAMID: wamid, Status: status, Timestamp: ts, RecipientID: "16505551234", Region: "test", ReceivedAt: 1, Raw: []byte(`{}`)}
	v, err := f.codec.AppendStatusEvent(nil, &ev)
	if err != nil {
		f.t.Fatal(err)
	}
	return &kgo.Record{Topic: f.cfg.EventsTopic, Key: []byte(wamid), Value: v}
}

func (f *fixture) produce(recs ...*kgo.Record) {
	f.t.Helper()
	if err := f.cl.ProduceSync(f.t.Context(), recs...).FirstErr(); err != nil {
		f.t.Fatal(err)
	}
}

// consume reads topic from its start (read_committed) until cond holds for
// what was read.
func (f *fixture) consume(topic string, cond func([]*kgo.Record) error) []*kgo.Record {
	f.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(f.cluster.Brokers...), kgo.ConsumeTopics(topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		f.t.Fatal(err)
	}
	defer cl.Close()
	var (
		mu   sync.Mutex
		recs []*kgo.Record
	)
	kafkatest.Eventually(f.t, 60*time.Second, func() error {
		ctx, cancel := context.WithTimeout(f.t.Context(), 200*time.Millisecond)
		defer cancel()
		fs := cl.PollFetches(ctx)
		mu.Lock()
		defer mu.Unlock()
		recs = append(recs, fs.Records()...)
		return cond(recs)
	})
	return recs
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func TestRefusesPartitionMismatch(t *testing.T) {
	f := newFixture(t, 4)
	adm := kadm.NewClient(f.cl)
	for topic, n := range map[string]int32{f.cfg.EventsTopic: 4, f.cfg.CurrentTopic: 3} {
		if _, err := adm.CreateTopic(t.Context(), n, -1, nil, topic); err != nil {
			t.Fatal(err)
		}
	}
	store, err := state.Open(t.TempDir(), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	p, err := processor.New(f.cfg, store, f.codec)
	if err != nil {
		t.Fatal(err)
	}
	err = p.Run(t.Context())
	if !errors.Is(err, processor.ErrPartitionMismatch) {
		t.Fatalf("Run = %v, want ErrPartitionMismatch", err)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  processor.Config
		ok   bool
	}{
		{"defaults", processor.Config{Brokers: []string{"x:9092"}}, true},
		{"no brokers", processor.Config{}, false},
		{"short retention", processor.Config{Brokers: []string{"x"}, EventsRetention: 24 * time.Hour}, false},
		{"same topics", processor.Config{Brokers: []string{"x"}, EventsTopic: "a", CurrentTopic: "a"}, false},
		{"negative partitions", processor.Config{Brokers: []string{"x"}, Partitions: -1}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if (err == nil) != tc.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, processor.ErrConfig) {
				t.Fatalf("Validate() = %v, not ErrConfig", err)
			}
		})
	}
}

// TestPoisonGoesToDeadLetters feeds undecodable bytes, an unknown status and
// a record whose key is not its wamid between valid events: each poison
// record lands in the dead-letter topic with its reason and source, and the
// valid events around it are folded and emitted.
func TestPoisonGoesToDeadLetters(t *testing.T) {
	f := newFixture(t, 1)
	r := f.start(t.TempDir())
	defer r.stop(t)

	mismatch := f.event("wamid.B", "read", 20)
	mismatch.Key = []byte("wamid.other")
	f.produce(
		f.event("wamid.A", "sent", 10),
		&kgo.Record{Topic: f.cfg.EventsTopic, Key: []byte("wamid.A"), Value: []byte("not avro")},
		f.event("wamid.A", "deleted", 11),
		mismatch,
		f.event("wamid.A", "read", 12),
	)

	dead := f.consume(f.cfg.DLQTopic, func(recs []*kgo.Record) error {
		if len(recs) < 3 {
			return fmt.Errorf("%d dead letters", len(recs))
		}
		return nil
	})
	wantReasons := []string{processor.ReasonUndecodable, processor.ReasonUnknownStatus, processor.ReasonKeyMismatch}
	for i, d := range dead {
		if got := header(d, "reason"); got != wantReasons[i] {
			t.Errorf("dead letter %d reason %q, want %q", i, got, wantReasons[i])
		}
		if header(d, "source.topic") != f.cfg.EventsTopic || header(d, "source.offset") != fmt.Sprint(i+1) {
			t.Errorf("dead letter %d source %s@%s", i, header(d, "source.topic"), header(d, "source.offset"))
		}
		if header(d, "error") == "" {
			t.Errorf("dead letter %d has no error header", i)
		}
	}
	f.consume(f.cfg.CurrentTopic, func(recs []*kgo.Record) error {
		if len(recs) == 0 {
			return errors.New("nothing emitted")
		}
		v, err := f.codec.DecodeMessageStatus(recs[len(recs)-1].Value)
		if err != nil {
			return err
		}
		if v.WAMID != "wamid.A" || v.Status != "read" || v.SentAt != 10 || v.ReadAt != 12 {
			return fmt.Errorf("last state %+v", v)
		}
		return nil
	})
	// The stats count a batch once its store batch commits, just after the
	// transaction whose outputs were read above.
	kafkatest.Eventually(t, 30*time.Second, func() error {
		if st := r.p.Stats(); st.Unknown != 1 || st.DeadLetters != 3 {
			return fmt.Errorf("stats %+v: want 1 unknown, 3 dead letters", st)
		}
		return nil
	})
}

// TestFailedAfterDelivered checks the count of failed statuses for
// messages that had reached the phone (delivered, read or played), the
// multi-device case the reference article warns of: a failed alone, or a
// failed again, is not one.
func TestFailedAfterDelivered(t *testing.T) {
	f := newFixture(t, 1)
	r := f.start(t.TempDir())
	defer r.stop(t)

	f.produce(
		f.event("wamid.A", "delivered", 10),
		f.event("wamid.A", "failed", 11), // counts
		f.event("wamid.B", "failed", 12),
		f.event("wamid.C", "read", 13),
		f.event("wamid.C", "failed", 14), // counts: read without a delivered
		f.event("wamid.C", "failed", 14), // a duplicate changes nothing
		f.event("wamid.D", "sent", 15),
		f.event("wamid.D", "failed", 16),
	)
	kafkatest.Eventually(t, 30*time.Second, func() error {
		if st := r.p.Stats(); st.Events != 8 || st.FailedAfter != 2 {
			return fmt.Errorf("stats %+v: want 8 events, 2 failed after delivered", st)
		}
		return nil
	})
}

// TestOutputOnInputPartition checks the changelog property: every state is
// written to the current topic's partition with the number of the events
// partition its input came from.
func TestOutputOnInputPartition(t *testing.T) {
	f := newFixture(t, 5)
	r := f.start(t.TempDir())
	defer r.stop(t)

	var recs []*kgo.Record
	for i := range 50 {
		recs = append(recs, f.event(fmt.Sprintf("wamid.P%02d", i), "delivered", 100))
	}
	f.produce(recs...)
	inPart := make(map[string]int32)
	for _, rec := range recs {
		inPart[string(rec.Key)] = rec.Partition
	}
	out := f.consume(f.cfg.CurrentTopic, func(out []*kgo.Record) error {
		if len(out) < len(recs) {
			return fmt.Errorf("%d of %d states", len(out), len(recs))
		}
		return nil
	})
	for _, o := range out {
		if o.Partition != inPart[string(o.Key)] {
			t.Errorf("%s: state on partition %d, input on %d", o.Key, o.Partition, inPart[string(o.Key)])
		}
		if p, _ := r.p.Partition(string(o.Key)); p != o.Partition {
			t.Errorf("%s: Partition() = %d, Kafka chose %d", o.Key, p, o.Partition)
		}
	}
}

// TestStaleStoreNeverEmitsOlderState runs two instances, one after the other,
// on separate stores: the second restores its empty store from the current
// topic, then the first comes back with a store that missed the second's work
// and catches up without emitting. The output of the key never goes back.
func TestStaleStoreNeverEmitsOlderState(t *testing.T) {
	f := newFixture(t, 1)
	dirA, dirB := t.TempDir(), t.TempDir()

	a := f.start(dirA)
	f.produce(f.event("wamid.S", "sent", 10))
	f.consume(f.cfg.CurrentTopic, countAtLeast(1))
	a.stop(t)

	b := f.start(dirB) // empty store: restores from the current topic
	if st := b.p.Stats(); st.Restored != 1 {
		t.Errorf("second instance restored %d states, want 1", st.Restored)
	}
	f.produce(f.event("wamid.S", "read", 30))
	f.consume(f.cfg.CurrentTopic, countAtLeast(2))
	b.stop(t)

	a = f.start(dirA) // stale: its store ends before read
	f.produce(f.event("wamid.S", "delivered", 20))
	out := f.consume(f.cfg.CurrentTopic, countAtLeast(3))
	a.stop(t)

	var statuses []string
	for _, o := range out {
		v, err := f.codec.DecodeMessageStatus(o.Value)
		if err != nil {
			t.Fatal(err)
		}
		statuses = append(statuses, v.Status)
	}
	want := []string{"sent", "read", "read"}
	if fmt.Sprint(statuses) != fmt.Sprint(want) {
		t.Fatalf("emitted statuses %v, want %v", statuses, want)
	}
}

func countAtLeast(n int) func([]*kgo.Record) error {
	return func(recs []*kgo.Record) error {
		if len(recs) < n {
			return fmt.Errorf("%d of %d records", len(recs), n)
		}
		return nil
	}
}

// TestRestoreAfterLostDisk loses a processor's store after it folded
// messages; the next instance, on an empty store, restores every state from
// the current topic and keeps folding from the group's offset exactly as the
// first would have.
func TestRestoreAfterLostDisk(t *testing.T) {
	f := newFixture(t, 3)
	a := f.start(t.TempDir())
	var recs []*kgo.Record
	for i := range 30 {
		w := fmt.Sprintf("wamid.L%02d", i)
		recs = append(recs, f.event(w, "sent", 100), f.event(w, "read", 130))
	}
	f.produce(recs...)
	f.consume(f.cfg.CurrentTopic, countAtLeast(30))
	kafkatest.Eventually(t, 30*time.Second, func() error {
		if st := a.p.Stats(); st.Events < uint64(len(recs)) {
			return fmt.Errorf("%d of %d events folded", st.Events, len(recs))
		}
		return nil
	})
	a.stop(t)

	b := f.start(t.TempDir())
	defer b.stop(t)
	if st := b.p.Stats(); st.Restored < 30 {
		t.Fatalf("restored %d states, want at least 30", st.Restored)
	}
	for i := range 30 {
		w := fmt.Sprintf("wamid.L%02d", i)
		v, _, err := b.p.Get(w)
		if err != nil {
			t.Fatal(err)
		}
		if v.Status != "read" || v.SentAt != 100 || v.ReadAt != 130 {
			t.Fatalf("%s after restore: %+v", w, v)
		}
	}
	// A late delivered still fills delivered_at on the restored state.
	f.produce(f.event("wamid.L00", "delivered", 110))
	kafkatest.Eventually(t, 30*time.Second, func() error {
		v, _, err := b.p.Get("wamid.L00")
		if err != nil {
			return err
		}
		if v.Status != "read" || v.DeliveredAt != 110 || v.SentAt != 100 {
			return fmt.Errorf("state %+v", v)
		}
		return nil
	})
}

func TestDecide(t *testing.T) {
	for _, tc := range []struct {
		name                      string
		stored                    bool
		next, committed, logStart int64
		want                      processor.ResumeDecision
	}{
		{"resume", true, 50, 50, 0, processor.ResumeDecision{At: 50, CatchUpFrom: -1}},
		{"store behind: catch up silently", true, 40, 50, 0, processor.ResumeDecision{At: 50, CatchUpFrom: 40}},
		{"store ahead: restore", true, 60, 50, 0, processor.ResumeDecision{At: 50, CatchUpFrom: -1, Restore: true}},
		{"store older than the log", true, 40, 50, 45, processor.ResumeDecision{At: 50, CatchUpFrom: -1, Restore: true}},
		{"group offset older than the log", true, 3, 5, 9, processor.ResumeDecision{At: 9, CatchUpFrom: -1, Restore: true}},
		{"lost store", false, 0, 50, 0, processor.ResumeDecision{At: 50, CatchUpFrom: -1, Restore: true}},
		{"new partition", false, 0, -2, 0, processor.ResumeDecision{At: 0, CatchUpFrom: -1}},
		{"new partition, log trimmed", false, 0, -2, 7, processor.ResumeDecision{At: 7, CatchUpFrom: -1}},
		{"no group offset, store kept", true, 30, -1, 0, processor.ResumeDecision{At: 30, CatchUpFrom: -1}},
		{"no group offset, store older than the log", true, 3, -1, 9, processor.ResumeDecision{At: 9, CatchUpFrom: -1, Restore: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := processor.Decide(tc.stored, tc.next, tc.committed, tc.logStart); got != tc.want {
				t.Fatalf("decide = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestRecreatedEventsTopic deletes and recreates the events topic under a
// running processor: it stops with ErrTopicRecreated, and restarted on the
// same store it serves nothing folded from the old topic.
func TestRecreatedEventsTopic(t *testing.T) {
	f := newFixture(t, 2)
	f.cfg.TopicCheckInterval = 200 * time.Millisecond
	dir := t.TempDir()
	r := f.start(dir)
	f.produce(f.event("wamid.R", "sent", 10), f.event("wamid.R", "read", 20))
	kafkatest.Eventually(t, 30*time.Second, func() error {
		v, _, err := r.p.Get("wamid.R")
		if err != nil {
			return err
		}
		if v.Status != "read" {
			return fmt.Errorf("status %s", v.Status)
		}
		return nil
	})

	adm := kadm.NewClient(f.cl)
	if _, err := adm.DeleteTopics(t.Context(), f.cfg.EventsTopic); err != nil {
		t.Fatal(err)
	}
	kafkatest.Eventually(t, 30*time.Second, func() error {
		resp, err := adm.CreateTopic(t.Context(), 2, -1, nil, f.cfg.EventsTopic)
		if err == nil {
			err = resp.Err
		}
		return err
	})
	// An event of the new topic: it must not be folded into the old state.
	// (A new client: the fixture's knows the old topic's id.)
	cl, err := kgo.NewClient(kgo.SeedBrokers(f.cluster.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(t.Context(), f.event("wamid.R", "sent", 30)).FirstErr(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-r.done:
		if !errors.Is(err, processor.ErrTopicRecreated) {
			t.Fatalf("Run = %v, want ErrTopicRecreated", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the processor did not notice the recreated topic")
	}
	if err := r.store.Close(); err != nil {
		t.Fatal(err)
	}

	r = f.start(dir)
	defer r.stop(t)
	kafkatest.Eventually(t, 30*time.Second, func() error {
		v, _, err := r.p.Get("wamid.R")
		if err != nil {
			return err
		}
		if v.Status != "sent" || v.ReadAt != 0 || v.SentAt != 30 {
			return fmt.Errorf("state %+v mixes in the old topic", v)
		}
		return nil
	})
}

// TestScaleOutServesEveryMessage runs two instances sharing the partitions,
// with either group protocol: each answers for every message, those of its
// own partitions from its store and the others from its view of the current
// topic.
func TestScaleOutServesEveryMessage(t *testing.T) {
	for _, protocol := range []string{"classic", "consumer"} {
		t.Run(protocol, func(t *testing.T) { testScaleOut(t, protocol) })
	}
}

func testScaleOut(t *testing.T, protocol string) {
	f := newFixture(t, 4)
	f.cfg.ServeAll = true
	f.cfg.GroupProtocol = protocol
	a := f.start(t.TempDir())
	defer a.stop(t)
	b := f.start(t.TempDir())
	defer b.stop(t)
	kafkatest.Eventually(t, 60*time.Second, func() error {
		if na, nb := len(a.p.Owned()), len(b.p.Owned()); na == 0 || nb == 0 || na+nb != 4 {
			return fmt.Errorf("a owns %d partitions, b %d", na, nb)
		}
		return nil
	})

	var recs []*kgo.Record
	for i := range 40 {
		w := fmt.Sprintf("wamid.S%02d", i)
		recs = append(recs, f.event(w, "read", 200), f.event(w, "delivered", 150))
	}
	f.produce(recs...)
	for _, r := range []*running{a, b} {
		kafkatest.Eventually(t, 60*time.Second, func() error {
			for i := range 40 {
				w := fmt.Sprintf("wamid.S%02d", i)
				v, _, err := r.p.Get(w)
				if err != nil {
					return fmt.Errorf("%s: %w (a %+v, b %+v)", w, err, a.p.Stats(), b.p.Stats())
				}
				if v.Status != "read" || v.DeliveredAt != 150 {
					return fmt.Errorf("%s: %+v", w, v)
				}
			}
			return nil
		})
	}
}
