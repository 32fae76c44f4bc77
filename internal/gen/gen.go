// Package gen generates WhatsApp status webhooks with the disorder of the real
// thing, for tests, the bench command and the chaos harness: skipped
// delivered, one-second ties, played, failed after delivered, group messages
// with one status per participant, duplicates, and any order across regions.
// It also computes the expected fold with a plain model that shares no code
// with the state package, so tests compare two independent answers.
package gen

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
)

// Status is one status object to send.
type Status struct {
	WAMID       string
	Status      string
	Timestamp   int64
	RecipientID string
	Participant string // group messages only
}

// Options shape a generated workload.
type Options struct {
	Messages  int     // distinct wamids
	DupRate   float64 // fraction of events sent again (Meta's retries)
	GroupRate float64 // fraction of messages sent to a group of 2-4 participants
	Start     int64   // payload time of the first send, unix seconds
	Seed      uint64
}

// Events returns the status objects of o.Messages messages, duplicates
// included, in a random order.
func Events(o Options) []Status {
	r := rand.New(rand.NewPCG(o.Seed, o.Seed^0x9e3779b97f4a7c15))
	if o.Start == 0 {
		o.Start = 1_750_000_000
	}
	var out []Status
	for i := range o.Messages {
		wamid := fmt.Sprintf("wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQz%08dQUFERjg0NDEzNDdFODU3MUMxMAA=", i)
		recipient := fmt.Sprintf("1650555%04d", i%10000)
		sentAt := o.Start + int64(i%3600)
		participants := []string{""}
		if r.Float64() < o.GroupRate {
			participants = participants[:0]
			for p := range 2 + r.IntN(3) {
				participants = append(participants, fmt.Sprintf("1650666%04d", p))
			}
		}
		for _, p := range participants {
			for _, st := range lifecycle(r, sentAt) {
				st.WAMID, st.RecipientID, st.Participant = wamid, recipient, p
				out = append(out, st)
			}
		}
	}
	for i, n := 0, len(out); i < n; i++ {
		if r.Float64() < o.DupRate {
			out = append(out, out[i])
		}
	}
	r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// lifecycle returns one recipient's statuses, as Meta reports them.
func lifecycle(r *rand.Rand, sentAt int64) []Status {
	out := []Status{{Status: "sent", Timestamp: sentAt}}
	if r.Float64() < 0.05 { // failed outright
		return append(out, Status{Status: "failed", Timestamp: sentAt + int64(r.IntN(5))})
	}
	// One-second resolution: delivered often ties with sent.
	deliveredAt := sentAt + int64(r.IntN(3))
	readAt := deliveredAt + int64(r.IntN(600))
	switch x := r.Float64(); {
	case x < 0.15: // sent only
	case x < 0.40: // delivered
		out = append(out, Status{Status: "delivered", Timestamp: deliveredAt})
		if r.Float64() < 0.1 { // failed after delivered (multi-device)
			out = append(out, Status{Status: "failed", Timestamp: deliveredAt + 1})
		}
	case x < 0.55: // read with no delivered (Meta skips it)
		out = append(out, Status{Status: "read", Timestamp: readAt})
	default:
		out = append(out,
			Status{Status: "delivered", Timestamp: deliveredAt},
			Status{Status: "read", Timestamp: readAt})
		if r.Float64() < 0.1 { // a voice message played
			out = append(out, Status{Status: "played", Timestamp: readAt + int64(r.IntN(30))})
		}
	}
	return out
}

// Expected is the fold of one message by the plain model: the highest status
// (failed is terminal) and the earliest timestamp of each status seen.
type Expected struct {
	Status string
	At     map[string]int64
}

// Fold computes the expected state of every message in events.
func Fold(events []Status) map[string]Expected {
	out := make(map[string]Expected)
	for _, e := range events {
		x, ok := out[e.WAMID]
		if !ok {
			x = Expected{At: map[string]int64{}}
		}
		if Rank(e.Status) > Rank(x.Status) {
			x.Status = e.Status
		}
		if at, ok := x.At[e.Status]; !ok || e.Timestamp < at {
			x.At[e.Status] = e.Timestamp
		}
		out[e.WAMID] = x
	}
	return out
}

// Rank is the lattice rank of a status name, 0 for an unknown one.
func Rank(status string) int {
	switch status {
	case "sent":
		return 1
	case "delivered":
		return 2
	case "read":
		return 3
	case "played":
		return 4
	case "failed":
		return 5
	}
	return 0
}

// Webhook returns the body of one POST carrying statuses, in Meta's shape.
func Webhook(statuses []Status) []byte {
	type st struct {
		ID                     string `json:"id"`
		Status                 string `json:"status"`
		Timestamp              string `json:"timestamp"`
		RecipientID            string `json:"recipient_id"`
		RecipientType          string `json:"recipient_type,omitempty"`
		RecipientParticipantID string `json:"recipient_participant_id,omitempty"`
	}
	sts := make([]st, 0, len(statuses))
	for _, s := range statuses {
		x := st{ID: s.WAMID, Status: s.Status, Timestamp: fmt.Sprint(s.Timestamp), RecipientID: s.RecipientID}
		if s.Participant != "" {
			x.RecipientType, x.RecipientParticipantID = "group", s.Participant
		}
		sts = append(sts, x)
	}
	body := map[string]any{
		"object": "whatsapp_business_account",
		"entry": []any{map[string]any{
			"id": "102290129340398",
			"changes": []any{map[string]any{
				"field": "messages",
				"value": map[string]any{
					"messaging_product": "whatsapp",
					"metadata":          map[string]string{"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
					"statuses":          sts,
				},
			}},
		}},
	}
	b, err := json.Marshal(body)
	if err != nil {
		panic(err) // only plain types above
	}
	return b
}

// Split cuts events into POST-sized chunks of 1 to max statuses each.
func Split(events []Status, maxPer int, seed uint64) [][]Status {
	r := rand.New(rand.NewPCG(seed, 7))
	var out [][]Status
	for rest := slices.Clone(events); len(rest) > 0; {
		n := min(1+r.IntN(maxPer), len(rest))
		out = append(out, rest[:n])
		rest = rest[n:]
	}
	return out
}
