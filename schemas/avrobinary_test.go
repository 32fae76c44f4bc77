package schemas

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

// The hand-written codec is kept honest by goavro: for every value, the
// Codec's encoding is goavro's byte for byte, and for every input, the Codec
// decodes what goavro decodes (after the same framing and structural check),
// to the same value, and refuses what goavro refuses. The fuzz targets in
// fuzz_test.go extend these tests to arbitrary bytes and values.

// decodeSentinel returns the one codec sentinel err wraps, nil for none.
func decodeSentinel(err error) error {
	for _, s := range []error{ErrFraming, ErrSchemaID, ErrDecode, ErrRegistry} {
		if errors.Is(err, s) {
			return s
		}
	}
	return nil
}

// agreeStatusEvent decodes b with the Codec and with goavro, and fails the
// test unless both give the same value, or both fail with the same sentinel.
func agreeStatusEvent(t testing.TB, c *oracle, b []byte) (StatusEvent, error) {
	t.Helper()
	got, err := c.DecodeStatusEvent(b)
	want, wantErr := c.goavroDecodeStatusEvent(b)
	if (err == nil) != (wantErr == nil) || decodeSentinel(err) != decodeSentinel(wantErr) {
		t.Fatalf("decode % x:\n   fast err = %v\n goavro err = %v", b, err, wantErr)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decode % x:\n   fast %+v\n goavro %+v", b, got, want)
	}
	return got, err
}

// agreeMessageStatus is agreeStatusEvent for MessageStatus.
func agreeMessageStatus(t testing.TB, c *oracle, b []byte) (MessageStatus, error) {
	t.Helper()
	got, err := c.DecodeMessageStatus(b)
	want, wantErr := c.goavroDecodeMessageStatus(b)
	if (err == nil) != (wantErr == nil) || decodeSentinel(err) != decodeSentinel(wantErr) {
		t.Fatalf("decode % x:\n   fast err = %v\n goavro err = %v", b, err, wantErr)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decode % x:\n   fast %+v\n goavro %+v", b, got, want)
	}
	return got, err
}

// checkStatusEvent checks ev, in the package's normal form, both ways: the
// Codec encodes it as goavro does, and both decode that back to ev.
func checkStatusEvent(t testing.TB, c *oracle, ev *StatusEvent) {
	t.Helper()
	got, err := c.AppendStatusEvent(nil, ev)
	if err != nil {
		t.Fatal(err)
	}
	want, err := c.goavroAppendStatusEvent(nil, ev)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("encoding of %+v:\n   fast % x\n goavro % x", ev, got, want)
	}
	back, err := agreeStatusEvent(t, c, want)
	if err != nil || !reflect.DeepEqual(back, *ev) {
		t.Fatalf("round trip %v:\n got %+v\nwant %+v", err, back, *ev)
	}
}

// checkMessageStatus is checkStatusEvent for MessageStatus.
func checkMessageStatus(t testing.TB, c *oracle, m *MessageStatus) {
	t.Helper()
	got, err := c.AppendMessageStatus(nil, m)
	if err != nil {
		t.Fatal(err)
	}
	want, err := c.goavroAppendMessageStatus(nil, m)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("encoding of %+v:\n   fast % x\n goavro % x", m, got, want)
	}
	back, err := agreeMessageStatus(t, c, want)
	if err != nil || !reflect.DeepEqual(back, *m) {
		t.Fatalf("round trip %v:\n got %+v\nwant %+v", err, back, *m)
	}
}

// The words the decoder returns as constants, and a few near misses.
var knownWords = []string{
	"sent", "delivered", "read", "played", "failed", "recipient", "conversation", "pricing", "errors",
	"biz_opaque_callback_data", "metadata", "Sent", "sen", "sentx", "deleted", "",
}

