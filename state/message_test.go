package state

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/wastatus/wastatus/schemas"
)

// T is a payload time in the samples' range.
const T int64 = 1750030073

const (
	groupID   = "120363040000000000"
	phone     = "16505551234"
	userID    = "US.13491208655302741918"
	parentID  = "US.11815799212886844830"
	phoneID   = "106540352242922"
	display   = "15550783881"
	wabaID    = "102290129340398"
	errorHref = "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"
)

func src(attribute, status string, ts int64) schemas.AttributeSource {
	return schemas.AttributeSource{Attribute: attribute, Status: status, Timestamp: ts}
}

func testErrors(codes ...int64) []schemas.Error {
	e := schemas.StatusEvent{}
	errorsOf(codes...)(&e)
	return e.Errors
}

// TestApplyFacts folds the facts of the samples' README and DESIGN.md, checks
// the view and the outcomes, and checks that every permutation of the events
// gives the same view and the same bytes.
func TestApplyFacts(t *testing.T) {
	marketing := &schemas.Pricing{Billable: ptr(true), PricingModel: "PMP", Type: "regular", Category: "marketing"}
	utility := &schemas.Pricing{Billable: ptr(true), PricingModel: "PMP", Type: "regular", Category: "utility"}
	tests := []struct {
		name     string
		policy   Policy
		events   []schemas.StatusEvent
		want     schemas.MessageStatus
		outcomes []Outcome
	}{
		{
			name:   "read without delivered",
			events: []schemas.StatusEvent{ev("sent", T, recipientID(phone)), ev("read", T+5)},
			want: schemas.MessageStatus{WAMID: testWAMID, Status: "read", SentAt: T, ReadAt: T + 5, RecipientID: phone,
				Sources: []schemas.AttributeSource{src("recipient_id", "sent", T)}},
			outcomes: []Outcome{Advanced, Advanced},
		},
		{
			name:   "read arrives before sent",
			events: []schemas.StatusEvent{ev("read", T+5), ev("sent", T, recipientID(phone))},
			want: schemas.MessageStatus{WAMID: testWAMID, Status: "read", SentAt: T, ReadAt: T + 5, RecipientID: phone,
				Sources: []schemas.AttributeSource{src("recipient_id", "sent", T)}},
			outcomes: []Outcome{Advanced, Filled},
		},
		{
			name:     "sent and delivered in the same second",
			events:   []schemas.StatusEvent{ev("sent", T), ev("delivered", T)},
			want:     schemas.MessageStatus{WAMID: testWAMID, Status: "delivered", SentAt: T, DeliveredAt: T},
			outcomes: []Outcome{Advanced, Advanced},
		},
		{
			name:     "a delivered after read still fills delivered_at",
			events:   []schemas.StatusEvent{ev("sent", T), ev("read", T+9), ev("delivered", T+4)},
			want:     schemas.MessageStatus{WAMID: testWAMID, Status: "read", SentAt: T, DeliveredAt: T + 4, ReadAt: T + 9},
			outcomes: []Outcome{Advanced, Advanced, Filled},
		},
		{
			name:     "played",
			events:   []schemas.StatusEvent{ev("sent", T), ev("delivered", T+1), ev("read", T+2), ev("played", T+3)},
			want:     schemas.MessageStatus{WAMID: testWAMID, Status: "played", SentAt: T, DeliveredAt: T + 1, ReadAt: T + 2, PlayedAt: T + 3},
			outcomes: []Outcome{Advanced, Advanced, Advanced, Advanced},
		},
		{
			name:   "failed after delivered, failed-wins",
			policy: FailedWins,
			events: []schemas.StatusEvent{ev("delivered", T+1), ev("failed", T+30, errorsOf(131049))},
			want: schemas.MessageStatus{WAMID: testWAMID, Status: "failed", DeliveredAt: T + 1, FailedAt: T + 30,
				Errors: testErrors(131049), Sources: []schemas.AttributeSource{src("errors", "failed", T+30)}},
			outcomes: []Outcome{Advanced, Advanced},
		},
		{
			name:   "failed after delivered, delivery-wins records it without moving the status",
			policy: DeliveryWins,
			events: []schemas.StatusEvent{ev("delivered", T+1), ev("failed", T+30, errorsOf(131049))},
			want: schemas.MessageStatus{WAMID: testWAMID, Status: "delivered", DeliveredAt: T + 1, FailedAt: T + 30,
				Errors: testErrors(131049), Sources: []schemas.AttributeSource{src("errors", "failed", T+30)}},
			outcomes: []Outcome{Advanced, Filled},
		},
		{
			name:   "failed arrives before delivered, delivery-wins",
			policy: DeliveryWins,
			events: []schemas.StatusEvent{ev("failed", T+30, errorsOf(131049)), ev("delivered", T+1)},
			want: schemas.MessageStatus{WAMID: testWAMID, Status: "delivered", DeliveredAt: T + 1, FailedAt: T + 30,
				Errors: testErrors(131049), Sources: []schemas.AttributeSource{src("errors", "failed", T+30)}},
			outcomes: []Outcome{Advanced, Advanced},
		},
		{
			name:     "failed with nothing past sent, delivery-wins",
			policy:   DeliveryWins,
			events:   []schemas.StatusEvent{ev("sent", T), ev("failed", T+3)},
			want:     schemas.MessageStatus{WAMID: testWAMID, Status: "failed", SentAt: T, FailedAt: T + 3},
			outcomes: []Outcome{Advanced, Advanced},
		},
		{
			name: "group fan-out: one status object per participant, same wamid",
			events: []schemas.StatusEvent{
				ev("sent", T, participantID("p2"), recipientID(groupID), recipientType("group")),
				ev("delivered", T+1, participantID("p1"), recipientID(groupID), recipientType("group")),
				ev("read", T+2, participantID("p2"), recipientID(groupID), recipientType("group")),
				ev("sent", T, participantID("p1"), recipientID(groupID), recipientType("group")),
			},
			want: schemas.MessageStatus{WAMID: testWAMID, Status: "read", SentAt: T, DeliveredAt: T + 1, ReadAt: T + 2,
				RecipientID: groupID, RecipientType: "group",
				Participants: []schemas.Participant{
					{ID: "p1", Status: "delivered", SentAt: T, DeliveredAt: T + 1},
					{ID: "p2", Status: "read", SentAt: T, ReadAt: T + 2},
				},
				Sources: []schemas.AttributeSource{src("recipient_id", "read", T+2), src("recipient_type", "read", T+2)}},
			outcomes: []Outcome{Advanced, Advanced, Advanced, Filled},
		},
		{
			name:   "group: one participant failed, delivery-wins",
			policy: DeliveryWins,
			events: []schemas.StatusEvent{ev("failed", T+5, participantID("p1")), ev("delivered", T+1, participantID("p2"))},
			want: schemas.MessageStatus{WAMID: testWAMID, Status: "delivered", DeliveredAt: T + 1, FailedAt: T + 5,
				Participants: []schemas.Participant{
					{ID: "p1", Status: "failed", FailedAt: T + 5},
					{ID: "p2", Status: "delivered", DeliveredAt: T + 1},
				}},
			outcomes: []Outcome{Advanced, Advanced},
		},
		{
			name:   "group: one participant failed, failed-wins",
			policy: FailedWins,
			events: []schemas.StatusEvent{ev("failed", T+5, participantID("p1")), ev("delivered", T+1, participantID("p2"))},
			want: schemas.MessageStatus{WAMID: testWAMID, Status: "failed", DeliveredAt: T + 1, FailedAt: T + 5,
				Participants: []schemas.Participant{
					{ID: "p1", Status: "failed", FailedAt: T + 5},
					{ID: "p2", Status: "delivered", DeliveredAt: T + 1},
				}},
			outcomes: []Outcome{Advanced, Filled},
		},
		{
			name:   "an event without a participant beside participants' events",
			events: []schemas.StatusEvent{ev("sent", T), ev("delivered", T+1, participantID("p1"))},
			want: schemas.MessageStatus{WAMID: testWAMID, Status: "delivered", SentAt: T, DeliveredAt: T + 1,
				Participants: []schemas.Participant{
					{ID: "", Status: "sent", SentAt: T},
					{ID: "p1", Status: "delivered", DeliveredAt: T + 1},
				}},
			outcomes: []Outcome{Advanced, Advanced},
		},
		{
			name: "missing recipient_id: recipient_user_id does not erase it",
			events: []schemas.StatusEvent{
				ev("sent", T, recipientID(phone), metadata(phoneID, display, wabaID)),
				ev("delivered", T+1, userIDs(userID, parentID), pricingCategory("marketing"), metadata(phoneID, display, wabaID)),
			},
			want: schemas.MessageStatus{WAMID: testWAMID, Status: "delivered", SentAt: T, DeliveredAt: T + 1,
				RecipientID: phone, RecipientUserID: userID, ParentUserID: parentID, Pricing: marketing,
				PhoneNumberID: phoneID, DisplayPhoneNumber: display, WABAID: wabaID,
				Sources: []schemas.AttributeSource{
					src("recipient_id", "sent", T),
					src("recipient_user_id", "delivered", T+1),
					src("parent_user_id", "delivered", T+1),
					src("pricing", "delivered", T+1),
					src("phone_number_id", "delivered", T+1),
					src("display_phone_number", "delivered", T+1),
					src("waba_id", "delivered", T+1),
				}},
			outcomes: []Outcome{Advanced, Advanced},
		},
		{
			name: "attributes are never erased by events without them",
			events: []schemas.StatusEvent{
				ev("sent", T, conv("c1", T+86400, "marketing"), pricingCategory("marketing"), biz("cb")),
				ev("delivered", T+1), ev("read", T+2),
			},
			want: schemas.MessageStatus{WAMID: testWAMID, Status: "read", SentAt: T, DeliveredAt: T + 1, ReadAt: T + 2,
				Conversation: &schemas.Conversation{ID: "c1", ExpirationTimestamp: T + 86400, OriginType: "marketing"},
				Pricing:      marketing, BizOpaqueCallbackData: "cb",
				Sources: []schemas.AttributeSource{
					src("conversation", "sent", T), src("pricing", "sent", T), src("biz_opaque_callback_data", "sent", T),
				}},
			outcomes: []Outcome{Advanced, Advanced, Advanced},
		},
		{
			name:   "conflict settled by rank before timestamp",
			events: []schemas.StatusEvent{ev("sent", T+10, pricingCategory("marketing")), ev("delivered", T+1, pricingCategory("utility"))},
			want: schemas.MessageStatus{WAMID: testWAMID, Status: "delivered", SentAt: T + 10, DeliveredAt: T + 1, Pricing: utility,
				Sources: []schemas.AttributeSource{src("pricing", "delivered", T+1)}},
			outcomes: []Outcome{Advanced, Advanced},
		},
		{
			name:   "conflict settled by timestamp: the later wins",
			events: []schemas.StatusEvent{ev("sent", T+1, conv("c2", 0, "")), ev("sent", T, conv("c1", 0, "utility"))},
			want: schemas.MessageStatus{WAMID: testWAMID, Status: "sent", SentAt: T, Conversation: &schemas.Conversation{ID: "c2"},
				Sources: []schemas.AttributeSource{src("conversation", "sent", T+1)}},
			outcomes: []Outcome{Advanced, Filled},
		},
		{
			name:   "conflict settled by bytes: the greater wins",
			events: []schemas.StatusEvent{ev("sent", T, biz("b")), ev("sent", T, biz("a"))},
			want: schemas.MessageStatus{WAMID: testWAMID, Status: "sent", SentAt: T, BizOpaqueCallbackData: "b",
				Sources: []schemas.AttributeSource{src("biz_opaque_callback_data", "sent", T)}},
			outcomes: []Outcome{Advanced, Duplicate},
		},
		{
			name:   "conflict settled by bytes, greater second",
			events: []schemas.StatusEvent{ev("sent", T, biz("a")), ev("sent", T, biz("b"))},
			want: schemas.MessageStatus{WAMID: testWAMID, Status: "sent", SentAt: T, BizOpaqueCallbackData: "b",
				Sources: []schemas.AttributeSource{src("biz_opaque_callback_data", "sent", T)}},
			outcomes: []Outcome{Advanced, Filled},
		},
		{
			name:   "errors are kept whole, from the preferred failure",
			events: []schemas.StatusEvent{ev("failed", T+1, errorsOf(1, 2)), ev("failed", T+2, errorsOf(3))},
			want: schemas.MessageStatus{WAMID: testWAMID, Status: "failed", FailedAt: T + 1, Errors: testErrors(3),
				Sources: []schemas.AttributeSource{src("errors", "failed", T+2)}},
			outcomes: []Outcome{Advanced, Filled},
		},
		{
			name:     "the same status object twice (Meta's retry)",
			events:   []schemas.StatusEvent{ev("sent", T, recipientID(phone)), ev("sent", T, recipientID(phone))},
			want:     schemas.MessageStatus{WAMID: testWAMID, Status: "sent", SentAt: T, RecipientID: phone, Sources: []schemas.AttributeSource{src("recipient_id", "sent", T)}},
			outcomes: []Outcome{Advanced, Duplicate},
		},
		{
			name:     "a lower status with a later time is stale",
			events:   []schemas.StatusEvent{ev("delivered", T+1), ev("read", T+2), ev("delivered", T+3)},
			want:     schemas.MessageStatus{WAMID: testWAMID, Status: "read", DeliveredAt: T + 1, ReadAt: T + 2},
			outcomes: []Outcome{Advanced, Advanced, Stale},
		},
		{
			name:     "a retry with an earlier time fills",
			events:   []schemas.StatusEvent{ev("sent", T+5), ev("sent", T)},
			want:     schemas.MessageStatus{WAMID: testWAMID, Status: "sent", SentAt: T},
			outcomes: []Outcome{Advanced, Filled},
		},
		{
			name:     "first_received_at is the earliest positive receive time",
			events:   []schemas.StatusEvent{ev("sent", T, receivedAt(2000)), ev("delivered", T+1, receivedAt(1000)), ev("read", T+2), ev("read", T+2, receivedAt(500))},
			want:     schemas.MessageStatus{WAMID: testWAMID, Status: "read", SentAt: T, DeliveredAt: T + 1, ReadAt: T + 2, FirstReceivedAt: 500},
			outcomes: []Outcome{Advanced, Advanced, Advanced, Filled},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, outs := fold(t, tt.policy, tt.events...)
			if got := m.View(tt.policy); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("View:\n got %s\nwant %s", jsonString(got), jsonString(tt.want))
			}
			if !reflect.DeepEqual(outs, tt.outcomes) {
				t.Errorf("outcomes = %v, want %v", outs, tt.outcomes)
			}
			if got, want := m.Status(tt.policy).String(), tt.want.Status; got != want {
				t.Errorf("Status = %s, want %s", got, want)
			}
			want := encode(&m)
			forEachPermutation(len(tt.events), func(perm []int) {
				evs := make([]schemas.StatusEvent, len(perm))
				for i, j := range perm {
					evs[i] = tt.events[j]
				}
				pm, _ := fold(t, tt.policy, evs...)
				if got := encode(&pm); !bytes.Equal(got, want) {
					t.Errorf("permutation %v: encoding %x, want %x", perm, got, want)
				}
				if got := pm.View(tt.policy); !reflect.DeepEqual(got, tt.want) {
					t.Errorf("permutation %v: View:\n got %s\nwant %s", perm, jsonString(got), jsonString(tt.want))
				}
			})
		})
	}
}

