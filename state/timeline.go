package state

import (
	"fmt"

	"github.com/wastatus/wastatus/schemas"
)

// Anomaly kinds: what the reference article's troubleshooting steps hunt
// for, found in one message's timeline.
const (
	// AnomalyOutOfOrder: an older status arrived after a newer one (a
	// delivered after the read). The lattice kept the newer status; a
	// last-write-wins store would have gone backwards here.
	AnomalyOutOfOrder = "out-of-order"
	// AnomalyReadWithoutDelivered: read (or played) with no delivered at all:
	// Meta skips delivered when both happen at once.
	AnomalyReadWithoutDelivered = "read-without-delivered"
	// AnomalyFailedAfterDelivered: a failed for a message that reached the
	// phone (multi-device users).
	AnomalyFailedAfterDelivered = "failed-after-delivered"
	// AnomalyNeverSent: statuses for a message whose sent was never seen.
	AnomalyNeverSent = "never-sent"
	// AnomalyLate: an event received long after its payload time (Meta
	// retries for up to 7 days).
	AnomalyLate = "late"
	// AnomalyDuplicate: the same status seen again, changing nothing.
	AnomalyDuplicate = "duplicate"
)

// LateAfter is how far behind its payload time an event must be received to
// count as late.
const LateAfter int64 = 3600 // seconds

// Anomaly is one finding in a message's timeline. Offset is the event's
// offset for per-event findings, -1 for findings about the whole message.
type Anomaly struct {
	Kind   string `json:"kind"`
	Offset int64  `json:"offset"`
	Detail string `json:"detail"`
}

// Explain names the anomalies of one message from its timeline (arrival
// order) and its folded state. The state decides the whole-message findings,
// so they hold even when the bounded history lost the oldest events.
func Explain(history []HistoryEntry, v *schemas.MessageStatus) []Anomaly {
	var out []Anomaly
	// The highest status seen so far per participant, in arrival order.
	highest := map[string]HistoryEntry{}
	for _, h := range history {
		s, err := ParseStatus(h.Status)
		if err != nil {
			continue
		}
		if top, ok := highest[h.Participant]; ok {
			ts, _ := ParseStatus(top.Status)
			if s < ts && s != Failed {
				out = append(out, Anomaly{Kind: AnomalyOutOfOrder, Offset: h.Offset,
					Detail: fmt.Sprintf("%s (t=%d) arrived after %s (t=%d)%s", h.Status, h.Timestamp, top.Status, top.Timestamp, forParticipant(h))})
			}
			if s > ts {
				highest[h.Participant] = h
			}
		} else {
			highest[h.Participant] = h
		}
		if h.Outcome == Duplicate {
			out = append(out, Anomaly{Kind: AnomalyDuplicate, Offset: h.Offset,
				Detail: fmt.Sprintf("%s (t=%d) seen again%s", h.Status, h.Timestamp, forParticipant(h))})
		}
		if h.ReceivedAt > 0 && h.ReceivedAt/1000-h.Timestamp > LateAfter {
			out = append(out, Anomaly{Kind: AnomalyLate, Offset: h.Offset,
				Detail: fmt.Sprintf("%s received %s after its payload time", h.Status, seconds(h.ReceivedAt/1000-h.Timestamp))})
		}
	}
	if v == nil {
		return out
	}
	if (v.ReadAt != 0 || v.PlayedAt != 0) && v.DeliveredAt == 0 {
		out = append(out, Anomaly{Kind: AnomalyReadWithoutDelivered, Offset: -1,
			Detail: "read with no delivered: Meta skips delivered when both happen at once"})
	}
	if v.FailedAt != 0 && (v.DeliveredAt != 0 || v.ReadAt != 0 || v.PlayedAt != 0) {
		out = append(out, Anomaly{Kind: AnomalyFailedAfterDelivered, Offset: -1,
			Detail: fmt.Sprintf("failed (t=%d) for a message that was delivered: status is %s", v.FailedAt, v.Status)})
	}
	if v.SentAt == 0 {
		out = append(out, Anomaly{Kind: AnomalyNeverSent, Offset: -1,
			Detail: "no sent seen for this message: its first status arrived before, or without, the sent"})
	}
	return out
}

func forParticipant(h HistoryEntry) string {
	if h.Participant == "" {
		return ""
	}
	return " for participant " + h.Participant
}

func seconds(s int64) string {
	switch {
	case s >= 86400:
		return fmt.Sprintf("%.1fd", float64(s)/86400)
	case s >= 3600:
		return fmt.Sprintf("%.1fh", float64(s)/3600)
	default:
		return fmt.Sprintf("%ds", s)
	}
}
