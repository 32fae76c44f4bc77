package edge_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/wastatus/wastatus/edge"
	"github.com/wastatus/wastatus/internal/kafkatest"
	"github.com/wastatus/wastatus/schemas"
)

const wamidA = "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA="

func TestHandshake(t *testing.T) {
	tests := []struct {
		name      string
		token     string // the receiver's VerifyToken
		query     url.Values
		wantCode  int
		wantBody  string
		wantPlain bool
	}{
		{"verified", testToken, url.Values{"hub.mode": {"subscribe"}, "hub.verify_token": {testToken}, "hub.challenge": {"1158201444"}}, 200, "1158201444", true},
		{"wrong token", testToken, url.Values{"hub.mode": {"subscribe"}, "hub.verify_token": {"nope"}, "hub.challenge": {"1158201444"}}, 403, "", false},
		{"token prefix", testToken, url.Values{"hub.mode": {"subscribe"}, "hub.verify_token": {testToken[:3]}, "hub.challenge": {"1158201444"}}, 403, "", false},
		{"token longer", testToken, url.Values{"hub.mode": {"subscribe"}, "hub.verify_token": {testToken + "x"}, "hub.challenge": {"1158201444"}}, 403, "", false},
		{"no token", testToken, url.Values{"hub.mode": {"subscribe"}, "hub.challenge": {"1158201444"}}, 403, "", false},
		{"wrong mode", testToken, url.Values{"hub.mode": {"unsubscribe"}, "hub.verify_token": {testToken}, "hub.challenge": {"1158201444"}}, 403, "", false},
		{"no mode", testToken, url.Values{"hub.verify_token": {testToken}, "hub.challenge": {"1158201444"}}, 403, "", false},
		{"unconfigured token refuses the empty token", "", url.Values{"hub.mode": {"subscribe"}, "hub.verify_token": {""}, "hub.challenge": {"1158201444"}}, 403, "", false},
		{"challenge echoed as text", testToken, url.Values{"hub.mode": {"subscribe"}, "hub.verify_token": {testToken}, "hub.challenge": {"<script>"}}, 200, "<script>", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(c *edge.Config) { c.VerifyToken = tt.token })
			req := httptest.NewRequestWithContext(t.Context(), http.MethodGet, edge.WebhookPath+"?"+tt.query.Encode(), nil)
			rec := httptest.NewRecorder()
			e.mux.ServeHTTP(rec, req)
			if rec.Code != tt.wantCode {
				t.Fatalf("code = %d, want %d (body %q)", rec.Code, tt.wantCode, rec.Body)
			}
			if tt.wantPlain {
				if got := rec.Body.String(); got != tt.wantBody {
					t.Errorf("body = %q, want %q", got, tt.wantBody)
				}
				if got := rec.Header().Get("Content-Type"); !strings.HasPrefix(got, "text/plain") {
					t.Errorf("Content-Type = %q, want text/plain", got)
				}
				if got := rec.Header().Get("X-Content-Type-Options"); got != "nosniff" {
					t.Errorf("X-Content-Type-Options = %q, want nosniff", got)
				}
			} else if strings.Contains(rec.Body.String(), tt.query.Get("hub.challenge")) {
				t.Errorf("a refused handshake echoed the challenge: %q", rec.Body)
			}
			st := e.recv.Stats()
			gotStats := [2]uint64{st.Verified, st.VerifyRefused}
			wantStats := [2]uint64{0, 1}
			if tt.wantCode == 200 {
				wantStats = [2]uint64{1, 0}
			}
			if gotStats != wantStats {
				t.Errorf("Stats (Verified, VerifyRefused) = %v, want %v", gotStats, wantStats)
			}
		})
	}
}

func TestMethodNotAllowed(t *testing.T) {
	e := newEnv(t, nil)
	req := httptest.NewRequestWithContext(t.Context(), http.MethodPut, edge.WebhookPath, strings.NewReader("{}"))
	rec := httptest.NewRecorder()
	e.mux.ServeHTTP(rec, req)
	if rec.Code != http.StatusMethodNotAllowed {
		t.Fatalf("PUT code = %d, want 405", rec.Code)
	}
}

func TestPostSignature(t *testing.T) {
	body := sample(t, "sent_minimal_v24.json")
	good := edge.Sign(body, []byte(testSecret))
	digits := strings.TrimPrefix(good, "sha256=")
	tampered := bytes.Replace(body, []byte(`"sent"`), []byte(`"read"`), 1)
	if bytes.Equal(tampered, body) {
		t.Fatal("tampering did not change the body")
	}
	tests := []struct {
		name string
		body []byte
		sig  string
		want int
	}{
		{"valid", body, good, 200},
		{"uppercase hex", body, "sha256=" + strings.ToUpper(digits), 200},
		{"missing", body, "", 401},
		{"other secret", body, edge.Sign(body, []byte("other-secret")), 401},
		{"tampered body", tampered, good, 401},
		{"sha1 prefix", body, "sha1=" + digits, 401},
		{"no prefix", body, digits, 401},
		{"uppercase prefix", body, "SHA256=" + digits, 401},
		{"short", body, good[:len(good)-2], 401},
		{"long", body, good + "00", 401},
		{"not hex", body, "sha256=" + strings.Repeat("zz", 32), 401},
		{"empty digits", body, "sha256=", 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			rec := e.post(t, tt.body, tt.sig)
			if rec.Code != tt.want {
				t.Fatalf("code = %d, want %d (body %q)", rec.Code, tt.want, rec.Body)
			}
			wantRecords := int64(0)
			if tt.want == 200 {
				wantRecords = 1
			} else {
				var got struct{ Error string }
				if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || !strings.HasPrefix(got.Error, "edge: signature") {
					t.Errorf("body = %q (%v), want a JSON signature error", rec.Body, err)
				}
				if strings.Contains(rec.Body.String(), testSecret) {
					t.Errorf("the answer contains the secret: %q", rec.Body)
				}
				if got := e.recv.Stats().Unauthorized; got != 1 {
					t.Errorf("Stats().Unauthorized = %d, want 1", got)
				}
			}
			if got := e.endOffsets(t, eventsTopic); got != wantRecords {
				t.Errorf("events topic holds %d records, want %d", got, wantRecords)
			}
		})
	}
}

