package edge_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wastatus/wastatus/edge"
	"github.com/wastatus/wastatus/schemas"
	"github.com/wastatus/wastatus/state"
)

// hostileDir holds the hostile-input corpus: one body per file, and
// manifest.json naming, for each case, the body, how it is sent and what
// the edge must answer.
var hostileDir = filepath.Join("testdata", "hostile")

// hostileCase is one entry of testdata/hostile/manifest.json.
type hostileCase struct {
	Name string `json:"name"`
	Why  string `json:"why"`
	File string `json:"file"`
	// Signature: valid, missing, forged (another secret), other-body (a
	// real signature of another body), not-hex, sha1 or short.
	Signature string `json:"signature"`
	// ContentType is sent as is; "none" sends no Content-Type.
	ContentType     string `json:"content_type"`
	ContentEncoding string `json:"content_encoding"`
	Code            int    `json:"code"`
	// Error is the whole "error" of a non-200 answer.
	Error    string `json:"error"`
	Accepted int    `json:"accepted"`
	Rejected int    `json:"rejected"`
	// DeadLetters are texts that the error headers of the dead letters
	// contain, one each, in any order.
	DeadLetters []string `json:"dead_letters"`
}

func hostileCases(t *testing.T) []hostileCase {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(hostileDir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []hostileCase
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cases); err != nil {
		t.Fatalf("manifest.json: %v", err)
	}
	return cases
}

// hostileSignature returns the X-Hub-Signature-256 value the case's mode
// sends with body.
func hostileSignature(t *testing.T, mode string, body []byte) string {
	t.Helper()
	good := edge.Sign(body, []byte(testSecret))
	switch mode {
	case "valid":
		return good
	case "missing":
		return ""
	case "forged":
		return edge.Sign(body, []byte("not-the-app-secret"))
	case "other-body":
		return edge.Sign(append(bytes.Clone(body), ' '), []byte(testSecret))
	case "not-hex":
		return "sha256=" + strings.Repeat("zq", 32)
	case "sha1":
		return "sha1=" + strings.TrimPrefix(good, "sha256=")
	case "short":
		return good[:len(good)-2]
	}
	t.Fatalf("unknown signature mode %q", mode)
	return ""
}

// TestHostileCorpus posts every case of testdata/hostile/manifest.json and
// checks the answer (status, JSON error, never the secret or the signature),
// what reached each topic, and that every dead letter says why and carries
// the envelope it came in.
func TestHostileCorpus(t *testing.T) {
	cases := hostileCases(t)
	used := map[string]bool{"manifest.json": true}
	for _, tc := range cases {
		used[tc.File] = true
		t.Run(tc.Name, func(t *testing.T) {
			body, err := os.ReadFile(filepath.Join(hostileDir, tc.File))
			if err != nil {
				t.Fatal(err)
			}
			e := newEnv(t, nil)
			req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, edge.WebhookPath, bytes.NewReader(body))
			sig := hostileSignature(t, tc.Signature, body)
			if sig != "" {
				req.Header.Set(edge.SignatureHeader, sig)
			}
			if tc.ContentType != "none" {
				req.Header.Set("Content-Type", tc.ContentType)
			}
			if tc.ContentEncoding != "" {
				req.Header.Set("Content-Encoding", tc.ContentEncoding)
			}
			rec := httptest.NewRecorder()
			e.mux.ServeHTTP(rec, req)

			if rec.Code != tc.Code {
				t.Fatalf("code = %d, want %d (body %q)", rec.Code, tc.Code, rec.Body)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("answer Content-Type = %q, want application/json", ct)
			}
			answerText := rec.Body.String()
			if strings.Contains(answerText, testSecret) || (sig != "" && strings.Contains(answerText, strings.TrimPrefix(sig, "sha256="))) {
				t.Errorf("the answer echoes the secret or the signature: %q", answerText)
			}
			if tc.Code != 200 {
				var got struct{ Error string }
				if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
					t.Fatalf("answer %q is not JSON: %v", rec.Body, err)
				}
				if got.Error != tc.Error {
					t.Errorf("error = %q\n want %q", got.Error, tc.Error)
				}
				if n := e.endOffsets(t, eventsTopic) + e.endOffsets(t, dlqTopic); n != 0 {
					t.Errorf("a %d wrote %d records", tc.Code, n)
				}
				return
			}
			if got, want := answerText, answer(tc.Accepted, tc.Rejected); got != want {
				t.Errorf("answer = %q, want %q", got, want)
			}
			if n := e.endOffsets(t, eventsTopic); n != int64(tc.Accepted) {
				t.Errorf("events topic holds %d records, want %d", n, tc.Accepted)
			}
			checkHostileDeadLetters(t, e, tc)
		})
	}
	files, err := os.ReadDir(hostileDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if !used[f.Name()] {
			t.Errorf("testdata/hostile/%s is in no case of manifest.json", f.Name())
		}
	}
}

