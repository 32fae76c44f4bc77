package schemas

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/linkedin/goavro/v2"
)

// testdata/evolution holds the previous version (v1) of each schema: the
// current one without fields that were added later with a default
// (recipient_user_id and parent_user_id in both; first_received_at and
// sources in MessageStatus). Records written with them must still decode.

// Ids of the v1 schemas in the fixed-id world (no registry).
const (
	v1StatusEventID   uint32 = 11
	v1MessageStatusID uint32 = 12
)

func readSchema(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "evolution", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// encodeWith writes native with schema, using goavro directly (not the
// Codec), in the Confluent framing under id.
func encodeWith(t testing.TB, schema string, id uint32, native map[string]any) []byte {
	t.Helper()
	c, err := goavro.NewCodec(schema)
	if err != nil {
		t.Fatal(err)
	}
	out := binary.BigEndian.AppendUint32([]byte{0}, id)
	out, err = c.BinaryFromNative(out, native)
	if err != nil {
		t.Fatalf("encode with the v1 schema: %v", err)
	}
	return out
}

// v1StatusEvents are v1 records in goavro's native form, and what the
// current Codec must decode them to.
func v1StatusEvents() []struct {
	name   string
	native map[string]any
	want   StatusEvent
} {
	raw := []byte(`{"id":"wamid.V1","status":"sent","timestamp":"1750030073","recipient_id":"16505551234"}`)
	return []struct {
		name   string
		native map[string]any
		want   StatusEvent
	}{{
		name: "minimal",
		native: map[string]any{
			"wamid": "wamid.V1", "status": "sent", "timestamp": int64(1750030073),
			"recipient_id": goavro.Union("string", "16505551234"),
			"region":       "eu-west-1", "received_at": time.UnixMilli(1750030076123), "raw": raw,
		},
		want: StatusEvent{
			WAMID: "wamid.V1", Status: "sent", Timestamp: 1750030073, RecipientID: "16505551234",
			Region: "eu-west-1", ReceivedAt: 1750030076123, Raw: raw,
		},
	}, {
		name: "every v1 field",
		native: map[string]any{
			"wamid": "wamid.V1", "status": "failed", "timestamp": int64(1750030075),
			"recipient_id":             goavro.Union("string", "120363040000000000"),
			"recipient_type":           goavro.Union("string", "group"),
			"recipient_participant_id": goavro.Union("string", "16505551234"),
			"conversation": goavro.Union("wastatus.v1.Conversation", map[string]any{
				"id": "72b14d6bd5407799e66f64d1b338e567", "expiration_timestamp": goavro.Union("long", int64(1750116480)),
				"origin_type": goavro.Union("string", "marketing"),
			}),
			"pricing": goavro.Union("wastatus.v1.Pricing", map[string]any{
				"billable": goavro.Union("boolean", false), "pricing_model": goavro.Union("string", "PMP"),
				"type": goavro.Union("string", "regular"), "category": goavro.Union("string", "marketing"),
			}),
			"errors": []any{map[string]any{
				"code": int64(131026), "title": goavro.Union("string", "Message undeliverable"),
				"message": goavro.Union("string", "Message undeliverable"), "details": goavro.Union("string", "d"),
				"href": goavro.Union("string", "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"),
			}},
			"biz_opaque_callback_data": goavro.Union("string", "cb"),
			"phone_number_id":          goavro.Union("string", "106540352242922"),
			"display_phone_number":     goavro.Union("string", "15550783881"),
			"waba_id":                  goavro.Union("string", "102290129340398"),
			"region":                   "us-east-1", "received_at": time.UnixMilli(1750030076999), "raw": raw,
		},
		want: StatusEvent{
			WAMID: "wamid.V1", Status: "failed", Timestamp: 1750030075,
			RecipientID: "120363040000000000", RecipientType: "group", RecipientParticipantID: "16505551234",
			Conversation: &Conversation{ID: "72b14d6bd5407799e66f64d1b338e567", ExpirationTimestamp: 1750116480, OriginType: "marketing"},
			Pricing:      &Pricing{Billable: ptr(false), PricingModel: "PMP", Type: "regular", Category: "marketing"},
			Errors: []Error{{Code: 131026, Title: "Message undeliverable", Message: "Message undeliverable", Details: "d",
				Href: "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"}},
			BizOpaqueCallbackData: "cb", PhoneNumberID: "106540352242922", DisplayPhoneNumber: "15550783881",
			WABAID: "102290129340398", Region: "us-east-1", ReceivedAt: 1750030076999, Raw: raw,
			// RecipientUserID and ParentUserID: v1 has no such fields; their default is null.
		},
	}}
}

func v1MessageStatuses() []struct {
	name   string
	native map[string]any
	want   MessageStatus
} {
	return []struct {
		name   string
		native map[string]any
		want   MessageStatus
	}{{
		name:   "minimal",
		native: map[string]any{"wamid": "wamid.V1", "status": "sent", "sent_at": goavro.Union("long", int64(1750030073))},
		want:   MessageStatus{WAMID: "wamid.V1", Status: "sent", SentAt: 1750030073},
	}, {
		name: "group message",
		native: map[string]any{
			"wamid": "wamid.V1G", "status": "read",
			"sent_at": goavro.Union("long", int64(1750030073)), "delivered_at": goavro.Union("long", int64(1750030074)),
			"read_at":        goavro.Union("long", int64(1750030075)),
			"recipient_id":   goavro.Union("string", "120363040000000000"),
			"recipient_type": goavro.Union("string", "group"),
			"pricing":        goavro.Union("wastatus.v1.Pricing", map[string]any{"billable": goavro.Union("boolean", true)}),
			"participants": []any{
				map[string]any{"id": "16505551234", "status": "read", "sent_at": goavro.Union("long", int64(1750030073)),
					"read_at": goavro.Union("long", int64(1750030075))},
				map[string]any{"id": "16505559999", "status": "delivered", "delivered_at": goavro.Union("long", int64(1750030074))},
			},
			"waba_id": goavro.Union("string", "102290129340398"),
		},
		want: MessageStatus{
			WAMID: "wamid.V1G", Status: "read", SentAt: 1750030073, DeliveredAt: 1750030074, ReadAt: 1750030075,
			RecipientID: "120363040000000000", RecipientType: "group", Pricing: &Pricing{Billable: ptr(true)},
			WABAID: "102290129340398",
			Participants: []Participant{
				{ID: "16505551234", Status: "read", SentAt: 1750030073, ReadAt: 1750030075},
				{ID: "16505559999", Status: "delivered", DeliveredAt: 1750030074},
			},
			// FirstReceivedAt 0, Sources nil, RecipientUserID and ParentUserID "": the defaults.
		},
	}}
}

// newV1Codec is a fixed-id Codec that also reads the v1 schemas.
func newV1Codec(t testing.TB) *Codec {
	t.Helper()
	c := newTestCodec(t)
	if err := c.AddWriterSchema(v1StatusEventID, KindStatusEvent, readSchema(t, "status_event.v1.avsc")); err != nil {
		t.Fatal(err)
	}
	if err := c.AddWriterSchema(v1MessageStatusID, KindMessageStatus, readSchema(t, "message_status.v1.avsc")); err != nil {
		t.Fatal(err)
	}
	return c
}

// A record written with the previous schema, under its own id, decodes with
// the current Codec: the fields v1 lacks take their defaults.
func TestEarlierSchemaDecodes(t *testing.T) {
	c := newV1Codec(t)
	v1Event := readSchema(t, "status_event.v1.avsc")
	for _, tt := range v1StatusEvents() {
		t.Run("StatusEvent/"+tt.name, func(t *testing.T) {
			b := encodeWith(t, v1Event, v1StatusEventID, tt.native)
			got, err := c.DecodeStatusEvent(b)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("decoded\n got %+v\nwant %+v", got, tt.want)
			}
			// Re-encoded, it is written with the current schema and id.
			again, err := c.AppendStatusEvent(nil, &got)
			if err != nil {
				t.Fatal(err)
			}
			if id := binary.BigEndian.Uint32(again[1:5]); id != StatusEventSchemaID {
				t.Errorf("re-encoded with id %d, want %d", id, StatusEventSchemaID)
			}
			if back, err := c.DecodeStatusEvent(again); err != nil || !reflect.DeepEqual(back, got) {
				t.Errorf("round trip through the current schema: %v\n got %+v\nwant %+v", err, back, got)
			}
		})
	}
	v1Status := readSchema(t, "message_status.v1.avsc")
	for _, tt := range v1MessageStatuses() {
		t.Run("MessageStatus/"+tt.name, func(t *testing.T) {
			got, err := c.DecodeMessageStatus(encodeWith(t, v1Status, v1MessageStatusID, tt.native))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("decoded\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// Records written with the current schema are unaffected by the writer
// schemas added beside it.
func TestCurrentSchemaBesideEarlier(t *testing.T) {
	c := newV1Codec(t)
	ev := randStatusEventFull()
	b, err := c.AppendStatusEvent(nil, &ev)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := c.DecodeStatusEvent(b); err != nil || !reflect.DeepEqual(got, ev) {
		t.Errorf("current StatusEvent: %v\n got %+v\nwant %+v", err, got, ev)
	}
	m := benchMessageStatus()
	b, err = c.AppendMessageStatus(nil, &m)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := c.DecodeMessageStatus(b); err != nil || !reflect.DeepEqual(got, m) {
		t.Errorf("current MessageStatus: %v\n got %+v\nwant %+v", err, got, m)
	}
}

func TestEarlierSchemaErrors(t *testing.T) {
	c := newV1Codec(t)
	v1Event := readSchema(t, "status_event.v1.avsc")
	v1Status := readSchema(t, "message_status.v1.avsc")
	event := encodeWith(t, v1Event, v1StatusEventID, v1StatusEvents()[0].native)
	status := encodeWith(t, v1Status, v1MessageStatusID, v1MessageStatuses()[0].native)

	// A v1 MessageStatus whose participants claim a huge count: the
	// structural check runs on the writer schema too.
	huge := encodeWith(t, v1Status, v1MessageStatusID, map[string]any{"wamid": "w", "status": "sent"})
	huge = append(huge[:len(huge)-1], 0xfe, 0xff, 0xff, 0xff, 0x0f, 0)

	unknown := bytes.Clone(event)
	binary.BigEndian.PutUint32(unknown[1:5], 99)

	tests := []struct {
		name    string
		decode  func([]byte) error
		b       []byte
		want    error
		notWant error
	}{
		{"v1 event as message status", decodeMS(c), event, ErrSchemaID, nil},
		{"v1 status as event", decodeEv(c), status, ErrSchemaID, nil},
		{"id never added", decodeEv(c), unknown, ErrSchemaID, ErrRegistry},
		{"truncated v1 event", decodeEv(c), event[:len(event)-3], ErrDecode, nil},
		{"trailing bytes", decodeEv(c), append(bytes.Clone(event), 0), ErrDecode, nil},
		{"huge array count in v1 data", decodeMS(c), huge, errShape, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.decode(tt.b)
			if !errors.Is(err, tt.want) || (tt.notWant != nil && errors.Is(err, tt.notWant)) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func decodeEv(c *Codec) func([]byte) error {
	return func(b []byte) error { _, err := c.DecodeStatusEvent(b); return err }
}

func decodeMS(c *Codec) func([]byte) error {
	return func(b []byte) error { _, err := c.DecodeMessageStatus(b); return err }
}

func TestAddWriterSchema(t *testing.T) {
	v1Event := readSchema(t, "status_event.v1.avsc")
	v1Status := readSchema(t, "message_status.v1.avsc")
	// v0 had no region: the current schema added it without a default, so
	// records without it cannot be read (such a change breaks BACKWARD).
	v0Event := `{"type":"record","name":"StatusEvent","namespace":"wastatus.v1","fields":[
		{"name":"wamid","type":"string"},{"name":"status","type":"string"},{"name":"timestamp","type":"long"},
		{"name":"received_at","type":{"type":"long","logicalType":"timestamp-millis"}},{"name":"raw","type":"bytes"}]}`
	tests := []struct {
		name   string
		id     uint32
		kind   Kind
		schema string
		want   error
	}{
		{"v1 event", 11, KindStatusEvent, v1Event, nil},
		{"the same again", 11, KindStatusEvent, v1Event, nil},
		{"the same, spaced differently", 11, KindStatusEvent, " " + v1Event + "\n", nil},
		{"another schema under that id", 11, KindStatusEvent, StatusEventSchema(), ErrSchemaID},
		{"that id for the other kind", 11, KindMessageStatus, v1Status, ErrSchemaID},
		{"v1 status", 12, KindMessageStatus, v1Status, nil},
		{"the current schema under another id", 13, KindStatusEvent, StatusEventSchema(), nil},
		{"id 0", 0, KindStatusEvent, v1Event, ErrSchemaID},
		{"own StatusEvent id", StatusEventSchemaID, KindStatusEvent, v1Event, ErrSchemaID},
		{"own MessageStatus id", MessageStatusSchemaID, KindMessageStatus, v1Status, ErrSchemaID},
		{"field added without a default", 14, KindStatusEvent, v0Event, ErrIncompatible},
		{"other record type", 15, KindMessageStatus, v1Event, ErrIncompatible},
		{"not Avro", 16, KindStatusEvent, `{"type":"nonsense"}`, ErrIncompatible},
		{"not JSON", 17, KindStatusEvent, `{`, ErrIncompatible},
		{"no such kind", 18, Kind(9), v1Event, ErrIncompatible},
	}
	c := newTestCodec(t)
	for _, tt := range tests {
		if err := c.AddWriterSchema(tt.id, tt.kind, tt.schema); !errors.Is(err, tt.want) {
			t.Errorf("%s: AddWriterSchema(%d, %v) = %v, want %v", tt.name, tt.id, tt.kind, err, tt.want)
		}
	}
	// A refused schema left nothing behind.
	b := encodeWith(t, v0Event, 14, map[string]any{"wamid": "w", "status": "sent", "timestamp": int64(1), "received_at": time.UnixMilli(1), "raw": []byte("{}")})
	if _, err := c.DecodeStatusEvent(b); !errors.Is(err, ErrSchemaID) {
		t.Errorf("decode under a refused id: err = %v, want ErrSchemaID", err)
	}
}

// What decodes with an earlier schema re-encodes with the current one and
// decodes to the same value; nothing else panics or escapes the sentinels.
func FuzzDecodeEarlierSchema(f *testing.F) {
	c := newV1Codec(f)
	v1Event := readSchema(f, "status_event.v1.avsc")
	for _, tt := range v1StatusEvents() {
		f.Add(encodeWith(f, v1Event, v1StatusEventID, tt.native))
	}
	v1Status := readSchema(f, "message_status.v1.avsc")
	for _, tt := range v1MessageStatuses() {
		f.Add(encodeWith(f, v1Status, v1MessageStatusID, tt.native))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if ev, err := c.DecodeStatusEvent(b); err != nil {
			checkDecodeError(t, err)
		} else if enc, err := c.AppendStatusEvent(nil, &ev); err != nil {
			t.Fatalf("re-encode %+v: %v", ev, err)
		} else if got, err := c.DecodeStatusEvent(enc); err != nil || !reflect.DeepEqual(got, ev) {
			t.Fatalf("round trip %v:\n got %+v\nwant %+v", err, got, ev)
		}
		if m, err := c.DecodeMessageStatus(b); err != nil {
			checkDecodeError(t, err)
		} else if enc, err := c.AppendMessageStatus(nil, &m); err != nil {
			t.Fatalf("re-encode %+v: %v", m, err)
		} else if got, err := c.DecodeMessageStatus(enc); err != nil || !reflect.DeepEqual(got, m) {
			t.Fatalf("round trip %v:\n got %+v\nwant %+v", err, got, m)
		}
	})
}
