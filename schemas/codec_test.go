package schemas

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"reflect"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"
)

func newTestCodec(t testing.TB) *Codec {
	t.Helper()
	c, err := NewCodec(IDs{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestNewCodecIDs(t *testing.T) {
	tests := []struct {
		name    string
		ids     IDs
		want    IDs
		wantErr error
	}{
		{"defaults", IDs{}, IDs{StatusEvent: 1, MessageStatus: 2}, nil},
		{"registry ids", IDs{StatusEvent: 100017, MessageStatus: 100018}, IDs{StatusEvent: 100017, MessageStatus: 100018}, nil},
		{"one set", IDs{StatusEvent: 7}, IDs{StatusEvent: 7, MessageStatus: 2}, nil},
		{"max id", IDs{MessageStatus: math.MaxUint32}, IDs{StatusEvent: 1, MessageStatus: math.MaxUint32}, nil},
		{"same ids", IDs{StatusEvent: 9, MessageStatus: 9}, IDs{}, ErrSchemaID},
		{"same as a default", IDs{StatusEvent: 2}, IDs{}, ErrSchemaID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewCodec(tt.ids)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("NewCodec err = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if got := c.IDs(); got != tt.want {
				t.Errorf("IDs() = %+v, want %+v", got, tt.want)
			}
			ev, err := c.AppendStatusEvent(nil, &StatusEvent{WAMID: "w"})
			if err != nil {
				t.Fatal(err)
			}
			ms, err := c.AppendMessageStatus(nil, &MessageStatus{WAMID: "w"})
			if err != nil {
				t.Fatal(err)
			}
			if got := binary.BigEndian.Uint32(ev[1:5]); got != tt.want.StatusEvent {
				t.Errorf("StatusEvent framed with id %d, want %d", got, tt.want.StatusEvent)
			}
			if got := binary.BigEndian.Uint32(ms[1:5]); got != tt.want.MessageStatus {
				t.Errorf("MessageStatus framed with id %d, want %d", got, tt.want.MessageStatus)
			}
		})
	}
}

func TestSchemasEmbedded(t *testing.T) {
	tests := []struct {
		file string
		got  string
		name string
	}{
		{"status_event.avsc", StatusEventSchema(), "StatusEvent"},
		{"message_status.avsc", MessageStatusSchema(), "MessageStatus"},
	}
	for _, tt := range tests {
		want, err := os.ReadFile(tt.file)
		if err != nil {
			t.Fatal(err)
		}
		if tt.got != string(want) {
			t.Errorf("%s: embedded text differs from the file", tt.file)
		}
		var s struct{ Name, Namespace string }
		if err := json.Unmarshal([]byte(tt.got), &s); err != nil || s.Name != tt.name || s.Namespace != "wastatus.v1" {
			t.Errorf("%s: name %q namespace %q (%v), want %s in wastatus.v1", tt.file, s.Name, s.Namespace, err, tt.name)
		}
	}
}

// Golden bytes written by hand from the Avro specification: they pin the
// framing, the field order, and "" and 0 as null, independently of goavro.
func TestEncodeGolden(t *testing.T) {
	c := newTestCodec(t)
	str := func(s string) []byte { return append([]byte{byte(2 * len(s))}, s...) }
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	null := []byte{0}
	some := []byte{2} // union branch 1

	t.Run("StatusEvent minimal", func(t *testing.T) {
		got, err := c.AppendStatusEvent(nil, &StatusEvent{WAMID: "w", Status: "sent", Timestamp: 1, Region: "eu", ReceivedAt: 2})
		if err != nil {
			t.Fatal(err)
		}
		want := cat([]byte{0, 0, 0, 0, 1}, str("w"), str("sent"), []byte{2},
			null, null, null, null, null, // recipient ids and type
			null, null, // conversation, pricing
			[]byte{0},              // errors: empty array
			null, null, null, null, // biz_opaque_callback_data, metadata, waba_id
			str("eu"), []byte{4}, // region, received_at
			[]byte{0}, // raw: empty bytes
		)
		if !bytes.Equal(got, want) {
			t.Errorf("got  % x\nwant % x", got, want)
		}
	})
	t.Run("StatusEvent optional values", func(t *testing.T) {
		got, err := c.AppendStatusEvent(nil, &StatusEvent{
			WAMID: "w", Status: "failed", Timestamp: -1, RecipientUserID: "u",
			Conversation: &Conversation{ID: "c"},
			Pricing:      &Pricing{Billable: ptr(false), Category: "k"},
			Errors:       []Error{{Code: 64, Href: "h"}},
			WABAID:       "b", Region: "r", ReceivedAt: -2, Raw: []byte("{}"),
		})
		if err != nil {
			t.Fatal(err)
		}
		want := cat([]byte{0, 0, 0, 0, 1}, str("w"), str("failed"), []byte{1},
			null, some, str("u"), null, null, null,
			some, str("c"), null, null, // conversation {id, expiration null, origin null}
			some, some, []byte{0}, null, null, some, str("k"), // pricing
			[]byte{2}, []byte{0x80, 0x01}, null, null, null, some, str("h"), []byte{0}, // one error, code 64
			null, null, null, some, str("b"),
			str("r"), []byte{3}, str("{}"),
		)
		if !bytes.Equal(got, want) {
			t.Errorf("got  % x\nwant % x", got, want)
		}
	})
	t.Run("MessageStatus", func(t *testing.T) {
		got, err := c.AppendMessageStatus(nil, &MessageStatus{
			WAMID: "w", Status: "read", ReadAt: 3, FirstReceivedAt: 1,
			Participants: []Participant{{ID: "p", Status: "read", ReadAt: 3}},
			Sources:      []AttributeSource{{Attribute: "recipient", Status: "read", Timestamp: 3}},
		})
		if err != nil {
			t.Fatal(err)
		}
		want := cat([]byte{0, 0, 0, 0, 2}, str("w"), str("read"),
			null, null, some, []byte{6}, null, null, // sent..failed
			null, null, null, null, null, null, []byte{0}, null, // recipient, conversation, pricing, errors, biz
			null, null, null, some, []byte{2}, // metadata, first_received_at
			[]byte{2}, str("p"), str("read"), null, null, some, []byte{6}, null, null, []byte{0},
			[]byte{2}, str("recipient"), str("read"), []byte{6}, []byte{0},
		)
		if !bytes.Equal(got, want) {
			t.Errorf("got  % x\nwant % x", got, want)
		}
	})
}

func TestAppendKeepsPrefix(t *testing.T) {
	c := newTestCodec(t)
	prefix := []byte("prefix")
	dst := append(make([]byte, 0, 64), prefix...)
	out, err := c.AppendStatusEvent(dst, &StatusEvent{WAMID: "w", Status: "sent", Timestamp: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(out, prefix) {
		t.Fatalf("prefix lost: %q", out)
	}
	ev, err := c.DecodeStatusEvent(out[len(prefix):])
	if err != nil || ev.WAMID != "w" {
		t.Fatalf("decode after prefix: %+v, %v", ev, err)
	}
	out2, err := c.AppendMessageStatus(out, &MessageStatus{WAMID: "m", Status: "sent"})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out2[:len(out)], out) {
		t.Fatal("second append changed the first record")
	}
	if m, err := c.DecodeMessageStatus(out2[len(out):]); err != nil || m.WAMID != "m" {
		t.Fatalf("decode second: %+v, %v", m, err)
	}
}

func TestAppendNil(t *testing.T) {
	c := newTestCodec(t)
	dst := []byte("keep")
	if got, err := c.AppendStatusEvent(dst, nil); !errors.Is(err, ErrEncode) || string(got) != "keep" {
		t.Errorf("AppendStatusEvent(nil) = %q, %v; want %q, ErrEncode", got, err, "keep")
	}
	if got, err := c.AppendMessageStatus(dst, nil); !errors.Is(err, ErrEncode) || string(got) != "keep" {
		t.Errorf("AppendMessageStatus(nil) = %q, %v; want %q, ErrEncode", got, err, "keep")
	}
}

func TestStatusEventRoundTrip(t *testing.T) {
	c := newTestCodec(t)
	tests := []struct {
		name string
		ev   StatusEvent
	}{
		{"zero", StatusEvent{}},
		{"minimal", StatusEvent{WAMID: "wamid.x", Status: "sent", Timestamp: 1750030073, Region: "eu", ReceivedAt: 1750030073123}},
		{"empty conversation and pricing", StatusEvent{Conversation: &Conversation{}, Pricing: &Pricing{}}},
		{"billable false", StatusEvent{Pricing: &Pricing{Billable: ptr(false)}}},
		{"billable true", StatusEvent{Pricing: &Pricing{Billable: ptr(true)}}},
		{"negative receive time", StatusEvent{ReceivedAt: -1500}},
		{"extreme receive times", StatusEvent{ReceivedAt: math.MinInt64, Timestamp: math.MaxInt64}},
		{"max receive time", StatusEvent{ReceivedAt: math.MaxInt64, Timestamp: math.MinInt64}},
		{"zero error", StatusEvent{Errors: []Error{{}}}},
		{"binary raw", StatusEvent{Raw: []byte{0, 0xff, '"'}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := c.AppendStatusEvent(nil, &tt.ev)
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.DecodeStatusEvent(b)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.ev) {
				t.Errorf("round trip:\n got %+v\nwant %+v", got, tt.ev)
			}
		})
	}
}

// Every testdata event survives the events topic unchanged.
func TestTestdataEventsRoundTrip(t *testing.T) {
	c := newTestCodec(t)
	for _, tt := range testdataWebhooks() {
		w, err := ParseWebhook(readTestdata(t, tt.file), testRegion, testReceivedAt)
		if err != nil {
			t.Fatal(err)
		}
		for i := range w.Events {
			b, err := c.AppendStatusEvent(nil, &w.Events[i])
			if err != nil {
				t.Fatalf("%s event %d: %v", tt.file, i, err)
			}
			got, err := c.DecodeStatusEvent(b)
			if err != nil {
				t.Fatalf("%s event %d: %v", tt.file, i, err)
			}
			if !reflect.DeepEqual(got, w.Events[i]) {
				t.Errorf("%s event %d:\n got %+v\nwant %+v", tt.file, i, got, w.Events[i])
			}
		}
	}
}

func TestMessageStatusRoundTrip(t *testing.T) {
	c := newTestCodec(t)
	tests := []struct {
		name string
		m    MessageStatus
	}{
		{"zero", MessageStatus{}},
		{"read with no delivered", MessageStatus{WAMID: "w", Status: "read", SentAt: 10, ReadAt: 12, FirstReceivedAt: 12000}},
		{"group", MessageStatus{
			WAMID: "w", Status: "read", RecipientID: "g", RecipientType: "group", DeliveredAt: 5, ReadAt: 9,
			Participants: []Participant{
				{ID: "1", Status: "read", DeliveredAt: 5, ReadAt: 9},
				{ID: "2", Status: "delivered", DeliveredAt: 6},
			},
			Sources: []AttributeSource{{Attribute: "recipient", Status: "read", Timestamp: 9}},
		}},
		{"failed with everything", MessageStatus{
			WAMID: "w", Status: "failed", SentAt: 1, DeliveredAt: 2, ReadAt: 3, PlayedAt: 4, FailedAt: 5,
			RecipientID: "r", RecipientUserID: "u", ParentUserID: "p", RecipientType: "individual",
			Conversation:          &Conversation{ID: "c", ExpirationTimestamp: 99, OriginType: "marketing"},
			Pricing:               &Pricing{Billable: ptr(true), PricingModel: "PMP", Type: "regular", Category: "marketing"},
			Errors:                []Error{{Code: 131049, Title: "t", Message: "m", Details: "d", Href: "h"}, {Code: 1}},
			BizOpaqueCallbackData: "b", PhoneNumberID: "pn", DisplayPhoneNumber: "dp", WABAID: "wa",
			FirstReceivedAt: math.MinInt64,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := c.AppendMessageStatus(nil, &tt.m)
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.DecodeMessageStatus(b)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.m) {
				t.Errorf("round trip:\n got %+v\nwant %+v", got, tt.m)
			}
		})
	}
}

// testSeed returns the seed of a randomized test: WASTATUS_SEED when set,
// else a fresh one. It is logged, so a failure can be replayed.
func testSeed(t *testing.T) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("WASTATUS_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("WASTATUS_SEED: %v", err)
		}
	}
	t.Logf("seed %d (replay with WASTATUS_SEED=%d)", seed, seed)
	return seed
}

