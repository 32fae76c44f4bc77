package bench

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wastatus/wastatus/edge"
	"github.com/wastatus/wastatus/internal/gen"
	"github.com/wastatus/wastatus/internal/kafkatest"
	"github.com/wastatus/wastatus/schemas"
)

// testStream is a workload with every kind of status object the bench
// writes: each status, group participants, every region, duplicates.
func testStream(events int) *gen.Stream {
	return gen.NewStream(gen.StreamOptions{
		Messages: events / 3, Events: events, DupRate: 0.2, LateRate: 0.1, GroupRate: 0.2, Seed: 7,
	})
}

// edgeEvent is the event the edge makes of a's webhook, received at
// receivedAt: ParseWebhook, as the edge calls it.
func edgeEvent(t *testing.T, a *gen.Arrival, receivedAt int64) schemas.StatusEvent {
	t.Helper()
	wh, err := schemas.ParseWebhook(appendWebhook(nil, a), a.Region, receivedAt)
	if err != nil {
		t.Fatalf("parse the webhook of %+v: %v", a, err)
	}
	if len(wh.Events) != 1 {
		t.Fatalf("webhook of %+v: %d events, %d rejected, want 1 event", a, len(wh.Events), len(wh.Rejected))
	}
	return wh.Events[0]
}

// TestRecordIsTheEdges holds the preload's records to the edge's: for every
// arrival of a workload, the built event equals what ParseWebhook makes of
// its webhook, and the record's key, value bytes and headers are what the
// edge writes for that event.
func TestRecordIsTheEdges(t *testing.T) {
	codec, err := schemas.NewCodec(schemas.IDs{})
	if err != nil {
		t.Fatal(err)
	}
	const receivedAt = 1_750_000_500_123
	rb := newRecordBuilder(codec, "events")
	seen := map[string]int{}
	s := testStream(6000)
	for a, ok := s.Next(); ok; a, ok = s.Next() {
		want := edgeEvent(t, &a, receivedAt)
		rec, err := rb.record(&a, receivedAt)
		if err != nil {
			t.Fatal(err)
		}
		raw := appendStatusJSON(nil, &a)
		if got := statusEvent(&a, receivedAt, raw, new(true)); !reflect.DeepEqual(got, want) {
			t.Fatalf("built event differs from the edge's for %+v:\n got %s\nwant %s", a, eventKey(got), eventKey(want))
		}
		wantValue, err := codec.AppendStatusEvent(nil, &want)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case rec.Topic != "events" || string(rec.Key) != want.WAMID:
			t.Fatalf("record topic %q key %q, want events and %q", rec.Topic, rec.Key, want.WAMID)
		case !bytes.Equal(rec.Value, wantValue):
			t.Fatalf("value of %+v differs from the edge's encoding:\n got %x\nwant %x", a, rec.Value, wantValue)
		case len(rec.Headers) != 1 || rec.Headers[0].Key != edge.HeaderRegion || string(rec.Headers[0].Value) != a.Region:
			t.Fatalf("headers %v, want only %s=%s", rec.Headers, edge.HeaderRegion, a.Region)
		}
		kind := want.Status
		if want.RecipientType == "group" {
			kind = "group " + kind
		}
		seen[kind]++
		seen[a.Region]++
	}
	// The comparison means something only if the workload has every shape.
	for _, kind := range []string{"sent", "delivered", "read", "failed", "played", "group sent", "group read",
		"us-east-1", "eu-west-1", "ap-south-1"} {
		if seen[kind] == 0 {
			t.Errorf("workload has no %s event: %v", kind, seen)
		}
	}
}