// forEachPermutation calls fn with every permutation of 0..n-1 (Heap's
// algorithm).
func forEachPermutation(n int, fn func([]int)) {
	perm := make([]int, n)
	for i := range perm {
		perm[i] = i
	}
	c := make([]int, n)
	fn(perm)
	for i := 0; i < n; {
		if c[i] < i {
			if i%2 == 0 {
				perm[0], perm[i] = perm[i], perm[0]
			} else {
				perm[c[i]], perm[i] = perm[i], perm[c[i]]
			}
			fn(perm)
			c[i]++
			i = 0
		} else {
			c[i] = 0
			i++
		}
	}
}

func TestApplyErrors(t *testing.T) {
	base, _ := fold(t, FailedWins, ev("sent", T, recipientID(phone)))
	tests := []struct {
		name string
		ev   schemas.StatusEvent
		want error
	}{
		{"unknown status", ev("deleted", T), ErrUnknownStatus},
		{"empty status", ev("", T), ErrUnknownStatus},
		{"uppercase status", ev("READ", T), ErrUnknownStatus},
		{"empty wamid", ev("read", T, wamid("")), ErrInvalidEvent},
		{"zero timestamp", ev("read", 0), ErrInvalidEvent},
		{"negative timestamp", ev("read", -5), ErrInvalidEvent},
		{"another message", ev("read", T, wamid("wamid.other")), ErrWAMIDMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := base.Clone()
			out, err := m.Apply(&tt.ev, FailedWins)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Apply = %v, %v; want error %v", out, err, tt.want)
			}
			if out != 0 {
				t.Errorf("outcome %v on error", out)
			}
			if !m.Equal(&base) {
				t.Errorf("state changed on error: %s", jsonString(m.View(FailedWins)))
			}
			var zero Message
			if _, err := zero.Apply(&tt.ev, FailedWins); err == nil && tt.want != ErrWAMIDMismatch {
				t.Errorf("zero Message accepted the event")
			}
			if tt.want != ErrWAMIDMismatch && !zero.Equal(&Message{}) {
				t.Errorf("zero Message changed on error")
			}
		})
	}
}