func TestInsecureSkipSignature(t *testing.T) {
	e := newEnv(t, func(c *edge.Config) { c.AppSecret, c.InsecureSkipSignature = nil, true })
	if rec := e.post(t, sample(t, "sent_minimal_v24.json"), ""); rec.Code != 200 {
		t.Fatalf("unsigned POST with InsecureSkipSignature: code = %d, want 200 (body %q)", rec.Code, rec.Body)
	}
}

func TestPostTooLarge(t *testing.T) {
	base := sample(t, "sent_minimal_v24.json")
	const limit = 2048
	padded := func(n int) []byte { // a valid body of exactly n bytes
		return append(bytes.Clone(base), bytes.Repeat([]byte(" "), n-len(base))...)
	}
	tests := []struct {
		name    string
		body    []byte
		chunked bool // no Content-Length: the limit is found while reading
		want    int
	}{
		{"at the limit", padded(limit), false, 200},
		{"at the limit, chunked", padded(limit), true, 200},
		{"one byte over", padded(limit + 1), false, 413},
		{"one byte over, chunked", padded(limit + 1), true, 413},
		{"far over, chunked", padded(10 * limit), true, 413},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(c *edge.Config) { c.MaxBodyBytes = limit })
			req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, edge.WebhookPath, bytes.NewReader(tt.body))
			req.Header.Set(edge.SignatureHeader, edge.Sign(tt.body, []byte(testSecret)))
			if tt.chunked {
				req.ContentLength = -1
				req.Body = io.NopCloser(io.MultiReader(bytes.NewReader(tt.body)))
			}
			rec := httptest.NewRecorder()
			e.mux.ServeHTTP(rec, req)
			if rec.Code != tt.want {
				t.Fatalf("code = %d, want %d (body %q)", rec.Code, tt.want, rec.Body)
			}
			if tt.want == 413 {
				if got := e.recv.Stats().TooLarge; got != 1 {
					t.Errorf("Stats().TooLarge = %d, want 1", got)
				}
				if got := e.endOffsets(t, eventsTopic); got != 0 {
					t.Errorf("events topic holds %d records after a 413", got)
				}
			}
		})
	}
}

func TestPostBadRequest(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		wantErr error
	}{
		{"empty", "", schemas.ErrMalformed},
		{"not JSON", "hello", schemas.ErrMalformed},
		{"truncated JSON", `{"object":"whatsapp_business_account","entry":[`, schemas.ErrMalformed},
		{"array", `[]`, schemas.ErrMalformed},
		{"another product", `{"object":"page","entry":[]}`, schemas.ErrNotWhatsApp},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			rec := e.postSigned(t, []byte(tt.body))
			if rec.Code != 400 {
				t.Fatalf("code = %d, want 400 (body %q)", rec.Code, rec.Body)
			}
			if got := rec.Header().Get("Content-Type"); got != "application/json" {
				t.Errorf("Content-Type = %q, want application/json", got)
			}
			var got struct{ Error string }
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatalf("body %q is not JSON: %v", rec.Body, err)
			}
			if !strings.HasPrefix(got.Error, tt.wantErr.Error()) {
				t.Errorf("error = %q, want it to start with %q", got.Error, tt.wantErr)
			}
			if got := e.recv.Stats().BadRequest; got != 1 {
				t.Errorf("Stats().BadRequest = %d, want 1", got)
			}
		})
	}
}