// The round-trip property: Decode(Encode(x)) == x for random x, in the
// package's normal form (empty slices nil), with both codecs' ids in use.
func TestRoundTripProperty(t *testing.T) {
	c := newTestCodec(t)
	r := rand.New(rand.NewPCG(testSeed(t), 0))
	var buf []byte
	for i := range 3000 {
		ev := randStatusEvent(r)
		b, err := c.AppendStatusEvent(buf[:0], &ev)
		if err != nil {
			t.Fatalf("case %d: encode %+v: %v", i, ev, err)
		}
		got, err := c.DecodeStatusEvent(b)
		if err != nil {
			t.Fatalf("case %d: decode %+v: %v", i, ev, err)
		}
		if !reflect.DeepEqual(got, ev) {
			t.Fatalf("case %d: StatusEvent round trip:\n got %+v\nwant %+v", i, got, ev)
		}

		m := randMessageStatus(r)
		b, err = c.AppendMessageStatus(b[:0], &m)
		if err != nil {
			t.Fatalf("case %d: encode %+v: %v", i, m, err)
		}
		gotM, err := c.DecodeMessageStatus(b)
		if err != nil {
			t.Fatalf("case %d: decode %+v: %v", i, m, err)
		}
		if !reflect.DeepEqual(gotM, m) {
			t.Fatalf("case %d: MessageStatus round trip:\n got %+v\nwant %+v", i, gotM, m)
		}
		buf = b
	}
}