// TestApplyDoesNotAliasEvent checks that mutating an event after Apply does
// not change the state.
func TestApplyDoesNotAliasEvent(t *testing.T) {
	e := ev("failed", T, errorsOf(1, 2), conv("c", 0, "o"), pricingCategory("marketing"))
	m, _ := fold(t, FailedWins, e)
	want := encode(&m)
	e.Errors[0].Code = 99
	e.Conversation.ID = "changed"
	*e.Pricing.Billable = false
	if got := encode(&m); !bytes.Equal(got, want) {
		t.Errorf("state follows the event's mutation")
	}
	v := m.View(FailedWins)
	v.Errors[1].Code = 98
	*v.Pricing.Billable = false
	if got := encode(&m); !bytes.Equal(got, want) {
		t.Errorf("state follows the view's mutation")
	}
}

// TestOutcomeMatchesChange checks, for each step of a long fold, that
// Changed is exactly "the encoding changed" and Advanced exactly "the status
// rank rose".
func TestOutcomeMatchesChange(t *testing.T) {
	evs := []schemas.StatusEvent{
		ev("sent", T+3), ev("sent", T+3), ev("sent", T+1), ev("delivered", T+5, receivedAt(9)),
		ev("failed", T+6, errorsOf(1)), ev("read", T+7), ev("delivered", T+4), ev("read", T+8),
		ev("played", T+9, participantID("p")), ev("failed", T+6, errorsOf(1), receivedAt(3)),
	}
	for _, p := range []Policy{FailedWins, DeliveryWins} {
		var m Message
		for i := range evs {
			before, status := encode(&m), m.Status(p)
			out, err := m.Apply(&evs[i], p)
			if err != nil {
				t.Fatal(err)
			}
			changed := !bytes.Equal(before, encode(&m))
			rose := p.Rank(m.Status(p)) > p.Rank(status)
			if out.Changed() != changed || (out == Advanced) != rose {
				t.Errorf("%v: event %d: outcome %v, changed %t, status rose %t", p, i, out, changed, rose)
			}
		}
	}
}

