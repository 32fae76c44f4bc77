package gen

import (
	"math/rand/v2"
	"testing"
)

func TestFoldFullByPolicy(t *testing.T) {
	const w = "wamid.A"
	events := []Status{
		{WAMID: w, Status: "failed", Timestamp: 30, Participant: "p1"},
		{WAMID: w, Status: "delivered", Timestamp: 20, Participant: "p1"},
		{WAMID: w, Status: "sent", Timestamp: 10, Participant: "p1"},
		{WAMID: w, Status: "read", Timestamp: 40, Participant: "p2"},
		{WAMID: w, Status: "delivered", Timestamp: 25, Participant: "p2"},
		{WAMID: w, Status: "delivered", Timestamp: 21, Participant: "p2"}, // an earlier duplicate wins
	}
	for _, tc := range []struct {
		policy     string
		top, p1    string
		deliveredP int64
	}{
		{FailedWins, "failed", "failed", 21},
		{DeliveryWins, "read", "delivered", 21},
	} {
		got := FoldFull(events, tc.policy)[w]
		if got.Status != tc.top || got.Participants["p1"].Status != tc.p1 {
			t.Errorf("%s: status %s, p1 %s; want %s, %s", tc.policy, got.Status, got.Participants["p1"].Status, tc.top, tc.p1)
		}
		if at := got.Participants["p2"].At["delivered"]; at != tc.deliveredP {
			t.Errorf("%s: p2 delivered_at %d, want %d", tc.policy, at, tc.deliveredP)
		}
		if at := got.At["delivered"]; at != 20 {
			t.Errorf("%s: delivered_at %d, want the earliest of all participants, 20", tc.policy, at)
		}
	}
}

// FoldFull's top level is Fold's for failed-wins, whatever the order.
func TestFoldFullAgreesWithFold(t *testing.T) {
	events := Events(Options{Messages: 300, DupRate: 0.2, GroupRate: 0.3, Seed: 7})
	want := Fold(events)
	r := rand.New(rand.NewPCG(7, 7))
	r.Shuffle(len(events), func(i, j int) { events[i], events[j] = events[j], events[i] })
	got := FoldFull(events, FailedWins)
	if len(got) != len(want) {
		t.Fatalf("%d messages, want %d", len(got), len(want))
	}
	for w, x := range want {
		g := got[w]
		if g.Status != x.Status || len(g.At) != len(x.At) {
			t.Fatalf("%s: %+v, want %+v", w, g.Expected, x)
		}
		for s, at := range x.At {
			if g.At[s] != at {
				t.Fatalf("%s: %s at %d, want %d", w, s, g.At[s], at)
			}
		}
	}
}

func TestMessageLifecycles(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	groups := 0
	for i := range 500 {
		sts := Message(r, i, 1000, 0.5)
		parts := map[string]bool{}
		for _, s := range sts {
			if s.WAMID != WAMID(i) || Rank(s.Status) == 0 || s.Timestamp < 1000 {
				t.Fatalf("message %d: bad status %+v", i, s)
			}
			parts[s.Participant] = true
		}
		if len(parts) > 1 {
			groups++
			if parts[""] {
				t.Fatalf("message %d mixes group and single-recipient statuses", i)
			}
		}
	}
	if groups < 150 || groups > 350 {
		t.Errorf("%d group messages of 500 at a rate of 0.5", groups)
	}
}
