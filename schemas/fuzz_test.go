package schemas

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
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

func testdataBodies(f testing.TB) [][]byte {
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

// FuzzDecodeStatusEvent feeds arbitrary bytes to the Codec and to goavro
// (the same framing and structural check, then goavro's decoder): they must
// agree on success or failure (the same sentinel) and on the value. What
// decodes re-encodes, as goavro would encode it, no longer than it came
// (the encoding is minimal), and decodes to the same value.
func FuzzDecodeStatusEvent(f *testing.F) {
	c := newOracle(f)
	for _, b := range eventSeeds(f, c.Codec) {
		f.Add(b)
	}
	f.Add([]byte{0, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := agreeStatusEvent(t, c, b)
		if err != nil {
			checkDecodeError(t, err)
			return
		}
		enc, err := c.AppendStatusEvent(nil, &ev)
		if err != nil {
			t.Fatalf("re-encode %+v: %v", ev, err)
		}
		if len(enc) > len(b) {
			t.Fatalf("re-encoded to %d bytes from %d", len(enc), len(b))
		}
		checkStatusEvent(t, c, &ev)
	})
}

// FuzzDecodeMessageStatus is FuzzDecodeStatusEvent for MessageStatus.
func FuzzDecodeMessageStatus(f *testing.F) {
	c := newOracle(f)
	for _, b := range messageStatusSeeds(f, c.Codec) {
		f.Add(b)
	}
	f.Add([]byte{0, 0, 0, 0, 2})
	// Arrays as other writers may write them: two blocks, negative counts
	// with block sizes (sources "a" then "b").
	head := []byte{0, 0, 0, 0, 2, 2, 'w', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	f.Add(append(bytes.Clone(head), 2, 2, 'a', 0, 0, 2, 2, 'b', 0, 0, 0))
	f.Add(append(bytes.Clone(head), 1, 8, 2, 'a', 0, 0, 1, 8, 2, 'b', 0, 0, 0))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := agreeMessageStatus(t, c, b)
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
		checkMessageStatus(t, c, &m)
	})
}

// FuzzRoundTrip builds a StatusEvent and a MessageStatus from arbitrary
// strings, numbers and bytes (mask chooses which fields are set and how many
// array items there are) and checks each both ways: the Codec encodes it as
// goavro does, and both decode it back to the value.
func FuzzRoundTrip(f *testing.F) {
	f.Add("wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA=", "delivered", int64(1750030073), int64(-1), []byte(`{"id":"w"}`), uint32(0xffffffff))
	f.Add("", "", int64(0), int64(0), []byte(nil), uint32(0))
	f.Add("é👍", "\x00", int64(math.MinInt64), int64(math.MaxInt64), []byte{0}, uint32(0x5555aaaa))
	c := newOracle(f)
	f.Fuzz(func(t *testing.T, a, b string, n, m int64, raw []byte, mask uint32) {
		ev, ms := fuzzValues(a, b, n, m, raw, mask)
		checkStatusEvent(t, c, &ev)
		checkMessageStatus(t, c, &ms)
	})
}

// fuzzValues spreads a few fuzzed inputs over every field of both records,
// in the package's normal form (empty slices nil).
func fuzzValues(a, b string, n, m int64, raw []byte, mask uint32) (StatusEvent, MessageStatus) {
	bit := func(i int) bool { return mask>>i&1 == 1 }
	str := func(i int, v string) string {
		if bit(i) {
			return v
		}
		return ""
	}
	long := func(i int, v int64) int64 {
		if bit(i) {
			return v
		}
		return 0
	}
	var conv *Conversation
	if bit(5) {
		conv = &Conversation{ID: str(6, a), ExpirationTimestamp: long(7, m), OriginType: str(8, b)}
	}
	var pricing *Pricing
	if bit(9) {
		pricing = &Pricing{PricingModel: str(10, a), Type: str(11, b), Category: str(12, a+b)}
		if bit(13) {
			pricing.Billable = ptr(bit(14))
		}
	}
	var errs []Error
	for i := range int(mask >> 15 & 3) {
		errs = append(errs, Error{Code: n - int64(i), Title: str(16, a), Message: str(17, b), Details: str(18, b+a), Href: str(19, a)})
	}
	if len(raw) == 0 {
		raw = nil
	}
	ev := StatusEvent{
		WAMID: a, Status: b, Timestamp: n, RecipientID: str(0, b), RecipientUserID: str(1, a), ParentUserID: str(2, b),
		RecipientType: str(3, a), RecipientParticipantID: str(4, b), Conversation: conv, Pricing: pricing, Errors: errs,
		BizOpaqueCallbackData: str(20, a), PhoneNumberID: str(21, b), DisplayPhoneNumber: str(22, a), WABAID: str(23, b),
		Region: str(24, a), ReceivedAt: m, Raw: raw,
	}
	ms := MessageStatus{
		WAMID: b, Status: a, SentAt: long(0, n), DeliveredAt: long(1, m), ReadAt: long(2, n), PlayedAt: long(3, m),
		FailedAt: long(4, n), RecipientID: str(25, a), RecipientUserID: str(26, b), ParentUserID: str(0, a),
		RecipientType: str(1, b), Conversation: conv, Pricing: pricing, Errors: errs, BizOpaqueCallbackData: str(2, b),
		PhoneNumberID: str(3, a), DisplayPhoneNumber: str(4, b), WABAID: str(27, a), FirstReceivedAt: long(28, m),
	}
	for i := range int(mask >> 29 & 3) {
		ms.Participants = append(ms.Participants, Participant{
			ID: str(i, a), Status: b, SentAt: long(i+1, n), DeliveredAt: long(i+2, m), ReadAt: long(i+3, n),
			PlayedAt: long(i+4, m), FailedAt: long(i+5, n),
		})
	}
	if bit(31) {
		ms.Sources = []AttributeSource{{Attribute: a, Status: b, Timestamp: n}, {Attribute: b, Status: a, Timestamp: m}}
	}
	return ev, ms
}
