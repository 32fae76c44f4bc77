package gen

import (
	"testing"
)

func drain(s *Stream) []Arrival {
	var out []Arrival
	for a, ok := s.Next(); ok; a, ok = s.Next() {
		out = append(out, a)
	}
	return out
}

func TestStreamMeetsEventsAndMessages(t *testing.T) {
	for _, tc := range []struct {
		name             string
		messages, events int
		minShare         float64 // of the messages expected to be delivered
	}{
		{"natural", 2000, 0, 0.95},
		{"fewer events than lifecycles give", 2000, 3000, 0.9},
		{"more events than lifecycles give", 2000, 20000, 0.95},
		// Each event's message is still distinct, but regions delay some
		// past the end.
		{"fewer events than messages", 2000, 500, 0.8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := NewStream(StreamOptions{Messages: tc.messages, Events: tc.events, DupRate: 0.2, LateRate: 0.1, GroupRate: 0.05, Seed: 7})
			got := drain(s)
			if len(got) != s.Len() {
				t.Fatalf("delivered %d events, Len %d", len(got), s.Len())
			}
			if tc.events > 0 && len(got) != tc.events {
				t.Fatalf("delivered %d events, want %d", len(got), tc.events)
			}
			distinct := len(Fold(toStatuses(got)))
			want := tc.messages
			if tc.events > 0 && tc.events < tc.messages {
				want = tc.events
			}
			// The last messages' delayed events can fall past the end.
			if distinct != s.Messages() || float64(distinct) < tc.minShare*float64(want) || distinct > want {
				t.Fatalf("distinct messages %d (Messages() %d), want %d", distinct, s.Messages(), want)
			}
		})
	}
}

// TestStreamDisorder checks the workload has what the bench promises:
// duplicates near DupRate, several regions, and statuses out of rank order
// for some messages.
func TestStreamDisorder(t *testing.T) {
	s := NewStream(StreamOptions{Messages: 5000, DupRate: 0.2, LateRate: 0.1, Seed: 3})
	got := drain(s)
	dups, regions, inverted := 0, map[string]int{}, 0
	last := map[string]int{}
	for _, a := range got {
		if a.Duplicate {
			dups++
		}
		regions[a.Region]++
		if Rank(a.Status.Status) < last[a.WAMID] {
			inverted++
		}
		last[a.WAMID] = max(last[a.WAMID], Rank(a.Status.Status))
	}
	if share := float64(dups) / float64(len(got)); share < 0.12 || share > 0.22 {
		t.Errorf("duplicate share %.3f, want about 0.2/1.2", share)
	}
	if len(regions) != len(DefaultRegions()) {
		t.Errorf("regions %v", regions)
	}
	if inverted < len(got)/100 {
		t.Errorf("only %d of %d events arrived after a higher status", inverted, len(got))
	}
}

func TestStreamDeterministic(t *testing.T) {
	o := StreamOptions{Messages: 500, Events: 1700, DupRate: 0.2, Seed: 11}
	a, b := drain(NewStream(o)), drain(NewStream(o))
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("event %d differs: %+v vs %+v", i, a[i], b[i])
		}
	}
}

func toStatuses(as []Arrival) []Status {
	out := make([]Status, len(as))
	for i, a := range as {
		out[i] = a.Status
	}
	return out
}