func randString(r *rand.Rand) string {
	switch r.IntN(6) {
	case 0, 1:
		return ""
	case 2:
		return "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA="
	case 3:
		return "é👍\x00\"\\"
	}
	b := make([]byte, r.IntN(80))
	for i := range b {
		b[i] = byte(r.UintN(256)) // any bytes: Avro strings are not checked for UTF-8
	}
	return string(b)
}

func randInt(r *rand.Rand) int64 {
	switch r.IntN(6) {
	case 0, 1:
		return 0
	case 2:
		return []int64{math.MinInt64, math.MaxInt64, -1, 1, 1750030073, 1750030073123}[r.IntN(6)]
	case 3:
		return r.Int64N(1 << 40)
	}
	return int64(r.Uint64())
}

func randBytes(r *rand.Rand) []byte {
	if r.IntN(3) == 0 {
		return nil
	}
	b := make([]byte, 1+r.IntN(300))
	for i := range b {
		b[i] = byte(r.UintN(256))
	}
	return b
}

func randConversation(r *rand.Rand) *Conversation {
	if r.IntN(2) == 0 {
		return nil
	}
	return &Conversation{ID: randString(r), ExpirationTimestamp: randInt(r), OriginType: randString(r)}
}

func randPricing(r *rand.Rand) *Pricing {
	if r.IntN(2) == 0 {
		return nil
	}
	p := &Pricing{PricingModel: randString(r), Type: randString(r), Category: randString(r)}
	if r.IntN(3) > 0 {
		p.Billable = ptr(r.IntN(2) == 0)
	}
	return p
}