// edgeStatusEvents are the values random ones may miss: empty and long
// strings, extreme longs, optional records present but empty, many errors.
func edgeStatusEvents() []StatusEvent {
	long := strings.Repeat("é👍x", 40000)
	var extremes []StatusEvent
	for _, n := range []int64{math.MinInt64, math.MaxInt64, -1, 1, 63, 64, -64, -65, 1 << 62} {
		extremes = append(extremes, StatusEvent{
			Timestamp: n, ReceivedAt: n, Conversation: &Conversation{ExpirationTimestamp: n}, Errors: []Error{{Code: n}},
		})
	}
	many := make([]Error, 1000)
	for i := range many {
		many[i] = Error{Code: int64(i) - 500, Title: strings.Repeat("t", i%3), Href: knownWords[i%len(knownWords)]}
	}
	evs := []StatusEvent{
		{},
		randStatusEventFull(),
		{WAMID: long, Status: long, Region: long, Raw: []byte(long), RecipientID: long, WABAID: long},
		{Conversation: &Conversation{}, Pricing: &Pricing{}},
		{Pricing: &Pricing{Billable: ptr(false)}},
		{Pricing: &Pricing{Billable: ptr(true), Category: "x"}},
		{Errors: many},
		{Raw: []byte{0}, Region: "\x00"},
	}
	for _, w := range knownWords {
		evs = append(evs, StatusEvent{WAMID: w, Status: w})
	}
	return append(evs, extremes...)
}

// edgeMessageStatuses are edgeStatusEvents for MessageStatus, with many
// participants and sources and every known word.
func edgeMessageStatuses() []MessageStatus {
	var ps []Participant
	var ss []AttributeSource
	for i := range 600 {
		w := knownWords[i%len(knownWords)]
		ps = append(ps, Participant{ID: strings.Repeat("p", i%7), Status: w, SentAt: int64(i), FailedAt: -int64(i)})
		ss = append(ss, AttributeSource{Attribute: w, Status: knownWords[(i+3)%len(knownWords)], Timestamp: math.MinInt64 + int64(i)})
	}
	ms := []MessageStatus{
		{},
		{Participants: ps, Sources: ss},
		{Participants: ps[:1]},
		{Sources: ss[:1]},
		{WAMID: strings.Repeat("w", 1<<17), Status: "read", Conversation: &Conversation{}, Pricing: &Pricing{Billable: ptr(true)}},
		{Errors: []Error{{}, {Code: math.MaxInt64, Title: "é"}}},
	}
	for _, n := range []int64{math.MinInt64, math.MaxInt64, -1, 1} {
		ms = append(ms, MessageStatus{
			SentAt: n, DeliveredAt: n, ReadAt: n, PlayedAt: n, FailedAt: n, FirstReceivedAt: n,
			Participants: []Participant{{SentAt: n, DeliveredAt: n, ReadAt: n, PlayedAt: n, FailedAt: n}},
			Sources:      []AttributeSource{{Timestamp: n}},
		})
	}
	return ms
}

func TestBinaryStatusEventMatchesGoavro(t *testing.T) {
	c := newOracle(t)
	r := rand.New(rand.NewPCG(testSeed(t), 7))
	for range 3000 {
		ev := randStatusEvent(r)
		checkStatusEvent(t, c, &ev)
	}
	for _, ev := range edgeStatusEvents() {
		checkStatusEvent(t, c, &ev)
	}
	for _, body := range testdataBodies(t) {
		w, err := ParseWebhook(body, testRegion, testReceivedAt)
		if err != nil {
			t.Fatal(err)
		}
		for i := range w.Events {
			checkStatusEvent(t, c, &w.Events[i])
		}
	}
}

func TestBinaryMessageStatusMatchesGoavro(t *testing.T) {
	c := newOracle(t)
	r := rand.New(rand.NewPCG(testSeed(t), 8))
	for range 3000 {
		m := randMessageStatus(r)
		checkMessageStatus(t, c, &m)
	}
	for _, m := range edgeMessageStatuses() {
		checkMessageStatus(t, c, &m)
	}
	m := benchMessageStatus()
	checkMessageStatus(t, c, &m)
}

