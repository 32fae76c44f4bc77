package state

import (
	"errors"
	"testing"
)

func TestParseStatus(t *testing.T) {
	tests := []struct {
		in      string
		want    Status
		wantErr bool
	}{
		{"sent", Sent, false},
		{"delivered", Delivered, false},
		{"read", Read, false},
		{"played", Played, false},
		{"failed", Failed, false},
		{"unknown", StatusUnknown, true},
		{"", StatusUnknown, true},
		{"Sent", StatusUnknown, true},
		{"deleted", StatusUnknown, true},
		{" sent", StatusUnknown, true},
	}
	for _, tt := range tests {
		got, err := ParseStatus(tt.in)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("ParseStatus(%q) = %v, %v; want %v, error %t", tt.in, got, err, tt.want, tt.wantErr)
		}
		if err != nil && !errors.Is(err, ErrUnknownStatus) {
			t.Errorf("ParseStatus(%q) error %v does not wrap ErrUnknownStatus", tt.in, err)
		}
		if err == nil && got.String() != tt.in {
			t.Errorf("ParseStatus(%q).String() = %q", tt.in, got.String())
		}
	}
}

func TestStatusString(t *testing.T) {
	tests := []struct {
		s    Status
		want string
	}{
		{StatusUnknown, "unknown"},
		{Sent, "sent"},
		{Delivered, "delivered"},
		{Read, "read"},
		{Played, "played"},
		{Failed, "failed"},
		{Status(9), "Status(9)"},
	}
	for _, tt := range tests {
		if got := tt.s.String(); got != tt.want {
			t.Errorf("Status(%d).String() = %q, want %q", uint8(tt.s), got, tt.want)
		}
	}
}

func TestParsePolicy(t *testing.T) {
	tests := []struct {
		in      string
		want    Policy
		wantErr bool
	}{
		{"failed-wins", FailedWins, false},
		{"delivery-wins", DeliveryWins, false},
		{"", FailedWins, true},
		{"FailedWins", FailedWins, true},
		{"latest-wins", FailedWins, true},
	}
	for _, tt := range tests {
		got, err := ParsePolicy(tt.in)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("ParsePolicy(%q) = %v, %v; want %v, error %t", tt.in, got, err, tt.want, tt.wantErr)
		}
		if err != nil && !errors.Is(err, ErrUnknownPolicy) {
			t.Errorf("ParsePolicy(%q) error %v does not wrap ErrUnknownPolicy", tt.in, err)
		}
		if err == nil && got.String() != tt.in {
			t.Errorf("ParsePolicy(%q).String() = %q", tt.in, got.String())
		}
	}
	if got := Policy(7).String(); got != "Policy(7)" {
		t.Errorf("Policy(7).String() = %q", got)
	}
}

func TestPolicyRank(t *testing.T) {
	tests := []struct {
		p    Policy
		want [6]int // StatusUnknown, Sent, Delivered, Read, Played, Failed
	}{
		{FailedWins, [6]int{0, 1, 2, 3, 4, 5}},
		{DeliveryWins, [6]int{0, 1, 3, 4, 5, 2}},
	}
	for _, tt := range tests {
		for s := StatusUnknown; s <= Failed; s++ {
			if got := tt.p.Rank(s); got != tt.want[s] {
				t.Errorf("%v.Rank(%v) = %d, want %d", tt.p, s, got, tt.want[s])
			}
		}
		if got := tt.p.Rank(Status(6)); got != 0 {
			t.Errorf("%v.Rank(Status(6)) = %d, want 0", tt.p, got)
		}
	}
}

// TestPolicyDerive checks derive against its definition: the seen status of
// highest Rank, for every subset of statuses.
func TestPolicyDerive(t *testing.T) {
	for _, p := range []Policy{FailedWins, DeliveryWins} {
		for seen := range uint8(1 << numStatuses) {
			want := StatusUnknown
			for s := Sent; s <= Failed; s++ {
				if seen&s.bit() != 0 && p.Rank(s) > p.Rank(want) {
					want = s
				}
			}
			if got := p.derive(seen); got != want {
				t.Errorf("%v.derive(%05b) = %v, want %v", p, seen, got, want)
			}
		}
	}
	// The documented cases, spelled out.
	tests := []struct {
		p    Policy
		seen []Status
		want Status
	}{
		{FailedWins, []Status{Delivered, Failed}, Failed},
		{DeliveryWins, []Status{Delivered, Failed}, Delivered},
		{DeliveryWins, []Status{Sent, Failed}, Failed},
		{DeliveryWins, []Status{Failed}, Failed},
		{DeliveryWins, []Status{Played, Failed}, Played},
		{FailedWins, []Status{Read}, Read},
		{FailedWins, nil, StatusUnknown},
	}
	for _, tt := range tests {
		var seen uint8
		for _, s := range tt.seen {
			seen |= s.bit()
		}
		if got := tt.p.derive(seen); got != tt.want {
			t.Errorf("%v.derive(%v) = %v, want %v", tt.p, tt.seen, got, tt.want)
		}
	}
}

func TestOutcome(t *testing.T) {
	tests := []struct {
		o       Outcome
		name    string
		changed bool
	}{
		{Advanced, "advanced", true},
		{Filled, "filled", true},
		{Stale, "stale", false},
		{Duplicate, "duplicate", false},
		{Outcome(0), "Outcome(0)", false},
	}
	for _, tt := range tests {
		if got := tt.o.String(); got != tt.name {
			t.Errorf("Outcome(%d).String() = %q, want %q", uint8(tt.o), got, tt.name)
		}
		if got := tt.o.Changed(); got != tt.changed {
			t.Errorf("%v.Changed() = %t, want %t", tt.o, got, tt.changed)
		}
	}
}