func randErrors(r *rand.Rand) []Error {
	n := r.IntN(4)
	if n == 0 {
		return nil
	}
	errs := make([]Error, n)
	for i := range errs {
		errs[i] = Error{Code: randInt(r), Title: randString(r), Message: randString(r), Details: randString(r), Href: randString(r)}
	}
	return errs
}

func randStatusEvent(r *rand.Rand) StatusEvent {
	return StatusEvent{
		WAMID:                  randString(r),
		Status:                 randString(r),
		Timestamp:              randInt(r),
		RecipientID:            randString(r),
		RecipientUserID:        randString(r),
		ParentUserID:           randString(r),
		RecipientType:          randString(r),
		RecipientParticipantID: randString(r),
		Conversation:           randConversation(r),
		Pricing:                randPricing(r),
		Errors:                 randErrors(r),
		BizOpaqueCallbackData:  randString(r),
		PhoneNumberID:          randString(r),
		DisplayPhoneNumber:     randString(r),
		WABAID:                 randString(r),
		Region:                 randString(r),
		ReceivedAt:             randInt(r),
		Raw:                    randBytes(r),
	}
}

func randMessageStatus(r *rand.Rand) MessageStatus {
	m := MessageStatus{
		WAMID:                 randString(r),
		Status:                randString(r),
		SentAt:                randInt(r),
		DeliveredAt:           randInt(r),
		ReadAt:                randInt(r),
		PlayedAt:              randInt(r),
		FailedAt:              randInt(r),
		RecipientID:           randString(r),
		RecipientUserID:       randString(r),
		ParentUserID:          randString(r),
		RecipientType:         randString(r),
		Conversation:          randConversation(r),
		Pricing:               randPricing(r),
		Errors:                randErrors(r),
		BizOpaqueCallbackData: randString(r),
		PhoneNumberID:         randString(r),
		DisplayPhoneNumber:    randString(r),
		WABAID:                randString(r),
		FirstReceivedAt:       randInt(r),
	}
	if n := r.IntN(4); n > 0 {
		m.Participants = make([]Participant, n)
		for i := range m.Participants {
			m.Participants[i] = Participant{
				ID: randString(r), Status: randString(r), SentAt: randInt(r), DeliveredAt: randInt(r),
				ReadAt: randInt(r), PlayedAt: randInt(r), FailedAt: randInt(r),
			}
		}
	}
	if n := r.IntN(7); n > 0 {
		m.Sources = make([]AttributeSource, n)
		for i := range m.Sources {
			m.Sources[i] = AttributeSource{Attribute: randString(r), Status: randString(r), Timestamp: randInt(r)}
		}
	}
	return m
}

