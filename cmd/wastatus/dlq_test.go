package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wastatus/wastatus/edge"
	"github.com/wastatus/wastatus/processor"
	"github.com/wastatus/wastatus/schemas"
	"github.com/wastatus/wastatus/state"
)

// processorDeadLetter is a dead letter as the processor writes it for rec.
func (e *kafkaEnv) processorDeadLetter(rec *kgo.Record, reason string, offset int64) *kgo.Record {
	return &kgo.Record{Topic: e.cfg.DLQTopic, Key: rec.Key, Value: rec.Value, Headers: append([]kgo.RecordHeader{
		{Key: "reason", Value: []byte(reason)},
		{Key: "error", Value: []byte("some error")},
		{Key: "source", Value: []byte("processor")},
		{Key: "source.topic", Value: []byte(e.cfg.EventsTopic)},
		{Key: "source.partition", Value: []byte("0")},
		{Key: "source.offset", Value: []byte(strconv.FormatInt(offset, 10))},
	}, rec.Headers...)}
}

// edgeDeadLetter is a dead letter as the edge writes it for a raw status.
func (e *kafkaEnv) edgeDeadLetter(key, raw string, extra ...kgo.RecordHeader) *kgo.Record {
	return &kgo.Record{Topic: e.cfg.DLQTopic, Key: []byte(key), Value: []byte(raw), Headers: append([]kgo.RecordHeader{
		{Key: "error", Value: []byte("schemas: status field has the wrong JSON type")},
		{Key: "source", Value: []byte("edge")},
		{Key: "region", Value: []byte("eu-west-1")},
	}, extra...)}
}

