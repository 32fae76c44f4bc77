package schemas

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"testing"
)

// The fuzz targets are seeded from testdata: every webhook body, and every
// event they hold in Avro. Run one with, for example,
//
//	go test -run x -fuzz FuzzParseWebhook -fuzztime 20s ./schemas/

var statusSentinels = []error{
	ErrStatusNotObject, ErrNoWAMID, ErrNoStatus, ErrBadTimestamp, ErrMillisTimestamp, ErrFutureTimestamp, ErrBadField,
}

func sentinelOf(err error) error {
	for _, s := range statusSentinels {
		if errors.Is(err, s) {
			return s
		}
	}
	return nil
}

func testdataBodies(f *testing.F) [][]byte {
	f.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no testdata: %v", err)
	}
	var bodies [][]byte
	for _, file := range files {
		bodies = append(bodies, readTestdata(f, filepath.Base(file)))
	}
	return bodies
}

func FuzzParseWebhook(f *testing.F) {
	for _, body := range testdataBodies(f) {
		f.Add(body, testReceivedAt)
	}
	f.Add(envelope(`{"id":"w","status":"sent","timestamp":1}`, `{"id":"w","status":"sent","timestamp":"\u0031"}`), int64(0))
	f.Add([]byte(`{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{"statuses":[null,1,"x",[]]}}]}]}`), int64(1))

	c, err := NewCodec(IDs{})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte, receivedAt int64) {
		w, err := ParseWebhook(body, "r", receivedAt)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrNotWhatsApp) {
				t.Fatalf("error wraps no body sentinel: %v", err)
			}
			if !reflect.DeepEqual(w, Webhook{}) {
				t.Fatalf("non-zero Webhook with error %v", err)
			}
			return
		}
		if !json.Valid(body) {
			t.Fatal("invalid JSON accepted")
		}
		for i := range w.Events {
			ev := &w.Events[i]
			if ev.WAMID == "" || ev.Status == "" || ev.Timestamp <= 0 || ev.Timestamp >= maxSeconds ||
				(receivedAt > 0 && ev.Timestamp > receivedAt/1000+maxAheadSeconds) {
				t.Fatalf("event %d breaks a rule: %+v", i, ev)
			}
			if ev.Region != "r" || ev.ReceivedAt != receivedAt {
				t.Fatalf("event %d: region %q received %d", i, ev.Region, ev.ReceivedAt)
			}
			checkElement(t, body, ev.Raw)
			// Alone in a body with the same envelope, the element gives the
			// same event: nothing outside it leaks in.
			alone := parseAlone(t, ev.Raw, ev.WABAID, ev.PhoneNumberID, ev.DisplayPhoneNumber, receivedAt)
			if len(alone.Events) != 1 || !reflect.DeepEqual(alone.Events[0], *ev) {
				t.Fatalf("event %d parsed alone differs:\n got %+v\nwant %+v", i, alone, *ev)
			}
			// And it survives the events topic.
			b, err := c.AppendStatusEvent(nil, ev)
			if err != nil {
				t.Fatalf("event %d: encode: %v", i, err)
			}
			got, err := c.DecodeStatusEvent(b)
			if err != nil || !reflect.DeepEqual(got, *ev) {
				t.Fatalf("event %d: round trip %v:\n got %+v\nwant %+v", i, err, got, *ev)
			}
		}
		for i := range w.Rejected {
			rej := &w.Rejected[i]
			want := sentinelOf(rej.Err)
			if want == nil {
				t.Fatalf("rejected %d: error wraps no status sentinel: %v", i, rej.Err)
			}
			checkElement(t, body, rej.Raw)
			alone := parseAlone(t, rej.Raw, "", "", "", receivedAt)
			if len(alone.Rejected) != 1 || !errors.Is(alone.Rejected[0].Err, want) || alone.Rejected[0].WAMID != rej.WAMID {
				t.Fatalf("rejected %d (%v) parsed alone: %+v", i, rej.Err, alone)
			}
		}
	})
}

func checkElement(t *testing.T, body, raw []byte) {
	t.Helper()
	if !json.Valid(raw) || !bytes.Contains(body, raw) {
		t.Fatalf("Raw %q is not an element of the body", raw)
	}
}