func TestJoin(t *testing.T) {
	a, _ := fold(t, FailedWins, ev("sent", T, recipientID(phone)), ev("read", T+4, participantID("p1")))
	b, _ := fold(t, FailedWins, ev("delivered", T+2, participantID("p1"), pricingCategory("x")), ev("sent", T-1, participantID("p2")))
	all, _ := fold(t, FailedWins, ev("sent", T, recipientID(phone)), ev("read", T+4, participantID("p1")),
		ev("delivered", T+2, participantID("p1"), pricingCategory("x")), ev("sent", T-1, participantID("p2")))

	ab := a.Clone()
	if err := ab.Join(&b); err != nil {
		t.Fatal(err)
	}
	ba := b.Clone()
	if err := ba.Join(&a); err != nil {
		t.Fatal(err)
	}
	if !ab.Equal(&all) || !ba.Equal(&all) {
		t.Errorf("join differs from the fold of all events:\n a+b %s\n b+a %s\n all %s",
			jsonString(ab.View(FailedWins)), jsonString(ba.View(FailedWins)), jsonString(all.View(FailedWins)))
	}
	again := ab.Clone()
	if changed, err := again.join(&ab); err != nil || changed || !again.Equal(&ab) {
		t.Errorf("join is not idempotent: changed %t, err %v", changed, err)
	}
	if err := again.Join(&again); err != nil || !again.Equal(&ab) {
		t.Errorf("self join changed the state: %v", err)
	}
	var zero Message
	if changed, err := again.join(&zero); err != nil || changed {
		t.Errorf("joining the zero Message: changed %t, err %v", changed, err)
	}
	if err := zero.Join(&a); err != nil || !zero.Equal(&a) {
		t.Errorf("zero.Join(a) = %v, state %s", err, jsonString(zero.View(FailedWins)))
	}

	// Join does not share mutable state with its argument.
	c, _ := fold(t, FailedWins, ev("failed", T, errorsOf(5)))
	var d Message
	if err := d.Join(&c); err != nil {
		t.Fatal(err)
	}
	c.errs[0].Code = 6
	c.parts[0].at[0] = 1
	if d.errs[0].Code != 5 || d.parts[0].at[0] != 0 {
		t.Errorf("Join shares slices with its argument")
	}

	other, _ := fold(t, FailedWins, ev("sent", T, wamid("wamid.other")))
	before := a.Clone()
	if err := a.Join(&other); !errors.Is(err, ErrWAMIDMismatch) {
		t.Errorf("Join(other wamid) = %v, want ErrWAMIDMismatch", err)
	}
	if !a.Equal(&before) {
		t.Errorf("failed Join changed the state")
	}
}

