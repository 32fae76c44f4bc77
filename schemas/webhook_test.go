package schemas

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	testRegion = "eu-west-1"
	// testReceivedAt is after every payload timestamp in testdata (unix ms).
	testReceivedAt int64 = 1751200000123
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func ptr[T any](v T) *T { return &v }

// meta fills the fields ParseWebhook copies from the envelope and the caller
// into ev, as every sample has them.
func meta(ev StatusEvent) StatusEvent {
	ev.PhoneNumberID = "106540352242922"
	ev.DisplayPhoneNumber = "15550783881"
	ev.WABAID = "102290129340398"
	ev.Region = testRegion
	ev.ReceivedAt = testReceivedAt
	return ev
}

// checkRaw checks that every event's and rejection's Raw is a verbatim
// element of body, then clears it so the rest can be compared with want.
func checkRaw(t *testing.T, body []byte, w *Webhook) {
	t.Helper()
	for i := range w.Events {
		raw := w.Events[i].Raw
		if !json.Valid(raw) || raw[0] != '{' || !bytes.Contains(body, raw) {
			t.Errorf("event %d: Raw %q is not a status object of the body", i, raw)
		}
		w.Events[i].Raw = nil
	}
	for i := range w.Rejected {
		raw := w.Rejected[i].Raw
		if !json.Valid(raw) || !bytes.Contains(body, raw) {
			t.Errorf("rejected %d: Raw %q is not an element of the body", i, raw)
		}
	}
}

const (
	wamidSample = "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA="
	wamidGroup  = "wamid.HBgLMTIwMzYzNDE4NDc5FQIAERgSQkE1RjM0QjQ3RUQ2NUQ4RTM3AA=="
	wamidOrder  = "wamid.HBgLMTY1MDU1NTEyMzQVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA"
	wamidFailed = "wamid.HBgLMTY1MDU1NTk4NzYVAgARGBI3RjJBMEQ5QkE4RjFDMjQ1OUQA"
	groupID     = "Y2FwaV9ncm91cDoxNTU1MDc4Mzg4MToxMjAzNjM0MTg0NzkyMzQ1Njc"
	errorsHref  = "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"
)

// testdataWebhook is a testdata file and what ParseWebhook must make of it
// (Raw aside), with testRegion and testReceivedAt.
type testdataWebhook struct {
	file string
	want Webhook
}

func testdataWebhooks() []testdataWebhook {
	return []testdataWebhook{{
		file: "sent_minimal_v24.json",
		want: Webhook{Events: []StatusEvent{meta(StatusEvent{
			WAMID: wamidSample, Status: "sent", Timestamp: 1750030073, RecipientID: "16505551234",
		})}},
	}, {
		file: "sent_with_conversation_and_pricing.json",
		want: Webhook{Events: []StatusEvent{meta(StatusEvent{
			WAMID: wamidSample, Status: "sent", Timestamp: 1750030073, RecipientID: "16505551234",
			Conversation: &Conversation{ID: "72b14d6bd5407799e66f64d1b338e567", ExpirationTimestamp: 1750116480, OriginType: "marketing"},
			Pricing:      &Pricing{Billable: ptr(true), PricingModel: "PMP", Type: "regular", Category: "marketing"},
		})}},
	}, {
		file: "failed_with_errors.json",
		want: Webhook{Events: []StatusEvent{meta(StatusEvent{
			WAMID: "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI0QUQ2MjA4NEYyRkExNjMyREUA", Status: "failed", Timestamp: 1751142888,
			RecipientID: "16505551234",
			Errors: []Error{{
				Code:    131049,
				Title:   "This message was not delivered to maintain healthy ecosystem engagement.",
				Message: "This message was not delivered to maintain healthy ecosystem engagement.",
				Details: "In order to maintain a healthy ecosystem engagement, the message failed to be delivered.",
				Href:    errorsHref,
			}},
		})}},
	}, {
		// Since 2026 recipient_id may be missing, with recipient_user_id
		// instead; contacts[] is ignored.
		file: "delivered_user_id_no_recipient_id.json",
		want: Webhook{Events: []StatusEvent{meta(StatusEvent{
			WAMID: wamidSample, Status: "delivered", Timestamp: 1750030073,
			RecipientUserID: "US.13491208655302741918", ParentUserID: "US.11815799212886844830",
			Pricing: &Pricing{Billable: ptr(true), PricingModel: "PMP", Type: "regular", Category: "marketing"},
		})}},
	}, {
		// A group message: one status per participant, all with the same id.
		file: "group_fanout.json",
		want: Webhook{Events: []StatusEvent{
			meta(StatusEvent{WAMID: wamidGroup, Status: "delivered", Timestamp: 1750263773, RecipientID: groupID, RecipientType: "group", RecipientParticipantID: "16505551234"}),
			meta(StatusEvent{WAMID: wamidGroup, Status: "delivered", Timestamp: 1750263774, RecipientID: groupID, RecipientType: "group", RecipientParticipantID: "16505550000"}),
			meta(StatusEvent{WAMID: wamidGroup, Status: "read", Timestamp: 1750263801, RecipientID: groupID, RecipientType: "group", RecipientParticipantID: "16505551234"}),
		}},
	}, {
		// Several statuses for two messages in one POST: sent and delivered
		// tied to the second, a JSON-number timestamp and expiration, and a
		// failed before a later-arriving delivered (multi-device).
		file: "several_statuses.json",
		want: Webhook{Events: []StatusEvent{
			meta(StatusEvent{WAMID: wamidOrder, Status: "sent", Timestamp: 1750030073, RecipientID: "16505551234", BizOpaqueCallbackData: "order-8812"}),
			meta(StatusEvent{
				WAMID: wamidOrder, Status: "delivered", Timestamp: 1750030073, RecipientID: "16505551234",
				Conversation: &Conversation{ID: "c0ffee4d6bd5407799e66f64d1b338e5", ExpirationTimestamp: 1750116480, OriginType: "utility"},
				Pricing:      &Pricing{Billable: ptr(false), PricingModel: "PMP", Type: "free_customer_service", Category: "utility"},
			}),
			meta(StatusEvent{
				WAMID: wamidFailed, Status: "failed", Timestamp: 1750030090, RecipientID: "16505559876",
				Errors: []Error{{Code: 131026, Title: "Message undeliverable", Message: "Message undeliverable", Details: "Message Undeliverable.", Href: errorsHref}},
			}),
			meta(StatusEvent{WAMID: wamidFailed, Status: "delivered", Timestamp: 1750030085, RecipientID: "16505559876"}),
		}},
	}, {
		// messages[] beside statuses[], a change with messages[] only, and a
		// change of another field.
		file: "messages_and_statuses.json",
		want: Webhook{
			Events:          []StatusEvent{meta(StatusEvent{WAMID: wamidOrder, Status: "read", Timestamp: 1750030099, RecipientID: "16505551234"})},
			InboundMessages: 3,
			OtherChanges:    1,
		},
	}, {
		file: "played.json",
		want: Webhook{Events: []StatusEvent{meta(StatusEvent{
			WAMID: "wamid.HBgLMTY1MDU1NTEyMzQVAgARGBIyQjdFNUE4QzlEMUYzRTRBNkIA", Status: "played", Timestamp: 1750031200,
			RecipientID: "16505551234", RecipientUserID: "US.13491208655302741918",
		})}},
	}, {
		// A read with no delivered before it.
		file: "read_only.json",
		want: Webhook{Events: []StatusEvent{meta(StatusEvent{WAMID: wamidSample, Status: "read", Timestamp: 1750030075, RecipientID: "16505551234"})}},
	}, {
		// The same status three times, in two entries: all kept.
		file: "duplicate_statuses.json",
		want: Webhook{Events: []StatusEvent{
			meta(StatusEvent{WAMID: wamidSample, Status: "delivered", Timestamp: 1750030074, RecipientID: "16505551234"}),
			meta(StatusEvent{WAMID: wamidSample, Status: "delivered", Timestamp: 1750030074, RecipientID: "16505551234"}),
			meta(StatusEvent{WAMID: wamidSample, Status: "delivered", Timestamp: 1750030074, RecipientID: "16505551234"}),
		}},
	}}
}