// checkHostileDeadLetters checks that the dead-letter topic holds one record
// per rejected status, each with its reason and the envelope of the corpus
// bodies.
func checkHostileDeadLetters(t *testing.T, e *env, tc hostileCase) {
	t.Helper()
	dls := e.records(t, dlqTopic)
	if len(dls) != tc.Rejected || len(tc.DeadLetters) != tc.Rejected {
		t.Fatalf("dead-letter topic holds %d records, manifest lists %d reasons, want %d", len(dls), len(tc.DeadLetters), tc.Rejected)
	}
	wantHeaders := map[string]string{
		edge.HeaderSource:             edge.SourceEdge,
		edge.HeaderRegion:             testRegion,
		edge.HeaderReceivedAt:         strconv.FormatInt(testNow().UnixMilli(), 10),
		edge.HeaderWABAID:             "102290129340398",
		edge.HeaderPhoneNumberID:      "106540352242922",
		edge.HeaderDisplayPhoneNumber: "15550783881",
	}
	reasons := slices.Clone(tc.DeadLetters)
	for _, r := range dls {
		for k, want := range wantHeaders {
			if got, _ := header(r, k); got != want {
				t.Errorf("dead letter %.60q: header %s = %q, want %q", r.Value, k, got, want)
			}
		}
		msg, _ := header(r, edge.HeaderError)
		i := slices.IndexFunc(reasons, func(s string) bool { return strings.Contains(msg, s) })
		if i < 0 {
			t.Errorf("dead letter %.60q: error %q is none of %q", r.Value, msg, reasons)
			continue
		}
		reasons = slices.Delete(reasons, i, i+1)
	}
}

// TestPostThousandStatuses posts a 3 MB body of 1,000 statuses, Meta's
// largest: every status is accepted and written as one record, keyed by its
// wamid. (Generated rather than committed, to keep 3 MB out of the repo.)
func TestPostThousandStatuses(t *testing.T) {
	const n = 1000
	pad := strings.Repeat("p", 2950)
	statuses := make([]string, n)
	for i := range statuses {
		statuses[i] = status("wamid.BIG."+strconv.Itoa(i), "delivered", 1750030073+int64(i%60), `"biz_opaque_callback_data":"`+pad+`"`)
	}
	body := webhook(statuses...)
	if len(body) < 3_000_000 || len(body) > 3_200_000 {
		t.Fatalf("body is %d bytes, want about 3 MB", len(body))
	}
	e := newEnv(t, nil)
	rec := e.postSigned(t, body)
	if rec.Code != 200 || rec.Body.String() != answer(n, 0) {
		t.Fatalf("code = %d, body %q; want 200 and %q", rec.Code, rec.Body, answer(n, 0))
	}
	got := e.records(t, eventsTopic)
	seen := make(map[string]bool, n)
	for _, r := range got {
		seen[string(r.Key)] = true
	}
	if len(got) != n || len(seen) != n {
		t.Errorf("events topic holds %d records for %d wamids, want %d of each", len(got), len(seen), n)
	}
	if st := e.recv.Stats(); st.Events != n || st.Rejected != 0 {
		t.Errorf("Stats() Events %d Rejected %d, want %d and 0", st.Events, st.Rejected, n)
	}
}

// TestPostReplayedSignature posts the same signed body twice. A replayed
// body cannot be told from Meta's own retries (Meta signs the body only,
// with no nonce or time), so it is accepted, and it is harmless: its
// events fold into exactly the state the first POST's did.
func TestPostReplayedSignature(t *testing.T) {
	body := webhook(
		status("wamid.REPLAY", "delivered", 1750030073, ""),
		status("wamid.REPLAY", "read", 1750030080, `"pricing":{"billable":true,"pricing_model":"CBP","category":"utility"}`),
	)
	sig := edge.Sign(body, []byte(testSecret))
	now := testNow()
	e := newEnv(t, func(c *edge.Config) { c.Now = func() time.Time { return now } })
	for i := range 2 {
		now = now.Add(time.Duration(i) * time.Hour) // the replay comes an hour later
		if rec := e.post(t, body, sig); rec.Code != 200 || rec.Body.String() != answer(2, 0) {
			t.Fatalf("POST %d: code = %d, body %q", i+1, rec.Code, rec.Body)
		}
	}
	recs := e.records(t, eventsTopic) // one partition: the wamid's, in order
	if len(recs) != 4 {
		t.Fatalf("events topic holds %d records, want 4", len(recs))
	}
	var m state.Message
	var first schemas.MessageStatus
	for i, r := range recs {
		ev, err := e.codec.DecodeStatusEvent(r.Value)
		if err != nil {
			t.Fatal(err)
		}
		out, err := m.Apply(&ev, state.FailedWins)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case i == 1:
			first = m.View(state.FailedWins)
		case i > 1 && out.Changed():
			t.Errorf("replayed event %d (%s) folded as %v: it changed the state", i, ev.Status, out)
		}
	}
	if got := m.View(state.FailedWins); !reflect.DeepEqual(got, first) || got.Status != "read" {
		t.Errorf("state after the replay\n got %+v\nwant %+v", got, first)
	}
}