func parseAlone(t *testing.T, raw []byte, waba, pni, dpn string, receivedAt int64) Webhook {
	t.Helper()
	q := func(s string) string {
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	body := `{"object":"whatsapp_business_account","entry":[{"id":` + q(waba) + `,"changes":[{"field":"messages","value":{"metadata":{"phone_number_id":` +
		q(pni) + `,"display_phone_number":` + q(dpn) + `},"statuses":[` + string(raw) + `]}}]}]}`
	w, err := ParseWebhook([]byte(body), "r", receivedAt)
	if err != nil {
		t.Fatalf("element alone: %v\n%s", err, body)
	}
	return w
}

// eventSeeds returns every testdata event in Avro, and a few random ones.
func eventSeeds(f *testing.F, c *Codec) [][]byte {
	f.Helper()
	var seeds [][]byte
	for _, body := range testdataBodies(f) {
		w, err := ParseWebhook(body, testRegion, testReceivedAt)
		if err != nil {
			f.Fatal(err)
		}
		for i := range w.Events {
			b, err := c.AppendStatusEvent(nil, &w.Events[i])
			if err != nil {
				f.Fatal(err)
			}
			seeds = append(seeds, b)
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 4 {
		ev := randStatusEvent(r)
		b, err := c.AppendStatusEvent(nil, &ev)
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	return seeds
}

// messageStatusSeeds returns MessageStatus values in Avro: what the
// processor folds from testdata would look like, and a few random ones.
func messageStatusSeeds(f *testing.F, c *Codec) [][]byte {
	f.Helper()
	values := []MessageStatus{
		{WAMID: wamidSample, Status: "read", SentAt: 1750030073, ReadAt: 1750030075, RecipientID: "16505551234", FirstReceivedAt: testReceivedAt},
		{
			WAMID: wamidGroup, Status: "read", RecipientID: groupID, RecipientType: "group", DeliveredAt: 1750263773, ReadAt: 1750263801,
			Participants: []Participant{
				{ID: "16505550000", Status: "delivered", DeliveredAt: 1750263774},
				{ID: "16505551234", Status: "read", DeliveredAt: 1750263773, ReadAt: 1750263801},
			},
			Sources: []AttributeSource{{Attribute: "recipient", Status: "read", Timestamp: 1750263801}},
		},
		{
			WAMID: wamidFailed, Status: "failed", DeliveredAt: 1750030085, FailedAt: 1750030090,
			Errors:  []Error{{Code: 131026, Title: "Message undeliverable", Href: errorsHref}},
			Pricing: &Pricing{Billable: ptr(false)}, Conversation: &Conversation{ID: "c", ExpirationTimestamp: 1750116480},
			Sources: []AttributeSource{{Attribute: "errors", Status: "failed", Timestamp: 1750030090}},
		},
	}
	r := rand.New(rand.NewPCG(3, 4))
	for range 4 {
		values = append(values, randMessageStatus(r))
	}
	var seeds [][]byte
	for i := range values {
		b, err := c.AppendMessageStatus(nil, &values[i])
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	return seeds
}

// checkDecodeError fails unless err wraps exactly one codec sentinel.
func checkDecodeError(t *testing.T, err error) {
	t.Helper()
	n := 0
	for _, s := range []error{ErrFraming, ErrSchemaID, ErrDecode, ErrRegistry} {
		if errors.Is(err, s) {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("decode error wraps %d codec sentinels: %v", n, err)
	}
}

func FuzzDecodeStatusEvent(f *testing.F) {
	c, err := NewCodec(IDs{})
	if err != nil {
		f.Fatal(err)
	}
	for _, b := range eventSeeds(f, c) {
		f.Add(b)
	}
	f.Add([]byte{0, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := c.DecodeStatusEvent(b)
		if err != nil {
			checkDecodeError(t, err)
			return
		}
		// What decodes re-encodes, no longer than it came (the encoding is
		// minimal), and decodes to the same value.
		enc, err := c.AppendStatusEvent(nil, &ev)
		if err != nil {
			t.Fatalf("re-encode %+v: %v", ev, err)
		}
		if len(enc) > len(b) {
			t.Fatalf("re-encoded to %d bytes from %d", len(enc), len(b))
		}
		got, err := c.DecodeStatusEvent(enc)
		if err != nil || !reflect.DeepEqual(got, ev) {
			t.Fatalf("round trip %v:\n got %+v\nwant %+v", err, got, ev)
		}
	})
}

func FuzzDecodeMessageStatus(f *testing.F) {
	c, err := NewCodec(IDs{})
	if err != nil {
		f.Fatal(err)
	}
	for _, b := range messageStatusSeeds(f, c) {
		f.Add(b)
	}
	f.Add([]byte{0, 0, 0, 0, 2})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := c.DecodeMessageStatus(b)
		if err != nil {
			checkDecodeError(t, err)
			return
		}
		enc, err := c.AppendMessageStatus(nil, &m)
		if err != nil {
			t.Fatalf("re-encode %+v: %v", m, err)
		}
		if len(enc) > len(b) {
			t.Fatalf("re-encoded to %d bytes from %d", len(enc), len(b))
		}
		got, err := c.DecodeMessageStatus(enc)
		if err != nil || !reflect.DeepEqual(got, m) {
			t.Fatalf("round trip %v:\n got %+v\nwant %+v", err, got, m)
		}
	})
}