// TestPostWritesEvents checks that every status object becomes one record on
// the events topic: key the wamid, a region header, and a value that decodes
// to the event ParseWebhook makes of the body.
func TestPostWritesEvents(t *testing.T) {
	type want struct {
		wamid, status string
		timestamp     int64
	}
	const (
		g  = "wamid.GROUP"
		m1 = "wamid.M1"
		m2 = "wamid.M2"
	)
	tests := []struct {
		name string
		body []byte
		want []want // in body order
	}{
		{"sent minimal", sample(t, "sent_minimal_v24.json"), []want{{wamidA, "sent", 1750030073}}},
		{"sent with conversation and pricing", sample(t, "sent_with_conversation_and_pricing.json"), []want{{wamidA, "sent", 1750030073}}},
		{"delivered without recipient_id", sample(t, "delivered_user_id_no_recipient_id.json"), []want{{wamidA, "delivered", 1750030073}}},
		{"failed with errors", sample(t, "failed_with_errors.json"), []want{{"wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI0QUQ2MjA4NEYyRkExNjMyREUA", "failed", 1751142888}}},
		{"several messages", webhook(
			status(m1, "sent", 1750030073, ""),
			status(m2, "read", 1750030075, ""),
			status(m1, "delivered", 1750030073, ""),
		), []want{{m1, "sent", 1750030073}, {m2, "read", 1750030075}, {m1, "delivered", 1750030073}}},
		{"group fan-out", webhook(
			status(g, "delivered", 1750030080, `"recipient_type":"group","recipient_participant_id":"p1"`),
			status(g, "delivered", 1750030081, `"recipient_type":"group","recipient_participant_id":"p2"`),
			status(g, "read", 1750030082, `"recipient_type":"group","recipient_participant_id":"p1"`),
		), []want{{g, "delivered", 1750030080}, {g, "delivered", 1750030081}, {g, "read", 1750030082}}},
		{"duplicates kept", webhook(
			status(m1, "played", 1750030090, ""),
			status(m1, "played", 1750030090, ""),
		), []want{{m1, "played", 1750030090}, {m1, "played", 1750030090}}},
		{"unknown status value is an event", webhook(status(m1, "deleted", 1750030090, "")), []want{{m1, "deleted", 1750030090}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			rec := e.postSigned(t, tt.body)
			if rec.Code != 200 {
				t.Fatalf("code = %d, want 200 (body %q)", rec.Code, rec.Body)
			}
			if got, want := rec.Body.String(), answer(len(tt.want), 0); got != want {
				t.Errorf("body = %q, want %q", got, want)
			}
			parsed, err := schemas.ParseWebhook(tt.body, testRegion, testNow().UnixMilli())
			if err != nil {
				t.Fatal(err)
			}
			recs := e.records(t, eventsTopic)
			if len(recs) != len(tt.want) {
				t.Fatalf("events topic holds %d records, want %d", len(recs), len(tt.want))
			}
			// Records of one key share a partition, in body order; sorting by
			// (partition, offset) keeps that order, so match each record to
			// the first unmatched wanted event with its key.
			matched := make([]bool, len(tt.want))
			for _, r := range recs {
				ev, err := e.codec.DecodeStatusEvent(r.Value)
				if err != nil {
					t.Fatalf("decode offset %d: %v", r.Offset, err)
				}
				i := firstUnmatched(matched, func(i int) bool { return tt.want[i].wamid == string(r.Key) })
				if i < 0 {
					t.Fatalf("unexpected record with key %q", r.Key)
				}
				matched[i] = true
				got := want{ev.WAMID, ev.Status, ev.Timestamp}
				if got != tt.want[i] {
					t.Errorf("record %d/%d: got %+v, want %+v", r.Partition, r.Offset, got, tt.want[i])
				}
				if !reflect.DeepEqual(ev, parsed.Events[i]) {
					t.Errorf("record %d/%d decodes to\n%+v\nwant ParseWebhook's\n%+v", r.Partition, r.Offset, ev, parsed.Events[i])
				}
				if ev.Region != testRegion || ev.ReceivedAt != testNow().UnixMilli() {
					t.Errorf("region, received_at = %q, %d, want %q, %d", ev.Region, ev.ReceivedAt, testRegion, testNow().UnixMilli())
				}
				if h, _ := header(r, edge.HeaderRegion); h != testRegion {
					t.Errorf("region header = %q, want %q", h, testRegion)
				}
			}
			if got := e.endOffsets(t, dlqTopic); got != 0 {
				t.Errorf("dead-letter topic holds %d records, want 0", got)
			}
			st := e.recv.Stats()
			if st.Accepted != 1 || st.Events != uint64(len(tt.want)) || st.Rejected != 0 || st.InFlight != 0 {
				t.Errorf("Stats() = %+v, want Accepted 1, Events %d, Rejected 0, InFlight 0", st, len(tt.want))
			}
		})
	}
}

func firstUnmatched(matched []bool, ok func(int) bool) int {
	for i := range matched {
		if !matched[i] && ok(i) {
			return i
		}
	}
	return -1
}