// TestDLQListAndReplay lists dead letters of both sources, then replays
// them: the ones this version folds go back into the events topic (as they
// were, or parsed from the edge's raw JSON), the others are reported; a
// second replay is harmless.
func TestDLQListAndReplay(t *testing.T) {
	e := newKafkaEnv(t, 2)
	fixed := e.event(t, "wamid.DLQ1", "read", 1_750_000_100)      // its processor was since fixed
	unknown := e.event(t, "wamid.DLQ3", "deleted", 1_750_000_100) // still unknown
	e.produce(t,
		e.processorDeadLetter(fixed, processor.ReasonUnknownStatus, 4),
		e.processorDeadLetter(unknown, processor.ReasonUnknownStatus, 5),
		e.processorDeadLetter(&kgo.Record{Key: []byte("wamid.DLQ4"), Value: []byte{0xff, 0xfe, 'x', 0x00}}, processor.ReasonUndecodable, 6),
		e.edgeDeadLetter("wamid.DLQ2", `{"id":"wamid.DLQ2","status":"delivered","timestamp":"1750000050","recipient_id":"16505551234"}`),
		e.edgeDeadLetter("", `{"status":"read","timestamp":"1750000050"}`),
		e.edgeDeadLetter("wamid.DLQ5", `{"id":"wamid.DLQ5","status":"rea`, kgo.RecordHeader{Key: "truncated", Value: []byte("2000000")}),
	)
	args := func(a ...string) []string { return append(append([]string{"dlq"}, a...), e.kafkaArgs()...) }

	out, errOut, err := runWastatus(t, args("list")...)
	if err != nil {
		t.Fatalf("dlq list: %v\n%s", err, errOut)
	}
	for _, want := range []string{"PARTITION", "6 dead letters in " + e.cfg.DLQTopic, "unknown-status", "undecodable", "eu-west-1", "processor " + e.cfg.EventsTopic + "[0]@4",
		`StatusEvent wamid=wamid.DLQ1 status="read"`, `{"id":"wamid.DLQ2"`, "(cut from 2000000)", "0xfffe7800"} {
		if !strings.Contains(out, want) {
			t.Errorf("dlq list lacks %q:\n%s", want, out)
		}
	}
	out, _, err = runWastatus(t, args("list", "--limit", "2")...)
	if err != nil || !strings.Contains(out, "first 2 dead letters") || strings.Count(out, "\n") != 5 {
		t.Errorf("dlq list --limit 2: %v\n%s", err, out)
	}

	out, _, err = runWastatus(t, args("list", "--json")...)
	if err != nil {
		t.Fatal(err)
	}
	var listed []deadLetter
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var d deadLetter
		if err := json.Unmarshal(sc.Bytes(), &d); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		listed = append(listed, d)
	}
	if len(listed) != 6 {
		t.Fatalf("dlq list --json: %d lines, want 6:\n%s", len(listed), out)
	}
	sources := map[string]int{}
	for _, d := range listed {
		sources[d.Source]++
		if d.Key == "wamid.DLQ1" && (d.Reason != processor.ReasonUnknownStatus || d.SourceOffset == nil || *d.SourceOffset != 4 ||
			d.SourceTopic != e.cfg.EventsTopic || d.Region != "test" || d.ValueSize != len(fixed.Value)) {
			t.Errorf("processor dead letter listed as %+v", d)
		}
		if d.Key == "wamid.DLQ5" && (d.Truncated == nil || *d.Truncated != 2_000_000) {
			t.Errorf("truncated dead letter listed as %+v", d)
		}
	}
	if sources["processor"] != 3 || sources["edge"] != 3 {
		t.Errorf("sources %v", sources)
	}

	out, _, err = runWastatus(t, args("replay", "--dry-run")...)
	if err != nil || !strings.Contains(out, "would replay 2 events") || !strings.Contains(out, "4 still rejected") {
		t.Fatalf("dlq replay --dry-run: %v\n%s", err, out)
	}
	if recs := readAll(t, e, e.cfg.EventsTopic); len(recs) != 0 {
		t.Fatalf("a dry run wrote %d events", len(recs))
	}

	out, _, err = runWastatus(t, args("replay", "--reason", processor.ReasonUnknownStatus)...)
	if err != nil || !strings.Contains(out, "6 dead letters read") || !strings.Contains(out, "2 selected; replayed 1 events") ||
		!strings.Contains(out, "wamid.DLQ3: unknown-status") {
		t.Fatalf("dlq replay --reason unknown-status: %v\n%s", err, out)
	}

	out, _, err = runWastatus(t, args("replay")...)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"replayed 2 events to " + e.cfg.EventsTopic + " (1 from processor dead letters, 1 from edge dead letters); 4 still rejected",
		"wamid.DLQ3: unknown-status", "wamid.DLQ4: undecodable", "-: rejected-by-edge: schemas: status has no id", "wamid.DLQ5: truncated",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("dlq replay lacks %q:\n%s", want, out)
		}
	}

	events := readAll(t, e, e.cfg.EventsTopic)
	var keys []string
	for _, r := range events {
		keys = append(keys, string(r.Key))
		if from := header(r, headerReplayedFrom); !strings.HasPrefix(from, e.cfg.DLQTopic+"/") {
			t.Errorf("%s: replayed-from %q", r.Key, from)
		}
		if header(r, "reason") != "" || header(r, "source") != "" {
			t.Errorf("%s: dead-letter headers kept: %v", r.Key, r.Headers)
		}
		switch string(r.Key) {
		case "wamid.DLQ1":
			if string(r.Value) != string(fixed.Value) || header(r, "region") != "test" {
				t.Errorf("processor dead letter replayed as %v %q", r.Headers, r.Value)
			}
		case "wamid.DLQ2":
			ev, err := e.codec.DecodeStatusEvent(r.Value)
			if err != nil {
				t.Fatal(err)
			}
			if ev.Status != "delivered" || ev.Timestamp != 1_750_000_050 || ev.Region != "eu-west-1" || header(r, "region") != "eu-west-1" ||
				ev.ReceivedAt <= 0 || ev.ReceivedAt > time.Now().UnixMilli() || !strings.Contains(string(ev.Raw), `"wamid.DLQ2"`) {
				t.Errorf("edge dead letter replayed as %+v, headers %v", ev, r.Headers)
			}
		}
	}
	slices.Sort(keys)
	if want := []string{"wamid.DLQ1", "wamid.DLQ1", "wamid.DLQ2"}; !slices.Equal(keys, want) {
		t.Fatalf("events topic holds %v, want %v", keys, want)
	}

	// Replayed twice, DLQ1 folds to what one replay gives.
	store, err := state.Open(t.TempDir(), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if _, err := processor.RebuildFromEvents(t.Context(), e.cfg, store, e.codec, []int32{0, 1}, nil); err != nil {
		t.Fatal(err)
	}
	for _, r := range events {
		m, ok, err := store.Get(r.Partition, string(r.Key))
		if err != nil || !ok {
			t.Fatalf("%s: %t, %v", r.Key, ok, err)
		}
		v := m.View(state.FailedWins)
		want := schemas.MessageStatus{WAMID: "wamid.DLQ1", Status: "read", ReadAt: 1_750_000_100}
		if r.Key[len(r.Key)-1] == '2' {
			want = schemas.MessageStatus{WAMID: "wamid.DLQ2", Status: "delivered", DeliveredAt: 1_750_000_050}
		}
		if v.Status != want.Status || v.ReadAt != want.ReadAt || v.DeliveredAt != want.DeliveredAt || v.RecipientID != "16505551234" {
			t.Errorf("%s folded to %+v", r.Key, v)
		}
	}
}

