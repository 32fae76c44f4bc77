package processor_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wastatus/wastatus/internal/kafkatest"
	"github.com/wastatus/wastatus/processor"
	"github.com/wastatus/wastatus/schemas"
	"github.com/wastatus/wastatus/state"
)

// rebuildEvents returns events for n messages in a random order, with
// duplicates, attributes on some, and poison between them: the records and
// how many of them are valid events.
func rebuildEvents(t *testing.T, f *fixture, rng *rand.Rand, n int) []*kgo.Record {
	t.Helper()
	var recs []*kgo.Record
	statuses := []string{"sent", "delivered", "read", "played", "failed"}
	for i := range n {
		wamid := fmt.Sprintf("wamid.RB%03d", i)
		k := 1 + rng.IntN(4)
		for j := range k {
			ev := schemas.StatusEvent{
				WAMID: wamid, Status: statuses[rng.IntN(len(statuses))], Timestamp: 1_750_000_000 + int64(rng.IntN(100)),
				RecipientID: "16505551234", Region: "test", ReceivedAt: 1_750_000_000_000 + int64(rng.IntN(100_000)), Raw: []byte(`{}`),
			}
			if j == 0 && i%3 == 0 {
				ev.Conversation = &schemas.Conversation{ID: "conv-" + strconv.Itoa(i), OriginType: "service"}
				ev.Pricing = &schemas.Pricing{PricingModel: "PMP", Category: "service"}
			}
			if ev.Status == "failed" {
				ev.Errors = []schemas.Error{{Code: 131026, Title: "Message undeliverable"}}
			}
			v, err := f.codec.AppendStatusEvent(nil, &ev)
			if err != nil {
				t.Fatal(err)
			}
			rec := &kgo.Record{Topic: f.cfg.EventsTopic, Key: []byte(wamid), Value: v}
			recs = append(recs, rec)
			if rng.IntN(4) == 0 {
				dup := *rec // a duplicate, as Meta sends them
				recs = append(recs, &dup)
			}
		}
	}
	rng.Shuffle(len(recs), func(i, j int) { recs[i], recs[j] = recs[j], recs[i] })
	mismatch := f.event("wamid.RB000", "read", 1_750_000_500)
	mismatch.Key = []byte("wamid.other")
	return append(recs,
		&kgo.Record{Topic: f.cfg.EventsTopic, Key: []byte("wamid.RB001"), Value: []byte("not avro")},
		f.event("wamid.RB002", "deleted", 1_750_000_500),
		mismatch,
	)
}

// collectDifferences returns a report function and the differences it got.
func collectDifferences() (func(processor.Difference), func() []processor.Difference) {
	var (
		mu   sync.Mutex
		diff []processor.Difference
	)
	return func(d processor.Difference) {
			mu.Lock()
			defer mu.Unlock()
			diff = append(diff, d)
		}, func() []processor.Difference {
			mu.Lock()
			defer mu.Unlock()
			return slices.Clone(diff)
		}
}