// TestPostDeadLetters checks that status objects that cannot be events land
// on the dead-letter topic, byte for byte, beside the valid ones.
func TestPostDeadLetters(t *testing.T) {
	valid := status("wamid.OK", "delivered", 1750030073, "")
	type dead struct {
		raw     string
		key     string // "" for no key
		wantErr error
	}
	deads := []dead{
		{`{"status":"sent","timestamp":"1750030073","recipient_id":"1"}`, "", schemas.ErrNoWAMID},
		{status("wamid.MS", "sent", 1750030073000, ""), "wamid.MS", schemas.ErrMillisTimestamp},
		{status("wamid.FUTURE", "sent", testNow().Unix()+2*86400, ""), "wamid.FUTURE", schemas.ErrFutureTimestamp},
		{`{"id":"wamid.NOSTATUS","timestamp":"1750030073"}`, "wamid.NOSTATUS", schemas.ErrNoStatus},
		{`42`, "", schemas.ErrStatusNotObject},
		{`{"id":"wamid.BADTS","status":"sent","timestamp":"soon"}`, "wamid.BADTS", schemas.ErrBadTimestamp},
	}
	statuses := []string{valid}
	for _, d := range deads {
		statuses = append(statuses, d.raw)
	}
	e := newEnv(t, nil)
	rec := e.postSigned(t, webhook(statuses...))
	if rec.Code != 200 {
		t.Fatalf("code = %d, want 200 (body %q)", rec.Code, rec.Body)
	}
	if got, want := rec.Body.String(), answer(1, len(deads)); got != want {
		t.Errorf("body = %q, want %q", got, want)
	}

	events := e.records(t, eventsTopic)
	if len(events) != 1 || string(events[0].Key) != "wamid.OK" {
		t.Fatalf("events topic: %d records (first key %q), want the one valid status", len(events), keyOf(events))
	}

	got := e.records(t, dlqTopic)
	if len(got) != len(deads) {
		t.Fatalf("dead-letter topic holds %d records, want %d", len(got), len(deads))
	}
	for _, r := range got {
		i := -1
		for j, d := range deads {
			if string(r.Value) == d.raw {
				i = j
			}
		}
		if i < 0 {
			t.Errorf("dead letter %q is none of the raw status objects", r.Value)
			continue
		}
		d := deads[i]
		if string(r.Key) != d.key || (d.key == "" && r.Key != nil) {
			t.Errorf("%s: key = %q, want %q", d.raw, r.Key, d.key)
		}
		// The envelope travels with the status, so that a replay restores
		// an event as complete as the original.
		wantHeaders := map[string]string{
			edge.HeaderSource:             edge.SourceEdge,
			edge.HeaderRegion:             testRegion,
			edge.HeaderReceivedAt:         strconv.FormatInt(testNow().UnixMilli(), 10),
			edge.HeaderWABAID:             "102290129340398",
			edge.HeaderPhoneNumberID:      "106540352242922",
			edge.HeaderDisplayPhoneNumber: "15550783881",
		}
		for k, want := range wantHeaders {
			if h, _ := header(r, k); h != want {
				t.Errorf("%s: header %s = %q, want %q", d.raw, k, h, want)
			}
		}
		if h, _ := header(r, edge.HeaderError); !strings.Contains(h, d.wantErr.Error()) {
			t.Errorf("%s: error header = %q, want it to contain %q", d.raw, h, d.wantErr)
		}
		if _, ok := header(r, edge.HeaderTruncated); ok {
			t.Errorf("%s: has a truncated header", d.raw)
		}
	}
	st := e.recv.Stats()
	if st.Events != 1 || st.DeadLetters != uint64(len(deads)) || st.Rejected != uint64(len(deads)) {
		t.Errorf("Stats() = %+v, want Events 1, DeadLetters and Rejected %d", st, len(deads))
	}
}

func keyOf(recs []*kgo.Record) string {
	if len(recs) == 0 {
		return ""
	}
	return string(recs[0].Key)
}

// TestPostOversizeStatus checks that a status too large for a record goes to
// the dead-letter topic, cut to fit when even its raw bytes do not.
func TestPostOversizeStatus(t *testing.T) {
	const limit = 4096
	small := status("wamid.SMALL", "sent", 1750030073, "")
	// The event record holds the raw JSON and the decoded field: about
	// twice the padding, over the limit, while the raw JSON alone fits.
	big := status("wamid.BIG", "sent", 1750030073, `"biz_opaque_callback_data":"`+strings.Repeat("b", limit*2/3)+`"`)
	huge := status("wamid.HUGE", "sent", 1750030073, `"biz_opaque_callback_data":"`+strings.Repeat("h", 2*limit)+`"`)

	e := newEnv(t, func(c *edge.Config) { c.MaxRecordBytes = limit })
	rec := e.postSigned(t, webhook(small, big, huge))
	if rec.Code != 200 {
		t.Fatalf("code = %d, want 200 (body %q)", rec.Code, rec.Body)
	}
	if got, want := rec.Body.String(), answer(1, 2); got != want {
		t.Errorf("body = %q, want %q", got, want)
	}
	if events := e.records(t, eventsTopic); len(events) != 1 || string(events[0].Key) != "wamid.SMALL" {
		t.Fatalf("events topic: %d records (first key %q), want only wamid.SMALL", len(events), keyOf(events))
	}
	got := map[string]*kgo.Record{}
	for _, r := range e.records(t, dlqTopic) {
		got[string(r.Key)] = r
		size := len(r.Key) + len(r.Value)
		for _, h := range r.Headers {
			size += len(h.Key) + len(h.Value)
		}
		if size > limit {
			t.Errorf("%s: dead letter of %d bytes, over the %d limit", r.Key, size, limit)
		}
		if h, _ := header(r, edge.HeaderError); !strings.HasPrefix(h, edge.ErrRecordTooLarge.Error()) {
			t.Errorf("%s: error header = %q, want %q", r.Key, h, edge.ErrRecordTooLarge)
		}
	}
	if r := got["wamid.BIG"]; r == nil {
		t.Error("no dead letter for wamid.BIG")
	} else {
		if string(r.Value) != big {
			t.Errorf("wamid.BIG: value is not the raw status")
		}
		if _, ok := header(r, edge.HeaderTruncated); ok {
			t.Errorf("wamid.BIG: truncated, but its raw JSON fits")
		}
	}
	if r := got["wamid.HUGE"]; r == nil {
		t.Error("no dead letter for wamid.HUGE")
	} else {
		if !strings.HasPrefix(huge, string(r.Value)) || len(r.Value) == 0 || len(r.Value) >= len(huge) {
			t.Errorf("wamid.HUGE: value of %d bytes is not a cut prefix of the %d raw bytes", len(r.Value), len(huge))
		}
		if h, _ := header(r, edge.HeaderTruncated); h != strconv.Itoa(len(huge)) {
			t.Errorf("wamid.HUGE: truncated header = %q, want %d", h, len(huge))
		}
	}
}