func readAll(t *testing.T, e *kafkaEnv, topic string) []*kgo.Record {
	t.Helper()
	var recs []*kgo.Record
	if _, err := processor.ReadTopic(t.Context(), e.cfg, topic, func(r *kgo.Record) error {
		recs = append(recs, r)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return recs
}

func TestDLQReplayFlags(t *testing.T) {
	_, _, err := runWastatus(t, "dlq", "replay", "--brokers", "127.0.0.1:1", "--source", "elsewhere")
	if err == nil || !strings.Contains(err.Error(), "--source") {
		t.Fatalf("--source elsewhere: %v", err)
	}
	_, _, err = runWastatus(t, "dlq", "list")
	if err == nil || !strings.Contains(err.Error(), "--brokers") {
		t.Fatalf("no brokers: %v", err)
	}
}

// TestDLQReplayEdgeEnvelope sends a status through a real edge that is too
// small for it, so it becomes a dead letter, then replays it once the limit
// is gone (the replay admits by the processor's limit): the replayed event
// equals the one the edge would have written, envelope ids and receive time
// included, not a poorer copy.
func TestDLQReplayEdgeEnvelope(t *testing.T) {
	e := newKafkaEnv(t, 2)
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(e.cfg.Brokers...)}, edge.ProducerOpts()...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	received := time.Date(2025, 6, 16, 10, 0, 0, 123e6, time.UTC)
	recv, err := edge.New(edge.Config{
		EventsTopic:           e.cfg.EventsTopic,
		DLQTopic:              e.cfg.DLQTopic,
		Region:                "eu-west-1",
		InsecureSkipSignature: true,
		MaxRecordBytes:        1024, // the event (raw JSON and its fields) is over, the dead letter under
		Now:                   func() time.Time { return received },
	}, cl, e.codec)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	recv.Register(mux)
	st := `{"id":"wamid.ENV1","status":"read","timestamp":"1750030073","recipient_id":"16505551234","biz_opaque_callback_data":"` +
		strings.Repeat("x", 500) + `"}`
	body := []byte(`{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"field":"messages","value":{` +
		`"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},` +
		`"statuses":[` + st + `]}}]}]}`)
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, httptest.NewRequestWithContext(t.Context(), http.MethodPost, edge.WebhookPath, bytes.NewReader(body)))
	if w.Code != 200 || w.Body.String() != `{"accepted":0,"rejected":1}`+"\n" {
		t.Fatalf("edge answered %d %s, want the status dead-lettered", w.Code, w.Body)
	}
	dl := readAll(t, e, e.cfg.DLQTopic)
	if len(dl) != 1 || header(dl[0], edge.HeaderTruncated) != "" || header(dl[0], edge.HeaderWABAID) != "102290129340398" {
		t.Fatalf("dead letters %v", dl)
	}

	out, _, err := runWastatus(t, append([]string{"dlq", "replay"}, e.kafkaArgs()...)...)
	if err != nil || !strings.Contains(out, "replayed 1 events") {
		t.Fatalf("dlq replay: %v\n%s", err, out)
	}
	events := readAll(t, e, e.cfg.EventsTopic)
	if len(events) != 1 {
		t.Fatalf("events topic holds %d records, want 1", len(events))
	}
	got, err := e.codec.DecodeStatusEvent(events[0].Value)
	if err != nil {
		t.Fatal(err)
	}
	orig, err := schemas.ParseWebhook(body, "eu-west-1", received.UnixMilli())
	if err != nil || len(orig.Events) != 1 {
		t.Fatalf("ParseWebhook: %+v, %v", orig, err)
	}
	if want := orig.Events[0]; !reflect.DeepEqual(got, want) {
		t.Errorf("replayed event\n got %+v\nwant %+v", got, want)
	}
	if string(events[0].Key) != "wamid.ENV1" || header(events[0], edge.HeaderRegion) != "eu-west-1" {
		t.Errorf("replayed record key %q headers %v", events[0].Key, events[0].Headers)
	}
}
