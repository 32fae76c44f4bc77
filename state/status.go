package state

import (
	"fmt"
	"strconv"
)

// Status is a WhatsApp message status. Its numeric value is its canonical
// rank, the one used to prefer attributes: sent 1 < delivered 2 < read 3 <
// played 4 < failed 5. The message's own status is ranked by a Policy.
type Status uint8

// The statuses. StatusUnknown is the zero value: no status seen (it is never
// folded, and ParseStatus never returns it without an error).
const (
	StatusUnknown Status = iota
	Sent
	Delivered
	Read
	Played
	Failed
)

// numStatuses is the number of foldable statuses (Sent..Failed).
const numStatuses = 5

// ParseStatus returns the Status named s ("sent", "delivered", "read",
// "played", "failed"; exactly, lowercase as Meta sends them). Anything else,
// including "unknown", is an error wrapping ErrUnknownStatus.
func ParseStatus(s string) (Status, error) {
	if st := parseStatus(s); st != StatusUnknown {
		return st, nil
	}
	return StatusUnknown, fmt.Errorf("%w: %q", ErrUnknownStatus, s)
}

// parseStatus is ParseStatus without the error (and its allocation):
// StatusUnknown for anything it does not know.
func parseStatus(s string) Status {
	switch s {
	case "sent":
		return Sent
	case "delivered":
		return Delivered
	case "read":
		return Read
	case "played":
		return Played
	case "failed":
		return Failed
	}
	return StatusUnknown
}

// String returns the status's name as Meta spells it ("sent", ...), "unknown"
// for StatusUnknown, and "Status(n)" for a value out of range.
func (s Status) String() string {
	switch s {
	case StatusUnknown:
		return "unknown"
	case Sent:
		return "sent"
	case Delivered:
		return "delivered"
	case Read:
		return "read"
	case Played:
		return "played"
	case Failed:
		return "failed"
	}
	return "Status(" + strconv.Itoa(int(s)) + ")"
}

// valid reports whether s is a foldable status (Sent..Failed).
func (s Status) valid() bool { return s >= Sent && s <= Failed }

// bit is s's bit in a seen-statuses mask (bit 0 for Sent).
func (s Status) bit() uint8 { return 1 << (s - 1) }

// Policy decides how a message's status is derived from the statuses seen.
// It never changes what is stored: the folded state is the same under every
// policy, only the derived status (and so the Outcome of an Apply) differs.
type Policy uint8

const (
	// FailedWins ranks sent 1 < delivered 2 < read 3 < played 4 < failed 5:
	// failed is terminal, so a delivery error is never masked. The default.
	FailedWins Policy = iota
	// DeliveryWins ranks sent 1 < failed 2 < delivered 3 < read 4 < played 5:
	// a failed reported for a message that was also delivered, read or
	// played (multi-device users) is recorded (its time and errors) but does
	// not become the status. A failed with nothing past sent still does.
	DeliveryWins
)

// ParsePolicy returns the Policy named s: "failed-wins" or "delivery-wins".
// Anything else is an error wrapping ErrUnknownPolicy.
func ParsePolicy(s string) (Policy, error) {
	switch s {
	case "failed-wins":
		return FailedWins, nil
	case "delivery-wins":
		return DeliveryWins, nil
	}
	return FailedWins, fmt.Errorf("%w: %q (want failed-wins or delivery-wins)", ErrUnknownPolicy, s)
}

// String returns "failed-wins", "delivery-wins", or "Policy(n)".
func (p Policy) String() string {
	switch p {
	case FailedWins:
		return "failed-wins"
	case DeliveryWins:
		return "delivery-wins"
	}
	return "Policy(" + strconv.Itoa(int(p)) + ")"
}

// valid reports whether p is a known policy.
func (p Policy) valid() bool { return p == FailedWins || p == DeliveryWins }

// Rank returns s's rank under p, 1 to 5, and 0 for StatusUnknown or a value
// out of range. A message's status is the seen status of highest rank, so it
// never moves to a lower rank under a fixed policy: a consumer may check that
// the status it reads never goes backwards by this rank.
func (p Policy) Rank(s Status) int {
	if !s.valid() {
		return 0
	}
	if p == DeliveryWins {
		switch s {
		case Failed:
			return 2
		case Delivered, Read, Played:
			return int(s) + 1
		}
	}
	return int(s)
}

// derive returns the status of highest rank under p among the statuses whose
// bits are set in seen, or StatusUnknown when seen is empty.
func (p Policy) derive(seen uint8) Status {
	if seen == 0 {
		return StatusUnknown
	}
	if p == DeliveryWins && seen&(Delivered.bit()|Read.bit()|Played.bit()) != 0 {
		seen &^= Failed.bit()
	}
	best := Sent
	for s := Failed; s >= Sent; s-- {
		if seen&s.bit() != 0 {
			best = s
			break
		}
	}
	return best
}

// Outcome says what folding one event did to a message's state.
type Outcome uint8

const (
	// Advanced: the state changed and the message's status moved up (to a
	// status of higher rank under the policy). The first event of a message
	// always advances it.
	Advanced Outcome = iota + 1
	// Filled: the state changed but the status did not move: an earlier
	// timestamp for a status, a status seen for the first time below the
	// current one (a delivered after a read), a preferred attribute, another
	// participant's data, or an earlier receive time.
	Filled
	// Stale: no change; the event's status ranks below the current status of
	// its participant (it arrived out of order, and its time was not
	// earlier).
	Stale
	// Duplicate: no change otherwise (typically Meta's retry of an event
	// already folded).
	Duplicate
)

// Changed reports whether the state changed: Advanced or Filled. A record is
// emitted exactly when it is true.
func (o Outcome) Changed() bool { return o == Advanced || o == Filled }

// String returns "advanced", "filled", "stale", "duplicate" or "Outcome(n)".
func (o Outcome) String() string {
	switch o {
	case Advanced:
		return "advanced"
	case Filled:
		return "filled"
	case Stale:
		return "stale"
	case Duplicate:
		return "duplicate"
	}
	return "Outcome(" + strconv.Itoa(int(o)) + ")"
}