// TestFromViewContinuesFolding checks that a state restored from its view
// folds every later event exactly as the original does, under both
// policies, and joins identically.
func TestFromViewContinuesFolding(t *testing.T) {
	first := []schemas.StatusEvent{
		ev("sent", T, recipientID(phone), conv("c", T+9, "marketing"), metadata(phoneID, display, wabaID), receivedAt(1000)),
		ev("failed", T+3, participantID("p1"), errorsOf(7)),
		ev("delivered", T+2, userIDs(userID, parentID), pricingCategory("marketing")),
	}
	later := []schemas.StatusEvent{
		ev("read", T+4, participantID("p1")), ev("sent", T-1, conv("b", 0, ""), receivedAt(900)),
		ev("failed", T+3, participantID("p1"), errorsOf(8)), ev("delivered", T+2, pricingCategory("utility")),
		ev("played", T+5, biz("z"), recipientID("other")),
	}
	for _, p := range []Policy{FailedWins, DeliveryWins} {
		m, _ := fold(t, p, first...)
		v := m.View(p)
		r, err := FromView(&v)
		if err != nil {
			t.Fatalf("%v: FromView: %v", p, err)
		}
		if !r.Equal(&m) {
			t.Fatalf("%v: FromView(View(m)) != m:\n got %s\nwant %s", p, jsonString(r.View(p)), jsonString(v))
		}
		for i := range later {
			om, err1 := m.Apply(&later[i], p)
			or, err2 := r.Apply(&later[i], p)
			if err1 != nil || err2 != nil || om != or || !r.Equal(&m) {
				t.Fatalf("%v: event %d: original %v %v, restored %v %v; equal %t", p, i, om, err1, or, err2, r.Equal(&m))
			}
		}
		other, _ := fold(t, p, later...)
		if err := m.Join(&other); err != nil {
			t.Fatal(err)
		}
		v = m.View(p)
		r2, err := FromView(&v)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Join(&other); err != nil {
			t.Fatal(err)
		}
		if !r.Equal(&m) || !r2.Equal(&m) {
			t.Errorf("%v: join after restore differs", p)
		}
	}
}

