package edge_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"bytes"

	"github.com/wastatus/wastatus/edge"
	"github.com/wastatus/wastatus/schemas"
)

// FuzzPost drives the whole POST path (content type, body, signature,
// parsing, records, Kafka) with arbitrary bodies and content types, signed
// or not, seeded from the hostile corpus and the samples:
//
//	go test -run x -fuzz FuzzPost -fuzztime 10s ./edge/
//
// Every answer is one of the documented codes with a JSON body that never
// holds the secret; a 200 comes only for a correctly signed JSON webhook,
// and accounts for every status object of it, each written to exactly one
// topic before the answer.
func FuzzPost(f *testing.F) {
	for _, dir := range []string{"testdata", hostileDir} {
		files, err := filepath.Glob(filepath.Join(dir, "*.json"))
		if err != nil {
			f.Fatal(err)
		}
		for _, file := range files {
			if filepath.Base(file) == "manifest.json" {
				continue
			}
			b, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b, "application/json", true)
		}
	}
	f.Add([]byte(`{"object":"whatsapp_business_account"}`), "text/plain", true)
	f.Add([]byte(`{"object":"whatsapp_business_account"}`), "", false)

	e := newEnv(f, func(c *edge.Config) {
		c.ClientRate = -1 // the fuzzer is one client, far over any limit
		c.ProduceTimeout = 2 * time.Second
	})
	receivedAt := testNow().UnixMilli()
	f.Fuzz(func(t *testing.T, body []byte, contentType string, signed bool) {
		req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, edge.WebhookPath, bytes.NewReader(body))
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		if signed {
			req.Header.Set(edge.SignatureHeader, edge.Sign(body, []byte(testSecret)))
		}
		before := e.recv.Stats()
		rec := httptest.NewRecorder()
		e.mux.ServeHTTP(rec, req)
		after := e.recv.Stats()

		if strings.Contains(rec.Body.String(), testSecret) {
			t.Fatalf("the answer holds the secret: %q", rec.Body)
		}
		var ans struct {
			Error              string
			Accepted, Rejected *int
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &ans); err != nil {
			t.Fatalf("answer %q is not JSON: %v", rec.Body, err)
		}
		switch rec.Code {
		case http.StatusOK:
			if !signed {
				t.Fatal("an unsigned POST was accepted")
			}
			w, err := schemas.ParseWebhook(body, testRegion, receivedAt)
			if err != nil {
				t.Fatalf("accepted a body ParseWebhook refuses: %v", err)
			}
			if ans.Accepted == nil || ans.Rejected == nil || *ans.Accepted+*ans.Rejected != len(w.Events)+len(w.Rejected) {
				t.Fatalf("answer %q for %d events and %d rejected statuses", rec.Body, len(w.Events), len(w.Rejected))
			}
			if got := (after.Events - before.Events) + (after.DeadLetters - before.DeadLetters); got != uint64(*ans.Accepted+*ans.Rejected) {
				t.Fatalf("answered %q before Kafka acknowledged them all (%d)", rec.Body, got)
			}
			if got := after.Events - before.Events; got != uint64(*ans.Accepted) {
				t.Fatalf("answered %q, %d events written", rec.Body, got)
			}
		case http.StatusBadRequest:
			if _, err := schemas.ParseWebhook(body, testRegion, receivedAt); err == nil || err.Error() != ans.Error {
				t.Fatalf("400 %q, but ParseWebhook says %v", ans.Error, err)
			}
		case http.StatusUnauthorized:
			if signed {
				t.Fatalf("a signed POST was refused: %q", rec.Body)
			}
		case http.StatusUnsupportedMediaType:
			if contentType == "" {
				t.Fatalf("415 without a content type: %q", rec.Body)
			}
		default:
			t.Fatalf("answered %d %q", rec.Code, rec.Body)
		}
		if rec.Code != http.StatusOK && (after.Events != before.Events || after.DeadLetters != before.DeadLetters) {
			t.Fatalf("a %d wrote records", rec.Code)
		}
	})
}