func TestPostSkipsInboundMessages(t *testing.T) {
	const inboundOnly = `{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[` +
		`{"field":"messages","value":{"metadata":{"phone_number_id":"2"},"messages":[{"id":"wamid.IN1","type":"text"},{"id":"wamid.IN2","type":"text"}]}},` +
		`{"field":"account_update","value":{"event":"VERIFIED_ACCOUNT"}}]}]}`
	const both = `{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[` +
		`{"field":"messages","value":{"metadata":{"phone_number_id":"2"},"messages":[{"id":"wamid.IN3","type":"text"}],` +
		`"statuses":[{"id":"wamid.OUT","status":"read","timestamp":"1750030073","recipient_id":"1"}]}}]}]}`
	tests := []struct {
		name                    string
		body                    string
		wantEvents              int
		wantInbound, wantOthers uint64
	}{
		{"messages only", inboundOnly, 0, 2, 1},
		{"messages and statuses", both, 1, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			rec := e.postSigned(t, []byte(tt.body))
			if rec.Code != 200 {
				t.Fatalf("code = %d, want 200 (body %q)", rec.Code, rec.Body)
			}
			if got, want := rec.Body.String(), answer(tt.wantEvents, 0); got != want {
				t.Errorf("body = %q, want %q", got, want)
			}
			recs := e.records(t, eventsTopic)
			if len(recs) != tt.wantEvents {
				t.Fatalf("events topic holds %d records, want %d", len(recs), tt.wantEvents)
			}
			for _, r := range recs {
				if string(r.Key) != "wamid.OUT" {
					t.Errorf("record for %q: an inbound message was written", r.Key)
				}
			}
			if got := e.endOffsets(t, dlqTopic); got != 0 {
				t.Errorf("dead-letter topic holds %d records, want 0", got)
			}
			st := e.recv.Stats()
			if st.InboundMessages != tt.wantInbound || st.OtherChanges != tt.wantOthers {
				t.Errorf("Stats() InboundMessages, OtherChanges = %d, %d, want %d, %d",
					st.InboundMessages, st.OtherChanges, tt.wantInbound, tt.wantOthers)
			}
		})
	}
}

// TestPostWaitsForAcks holds Kafka's answer to the produce request and checks
// that the POST is not answered until Kafka has answered.
func TestPostWaitsForAcks(t *testing.T) {
	e := newEnv(t, func(c *edge.Config) { c.ProduceTimeout = time.Minute })
	seen := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	e.cluster.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		once.Do(func() { close(seen) })
		e.cluster.SleepControl(func() { <-release })
		return nil, nil, false // then let the cluster handle it
	})

	done := make(chan *httptest.ResponseRecorder, 1)
	body := sample(t, "sent_minimal_v24.json")
	req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, edge.WebhookPath, bytes.NewReader(body))
	req.Header.Set(edge.SignatureHeader, edge.Sign(body, []byte(testSecret)))
	go func() {
		rec := httptest.NewRecorder()
		e.mux.ServeHTTP(rec, req)
		done <- rec
	}()

	select {
	case <-seen:
	case rec := <-done:
		t.Fatalf("answered %d before Kafka saw the produce request", rec.Code)
	case <-time.After(10 * time.Second):
		t.Fatal("Kafka never saw a produce request")
	}
	select {
	case rec := <-done:
		t.Fatalf("answered %d while Kafka held the produce request", rec.Code)
	default:
	}
	if got := e.recv.Stats().InFlight; got != 1 {
		t.Errorf("Stats().InFlight = %d while waiting, want 1", got)
	}
	close(release)
	var rec *httptest.ResponseRecorder
	select {
	case rec = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("no answer 10s after Kafka was released")
	}
	if rec.Code != 200 {
		t.Fatalf("code = %d, want 200 (body %q)", rec.Code, rec.Body)
	}
	if got := e.endOffsets(t, eventsTopic); got != 1 {
		t.Errorf("events topic holds %d records, want 1", got)
	}
}

// TestPostBrokerGone checks that a POST is answered 503 within
// ProduceTimeout when the cluster is gone.
func TestPostBrokerGone(t *testing.T) {
	const timeout = 500 * time.Millisecond
	e := newEnv(t, func(c *edge.Config) { c.ProduceTimeout = timeout })
	body := sample(t, "sent_minimal_v24.json")
	if rec := e.postSigned(t, body); rec.Code != 200 { // the client knows the cluster
		t.Fatalf("first POST: code = %d, want 200 (body %q)", rec.Code, rec.Body)
	}
	e.cluster.Close()

	start := time.Now()
	done := make(chan *httptest.ResponseRecorder, 1)
	go func() { done <- e.post(t, body, edge.Sign(body, []byte(testSecret))) }()
	var rec *httptest.ResponseRecorder
	select {
	case rec = <-done:
	case <-time.After(timeout + 10*time.Second):
		t.Fatalf("no answer %s after the cluster closed", timeout+10*time.Second)
	}
	took := time.Since(start)
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("code = %d, want 503 (body %q)", rec.Code, rec.Body)
	}
	if took > timeout+2*time.Second {
		t.Errorf("answered after %s, want within %s and a margin", took, timeout)
	}
	var got struct{ Error string }
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || !strings.HasPrefix(got.Error, edge.ErrNotAcknowledged.Error()) {
		t.Errorf("body = %q (%v), want a JSON %q error", rec.Body, err, edge.ErrNotAcknowledged)
	}
	if st := e.recv.Stats(); st.Unavailable != 1 || st.Accepted != 1 || st.InFlight != 0 {
		t.Errorf("Stats() = %+v, want Unavailable 1, Accepted 1, InFlight 0", st)
	}
}