func TestParseWebhookTestdata(t *testing.T) {
	for _, tt := range testdataWebhooks() {
		t.Run(tt.file, func(t *testing.T) {
			body := readTestdata(t, tt.file)
			got, err := ParseWebhook(body, testRegion, testReceivedAt)
			if err != nil {
				t.Fatalf("ParseWebhook: %v", err)
			}
			checkRaw(t, body, &got)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseWebhook:\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// Every JSON file in testdata has its expected result in a test, so that a new
// fixture is not forgotten.
func TestTestdataCovered(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	covered := map[string]bool{"rejected_mixed.json": true} // TestParseWebhookRejectedMixed
	for _, tt := range testdataWebhooks() {
		covered[tt.file] = true
	}
	for _, f := range files {
		if !covered[filepath.Base(f)] {
			t.Errorf("%s has no expected result in testdataWebhooks", f)
		}
		delete(covered, filepath.Base(f))
	}
	for f := range covered {
		t.Errorf("testdata/%s is expected but missing", f)
	}
}

// The exact raw bytes of each element, whatever its whitespace, and the
// rejection of each bad element without touching the others.
func TestParseWebhookRejectedMixed(t *testing.T) {
	body := readTestdata(t, "rejected_mixed.json")
	got, err := ParseWebhook(body, testRegion, testReceivedAt)
	if err != nil {
		t.Fatalf("ParseWebhook: %v", err)
	}
	type rejection struct {
		raw, wamid string
		err        error
	}
	wantRejected := []rejection{
		{`"not an object"`, "", ErrStatusNotObject},
		{`{"status": "sent", "timestamp": "1750030073"}`, "", ErrNoWAMID},
		{`{"id": "wamid.NOSTATUS", "status": 2, "timestamp": "1750030073"}`, "wamid.NOSTATUS", ErrNoStatus},
		{`{"id": "wamid.NOTIME", "status": "sent"}`, "wamid.NOTIME", ErrBadTimestamp},
		{`{"id": "wamid.MILLIS", "status": "sent", "timestamp": "1750030073000"}`, "wamid.MILLIS", ErrMillisTimestamp},
		{`{"id": "wamid.FUTURE", "status": "sent", "timestamp": "1850030073"}`, "wamid.FUTURE", ErrFutureTimestamp},
		{`{"id": "wamid.BADFIELD", "status": "sent", "timestamp": "1750030073", "pricing": {"billable": "yes"}}`, "wamid.BADFIELD", ErrBadField},
	}
	if len(got.Rejected) != len(wantRejected) {
		t.Fatalf("got %d rejected, want %d: %+v", len(got.Rejected), len(wantRejected), got.Rejected)
	}
	for i, want := range wantRejected {
		r := got.Rejected[i]
		if string(r.Raw) != want.raw || r.WAMID != want.wamid || !errors.Is(r.Err, want.err) {
			t.Errorf("rejected %d: got {%s %q %v}, want {%s %q %v}", i, r.Raw, r.WAMID, r.Err, want.raw, want.wamid, want.err)
		}
	}
	wantEvents := []string{
		`{"id": "wamid.VALID1", "status": "sent", "timestamp": "1750030073", "recipient_id": "16505551234"}`,
		// An unknown status value is an event: the processor dead-letters it.
		`{"id": "wamid.UNKNOWN", "status": "deleted", "timestamp": "1750030073"}`,
	}
	if len(got.Events) != len(wantEvents) {
		t.Fatalf("got %d events, want %d", len(got.Events), len(wantEvents))
	}
	for i, want := range wantEvents {
		if string(got.Events[i].Raw) != want {
			t.Errorf("event %d Raw = %s, want %s", i, got.Events[i].Raw, want)
		}
	}
}

// envelope wraps status elements in a minimal body.
func envelope(statuses ...string) []byte {
	return []byte(`{"object":"whatsapp_business_account","entry":[{"id":"waba","changes":[{"field":"messages","value":` +
		`{"metadata":{"phone_number_id":"pni","display_phone_number":"dpn"},"statuses":[` + strings.Join(statuses, ",") + `]}}]}]}`)
}

// parseOne parses a body holding the one status element s.
func parseOne(t *testing.T, s string, receivedAt int64) (*StatusEvent, *RejectedStatus) {
	t.Helper()
	w, err := ParseWebhook(envelope(s), "r", receivedAt)
	if err != nil {
		t.Fatalf("ParseWebhook(%s): %v", s, err)
	}
	if len(w.Events)+len(w.Rejected) != 1 {
		t.Fatalf("ParseWebhook(%s): %d events and %d rejected, want one in all", s, len(w.Events), len(w.Rejected))
	}
	if len(w.Events) == 1 {
		return &w.Events[0], nil
	}
	return nil, &w.Rejected[0]
}

func TestParseWebhookStatusRules(t *testing.T) {
	const now int64 = 1750000000000 // ms
	tests := []struct {
		name       string
		status     string
		receivedAt int64
		wantErr    error // nil: an event
		wantTS     int64
		wantWAMID  string // of the rejection
	}{
		{"string timestamp", `{"id":"w","status":"sent","timestamp":"1750000000"}`, now, nil, 1750000000, ""},
		{"number timestamp", `{"id":"w","status":"sent","timestamp":1750000000}`, now, nil, 1750000000, ""},
		{"escaped digits", `{"id":"w","status":"sent","timestamp":"\u0031750000000"}`, now, nil, 1750000000, ""},
		{"leading zeros", `{"id":"w","status":"sent","timestamp":"01750000000"}`, now, nil, 1750000000, ""},
		{"2009-01-01", `{"id":"w","status":"sent","timestamp":"1230768000"}`, now, nil, 1230768000, ""},
		{"a second before 2009", `{"id":"w","status":"sent","timestamp":"1230767999"}`, now, ErrBadTimestamp, 0, "w"},
		{"one second", `{"id":"w","status":"sent","timestamp":"1"}`, now, ErrBadTimestamp, 0, "w"},
		{"minutes", `{"id":"w","status":"sent","timestamp":"29166666"}`, 0, ErrBadTimestamp, 0, "w"},
		{"huge number", `{"id":"w","status":"sent","timestamp":1e400}`, now, ErrBadTimestamp, 0, "w"},
		{"huge digits", `{"id":"w","status":"sent","timestamp":` + strings.Repeat("9", 400) + `}`, now, ErrBadTimestamp, 0, "w"},
		{"huge error code", `{"id":"w","status":"failed","timestamp":"1750000000","errors":[{"code":1e400}]}`, now, ErrBadField, 0, "w"},
		{"huge number in an unknown field", `{"id":"w","status":"sent","timestamp":"1750000000","x":1e400}`, now, nil, 1750000000, ""},
		{"deep nesting in an unknown field", `{"id":"w","status":"sent","timestamp":"1750000000","x":` + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + `}`, now, nil, 1750000000, ""},
		{"deep nesting in a known field", `{"id":"w","status":"sent","timestamp":"1750000000","pricing":{"category":` + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + `}}`, now, ErrBadField, 0, "w"},
		{"no recipient ids", `{"id":"w","status":"sent","timestamp":"1750000000"}`, now, nil, 1750000000, ""},
		{"invalid UTF-8", "{\"id\":\"w\",\"status\":\"sent\",\"timestamp\":\"1750000000\",\"recipient_id\":\"\xff\xfe\"}", now, ErrBadField, 0, "w"},
		{"invalid UTF-8 in the id", "{\"id\":\"w\xc3\",\"status\":\"sent\",\"timestamp\":\"1750000000\"}", now, ErrBadField, 0, "w\ufffd"},
		{"lone surrogate escape is valid UTF-8", `{"id":"w","status":"sent","timestamp":"1750000000","recipient_id":"\udc00"}`, now, nil, 1750000000, ""},
		{"unknown status kept", `{"id":"w","status":"deleted","timestamp":"1750000000"}`, now, nil, 1750000000, ""},
		{"uppercase status kept", `{"id":"w","status":"READ","timestamp":"1750000000"}`, now, nil, 1750000000, ""},
		{"exactly a day ahead", `{"id":"w","status":"sent","timestamp":"1750086400"}`, now, nil, 1750086400, ""},
		{"a day and a second ahead", `{"id":"w","status":"sent","timestamp":"1750086401"}`, now, ErrFutureTimestamp, 0, "w"},
		{"far future", `{"id":"w","status":"sent","timestamp":"99999999999"}`, now, ErrFutureTimestamp, 0, "w"},
		{"no receive time: no future check", `{"id":"w","status":"sent","timestamp":"99999999999"}`, 0, nil, 99999999999, ""},
		{"milliseconds", `{"id":"w","status":"sent","timestamp":"100000000000"}`, 0, ErrMillisTimestamp, 0, "w"},
		{"milliseconds number", `{"id":"w","status":"sent","timestamp":1750000000000}`, now, ErrMillisTimestamp, 0, "w"},
		{"zero", `{"id":"w","status":"sent","timestamp":"0"}`, now, ErrBadTimestamp, 0, "w"},
		{"negative", `{"id":"w","status":"sent","timestamp":-5}`, now, ErrBadTimestamp, 0, "w"},
		{"negative string", `{"id":"w","status":"sent","timestamp":"-5"}`, now, ErrBadTimestamp, 0, "w"},
		{"plus sign", `{"id":"w","status":"sent","timestamp":"+1750000000"}`, now, ErrBadTimestamp, 0, "w"},
		{"fraction", `{"id":"w","status":"sent","timestamp":1750000000.0}`, now, ErrBadTimestamp, 0, "w"},
		{"exponent", `{"id":"w","status":"sent","timestamp":1.75e9}`, now, ErrBadTimestamp, 0, "w"},
		{"spaces", `{"id":"w","status":"sent","timestamp":" 1750000000"}`, now, ErrBadTimestamp, 0, "w"},
		{"empty string", `{"id":"w","status":"sent","timestamp":""}`, now, ErrBadTimestamp, 0, "w"},
		{"overflow", `{"id":"w","status":"sent","timestamp":"99999999999999999999"}`, now, ErrBadTimestamp, 0, "w"},
		{"bool", `{"id":"w","status":"sent","timestamp":true}`, now, ErrBadTimestamp, 0, "w"},
		{"null timestamp", `{"id":"w","status":"sent","timestamp":null}`, now, ErrBadTimestamp, 0, "w"},
		{"missing timestamp", `{"id":"w","status":"sent"}`, now, ErrBadTimestamp, 0, "w"},
		{"missing id", `{"status":"sent","timestamp":"1750000000"}`, now, ErrNoWAMID, 0, ""},
		{"empty id", `{"id":"","status":"sent","timestamp":"1750000000"}`, now, ErrNoWAMID, 0, ""},
		{"null id", `{"id":null,"status":"sent","timestamp":"1750000000"}`, now, ErrNoWAMID, 0, ""},
		{"number id", `{"id":7,"status":"sent","timestamp":"1750000000"}`, now, ErrNoWAMID, 0, ""},
		{"missing status", `{"id":"w","timestamp":"1750000000"}`, now, ErrNoStatus, 0, "w"},
		{"empty status", `{"id":"w","status":"","timestamp":"1750000000"}`, now, ErrNoStatus, 0, "w"},
		{"object status", `{"id":"w","status":{},"timestamp":"1750000000"}`, now, ErrNoStatus, 0, "w"},
		{"array", `["w","sent"]`, now, ErrStatusNotObject, 0, ""},
		{"null element", `null`, now, ErrStatusNotObject, 0, ""},
		{"number element", `17`, now, ErrStatusNotObject, 0, ""},
		{"recipient_id number", `{"id":"w","status":"sent","timestamp":"1750000000","recipient_id":16505551234}`, now, ErrBadField, 0, "w"},
		{"conversation string", `{"id":"w","status":"sent","timestamp":"1750000000","conversation":"c"}`, now, ErrBadField, 0, "w"},
		{"expiration not integer", `{"id":"w","status":"sent","timestamp":"1750000000","conversation":{"id":"c","expiration_timestamp":"soon"}}`, now, ErrBadField, 0, "w"},
		{"billable string", `{"id":"w","status":"sent","timestamp":"1750000000","pricing":{"billable":"true"}}`, now, ErrBadField, 0, "w"},
		{"errors object", `{"id":"w","status":"failed","timestamp":"1750000000","errors":{"code":1}}`, now, ErrBadField, 0, "w"},
		{"error code not integer", `{"id":"w","status":"failed","timestamp":"1750000000","errors":[{"code":"x"}]}`, now, ErrBadField, 0, "w"},
		{"details number", `{"id":"w","status":"failed","timestamp":"1750000000","errors":[{"code":1,"error_data":{"details":5}}]}`, now, ErrBadField, 0, "w"},
		// Earlier rules win: the id is checked before the timestamp.
		{"no id and bad timestamp", `{"status":"sent","timestamp":"x"}`, now, ErrNoWAMID, 0, ""},
		{"bad field and bad timestamp", `{"id":"w","status":"sent","timestamp":"x","recipient_id":1}`, now, ErrBadTimestamp, 0, "w"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, rej := parseOne(t, tt.status, tt.receivedAt)
			if tt.wantErr == nil {
				if rej != nil {
					t.Fatalf("rejected with %v, want an event", rej.Err)
				}
				if ev.Timestamp != tt.wantTS {
					t.Errorf("Timestamp = %d, want %d", ev.Timestamp, tt.wantTS)
				}
				return
			}
			if rej == nil {
				t.Fatalf("got event %+v, want rejection %v", ev, tt.wantErr)
			}
			if !errors.Is(rej.Err, tt.wantErr) {
				t.Errorf("Err = %v, want %v", rej.Err, tt.wantErr)
			}
			if rej.WAMID != tt.wantWAMID {
				t.Errorf("WAMID = %q, want %q", rej.WAMID, tt.wantWAMID)
			}
			if string(rej.Raw) != tt.status {
				t.Errorf("Raw = %s, want %s", rej.Raw, tt.status)
			}
		})
	}
}

func TestParseWebhookFields(t *testing.T) {
	tests := []struct {
		name   string
		status string
		want   StatusEvent // Raw, metadata, region and receive time aside
	}{{
		name:   "nulls are absent",
		status: `{"id":"w","status":"sent","timestamp":"1750000005","recipient_id":null,"conversation":null,"pricing":null,"errors":null,"biz_opaque_callback_data":null}`,
		want:   StatusEvent{WAMID: "w", Status: "sent", Timestamp: 1750000005},
	}, {
		name:   "empty objects are present",
		status: `{"id":"w","status":"sent","timestamp":"1750000005","conversation":{},"pricing":{},"errors":[]}`,
		want:   StatusEvent{WAMID: "w", Status: "sent", Timestamp: 1750000005, Conversation: &Conversation{}, Pricing: &Pricing{}},
	}, {
		name:   "numbers as strings and as numbers",
		status: `{"id":"w","status":"failed","timestamp":1750000005,"conversation":{"id":"c","expiration_timestamp":"77"},"errors":[{"code":"131026"},{"code":-1}]}`,
		want: StatusEvent{WAMID: "w", Status: "failed", Timestamp: 1750000005, Conversation: &Conversation{ID: "c", ExpirationTimestamp: 77},
			Errors: []Error{{Code: 131026}, {Code: -1}}},
	}, {
		name:   "escapes and unicode",
		status: `{"id":"wamid.\u00e9\"x\"","status":"sent","timestamp":"1750000005","biz_opaque_callback_data":"caf\u00e9 \ud83d\udc4d","recipient_id":"naïve"}`,
		want:   StatusEvent{WAMID: "wamid.é\"x\"", Status: "sent", Timestamp: 1750000005, BizOpaqueCallbackData: "café 👍", RecipientID: "naïve"},
	}, {
		name:   "unknown fields ignored",
		status: `{"id":"w","status":"sent","timestamp":"1750000005","type":"payment","payment":{"reference_id":"r"},"recipient_type":"individual"}`,
		want:   StatusEvent{WAMID: "w", Status: "sent", Timestamp: 1750000005, RecipientType: "individual"},
	}, {
		name:   "every field",
		status: `{"id":"w","status":"read","timestamp":"1750000005","recipient_id":"ri","recipient_user_id":"ru","parent_user_id":"pu","recipient_type":"group","recipient_participant_id":"rp","conversation":{"id":"c","expiration_timestamp":6,"origin":{"type":"service"}},"pricing":{"billable":false,"pricing_model":"CBP","type":"regular","category":"service"},"errors":[{"code":1,"title":"t","message":"m","error_data":{"details":"d"},"href":"h"}],"biz_opaque_callback_data":"b"}`,
		want: StatusEvent{
			WAMID: "w", Status: "read", Timestamp: 1750000005, RecipientID: "ri", RecipientUserID: "ru", ParentUserID: "pu",
			RecipientType: "group", RecipientParticipantID: "rp",
			Conversation:          &Conversation{ID: "c", ExpirationTimestamp: 6, OriginType: "service"},
			Pricing:               &Pricing{Billable: ptr(false), PricingModel: "CBP", Type: "regular", Category: "service"},
			Errors:                []Error{{Code: 1, Title: "t", Message: "m", Details: "d", Href: "h"}},
			BizOpaqueCallbackData: "b",
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, rej := parseOne(t, tt.status, 0)
			if rej != nil {
				t.Fatalf("rejected: %v", rej.Err)
			}
			if string(ev.Raw) != tt.status {
				t.Errorf("Raw = %s, want %s", ev.Raw, tt.status)
			}
			want := tt.want
			want.PhoneNumberID, want.DisplayPhoneNumber, want.WABAID, want.Region = "pni", "dpn", "waba", "r"
			want.Raw = ev.Raw
			if !reflect.DeepEqual(*ev, want) {
				t.Errorf("got  %+v\nwant %+v", *ev, want)
			}
		})
	}
}

func TestParseWebhookBodyErrors(t *testing.T) {
	tests := []struct {
		name string
		body string
		want error
	}{
		{"empty", ``, ErrMalformed},
		{"whitespace", " \n", ErrMalformed},
		{"not json", `object=whatsapp`, ErrMalformed},
		{"truncated", `{"object":"whatsapp_business_account","entry":[`, ErrMalformed},
		{"trailing garbage", `{"object":"whatsapp_business_account"} x`, ErrMalformed},
		{"null", `null`, ErrMalformed},
		{"array", `[{"object":"whatsapp_business_account"}]`, ErrMalformed},
		{"string", `"whatsapp_business_account"`, ErrMalformed},
		{"entry not an array", `{"object":"whatsapp_business_account","entry":{}}`, ErrMalformed},
		{"changes not an array", `{"object":"whatsapp_business_account","entry":[{"changes":"x"}]}`, ErrMalformed},
		{"value not an object", `{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":[]}]}]}`, ErrMalformed},
		{"statuses not an array", `{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{"statuses":{}}}]}]}`, ErrMalformed},
		{"metadata not an object", `{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{"metadata":1}}]}]}`, ErrMalformed},
		{"waba id a number", `{"object":"whatsapp_business_account","entry":[{"id":1}]}`, ErrMalformed},
		{"nested past encoding/json's limit", `{"object":"whatsapp_business_account","x":` + strings.Repeat("[", 10_001) + strings.Repeat("]", 10_001) + `}`, ErrMalformed},
		{"invalid UTF-8 in the waba id", "{\"object\":\"whatsapp_business_account\",\"entry\":[{\"id\":\"1\xff\"}]}", ErrMalformed},
		{"invalid UTF-8 in the phone number id", "{\"object\":\"whatsapp_business_account\",\"entry\":[{\"id\":\"1\",\"changes\":[{\"field\":\"messages\",\"value\":{\"metadata\":{\"phone_number_id\":\"\xc0\"}}}]}]}", ErrMalformed},
		{"invalid UTF-8 in the display number", "{\"object\":\"whatsapp_business_account\",\"entry\":[{\"id\":\"1\",\"changes\":[{\"field\":\"messages\",\"value\":{\"metadata\":{\"display_phone_number\":\"\xc0\"}}}]}]}", ErrMalformed},
		{"invalid UTF-8 in the object", "{\"object\":\"whatsapp_business_account\xff\"}", ErrNotWhatsApp},
		{"no object", `{"entry":[]}`, ErrNotWhatsApp},
		{"page webhook", `{"object":"page","entry":[{"id":"1","messaging":[]}]}`, ErrNotWhatsApp},
		{"object case", `{"object":"WHATSAPP_BUSINESS_ACCOUNT","entry":[]}`, ErrNotWhatsApp},
		{"other object, wrong shape", `{"object":"instagram","entry":"x"}`, ErrNotWhatsApp},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseWebhook([]byte(tt.body), testRegion, testReceivedAt)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if !reflect.DeepEqual(got, Webhook{}) {
				t.Errorf("got %+v with an error, want the zero Webhook", got)
			}
		})
	}
}

// Error messages name JSON fields and types: the edge may return them.
func TestParseWebhookErrorText(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{"envelope", `{"object":"whatsapp_business_account","entry":[{"changes":"x"}]}`,
			"schemas: malformed webhook body: entry.changes is a JSON string, want array"},
		{"nested envelope", `{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{"metadata":[]}}]}]}`,
			"schemas: malformed webhook body: entry.changes.value.metadata is a JSON array, want object"},
		{"status field", string(envelope(`{"id":"w","status":"sent","timestamp":"1750000000","pricing":{"billable":"yes"}}`)),
			"schemas: status field has the wrong JSON type: pricing.billable is a JSON string, want boolean"},
		{"status object field", string(envelope(`{"id":"w","status":"sent","timestamp":"1750000000","conversation":"c"}`)),
			"schemas: status field has the wrong JSON type: conversation is a JSON string, want object"},
		{"status string field", string(envelope(`{"id":"w","status":"sent","timestamp":"1750000000","recipient_id":5}`)),
			"schemas: status field has the wrong JSON type: recipient_id is a JSON number, want string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := ParseWebhook([]byte(tt.body), "r", 0)
			if err == nil && len(w.Rejected) == 1 {
				err = w.Rejected[0].Err
			}
			if err == nil || err.Error() != tt.want {
				t.Errorf("error %q, want %q", err, tt.want)
			}
		})
	}
	_, err := ParseWebhook([]byte(`{"object":"whatsapp_business_account","entry":1}`), "r", 0)
	if _, ok := errors.AsType[*json.UnmarshalTypeError](err); !ok || !errors.Is(err, ErrMalformed) {
		t.Errorf("err = %v, want ErrMalformed wrapping the json error", err)
	}
}

