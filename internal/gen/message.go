package gen

import (
	"fmt"
	"math/rand/v2"
)

// Message returns the status objects of message i, sent at sentAt, in
// lifecycle order and without duplicates: one recipient's lifecycle, or,
// with probability groupRate, one lifecycle per participant of a group of
// 2 to 4. Callers that stream messages over time (the chaos harness)
// schedule each status themselves; Events is the batch form.
func Message(r *rand.Rand, i int, sentAt int64, groupRate float64) []Status {
	wamid := WAMID(i)
	recipient := fmt.Sprintf("1650555%04d", i%10000)
	participants := []string{""}
	if r.Float64() < groupRate {
		participants = participants[:0]
		for p := range 2 + r.IntN(3) {
			participants = append(participants, fmt.Sprintf("1650666%04d", p))
		}
	}
	var out []Status
	for _, p := range participants {
		for _, st := range lifecycle(r, sentAt) {
			st.WAMID, st.RecipientID, st.Participant = wamid, recipient, p
			out = append(out, st)
		}
	}
	return out
}

// Policies the model folds by, named as wastatus's --policy flag names them.
const (
	FailedWins   = "failed-wins"
	DeliveryWins = "delivery-wins"
)

// RankBy is the lattice rank of status under policy: Rank for failed-wins
// (failed 5 is terminal); for delivery-wins sent 1 < failed 2 < delivered 3
// < read 4 < played 5, so a failed after a delivery never moves the status.
// An unknown status ranks 0.
func RankBy(policy, status string) int {
	if policy != DeliveryWins {
		return Rank(status)
	}
	switch status {
	case "sent":
		return 1
	case "failed":
		return 2
	case "delivered":
		return 3
	case "read":
		return 4
	case "played":
		return 5
	}
	return 0
}

// Full is the model's fold of one message: the message's top level and,
// for a group message, each participant's own fold.
type Full struct {
	Expected
	Participants map[string]Expected // by participant id; nil unless a group message
}

// FoldFull folds events by policy, per message and per participant: the
// highest status by RankBy and the earliest timestamp of each status seen.
// A message's top level is the join of all its events, so of its
// participants'.
func FoldFull(events []Status, policy string) map[string]Full {
	out := make(map[string]Full)
	for _, e := range events {
		x, ok := out[e.WAMID]
		if !ok {
			x = Full{Expected: Expected{At: map[string]int64{}}}
		}
		x.Expected = foldOne(x.Expected, e, policy)
		if e.Participant != "" {
			if x.Participants == nil {
				x.Participants = make(map[string]Expected)
			}
			p, ok := x.Participants[e.Participant]
			if !ok {
				p = Expected{At: map[string]int64{}}
			}
			x.Participants[e.Participant] = foldOne(p, e, policy)
		}
		out[e.WAMID] = x
	}
	return out
}

func foldOne(x Expected, e Status, policy string) Expected {
	if RankBy(policy, e.Status) > RankBy(policy, x.Status) {
		x.Status = e.Status
	}
	if at, ok := x.At[e.Status]; !ok || e.Timestamp < at {
		x.At[e.Status] = e.Timestamp
	}
	return x
}