// TestPostProduceFails checks that a record Kafka refuses makes a prompt 503,
// long before ProduceTimeout.
func TestPostProduceFails(t *testing.T) {
	e := newEnv(t, func(c *edge.Config) { c.ProduceTimeout = time.Minute })
	e.cluster.ControlKey(int16(kmsg.Produce), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		e.cluster.KeepControl()
		return kafkatest.RefuseProduce(kreq.(*kmsg.ProduceRequest), kerr.TopicAuthorizationFailed), nil, true
	})
	start := time.Now()
	rec := e.postSigned(t, webhook(status("wamid.A", "sent", 1750030073, ""), `{"id":"wamid.B"}`))
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("code = %d, want 503 (body %q)", rec.Code, rec.Body)
	}
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("answered after %s: it waited for the timeout instead of the failure", took)
	}
	if !strings.Contains(rec.Body.String(), kerr.TopicAuthorizationFailed.Message) {
		t.Errorf("body = %q, want Kafka's reason", rec.Body)
	}
	if st := e.recv.Stats(); st.ProduceErrors != 2 || st.Events != 0 || st.DeadLetters != 0 || st.Unavailable != 1 {
		t.Errorf("Stats() = %+v, want ProduceErrors 2, Unavailable 1, no acknowledged records", st)
	}
}

// TestPostClientGone checks that a client that disconnects while Kafka has
// not answered ends the request at once, long before ProduceTimeout, leaving
// nothing waiting (goleak in TestMain checks the goroutines).
func TestPostClientGone(t *testing.T) {
	e := newEnv(t, func(c *edge.Config) { c.ProduceTimeout = time.Minute })
	seen := make(chan struct{})
	var once sync.Once
	e.cluster.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		e.cluster.KeepControl()
		once.Do(func() { close(seen) })
		return nil, nil, true // swallow: Kafka never answers
	})
	srv := httptest.NewServer(e.mux)
	t.Cleanup(srv.Close)
	transport := &http.Transport{}
	t.Cleanup(transport.CloseIdleConnections)
	client := &http.Client{Transport: transport}

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	body := sample(t, "sent_minimal_v24.json")
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+edge.WebhookPath, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(edge.SignatureHeader, edge.Sign(body, []byte(testSecret)))
	errc := make(chan error, 1)
	go func() {
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			err = fmt.Errorf("answered %s while Kafka held the records", resp.Status)
		}
		errc <- err
	}()

	select {
	case <-seen:
	case err := <-errc:
		t.Fatalf("request ended before Kafka saw the records: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("Kafka never saw a produce request")
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("client error = %v, want context.Canceled", err)
	}
	eventually(t, 10*time.Second, "the handler still runs after its client left", func() bool {
		st := e.recv.Stats()
		return st.InFlight == 0 && st.Unavailable == 1
	})
}

// TestConcurrentPosts checks many POSTs at once, their bodies read into
// pooled buffers: each answered 200 and every status written exactly once,
// as its own, event or dead letter. (That a record never points into a
// body's buffer, which matters for one still in flight after a 503, is
// ParseWebhook's promise: TestParseWebhookCopiesRaw in schemas.)
func TestConcurrentPosts(t *testing.T) {
	e := newEnv(t, nil)
	const workers, posts, perPost = 8, 10, 3
	var wg sync.WaitGroup
	codes := make(chan int, workers*posts)
	for w := range workers {
		wg.Go(func() {
			for p := range posts {
				var sts []string
				for s := range perPost {
					sts = append(sts, status(fmt.Sprintf("wamid.%d.%d.%d", w, p, s), "sent", 1750030073, ""))
				}
				// A timestamp in milliseconds: a dead letter of its raw bytes.
				sts = append(sts, status(fmt.Sprintf("wamid.dlq.%d.%d", w, p), "sent", 1750030073000, ""))
				codes <- e.postSigned(t, webhook(sts...)).Code
			}
		})
	}
	wg.Wait()
	close(codes)
	for code := range codes {
		if code != 200 {
			t.Fatalf("a POST was answered %d", code)
		}
	}
	recs := e.records(t, eventsTopic)
	if len(recs) != workers*posts*perPost {
		t.Fatalf("events topic holds %d records, want %d", len(recs), workers*posts*perPost)
	}
	keys := map[string]bool{}
	for _, r := range recs {
		if keys[string(r.Key)] {
			t.Errorf("key %s written twice", r.Key)
		}
		keys[string(r.Key)] = true
		ev, err := e.codec.DecodeStatusEvent(r.Value)
		if err != nil || ev.WAMID != string(r.Key) || !bytes.Contains(ev.Raw, []byte(`"`+ev.WAMID+`"`)) {
			t.Errorf("record %s holds %+v (%v), not its own status", r.Key, ev, err)
		}
	}
	dlq := e.records(t, dlqTopic)
	if len(dlq) != workers*posts {
		t.Fatalf("dead-letter topic holds %d records, want %d", len(dlq), workers*posts)
	}
	for _, r := range dlq {
		if want := status(string(r.Key), "sent", 1750030073000, ""); string(r.Value) != want {
			t.Errorf("dead letter %s = %s, want %s", r.Key, r.Value, want)
		}
	}
	if st := e.recv.Stats(); st.Accepted != workers*posts || st.Events != workers*posts*perPost || st.DeadLetters != workers*posts {
		t.Errorf("Stats() = %+v, want Accepted %d, Events %d, DeadLetters %d", st, workers*posts, workers*posts*perPost, workers*posts)
	}
}