func TestParseWebhookEmpty(t *testing.T) {
	tests := []struct {
		name, body string
		want       Webhook
	}{
		{"no entry", `{"object":"whatsapp_business_account"}`, Webhook{}},
		{"no statuses", `{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{}}]}]}`, Webhook{}},
		{"statuses of another field skipped", `{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"smb_message_echoes","value":{"statuses":[{"id":"w","status":"sent","timestamp":"1"}]}}]}]}`, Webhook{OtherChanges: 1}},
		{"no field", `{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"value":{"statuses":[{"id":"w","status":"sent","timestamp":"1"}]}}]}]}`, Webhook{OtherChanges: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseWebhook([]byte(tt.body), testRegion, testReceivedAt)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// The result must not alias the body: the edge reuses its buffer, while
// the records of a POST answered 503 may still be in flight. Both paths.
func TestParseWebhookCopiesRaw(t *testing.T) {
	for name, parse := range map[string]func([]byte, string, int64) (Webhook, error){
		"scan": ParseWebhook, "encoding-json": decodeWebhook,
	} {
		body := envelope(`{"id":"w","status":"sent","timestamp":"1750000005"}`, `{"id":"w","status":"sent"}`)
		w, err := parse(body, "r", 0)
		if err != nil || len(w.Events) != 1 || len(w.Rejected) != 1 {
			t.Fatalf("%s: ParseWebhook = %+v, %v", name, w, err)
		}
		wantEv, wantRej := string(w.Events[0].Raw), string(w.Rejected[0].Raw)
		for i := range body {
			body[i] = 'x'
		}
		if string(w.Events[0].Raw) != wantEv || string(w.Rejected[0].Raw) != wantRej {
			t.Errorf("%s: Raw changed with the body: %s, %s", name, w.Events[0].Raw, w.Rejected[0].Raw)
		}
	}
}

func TestParseInt(t *testing.T) {
	tests := []struct {
		in     string
		want   int64
		wantOK bool
	}{
		{"0", 0, true},
		{"-0", 0, true},
		{"42", 42, true},
		{"9223372036854775807", 1<<63 - 1, true},
		{"9223372036854775808", 0, false},
		{"-9223372036854775808", -1 << 63, true},
		{"-9223372036854775809", 0, false},
		{"00000000000000000001", 0, false}, // 20 digits
		{"", 0, false},
		{"-", 0, false},
		{"+1", 0, false},
		{"1.0", 0, false},
		{"1e3", 0, false},
		{"1_000", 0, false},
		{"0x10", 0, false},
	}
	for _, tt := range tests {
		got, ok := parseInt([]byte(tt.in))
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("parseInt(%q) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.wantOK)
		}
	}
}

// A rejected status keeps the envelope it came in, so that its dead letter
// can be replayed into an event as complete as the original; invalid UTF-8
// that wastatus does not read (an inbound message) costs nothing.
func TestParseWebhookRejectedEnvelope(t *testing.T) {
	body := []byte(`{"object":"whatsapp_business_account","entry":[` +
		`{"id":"waba1","changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"pni1","display_phone_number":"dpn1"},` +
		`"messages":[{"text":{"body":"caf` + "\xe9" + `"}}],` +
		`"statuses":[{"id":"w1","status":"sent","timestamp":"1750000000"},{"id":"w2","status":"sent","timestamp":"1750000000000"}]}}]},` +
		`{"id":"waba2","changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"pni2","display_phone_number":"dpn2"},` +
		`"statuses":[{"id":"w3","status":"read","timestamp":"1750000001","recipient_id":"` + "\xff" + `"}]}}]}]}`)
	w, err := ParseWebhook(body, "r", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(w.Events) != 1 || w.Events[0].WAMID != "w1" || w.Events[0].WABAID != "waba1" || w.InboundMessages != 1 {
		t.Errorf("events %+v, inbound %d: want w1 of waba1 and one inbound message", w.Events, w.InboundMessages)
	}
	want := []RejectedStatus{
		{WAMID: "w2", Err: ErrMillisTimestamp, PhoneNumberID: "pni1", DisplayPhoneNumber: "dpn1", WABAID: "waba1"},
		{WAMID: "w3", Err: ErrBadField, PhoneNumberID: "pni2", DisplayPhoneNumber: "dpn2", WABAID: "waba2"},
	}
	if len(w.Rejected) != len(want) {
		t.Fatalf("rejected %+v, want %d", w.Rejected, len(want))
	}
	for i, r := range w.Rejected {
		if !errors.Is(r.Err, want[i].Err) || r.WAMID != want[i].WAMID || r.PhoneNumberID != want[i].PhoneNumberID ||
			r.DisplayPhoneNumber != want[i].DisplayPhoneNumber || r.WABAID != want[i].WABAID || !bytes.Contains(body, r.Raw) {
			t.Errorf("rejected %d = %+v, want %+v", i, r, want[i])
		}
	}
	if got := w.Rejected[1].Err.Error(); !strings.Contains(got, "not valid UTF-8") {
		t.Errorf("invalid UTF-8 rejected with %q, want it said", got)
	}
}

// checkScan fails unless scanWebhook either leaves body to decodeWebhook
// or reads it exactly as decodeWebhook does. It reports whether the scan
// read it.
func checkScan(t testing.TB, body []byte, receivedAt int64) bool {
	t.Helper()
	got, ok := scanWebhook(body, "r", receivedAt)
	if !ok {
		if !reflect.DeepEqual(got, Webhook{}) {
			t.Fatalf("scan left a body to encoding/json with a non-zero result: %+v", got)
		}
		return false
	}
	want, err := decodeWebhook(body, "r", receivedAt)
	if err != nil {
		t.Fatalf("scan read a body encoding/json refuses (%v):\n%q", err, body)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("scan and encoding/json differ on\n%q\n scan %+v\n json %+v", body, got, want)
	}
	return true
}

// Every sample of Meta's takes the fast path, and reads as encoding/json
// reads it; rejected_mixed.json, which holds statuses of other JSON types,
// is left to encoding/json.
func TestScanWebhookTestdata(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata: %v", err)
	}
	for _, file := range files {
		name := filepath.Base(file)
		body := readTestdata(t, name)
		for _, receivedAt := range []int64{testReceivedAt, 0, 1750030073_000} {
			if read := checkScan(t, body, receivedAt); read != (name != "rejected_mixed.json") {
				t.Errorf("%s: scan read it: %v", name, read)
			}
		}
	}
}

// Bodies that are not of the documented shape go to encoding/json, which
// decides them with its own rules and errors.
func TestScanWebhookLeaves(t *testing.T) {
	status := `{"id":"w","status":"sent","timestamp":"1750000000"}`
	for _, body := range []string{
		``, ` `, `null`, `[]`, `{`, `{"object":"whatsapp_business_account"} x`,
		`{"object":"page"}`, `{"entry":[]}`, `{"object":null}`, "{\"object\":\"whatsapp_business_account\"}\x00",
		`{"object":"whatsapp_business_account","entry":{}}`,
		`{"object":"whatsapp_business_account","Entry":[]}`,
		`{"object":"whatsapp_business_account","\u0065ntry":[]}`,
		`{"object":"whatsapp_business_account","object":"whatsapp_business_account"}`,
		`{"object":"whatsapp_business_account","x":` + strings.Repeat("[", 10_001) + strings.Repeat("]", 10_001) + `}`,
		"{\"object\":\"whatsapp_business_account\",\"x\":\"\xff\"}",
		string(envelope(`1`)),
		string(envelope(`{"id":"w","status":"sent","timestamp":"1750000000","recipient_id":5}`)),
		string(envelope(`{"id":"w","status":"sent","timestamp":"1750000000","ID":"v"}`)),
		string(envelope(`{"id":"w","status":"sent","timestamp":"1750000000","id":"v"}`)),
		string(envelope(`{"id":"w","status":"sent","timestamp":"1750000000","pricing":{"billable":"yes"}}`)),
		string(envelope(status + `,` + status))[:80],
	} {
		if checkScan(t, []byte(body), testReceivedAt) {
			t.Errorf("scan read %q, want it left to encoding/json", body)
		}
	}
	// Lenient fields and null read as encoding/json reads them.
	for _, st := range []string{
		status,
		`{"id":5,"status":"sent","timestamp":"1750000000"}`,
		`{"id":null,"status":{"a":[1]},"timestamp":1750000000}`,
		`{"id":"w\u0031","status":"s\u00e9nt","timestamp":"\u0031750000000"}`,
		`{"id":"w","status":"sent","timestamp":1.75e9}`,
		`{"id":"w","status":"sent","timestamp":[1750000000],"conversation":{"expiration_timestamp":true},"errors":[{"code":"x"}]}`,
		`{"id":"w","status":"sent","timestamp":"1750000000","conversation":null,"pricing":{"billable":null},"errors":[],"recipient_id":null}`,
		`{"id":"w","status":"sent","timestamp":"1750000000","conversation":{"origin":null},"errors":[{"error_data":null,"code":-0}]}`,
	} {
		if !checkScan(t, envelope(st, status), testReceivedAt) {
			t.Errorf("scan left %s to encoding/json, want it read", st)
		}
	}
}

// TestScanWebhookRandom checks the fast path against encoding/json on
// random bodies of the webhook's shape, with wrong types, nulls, escapes,
// repeated and case-changed keys, unknown keys, deep nesting and
// corruptions mixed in. WASTATUS_SEED repeats a run.
func TestScanWebhookRandom(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("WASTATUS_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		seed = v
	}
	t.Logf("WASTATUS_SEED=%d", seed)
	g := bodyGen{r: rand.New(rand.NewPCG(seed, 7))}
	const n = 3000
	read := 0
	for range n {
		body := g.body()
		if checkScan(t, body, g.receivedAt()) {
			read++
		}
	}
	// The generator must exercise both paths.
	if read < n/10 || read > n-n/10 {
		t.Errorf("scan read %d of %d bodies, want both paths taken often", read, n)
	}
}

// FuzzScanWebhook: whatever the body, the fast path either leaves it to
// encoding/json or agrees with it exactly.
func FuzzScanWebhook(f *testing.F) {
	for _, body := range testdataBodies(f) {
		f.Add(body, testReceivedAt)
	}
	g := bodyGen{r: rand.New(rand.NewPCG(1, 2))}
	for range 20 {
		f.Add(g.body(), g.receivedAt())
	}
	f.Fuzz(func(t *testing.T, body []byte, receivedAt int64) {
		checkScan(t, body, receivedAt)
	})
}

// bodyGen makes random webhook bodies: mostly of the documented shape, with
// every kind of deviation the fast path must either read as encoding/json
// does or leave to it.
type bodyGen struct{ r *rand.Rand }

func (g *bodyGen) chance(p float64) bool { return g.r.Float64() < p }

func (g *bodyGen) one(vs ...string) string { return vs[g.r.IntN(len(vs))] }

func (g *bodyGen) receivedAt() int64 {
	return []int64{0, testReceivedAt, 1750000000_000, -1}[g.r.IntN(4)]
}

func (g *bodyGen) ws() string {
	if g.chance(0.8) {
		return ""
	}
	return g.one(" ", "\n", "\t", "\r\n  ")
}

// str is a JSON string, sometimes escaped or not ASCII.
func (g *bodyGen) str() string {
	return g.one(`"sent"`, `"delivered"`, `"read"`, `"1750030073"`, `"1750030073000"`, `"86400"`, `"-5"`, `""`,
		`"w\u0031"`, `"\u00e9t\u00e9"`, `"été"`, `"a\nb\"c\\"`, `"\ud800"`, `"\ud83d\ude00"`, `"12\/3"`, `"x"`,
		`"wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA="`, `"null"`)
}

func (g *bodyGen) number() string {
	return g.one(`1750030073`, `1750030073000`, `0`, `-0`, `-1`, `1.5`, `1e3`, `1E+2`, `17500300730000000000`, `9223372036854775807`, `-9223372036854775808`)
}

// any is a value of any kind.
func (g *bodyGen) any(depth int) string {
	switch k := g.r.IntN(10); {
	case k < 3:
		return g.str()
	case k < 5:
		return g.number()
	case k < 7:
		return g.one(`true`, `false`, `null`)
	case depth > 3:
		return `{}`
	case k == 7:
		n := g.r.IntN(3)
		var ms []string
		for range n {
			ms = append(ms, g.key(g.one("a", "id", "status", "x_y"))+":"+g.any(depth+1))
		}
		return "{" + strings.Join(ms, ",") + "}"
	case k == 8:
		n := g.r.IntN(3)
		var es []string
		for range n {
			es = append(es, g.any(depth+1))
		}
		return "[" + strings.Join(es, ","+g.ws()) + "]"
	default:
		d := g.one("1", "3", "40")
		n, _ := strconv.Atoi(d)
		return strings.Repeat("[", n) + strings.Repeat("]", n)
	}
}

// key is name as a JSON key, now and then escaped or in another case.
func (g *bodyGen) key(name string) string {
	switch {
	case g.chance(0.02):
		name = strings.ToUpper(name[:1]) + name[1:]
	case g.chance(0.02):
		name = `\u00` + strconv.FormatInt(int64(name[0]), 16) + name[1:]
	case g.chance(0.01) && strings.Contains(name, "s"):
		name = strings.Replace(name, "s", "ſ", 1)
	}
	return `"` + name + `"`
}

// field is one member of a generated object: its name and a maker of its
// usual value.
type field struct {
	name string
	val  func() string
}

// object makes an object of some of fields (each likely), in any order,
// some repeated, with unknown keys, and now and then a value of another
// kind.
func (g *bodyGen) object(fields ...field) string {
	var ms []string
	for _, f := range fields {
		if !g.chance(0.8) {
			continue
		}
		for range 1 + btoi(g.chance(0.03)) {
			v := f.val()
			if g.chance(0.03) {
				v = g.any(0)
			}
			ms = append(ms, g.ws()+g.key(f.name)+g.ws()+":"+g.ws()+v)
		}
	}
	for g.chance(0.2) {
		ms = append(ms, g.key(g.one("messaging_product", "unknown", "contacts", "x"))+":"+g.any(0))
	}
	g.r.Shuffle(len(ms), func(i, j int) { ms[i], ms[j] = ms[j], ms[i] })
	return "{" + strings.Join(ms, ",") + g.ws() + "}"
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (g *bodyGen) array(n int, elem func() string) string {
	es := make([]string, g.r.IntN(n+1))
	for i := range es {
		es[i] = elem()
	}
	return "[" + strings.Join(es, ","+g.ws()) + "]"
}

func (g *bodyGen) timestamp() string {
	if g.chance(0.7) {
		return g.one(`"1750030073"`, `"1750030075"`, `1750030080`, `"1750116480"`)
	}
	return g.one(g.str(), g.number())
}

func (g *bodyGen) status() string {
	s, ts, num := g.str, g.timestamp, g.number
	return g.object(
		field{"id", func() string { return g.one(`"wamid.A"`, `"wamid.B"`, s()) }},
		field{"status", func() string { return g.one(`"sent"`, `"delivered"`, `"read"`, `"failed"`, s()) }},
		field{"timestamp", ts},
		field{"recipient_id", s}, field{"recipient_user_id", s}, field{"parent_user_id", s},
		field{"recipient_type", func() string { return g.one(`"individual"`, `"group"`) }},
		field{"recipient_participant_id", s}, field{"biz_opaque_callback_data", s},
		field{"conversation", func() string {
			return g.object(field{"id", s}, field{"expiration_timestamp", ts},
				field{"origin", func() string { return g.object(field{"type", s}) }})
		}},
		field{"pricing", func() string {
			return g.object(field{"billable", func() string { return g.one(`true`, `false`) }},
				field{"pricing_model", s}, field{"type", s}, field{"category", s})
		}},
		field{"errors", func() string {
			return g.array(2, func() string {
				return g.object(field{"code", num}, field{"title", s}, field{"message", s}, field{"href", s},
					field{"error_data", func() string { return g.object(field{"details", s}) }})
			})
		}},
	)
}

func (g *bodyGen) body() []byte {
	s := g.str
	b := g.object(
		field{"object", func() string { return g.one(`"whatsapp_business_account"`, `"whatsapp_business_account"`, `"page"`) }},
		field{"entry", func() string {
			return g.array(2, func() string {
				return g.object(field{"id", s}, field{"changes", func() string {
					return g.array(2, func() string {
						return g.object(
							field{"field", func() string { return g.one(`"messages"`, `"messages"`, `"account_update"`) }},
							field{"value", func() string {
								return g.object(
									field{"metadata", func() string {
										return g.object(field{"phone_number_id", s}, field{"display_phone_number", s})
									}},
									field{"statuses", func() string { return g.array(3, g.status) }},
									field{"messages", func() string { return g.array(2, func() string { return g.any(0) }) }},
								)
							}},
						)
					})
				}})
			})
		}},
	)
	body := []byte(g.ws() + b + g.ws())
	if g.chance(0.1) && len(body) > 0 {
		i := g.r.IntN(len(body))
		switch g.r.IntN(3) {
		case 0:
			body = body[:i]
		case 1:
			body[i] = g.one("\xff", "\x01", "\x00", "}", ",", `"`, "0")[0]
		default:
			body = append(body[:i:i], append([]byte(g.one(" ", "\\", "1", "[")), body[i:]...)...)
		}
	}
	return body
}

// The two ways of parsing, side by side: ParseWebhook takes the scan for
// these bodies, and encoding/json is what it took before.
func BenchmarkParseWebhookPaths(b *testing.B) {
	const status = `{"id":"wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA=","status":"delivered","timestamp":"1750030073","recipient_id":"16505551234"}`
	bodies := []struct {
		name string
		body []byte
	}{
		{"sample", readTestdata(b, "sent_with_conversation_and_pricing.json")},
		{"several", readTestdata(b, "several_statuses.json")},
		{"1000-statuses", envelope(strings.TrimSuffix(strings.Repeat(status+",", 1000), ","))},
	}
	paths := []struct {
		name  string
		parse func([]byte, string, int64) (Webhook, error)
	}{
		{"scan", ParseWebhook},
		{"encoding-json", decodeWebhook},
	}
	for _, bb := range bodies {
		for _, p := range paths {
			b.Run(bb.name+"/"+p.name, func(b *testing.B) {
				b.SetBytes(int64(len(bb.body)))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := p.parse(bb.body, testRegion, testReceivedAt); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