func TestFromViewRejects(t *testing.T) {
	m, _ := fold(t, FailedWins,
		ev("sent", T, recipientID(phone), participantID("p1"), pricingCategory("marketing")),
		ev("read", T+2, participantID("p2"), errorsOf(1)),
		ev("failed", T+3, participantID("p2"), errorsOf(4)),
		ev("delivered", T+1, participantID("p2")),
	)
	good := m.View(FailedWins)
	if _, err := FromView(&good); err != nil {
		t.Fatalf("FromView(good) = %v", err)
	}
	tests := []struct {
		name   string
		mutate func(v *schemas.MessageStatus)
	}{
		{"empty wamid", func(v *schemas.MessageStatus) { v.WAMID = "" }},
		{"no timestamp", func(v *schemas.MessageStatus) {
			*v = schemas.MessageStatus{WAMID: "w", Status: "sent"}
		}},
		{"negative timestamp", func(v *schemas.MessageStatus) {
			*v = schemas.MessageStatus{WAMID: "w", Status: "sent", SentAt: T, ReadAt: -1}
		}},
		{"status not derived", func(v *schemas.MessageStatus) { v.Status = "delivered" }},
		{"unknown status", func(v *schemas.MessageStatus) { v.Status = "weird" }},
		{"participant status not derived", func(v *schemas.MessageStatus) { v.Participants[1].Status = "read" }},
		{"top-level time not the participants' minimum", func(v *schemas.MessageStatus) { v.SentAt++ }},
		{"participants unsorted", func(v *schemas.MessageStatus) {
			v.Participants[0], v.Participants[1] = v.Participants[1], v.Participants[0]
		}},
		{"participant without timestamp", func(v *schemas.MessageStatus) {
			v.Participants = append(v.Participants, schemas.Participant{ID: "p3", Status: "unknown"})
		}},
		{"participants of a one-to-one message", func(v *schemas.MessageStatus) {
			*v = schemas.MessageStatus{WAMID: "w", Status: "sent", SentAt: T,
				Participants: []schemas.Participant{{ID: "", Status: "sent", SentAt: T}}}
		}},
		{"attribute without source", func(v *schemas.MessageStatus) { v.BizOpaqueCallbackData = "x" }},
		{"source without attribute", func(v *schemas.MessageStatus) { v.Pricing = nil }},
		{"unknown attribute", func(v *schemas.MessageStatus) {
			v.Sources = append(v.Sources, src("color", "sent", T))
		}},
		{"attribute sourced twice", func(v *schemas.MessageStatus) {
			v.Sources = append(v.Sources, v.Sources[0])
		}},
		{"source with unknown status", func(v *schemas.MessageStatus) { v.Sources[0].Status = "queued" }},
		{"source event not folded", func(v *schemas.MessageStatus) { v.Sources[0].Status = "played" }},
		{"source before its status was seen", func(v *schemas.MessageStatus) { v.Sources[0].Timestamp = T - 1 }},
		{"negative first_received_at", func(v *schemas.MessageStatus) { v.FirstReceivedAt = -1 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := m.View(FailedWins)
			tt.mutate(&v)
			if got, err := FromView(&v); !errors.Is(err, ErrInvalidView) {
				t.Errorf("FromView = %s, %v; want ErrInvalidView", jsonString(got.View(FailedWins)), err)
			}
		})
	}
}