// Other writers may encode the same values differently from goavro: arrays
// in several blocks or with negative counts and block sizes, varints longer
// than they need be, an empty string in an optional field's string branch.
// Both decoders read them as the same values.
func TestBinaryReadsEveryEncoding(t *testing.T) {
	c := newOracle(t)
	header := func(id uint32) []byte { return []byte{0, 0, 0, 0, byte(id)} }
	// A MessageStatus up to its arrays: wamid "w", status "read", sent_at
	// 5 as a 3-byte varint, recipient_id "" in its string branch, the rest
	// null, no errors.
	msHead := append(header(MessageStatusSchemaID),
		2, 'w', 8, 'r', 'e', 'a', 'd', 2, 0x8a, 0x80, 0x00, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
	src := func(attr string, ts byte) []byte {
		return append(append([]byte{byte(2 * len(attr))}, attr...), 8, 's', 'e', 'n', 't', ts)
	}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	twoSources := []AttributeSource{{Attribute: "pricing", Status: "sent", Timestamp: 1}, {Attribute: "x", Status: "sent", Timestamp: -1}}
	msTests := []struct {
		name string
		b    []byte
		want MessageStatus
	}{
		{"one block each", cat(msHead, []byte{0, 4}, src("pricing", 2), src("x", 1), []byte{0}),
			MessageStatus{WAMID: "w", Status: "read", SentAt: 5, Sources: twoSources}},
		{"two blocks", cat(msHead, []byte{0, 2}, src("pricing", 2), []byte{2}, src("x", 1), []byte{0}),
			MessageStatus{WAMID: "w", Status: "read", SentAt: 5, Sources: twoSources}},
		{"negative count and size", cat(msHead, []byte{0, 1, 18}, src("pricing", 2), []byte{1, 8}, src("x", 1), []byte{0}),
			MessageStatus{WAMID: "w", Status: "read", SentAt: 5, Sources: twoSources}},
		{"negative count, wrong size", cat(msHead, []byte{0, 1, 0}, src("pricing", 2), []byte{0}),
			MessageStatus{WAMID: "w", Status: "read", SentAt: 5, Sources: twoSources[:1]}},
		{"empty count as two bytes", cat(msHead, []byte{0x80, 0x00, 0x80, 0x00}),
			MessageStatus{WAMID: "w", Status: "read", SentAt: 5}},
	}
	for _, tt := range msTests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := agreeMessageStatus(t, c, tt.b)
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
	// A StatusEvent with a 10-byte varint timestamp whose last byte holds the
	// 64th bit, and billable false then true.
	evHead := append(header(StatusEventSchemaID), 0, 0, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
		0, 0, 0, 0, 0, 0)
	evTail := []byte{0, 0, 0, 0, 0, 0, 0, 0}
	for _, billable := range []bool{false, true} {
		bit := byte(0)
		if billable {
			bit = 1
		}
		b := cat(evHead, []byte{2, 2, bit, 0, 0, 0}, evTail)
		got, err := agreeStatusEvent(t, c, b)
		want := StatusEvent{Timestamp: math.MaxInt64, Pricing: &Pricing{Billable: ptr(billable)}}
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("billable %v: got %+v, %v; want %+v", billable, got, err, want)
		}
	}
}

// Corrupt input fails in both decoders, with ErrDecode: every truncation and
// one-byte extension of valid records, and every single-byte change that
// makes them invalid (many changes leave a valid record: then both decode
// the same value).
func TestBinaryCorruptionAgrees(t *testing.T) {
	c := newOracle(t)
	full := randStatusEventFull()
	bench := benchMessageStatus()
	group := edgeMessageStatuses()[1]
	group.Participants, group.Sources = group.Participants[:20], group.Sources[:20]
	var records [][]byte
	for _, ev := range []*StatusEvent{&full, {WAMID: "w", Status: "sent", Timestamp: 1, Errors: []Error{{Code: 1}}, Raw: []byte("{}")}} {
		b, err := c.AppendStatusEvent(nil, ev)
		if err != nil {
			t.Fatal(err)
		}
		records = append(records, b)
	}
	for _, m := range []*MessageStatus{&bench, &group} {
		b, err := c.AppendMessageStatus(nil, m)
		if err != nil {
			t.Fatal(err)
		}
		records = append(records, b)
	}
	agree := func(b []byte) error {
		if b[4] == byte(StatusEventSchemaID) {
			_, err := agreeStatusEvent(t, c, b)
			return err
		}
		_, err := agreeMessageStatus(t, c, b)
		return err
	}
	for _, rec := range records {
		for n := headerLen; n < len(rec); n++ {
			if err := agree(rec[:n]); !errors.Is(err, ErrDecode) {
				t.Fatalf("truncated to %d of %d bytes: err = %v, want ErrDecode", n, len(rec), err)
			}
		}
		for _, extra := range []byte{0, 1, 0x80} {
			if err := agree(append(bytes.Clone(rec), extra)); !errors.Is(err, ErrDecode) {
				t.Fatalf("trailing %#x: err = %v, want ErrDecode", extra, err)
			}
		}
		for i := headerLen; i < len(rec); i++ {
			for _, v := range []byte{0, 1, 2, 3, 0x7f, 0x80, 0xfe, 0xff, rec[i] + 1, rec[i] - 1, rec[i] + 2} {
				b := bytes.Clone(rec)
				b[i] = v
				agree(b)
			}
		}
	}
}