func TestDecodeErrors(t *testing.T) {
	c := newTestCodec(t)
	ev, err := c.AppendStatusEvent(nil, &StatusEvent{WAMID: "w", Status: "sent", Timestamp: 1, Errors: []Error{{Code: 1}}, Raw: []byte("{}")})
	if err != nil {
		t.Fatal(err)
	}
	ms, err := c.AppendMessageStatus(nil, &MessageStatus{WAMID: "w", Status: "sent", Sources: []AttributeSource{{Attribute: "a"}}})
	if err != nil {
		t.Fatal(err)
	}
	with := func(b []byte, i int, v byte) []byte {
		b = bytes.Clone(b)
		b[i] = v
		return b
	}
	// errorsAt is the offset of the errors array count in ev: header, wamid,
	// status, timestamp, 5 null recipient fields, null conversation and pricing.
	const errorsAt = 5 + 2 + 5 + 1 + 5 + 2
	if ev[errorsAt] != 2 {
		t.Fatalf("test setup: byte %d is %#x, want the errors count 2", errorsAt, ev[errorsAt])
	}
	hugeCount := append(append(bytes.Clone(ev[:errorsAt]), 0xfe, 0xff, 0xff, 0xff, 0x0f), ev[errorsAt+1:]...) // 2^31-1 items

	tests := []struct {
		name    string
		b       []byte
		message bool // decode as MessageStatus
		want    error
	}{
		{"nil", nil, false, ErrFraming},
		{"magic only", []byte{0}, false, ErrFraming},
		{"header short", []byte{0, 0, 0, 1}, true, ErrFraming},
		{"bad magic", with(ev, 0, 1), false, ErrFraming},
		{"json", []byte(`{"id":"w"}`), false, ErrFraming},
		{"unknown id", with(ev, 4, 9), false, ErrSchemaID},
		{"message status as event", ms, false, ErrSchemaID},
		{"event as message status", ev, true, ErrSchemaID},
		{"header only", ev[:5], false, ErrDecode},
		{"truncated", ev[:len(ev)-1], false, ErrDecode},
		{"truncated message status", ms[:len(ms)-2], true, ErrDecode},
		{"trailing byte", append(bytes.Clone(ev), 0), false, ErrDecode},
		{"trailing byte message status", append(bytes.Clone(ms), 0), true, ErrDecode},
		{"union index out of range", with(ev, 13, 4), false, ErrDecode},
		{"huge array count", hugeCount, false, ErrDecode},
		{"negative string length", with(ev, 5, 1), false, ErrDecode},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.message {
				_, err = c.DecodeMessageStatus(tt.b)
			} else {
				_, err = c.DecodeStatusEvent(tt.b)
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

// An array count that the bytes cannot hold is refused before anything is
// allocated for it: by the hand-written decoder, and on the goavro path by
// the structural check, not goavro (which would first allocate room for
// every item).
func TestRefusesHugeArrays(t *testing.T) {
	c := newOracle(t)
	b, err := c.AppendMessageStatus(nil, &MessageStatus{WAMID: "w"})
	if err != nil {
		t.Fatal(err)
	}
	// The record ends with the empty participants and sources arrays, one
	// 0 byte each. Make participants claim 2^31-1 items in one block, then
	// the same as a negative count followed by a block size.
	base := b[:len(b)-2]
	for _, count := range [][]byte{{0xfe, 0xff, 0xff, 0xff, 0x0f}, {0xfd, 0xff, 0xff, 0xff, 0x0f, 0x02}} {
		bad := append(append(bytes.Clone(base), count...), 0, 0)
		var m MessageStatus
		allocated := bytesAllocated(func() { m, err = c.DecodeMessageStatus(bad) })
		if !errors.Is(err, ErrDecode) || !errors.Is(err, errBinary) || !reflect.DeepEqual(m, MessageStatus{}) {
			t.Errorf("count % x: %+v, err = %v; want ErrDecode from the decoder", count, m, err)
		}
		if allocated > 1<<20 {
			t.Errorf("count % x: decoding allocated %d bytes", count, allocated)
		}
		if _, err := c.goavroDecodeMessageStatus(bad); !errors.Is(err, ErrDecode) || !errors.Is(err, errShape) {
			t.Errorf("count % x: goavro path: err = %v, want ErrDecode from the structural check", count, err)
		}
	}
}

// bytesAllocated returns how many bytes f allocated on the heap (of this
// goroutine or, as far as a test can tell, any).
func bytesAllocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

func TestShapeOfSchemas(t *testing.T) {
	tests := []struct {
		schema string
		min    int
		fields int
	}{
		// every field is at least one byte: a length, a varint or a union index
		{StatusEventSchema(), 18, 18},
		{MessageStatusSchema(), 21, 21},
	}
	for _, tt := range tests {
		s, err := buildShape(tt.schema)
		if err != nil {
			t.Fatal(err)
		}
		if s.kind != shapeRecord || len(s.children) != tt.fields || s.min != tt.min {
			t.Errorf("shape: kind %d, %d fields, min %d; want record, %d, %d", s.kind, len(s.children), s.min, tt.fields, tt.min)
		}
	}
	// Any writer schema is checked, so every Avro type has a shape.
	others := []struct {
		schema string
		kind   shapeKind
		min    int
	}{
		{`{"type":"map","values":"long"}`, shapeMap, 1},
		{`{"type":"fixed","name":"f","size":4}`, shapeFixed, 4},
		{`{"type":"enum","name":"e","symbols":["A","B"]}`, shapeVarint, 1},
		{`"double"`, shapeFixed, 8},
		{`{"type":"record","name":"L","fields":[{"name":"v","type":"long"},{"name":"next","type":["null","L"]}]}`, shapeRecord, 2},
	}
	for _, tt := range others {
		s, err := buildShape(tt.schema)
		if err != nil {
			t.Errorf("buildShape(%s): %v", tt.schema, err)
			continue
		}
		if s.kind != tt.kind || s.min != tt.min {
			t.Errorf("buildShape(%s): kind %d, min %d; want %d, %d", tt.schema, s.kind, s.min, tt.kind, tt.min)
		}
	}
	for _, bad := range []string{`"Unknown"`, `[]`, `not json`, `{"type":"record","name":"R","fields":[{"name":"f","type":"R2"}]}`} {
		if _, err := buildShape(bad); err == nil {
			t.Errorf("buildShape(%s) succeeded, want an error", bad)
		}
	}
}

func TestVarint(t *testing.T) {
	tests := []struct {
		in   []byte
		want int64
		ok   bool
	}{
		{[]byte{0}, 0, true},
		{[]byte{1}, -1, true},
		{[]byte{2}, 1, true},
		{[]byte{0x80, 0x01}, 64, true},
		{[]byte{0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, math.MaxInt64, true},
		{[]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, math.MinInt64, true},
		{nil, 0, false},
		{[]byte{0x80}, 0, false},
		{bytes.Repeat([]byte{0x80}, 11), 0, false},
		{[]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02}, 0, false}, // a 65th bit
	}
	for _, tt := range tests {
		got, _, err := varint(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("varint(% x) = %d, %v; want %d, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

// A decoded event owns its memory: the Kafka client may reuse the buffer.
func TestDecodeDoesNotAlias(t *testing.T) {
	c := newTestCodec(t)
	b, err := c.AppendStatusEvent(nil, &StatusEvent{WAMID: "w", Raw: []byte(`{"id":"w"}`)})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := c.DecodeStatusEvent(b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = 0
	}
	if string(ev.Raw) != `{"id":"w"}` || ev.WAMID != "w" {
		t.Errorf("decoded event changed with its buffer: %+v", ev)
	}
}

// One Codec shared by goroutines; run with -race.
func TestCodecConcurrent(t *testing.T) {
	c := newTestCodec(t)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := range 4 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 1))
			for range 200 {
				ev := randStatusEvent(r)
				b, err := c.AppendStatusEvent(nil, &ev)
				if err == nil {
					var got StatusEvent
					got, err = c.DecodeStatusEvent(b)
					if err == nil && !reflect.DeepEqual(got, ev) {
						err = errors.New("round trip mismatch")
					}
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// Appending keeps nothing from one record to the next.
func TestAppendReuseDoesNotLeak(t *testing.T) {
	c := newTestCodec(t)
	full := randStatusEventFull()
	minimal := StatusEvent{WAMID: "w", Status: "sent", Timestamp: 1}
	want, err := newTestCodec(t).AppendStatusEvent(nil, &minimal)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := c.AppendStatusEvent(nil, &full); err != nil {
			t.Fatal(err)
		}
		if _, err := c.AppendMessageStatus(nil, &MessageStatus{WAMID: "m", SentAt: 5, Participants: []Participant{{ID: "p", ReadAt: 1}}, Errors: []Error{{Code: 1, Title: "t"}}}); err != nil {
			t.Fatal(err)
		}
		got, err := c.AppendStatusEvent(nil, &minimal)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("minimal event after a full one:\n got % x\nwant % x", got, want)
		}
	}
}

// randStatusEventFull is an event with every optional field set.
func randStatusEventFull() StatusEvent {
	return StatusEvent{
		WAMID: "w", Status: "failed", Timestamp: 9, RecipientID: "a", RecipientUserID: "b", ParentUserID: "c",
		RecipientType: "group", RecipientParticipantID: "d",
		Conversation:          &Conversation{ID: "e", ExpirationTimestamp: 10, OriginType: "f"},
		Pricing:               &Pricing{Billable: ptr(true), PricingModel: "g", Type: "h", Category: "i"},
		Errors:                []Error{{Code: 1, Title: "j", Message: "k", Details: "l", Href: "m"}, {Code: 2}},
		BizOpaqueCallbackData: "n", PhoneNumberID: "o", DisplayPhoneNumber: "p", WABAID: "q",
		Region: "r", ReceivedAt: 11, Raw: []byte("{}"),
	}
}