// TestFromViewAcceptsEitherPolicy checks that a view derived under either
// policy restores the same state.
func TestFromViewAcceptsEitherPolicy(t *testing.T) {
	m, _ := fold(t, FailedWins, ev("delivered", T), ev("failed", T+1, participantID("p")))
	for _, p := range []Policy{FailedWins, DeliveryWins} {
		v := m.View(p)
		r, err := FromView(&v)
		if err != nil || !r.Equal(&m) {
			t.Errorf("%v: FromView = %v, equal %t", p, err, r.Equal(&m))
		}
	}
}

func TestZeroMessage(t *testing.T) {
	var m Message
	if m.WAMID() != "" || m.Status(FailedWins) != StatusUnknown {
		t.Errorf("zero Message: wamid %q, status %v", m.WAMID(), m.Status(FailedWins))
	}
	v := m.View(FailedWins)
	if want := (schemas.MessageStatus{Status: "unknown"}); !reflect.DeepEqual(v, want) {
		t.Errorf("zero View = %+v", v)
	}
	var d Message
	if err := d.UnmarshalBinary(encode(&m)); err != nil || !d.Equal(&m) {
		t.Errorf("zero round trip: %v", err)
	}
}

// TestViewAllocations: View allocates each of its parts once, at its size,
// and ViewInto over a view of like shape allocates nothing: a processor
// encodes one view per changed state.
func TestViewAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes what allocates")
	}
	one, _ := fold(t, FailedWins,
		ev("sent", T, recipientID(phone), pricingCategory("m"), conv("c", 1, "o")),
		ev("delivered", T+1, userIDs(userID, parentID)),
		ev("read", T+2, metadata(phoneID, display, wabaID)),
	)
	group, _ := fold(t, FailedWins,
		ev("sent", T, participantID("p1")),
		ev("delivered", T+1, participantID("p2")),
		ev("read", T+2, participantID("p3")),
	)
	// Sources, Conversation, Pricing, Billable.
	if n := testing.AllocsPerRun(100, func() { _ = one.View(FailedWins) }); n > 4 {
		t.Errorf("View allocates %.0f times, want at most 4", n)
	}
	// Participants, Sources.
	if n := testing.AllocsPerRun(100, func() { _ = group.View(FailedWins) }); n > 2 {
		t.Errorf("View of a group message allocates %.0f times, want at most 2", n)
	}
	var v schemas.MessageStatus
	group.ViewInto(&v, FailedWins)
	one.ViewInto(&v, FailedWins)
	if n := testing.AllocsPerRun(100, func() { one.ViewInto(&v, FailedWins) }); n > 0 {
		t.Errorf("ViewInto over a view of the same message allocates %.0f times", n)
	}
}

// TestSeen checks Seen against the statuses folded, a skipped step
// included.
func TestSeen(t *testing.T) {
	var m Message
	if m.Seen(Sent) {
		t.Fatal("the zero Message has seen sent")
	}
	for _, e := range []schemas.StatusEvent{ev("read", T), ev("failed", T+1)} {
		if _, err := m.Apply(&e, FailedWins); err != nil {
			t.Fatal(err)
		}
	}
	for st, want := range map[Status]bool{Sent: false, Delivered: false, Read: true, Played: false, Failed: true, StatusUnknown: false, Failed + 1: false} {
		if got := m.Seen(st); got != want {
			t.Errorf("Seen(%v) = %v, want %v", st, got, want)
		}
	}
	view := m.View(FailedWins)
	v, err := FromView(&view)
	if err != nil {
		t.Fatal(err)
	}
	if !v.Seen(Read) || v.Seen(Delivered) {
		t.Error("Seen differs after FromView")
	}
}