// Hostile input that goavro alone would have trusted: claimed sizes past the
// end of the input, overflowing varints, out-of-range union branches and
// booleans.
func TestBinaryRefusesHostileInput(t *testing.T) {
	c := newOracle(t)
	ev := append([]byte{0, 0, 0, 0, byte(StatusEventSchemaID)}, 2, 'w', 8, 's', 'e', 'n', 't', 2)
	nulls := func(n int) []byte { return make([]byte, n) }
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	maxLen := []byte{0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01} // math.MaxInt64
	tests := []struct {
		name string
		b    []byte
	}{
		{"string longer than the input", cat(ev[:5], []byte{0xfe, 0xff, 0xff, 0xff, 0x0f}, []byte("w"))},
		{"string of MaxInt64 bytes", cat(ev[:5], maxLen, []byte("w"))},
		{"negative length", cat(ev[:5], []byte{1, 'w'})},
		{"varint of 11 bytes", cat(ev[:5], bytes.Repeat([]byte{0x80}, 10), []byte{0})},
		{"varint past 64 bits", cat(ev[:5], []byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02})},
		{"union branch 2", cat(ev, []byte{4})},
		{"union branch -1", cat(ev, []byte{1})},
		{"union branch huge", cat(ev, maxLen)},
		{"boolean 2", cat(ev, nulls(6), []byte{2, 2, 2})},
		{"errors count MaxInt64", cat(ev, nulls(7), maxLen)},
		{"errors count MinInt64", cat(ev, nulls(7), []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0})},
		{"errors count 2^31", cat(ev, nulls(7), []byte{0x80, 0x80, 0x80, 0x80, 0x10})},
		{"errors block one item short", cat(ev, nulls(7), []byte{4, 2, 0, 0, 0, 0, 2, 0, 0, 0})},
		{"raw longer than the input", cat(ev, nulls(12), []byte{0, 0, 0x10, 'x'})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			allocated := bytesAllocated(func() { _, err = c.DecodeStatusEvent(tt.b) })
			if !errors.Is(err, ErrDecode) || !errors.Is(err, errBinary) {
				t.Errorf("err = %v, want ErrDecode from the decoder", err)
			}
			if allocated > 1<<16 {
				t.Errorf("decoding allocated %d bytes", allocated)
			}
			agreeStatusEvent(t, c, tt.b)
		})
	}
}

// A decode allocates about once per string and slice of the result: far
// fewer than goavro's maps, and no more than the value needs. The known
// status and attribute words allocate nothing.
func TestBinaryDecodeAllocs(t *testing.T) {
	c := newOracle(t)
	ev := benchEvent(t)
	evb, err := c.AppendStatusEvent(nil, &ev)
	if err != nil {
		t.Fatal(err)
	}
	m := benchMessageStatus()
	mb, err := c.AppendMessageStatus(nil, &m)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		decode func() error
		want   float64
	}{
		// wamid, recipient_id, 2 conversation, 3 pricing and 3 metadata
		// strings, region; Raw, Conversation, Pricing with its Billable.
		{"StatusEvent", func() error { _, err := c.DecodeStatusEvent(evb); return err }, 14},
		// wamid, recipient_id, 2 conversation, 3 pricing and 3 metadata
		// strings; Conversation, Pricing with its Billable, Sources.
		{"MessageStatus", func() error { _, err := c.DecodeMessageStatus(mb); return err }, 13},
	}
	for _, tt := range tests {
		var err error
		got := testing.AllocsPerRun(100, func() { err = tt.decode() })
		if err != nil {
			t.Fatal(err)
		}
		if got > tt.want {
			t.Errorf("%s: %.1f allocations per decode, want at most %.0f", tt.name, got, tt.want)
		}
	}
}

// The decoder's varint and the structural check's agree on every input.
func TestLong(t *testing.T) {
	tests := [][]byte{
		{0}, {1}, {2}, {0x7f}, {0x80, 0x01}, {0x80, 0x00}, {0xff, 0x7f}, nil, {0x80},
		{0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00},
		{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02},
		{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x81, 0x00},
		bytes.Repeat([]byte{0x80}, 11),
	}
	for _, in := range tests {
		want, rest, wantErr := varint(in)
		r := avroReader{b: in}
		got := r.long("f")
		if got != want || (r.err == nil) != (wantErr == nil) || (wantErr == nil && r.off != len(in)-len(rest)) {
			t.Errorf("long(% x) = %d, %v, %d bytes; varint: %d, %v, %d bytes", in, got, r.err, r.off, want, wantErr, len(in)-len(rest))
		}
	}
}
