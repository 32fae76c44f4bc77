package processor_test

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wastatus/wastatus/internal/kafkatest"
	"github.com/wastatus/wastatus/state"
)

// TestViewLoadsExistingStates starts a serving-all instance on an empty
// store while the current topic already holds every message's states (two
// or three each, not compacted): its view loads each partition in bulk and
// answers for every message, owned or not, with its last state; then a
// restart on the same store resumes the view instead of loading it again,
// and follows what changed meanwhile.
func TestViewLoadsExistingStates(t *testing.T) {
	f := newFixture(t, 4)
	f.cfg.ServeAll = true
	a := f.start(t.TempDir())
	defer a.stop(t)

	const messages = 200
	id := func(i int) string { return fmt.Sprintf("wamid.V%03d", i) }
	var recs []*kgo.Record
	for i := range messages {
		recs = append(recs, f.event(id(i), "sent", 100), f.event(id(i), "delivered", 150))
		if i%2 == 0 {
			recs = append(recs, f.event(id(i), "read", 200))
		}
	}
	f.produce(recs...)
	want := func(i int) string {
		if i%2 == 0 {
			return "read"
		}
		return "delivered"
	}
	serves := func(r *running, want func(int) string) error {
		for i := range messages {
			v, _, err := r.p.Get(id(i))
			if err != nil {
				return fmt.Errorf("%s: %w", id(i), err)
			}
			if v.Status != want(i) || v.SentAt != 100 || v.DeliveredAt != 150 {
				return fmt.Errorf("%s: %+v", id(i), v)
			}
		}
		return nil
	}
	kafkatest.Eventually(t, 60*time.Second, func() error { return serves(a, want) })

	var logs lockedBuffer
	cfg := f.cfg
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	dir := t.TempDir()
	store, err := state.Open(dir, state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := f.startOn(cfg, store) // ready: the view has read what was committed
	if err := serves(c, want); err != nil {
		t.Fatalf("a new instance, once ready: %v", err)
	}
	if n := logs.count("view partition loaded"); n != 4 {
		t.Fatalf("%d view partitions loaded in bulk, want 4", n)
	}
	c.stop(t)

	// Meanwhile every odd message is read too; the restarted instance
	// resumes its view and sees it.
	recs = recs[:0]
	for i := 1; i < messages; i += 2 {
		recs = append(recs, f.event(id(i), "read", 210))
	}
	f.produce(recs...)
	if store, err = state.Open(dir, state.Options{}); err != nil {
		t.Fatal(err)
	}
	c = f.startOn(cfg, store)
	defer c.stop(t)
	kafkatest.Eventually(t, 60*time.Second, func() error { return serves(c, func(int) string { return "read" }) })
	if n := logs.count("view partition loaded"); n != 4 {
		t.Fatalf("the restart loaded the view again: %d bulk loads in all, want 4", n)
	}
}

// TestRunStopsItsGoroutines checks that Run returns only once the view and
// the topic check it started have stopped: they use the store, and a caller
// closes the store once Run returns (a store closed under the view's
// loader panicked in Pebble). The instance is stopped at once, while its
// view may still be loading the current topic.
func TestRunStopsItsGoroutines(t *testing.T) {
	f := newFixture(t, 4)
	f.cfg.ServeAll = true
	running := func(fn string) bool {
		buf := make([]byte, 1<<20)
		return strings.Contains(string(buf[:runtime.Stack(buf, true)]), fn)
	}
	const view, check = "processor.(*Processor).runView", "processor.(*Processor).watchTopic"
	for round := range 3 {
		if round == 1 { // the topics exist now
			var recs []*kgo.Record
			for i := range 400 {
				recs = append(recs, f.event(fmt.Sprintf("wamid.G%03d", i), "sent", 100))
			}
			f.produce(recs...)
		}
		store, err := state.Open(t.TempDir(), state.Options{})
		if err != nil {
			t.Fatal(err)
		}
		r := f.launch(f.cfg, store)
		p := r.p
		// Round 0 stops as soon as the view runs; the others once ready,
		// the last on a fresh store after round 1 emitted states, which its
		// view loads.
		kafkatest.Eventually(t, 60*time.Second, func() error {
			if !running(view) {
				return errors.New("no view yet")
			}
			if ok, why := p.Ready(); round > 0 && !ok {
				return errors.New(why)
			}
			return nil
		})
		r.cancel()
		if err := <-r.done; err != nil {
			t.Errorf("round %d: Run: %v", round, err)
		}
		for _, fn := range []string{view, check} {
			if running(fn) {
				t.Errorf("round %d: %s still runs after Run returned", round, fn)
			}
		}
		if err := store.Close(); err != nil {
			t.Fatalf("round %d: store: %v", round, err)
		}
	}
}