// TestRebuildFromEventsAndVerify folds events with a running processor,
// rebuilds a fresh store from the events topic while it runs, and verifies
// the rebuilt store against the current topic: no difference. Then it
// tampers with the current topic and Verify reports exactly what changed.
func TestRebuildFromEventsAndVerify(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	const messages = 60
	f := newFixture(t, 3)
	r := f.start(t.TempDir())
	defer r.stop(t)

	recs := rebuildEvents(t, f, rng, messages)
	f.produce(recs...)
	kafkatest.Eventually(t, 60*time.Second, func() error {
		if st := r.p.Stats(); st.Events < uint64(len(recs)) {
			return fmt.Errorf("%d of %d events folded", st.Events, len(recs))
		}
		return nil
	})

	store, err := state.Open(t.TempDir(), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	parts := []int32{0, 1, 2}
	var (
		mu   sync.Mutex
		last = make(map[int32][2]int64)
	)
	n, err := processor.RebuildFromEvents(t.Context(), f.cfg, store, f.codec, parts, func(p int32, read, total int64) {
		mu.Lock()
		defer mu.Unlock()
		last[p] = [2]int64{read, total}
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(len(recs)) {
		t.Errorf("RebuildFromEvents read %d records, want %d", n, len(recs))
	}
	var progressed int64
	for _, p := range parts {
		if last[p][0] != last[p][1] {
			t.Errorf("partition %d: last progress %d of %d", p, last[p][0], last[p][1])
		}
		progressed += last[p][0]
		next, ok, err := store.NextOffset(p)
		if err != nil || !ok || next <= 0 {
			t.Errorf("partition %d: next offset %d, %t, %v", p, next, ok, err)
		}
	}
	if progressed != n {
		t.Errorf("progress reported %d records, want %d", progressed, n)
	}

	report, got := collectDifferences()
	res, err := processor.Verify(t.Context(), f.cfg, store, f.codec, parts, report)
	if err != nil {
		t.Fatal(err)
	}
	if d := got(); len(d) != 0 || res.Differences() != 0 {
		t.Fatalf("verify after rebuild: %+v, differences %v", res, d)
	}
	if res.Messages != messages || res.Equal != messages {
		t.Fatalf("verify compared %+v, want %d equal messages", res, messages)
	}

	// Rebuilding over a store that has state drops it first: the same result.
	if _, err := processor.RebuildFromEvents(t.Context(), f.cfg, store, f.codec, parts, nil); err != nil {
		t.Fatal(err)
	}
	if res, err := processor.Verify(t.Context(), f.cfg, store, f.codec, parts, nil); err != nil || res.Differences() != 0 {
		t.Fatalf("verify after a second rebuild: %+v, %v", res, err)
	}

	// Tamper with one message: the topic's latest state gains an earlier
	// sent, which only the topic has seen.
	const tampered = "wamid.RB007"
	part, _ := r.p.Partition(tampered)
	m, ok, err := store.Get(part, tampered)
	if err != nil || !ok {
		t.Fatalf("get %s: %t, %v", tampered, ok, err)
	}
	before := m.View(store.Policy())
	sent := schemas.StatusEvent{WAMID: tampered, Status: "sent", Timestamp: 1_749_999_000, RecipientID: "16505551234"}
	if _, err := m.Apply(&sent, store.Policy()); err != nil {
		t.Fatal(err)
	}
	f.produce(f.state(&m, store.Policy()))

	report, got = collectDifferences()
	res, err = processor.Verify(t.Context(), f.cfg, store, f.codec, parts, report)
	if err != nil {
		t.Fatal(err)
	}
	diffs := got()
	if len(diffs) != 1 || res.Differences() != 1 || res.Differing != 1 {
		t.Fatalf("verify after tampering: %+v, differences %v", res, diffs)
	}
	d := diffs[0]
	if d.WAMID != tampered || d.Partition != part || d.Kind != processor.Differs || d.Order != processor.StoreBehind {
		t.Fatalf("difference %v", d)
	}
	if len(d.Fields) == 0 || d.Fields[0].Field != "sent_at" ||
		d.Fields[0].Store != strconv.FormatInt(before.SentAt, 10) || d.Fields[0].Topic != "1749999000" {
		t.Errorf("fields %+v, want sent_at first, from %d to 1749999000", d.Fields, before.SentAt)
	}
	for _, fd := range d.Fields[1:] {
		if fd.Field != "sources" { // the sent may now source recipient_id
			t.Errorf("unexpected field difference %+v", fd)
		}
	}
	t.Logf("reported: %s", d)

	// A tombstone, a message the store never saw, and an undecodable value.
	const gone, unknown, garbled = "wamid.RB011", "wamid.NEVER", "wamid.RB012"
	var ghost state.Message
	ghostEv := schemas.StatusEvent{WAMID: unknown, Status: "sent", Timestamp: 1_750_000_001}
	if _, err := ghost.Apply(&ghostEv, store.Policy()); err != nil {
		t.Fatal(err)
	}
	f.produce(
		&kgo.Record{Topic: f.cfg.CurrentTopic, Key: []byte(gone)},
		f.state(&ghost, store.Policy()),
		&kgo.Record{Topic: f.cfg.CurrentTopic, Key: []byte(garbled), Value: []byte("not avro")},
	)
	report, got = collectDifferences()
	res, err = processor.Verify(t.Context(), f.cfg, store, f.codec, parts, report)
	if err != nil {
		t.Fatal(err)
	}
	kinds := make(map[string]processor.DifferenceKind)
	for _, d := range got() {
		kinds[d.WAMID] = d.Kind
	}
	want := map[string]processor.DifferenceKind{tampered: processor.Differs, gone: processor.MissingInTopic,
		unknown: processor.MissingInStore, garbled: processor.Unreadable}
	if fmt.Sprint(kinds) != fmt.Sprint(want) {
		t.Fatalf("differences %v, want %v", kinds, want)
	}
	if res.Messages != messages+1 || res.Equal != messages-3 || res.Differences() != 4 {
		t.Fatalf("verify result %+v", res)
	}
}

// state returns a current-topic record holding m's view.
func (f *fixture) state(m *state.Message, p state.Policy) *kgo.Record {
	f.t.Helper()
	v := m.View(p)
	val, err := f.codec.AppendMessageStatus(nil, &v)
	if err != nil {
		f.t.Fatal(err)
	}
	return &kgo.Record{Topic: f.cfg.CurrentTopic, Key: []byte(m.WAMID()), Value: val}
}

// TestRebuildRefusesUnknownPartition asks for a partition the events topic
// does not have.
func TestRebuildRefusesUnknownPartition(t *testing.T) {
	f := newFixture(t, 2)
	if _, err := processor.EnsureTopics(t.Context(), kadm.NewClient(f.cl), f.cfg, true); err != nil {
		t.Fatal(err)
	}
	store, err := state.Open(t.TempDir(), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if _, err := processor.RebuildFromEvents(t.Context(), f.cfg, store, f.codec, []int32{0, 5}, nil); err == nil {
		t.Fatal("rebuild of partition 5 of a 2-partition topic: want an error")
	}
	if _, err := processor.Verify(t.Context(), f.cfg, store, f.codec, []int32{7}, nil); err == nil {
		t.Fatal("verify of partition 7 of a 2-partition topic: want an error")
	}
	if _, err := processor.RebuildFromEvents(t.Context(), processor.Config{}, store, f.codec, []int32{0}, nil); !errors.Is(err, processor.ErrConfig) {
		t.Fatalf("rebuild without brokers: %v, want ErrConfig", err)
	}
	if _, err := processor.Verify(t.Context(), processor.Config{}, store, f.codec, []int32{0}, nil); !errors.Is(err, processor.ErrConfig) {
		t.Fatalf("verify without brokers: %v, want ErrConfig", err)
	}
}

// BenchmarkRebuildFromEvents measures a rebuild from the events topic:
// WASTATUS_BENCH_EVENTS events (default 100,000; three per message, out of
// order, with the raw JSON an edge keeps) over 12 partitions are folded
// into an empty store. It reports events per second, and, in a separate
// metric, the messages per second of a Verify of the result against a
// current topic holding the same states.
//
//	WASTATUS_BENCH_EVENTS=1000000 go test -run '^$' -bench RebuildFromEvents -benchtime 1x ./processor/
func BenchmarkRebuildFromEvents(b *testing.B) {
	n, cfg, codec, cl := benchSetup(b, "WASTATUS_BENCH_EVENTS")
	fail := func(_ *kgo.Record, err error) {
		if err != nil {
			panic(err)
		}
	}
	statuses := []string{"read", "sent", "delivered"}
	messages := (n + 2) / 3
	for i := range messages {
		wamid := fmt.Sprintf("wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQz%09dQUFERjg0NDEz", i)
		var m state.Message
		for k := range min(3, n-3*i) {
			ts := 1_750_000_000 + int64(i%3600) + int64(k)
			ev := schemas.StatusEvent{
				WAMID: wamid, Status: statuses[k], Timestamp: ts, RecipientID: "16505551234",
				PhoneNumberID: "106540352242922", DisplayPhoneNumber: "15550783881", WABAID: "102290129340398",
				Region: "eu-west-1", ReceivedAt: ts*1000 + 250,
				Raw: fmt.Appendf(nil, `{"id":%q,"status":%q,"timestamp":"%d","recipient_id":"16505551234"}`, wamid, statuses[k], ts),
			}
			val, err := codec.AppendStatusEvent(nil, &ev)
			if err != nil {
				b.Fatal(err)
			}
			cl.Produce(b.Context(), &kgo.Record{Topic: cfg.EventsTopic, Key: []byte(wamid), Value: val}, fail)
			if _, err := m.Apply(&ev, state.FailedWins); err != nil {
				b.Fatal(err)
			}
		}
		v := m.View(state.FailedWins)
		val, err := codec.AppendMessageStatus(nil, &v)
		if err != nil {
			b.Fatal(err)
		}
		cl.Produce(b.Context(), &kgo.Record{Topic: cfg.CurrentTopic, Key: []byte(wamid), Value: val}, fail)
	}
	if err := cl.Flush(b.Context()); err != nil {
		b.Fatal(err)
	}
	parts := make([]int32, 12)
	for i := range parts {
		parts[i] = int32(i)
	}
	var (
		read     int64
		verified int64
		verifyIn time.Duration
	)
	for b.Loop() {
		b.StopTimer()
		store, err := state.Open(b.TempDir(), state.Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		r, err := processor.RebuildFromEvents(b.Context(), cfg, store, codec, parts, nil)
		if err != nil {
			b.Fatal(err)
		}
		read += r
		b.StopTimer()
		began := time.Now()
		res, err := processor.Verify(b.Context(), cfg, store, codec, parts, nil)
		if err != nil {
			b.Fatal(err)
		}
		if res.Differences() != 0 || res.Equal != int64(messages) {
			b.Fatalf("verify: %+v", res)
		}
		verifyIn += time.Since(began)
		verified += res.Messages
		store.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(read)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(verified)/verifyIn.Seconds(), "verified-msgs/s")
}