// TestKeyPartitioning checks that records are partitioned by wamid with the
// Java-compatible murmur2 hash, the same on every edge: every record of a key
// is in one partition, and the partition is the one Kafka's Java client
// would choose.
func TestKeyPartitioning(t *testing.T) {
	e := newEnv(t, nil)
	var sts []string
	for i := range 30 {
		sts = append(sts, status("wamid.P"+strconv.Itoa(i%10), "sent", 1750030073+int64(i), ""))
	}
	if rec := e.postSigned(t, webhook(sts...)); rec.Code != 200 {
		t.Fatalf("code = %d, want 200 (body %q)", rec.Code, rec.Body)
	}
	part := map[string]int32{}
	for _, r := range e.records(t, eventsTopic) {
		want := int32(murmur2(r.Key)&0x7fffffff) % partitions
		if r.Partition != want {
			t.Errorf("key %s in partition %d, want %d", r.Key, r.Partition, want)
		}
		if p, ok := part[string(r.Key)]; ok && p != r.Partition {
			t.Errorf("key %s in partitions %d and %d", r.Key, p, r.Partition)
		}
		part[string(r.Key)] = r.Partition
	}
}

// murmur2 is Kafka's Java client's key hash (Utils.murmur2), written from
// its specification for this test.
func murmur2(b []byte) uint32 {
	const (
		seed uint32 = 0x9747b28c
		m    uint32 = 0x5bd1e995
		r           = 24
	)
	h := seed ^ uint32(len(b))
	for ; len(b) >= 4; b = b[4:] {
		k := uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	switch len(b) {
	case 3:
		h ^= uint32(b[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(b[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(b[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return h
}

func TestNew(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	codec, err := schemas.NewCodec(schemas.IDs{})
	if err != nil {
		t.Fatal(err)
	}
	good := edge.Config{Region: testRegion, AppSecret: []byte(testSecret)}
	seeds := kgo.SeedBrokers(cluster.ListenAddrs()...)
	tests := []struct {
		name    string
		cfg     edge.Config
		opts    []kgo.Opt // appended to ProducerOpts
		noCodec bool
		want    error
	}{
		{"ProducerOpts", good, nil, false, nil},
		{"invalid config", edge.Config{AppSecret: []byte(testSecret)}, nil, false, edge.ErrConfig},
		{"nil codec", good, nil, true, edge.ErrConfig},
		{"leader acks", good, []kgo.Opt{kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite()}, false, edge.ErrClient},
		{"not idempotent", good, []kgo.Opt{kgo.DisableIdempotentWrite()}, false, edge.ErrClient},
		{"transactional", good, []kgo.Opt{kgo.TransactionalID("tx")}, false, edge.ErrClient},
		{"manual flushing", good, []kgo.Opt{kgo.ManualFlushing()}, false, edge.ErrClient},
		{"default produce topic always", good, []kgo.Opt{kgo.DefaultProduceTopic("x"), kgo.DefaultProduceTopicAlways()}, false, edge.ErrClient},
		{"batch smaller than MaxRecordBytes", good, []kgo.Opt{kgo.ProducerBatchMaxBytes(64 << 10)}, false, edge.ErrClient},
		{"MaxRecordBytes larger than the batch", withMaxRecord(good, 2<<20), nil, false, edge.ErrClient},
		{"MaxRecordBytes within a larger batch", withMaxRecord(good, 2<<20), []kgo.Opt{kgo.ProducerBatchMaxBytes(4 << 20)}, false, nil},
		{"batch too small for one topic only", good, []kgo.Opt{kgo.ProducerBatchMaxBytesFn(func(topic string) int32 {
			if topic == edge.DefaultDLQTopic {
				return 64 << 10
			}
			return 1 << 20
		})}, false, edge.ErrClient},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cl, err := kgo.NewClient(append(append(edge.ProducerOpts(), seeds), tt.opts...)...)
			if err != nil {
				t.Fatalf("kgo.NewClient: %v", err)
			}
			defer cl.Close()
			c := codec
			if tt.noCodec {
				c = nil
			}
			r, err := edge.New(tt.cfg, cl, c)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (r != nil) {
				t.Fatalf("New() = %v, %v; want error %v", r, err, tt.want)
			}
		})
	}
	t.Run("nil client", func(t *testing.T) {
		if _, err := edge.New(good, nil, codec); !errors.Is(err, edge.ErrClient) {
			t.Fatalf("New(nil client) error = %v, want %v", err, edge.ErrClient)
		}
	})
}

func withMaxRecord(c edge.Config, n int) edge.Config {
	c.MaxRecordBytes = n
	return c
}

// TestLogsNoSecrets checks that the app secret, the verify token and the
// signature never reach the logs, whatever the request.
func TestLogsNoSecrets(t *testing.T) {
	var logs syncBuffer
	e := newEnv(t, func(c *edge.Config) {
		c.Logger = slogJSON(&logs)
	})
	body := sample(t, "sent_minimal_v24.json")
	sig := edge.Sign(body, []byte(testSecret))
	e.post(t, body, sig)
	e.post(t, body, "sha256="+strings.Repeat("0", 64))
	e.post(t, []byte("nope"), edge.Sign([]byte("nope"), []byte(testSecret)))
	e.post(t, webhook(`{"id":"x"}`), edge.Sign(webhook(`{"id":"x"}`), []byte(testSecret)))
	for _, q := range []string{testToken, "wrong"} {
		req := httptest.NewRequestWithContext(t.Context(), http.MethodGet,
			edge.WebhookPath+"?hub.mode=subscribe&hub.challenge=1&hub.verify_token="+q, nil)
		e.mux.ServeHTTP(httptest.NewRecorder(), req)
	}
	out := logs.String()
	if out == "" {
		t.Fatal("nothing was logged")
	}
	for _, secret := range []string{testSecret, testToken, strings.TrimPrefix(sig, "sha256="), hex.EncodeToString([]byte(testSecret))} {
		if strings.Contains(out, secret) {
			t.Errorf("logs contain %q:\n%s", secret, out)
		}
	}
}

// TestPostUnreadableBody checks that a body that breaks off is a 400, not a
// 413 and not a parse error.
func TestPostUnreadableBody(t *testing.T) {
	e := newEnv(t, nil)
	body := sample(t, "sent_minimal_v24.json")
	req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, edge.WebhookPath, nil)
	req.Header.Set(edge.SignatureHeader, edge.Sign(body, []byte(testSecret)))
	req.ContentLength = -1
	req.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body[:10]), iotest.ErrReader(io.ErrUnexpectedEOF)))
	rec := httptest.NewRecorder()
	e.mux.ServeHTTP(rec, req)
	if rec.Code != http.StatusBadRequest {
		t.Fatalf("code = %d, want 400 (body %q)", rec.Code, rec.Body)
	}
	if st := e.recv.Stats(); st.BadRequest != 1 || st.TooLarge != 0 || st.Unauthorized != 0 {
		t.Errorf("Stats() = %+v, want BadRequest 1 only", st)
	}
}

// countingReader counts the bytes read from it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// TestRateLimited checks the 429 through the mux: only past the burst, with
// Retry-After and a JSON error, for GET and POST alike, per client, and
// without reading the refused request's body.
func TestRateLimited(t *testing.T) {
	e := newEnv(t, func(c *edge.Config) { c.ClientRate, c.ClientBurst = 1, 2 }) // testNow is frozen: no refill
	body := sample(t, "sent_minimal_v24.json")
	send := func(method, remote string) (*httptest.ResponseRecorder, int) {
		cr := &countingReader{r: bytes.NewReader(body)}
		req := httptest.NewRequestWithContext(t.Context(), method, edge.WebhookPath+"?hub.mode=subscribe&hub.verify_token="+testToken+"&hub.challenge=c", cr)
		req.RemoteAddr = remote
		req.Header.Set(edge.SignatureHeader, edge.Sign(body, []byte(testSecret)))
		rec := httptest.NewRecorder()
		e.mux.ServeHTTP(rec, req)
		return rec, cr.n
	}
	if rec, _ := send(http.MethodPost, "192.0.2.1:1000"); rec.Code != 200 {
		t.Fatalf("first POST: %d %s", rec.Code, rec.Body)
	}
	if rec, _ := send(http.MethodGet, "192.0.2.1:1001"); rec.Code != 200 {
		t.Fatalf("handshake within the burst: %d %s", rec.Code, rec.Body)
	}
	for _, method := range []string{http.MethodPost, http.MethodGet} {
		rec, read := send(method, "192.0.2.1:1002")
		if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != "1" {
			t.Fatalf("%s over the burst: %d, Retry-After %q; want 429, 1", method, rec.Code, rec.Header().Get("Retry-After"))
		}
		if want := `{"error":"` + edge.ErrRateLimited.Error() + `; retry after 1s"}` + "\n"; rec.Body.String() != want {
			t.Errorf("%s: body %q, want %q", method, rec.Body, want)
		}
		if read != 0 {
			t.Errorf("%s: %d bytes of a refused request were read", method, read)
		}
	}
	if rec, _ := send(http.MethodPost, "192.0.2.2:1000"); rec.Code != 200 {
		t.Errorf("another client: %d, want 200", rec.Code)
	}
	if st := e.recv.Stats(); st.RateLimited != 2 || st.Accepted != 2 || st.Clients != 2 {
		t.Errorf("Stats() RateLimited %d Accepted %d Clients %d, want 2, 2, 2", st.RateLimited, st.Accepted, st.Clients)
	}
	if got := e.endOffsets(t, eventsTopic); got != 2 {
		t.Errorf("events topic holds %d records, want 2", got)
	}
}