// TestPreloadWritesTheEdgesRecords preloads a workload to a broker (kfake,
// or the real one of WASTATUS_TEST_BROKERS) and reads the topic back: every
// event the stream made is there exactly once per delivery, each value
// decoding to the event the edge would have produced and byte-identical to
// the edge's encoding of it.
func TestPreloadWritesTheEdgesRecords(t *testing.T) {
	c := kafkatest.New(t)
	const events = 5000
	b, err := New(Config{Brokers: c.Brokers, Events: events, Messages: events / 3, GroupRate: 0.2, Partitions: 4, WorkDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	topic := b.topic("events")
	if err := b.createProductTopics(ctx, topic, b.topic("current"), b.topic("dlq")); err != nil {
		t.Fatal(err)
	}
	before := time.Now().UnixMilli()
	n, msgs, err := b.preload(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	after := time.Now().UnixMilli()
	if n != events || msgs <= 0 || msgs > events {
		t.Fatalf("preload wrote %d events over %d messages, want %d events", n, msgs, events)
	}

	// What the edge would have written, as a multiset of events without
	// their receive time (the preload stamps its own clock).
	want := map[string]int{}
	s := b.stream(events)
	for a, ok := s.Next(); ok; a, ok = s.Next() {
		want[eventKey(edgeEvent(t, &a, 0))]++
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for read := 0; read < events; {
		fs := cl.PollFetches(ctx)
		if err := fs.Err(); err != nil {
			t.Fatalf("after %d records: %v", read, err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			read++
			ev, err := b.codec.DecodeStatusEvent(r.Value)
			if err != nil {
				t.Fatalf("record %s/%d@%d: %v", r.Topic, r.Partition, r.Offset, err)
			}
			if ev.ReceivedAt < before || ev.ReceivedAt > after {
				t.Errorf("received_at %d outside the preload's %d..%d", ev.ReceivedAt, before, after)
			}
			enc, err := b.codec.AppendStatusEvent(nil, &ev)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case !bytes.Equal(enc, r.Value):
				t.Errorf("record %d@%d is not the codec's encoding of its own event", r.Partition, r.Offset)
			case string(r.Key) != ev.WAMID:
				t.Errorf("key %q, want the wamid %q", r.Key, ev.WAMID)
			case len(r.Headers) != 1 || r.Headers[0].Key != edge.HeaderRegion || string(r.Headers[0].Value) != ev.Region:
				t.Errorf("headers %v, want only %s=%s", r.Headers, edge.HeaderRegion, ev.Region)
			}
			ev.ReceivedAt = 0
			k := eventKey(ev)
			if want[k] == 0 {
				t.Fatalf("record %d@%d is an event the edge would not have written (or one too many): %+v", r.Partition, r.Offset, ev)
			}
			want[k]--
		})
	}
	for k, left := range want {
		if left != 0 {
			t.Errorf("%d deliveries of %s missing", left, k)
		}
	}
}

// eventKey identifies an event's contents, Raw included, for counting.
func eventKey(ev schemas.StatusEvent) string {
	conv, pricing := deref(ev.Conversation), derefPricing(ev.Pricing)
	ev.Conversation, ev.Pricing = nil, nil // their addresses would differ
	return fmt.Sprintf("%+v|%+v|%s", ev, conv, pricing)
}

func deref(c *schemas.Conversation) schemas.Conversation {
	if c == nil {
		return schemas.Conversation{}
	}
	return *c
}

func derefPricing(p *schemas.Pricing) string {
	if p == nil {
		return "none"
	}
	billable := "nil"
	if p.Billable != nil {
		billable = fmt.Sprint(*p.Billable)
	}
	return fmt.Sprintf("%s %s %s %s", billable, p.PricingModel, p.Type, p.Category)
}

// BenchmarkPreloadRecord compares the preload's two ways to make an event
// record: parsing the webhook body as the edge does, then encoding, and
// building the event from the arrival (what preload does).
func BenchmarkPreloadRecord(b *testing.B) {
	codec, err := schemas.NewCodec(schemas.IDs{})
	if err != nil {
		b.Fatal(err)
	}
	arrivals := make([]gen.Arrival, 0, 4096)
	s := testStream(4096)
	for a, ok := s.Next(); ok; a, ok = s.Next() {
		arrivals = append(arrivals, a)
	}
	b.Run("parse", func(b *testing.B) {
		var body, val []byte
		for i := 0; b.Loop(); i++ {
			a := &arrivals[i%len(arrivals)]
			body = appendWebhook(body[:0], a)
			wh, err := schemas.ParseWebhook(body, a.Region, 1_750_000_000_000)
			if err != nil {
				b.Fatal(err)
			}
			if val, err = codec.AppendStatusEvent(val[:0], &wh.Events[0]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("build", func(b *testing.B) {
		rb := newRecordBuilder(codec, "events")
		for i := 0; b.Loop(); i++ {
			if _, err := rb.record(&arrivals[i%len(arrivals)], 1_750_000_000_000); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("stream", func(b *testing.B) {
		s := testStream(1 << 30)
		for b.Loop() {
			s.Next()
		}
	})
}
