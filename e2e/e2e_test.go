package e2e

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/wastatus/wastatus/internal/gen"
	"github.com/wastatus/wastatus/internal/kafkatest"
	"github.com/wastatus/wastatus/schemas"
)

func seed(t *testing.T) uint64 {
	t.Helper()
	s := uint64(time.Now().UnixNano())
	if v := os.Getenv("WASTATUS_SEED"); v != "" {
		var err error
		if s, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("WASTATUS_SEED: %v", err)
		}
	}
	t.Logf("seed %d (rerun with WASTATUS_SEED=%d)", s, s)
	return s
}

// TestEndToEnd is the product's promise in one test: signed webhooks for
// thousands of messages, shuffled, 20% duplicated, split across two regions'
// edges, folded by a processor that is restarted halfway; the current topic,
// read by a separate read_committed consumer and decoded with the published
// schema, holds exactly the expected fold of every message, and no message's
// status ever went backwards in it.
func TestEndToEnd(t *testing.T) {
	s := seed(t)
	e := newEnv(t)
	dir := dataDir(t, "state")

	events := gen.Events(gen.Options{Messages: 2000, DupRate: 0.2, GroupRate: 0.1, Seed: s})
	want := gen.Fold(events)
	posts := gen.Split(events, 25, s)
	t.Logf("%d messages, %d events, %d posts", len(want), len(events), len(posts))

	proc := e.startProcessor(dir)
	edges := []string{e.startEdge("us-east-1"), e.startEdge("eu-west-1")}
	r := rand.New(rand.NewPCG(s, 1))
	half := len(posts) / 2
	for _, p := range posts[:half] {
		post(t, edges[r.IntN(len(edges))], gen.Webhook(p))
	}
	// Restart the processor while the first half may still be in flight.
	kafkatest.Eventually(t, 30*time.Second, func() error {
		if proc.proc.Stats().Events == 0 {
			return errors.New("processor has folded nothing yet")
		}
		return nil
	})
	proc.stop(t)
	proc = e.startProcessor(dir)
	defer proc.stop(t)
	for _, p := range posts[half:] {
		post(t, edges[r.IntN(len(edges))], gen.Webhook(p))
	}

	reader := e.readCurrent()
	reader.waitFold(t, want)
	reader.mu.Lock()
	defer reader.mu.Unlock()
	if len(reader.backwards) > 0 {
		t.Errorf("%d states went backwards, first: %s", len(reader.backwards), reader.backwards[0])
	}
	if len(reader.latest) != len(want) {
		t.Errorf("current topic has %d messages, want %d", len(reader.latest), len(want))
	}
	st := proc.proc.Stats()
	t.Logf("current topic: %d records for %d messages; second processor: %+v", reader.records, len(reader.latest), st)
}

// matches compares a folded state with the plain model's expectation.
func matches(got schemas.MessageStatus, want gen.Expected) error {
	if got.Status != want.Status {
		return fmt.Errorf("%s: status %s, want %s", got.WAMID, got.Status, want.Status)
	}
	for status, at := range map[string]int64{
		"sent": got.SentAt, "delivered": got.DeliveredAt, "read": got.ReadAt,
		"played": got.PlayedAt, "failed": got.FailedAt,
	} {
		if at != want.At[status] {
			return fmt.Errorf("%s: %s_at %d, want %d", got.WAMID, status, at, want.At[status])
		}
	}
	return nil
}
