package state

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"sort"
	"testing"

	"github.com/wastatus/wastatus/schemas"
)

// modelStatuses lists the statuses in rank order under each policy: the
// model's own statement of the rules in doc.go.
func modelStatuses(p Policy) []string {
	if p == DeliveryWins {
		return []string{"sent", "failed", "delivered", "read", "played"}
	}
	return []string{"sent", "delivered", "read", "played", "failed"}
}

// modelIndex is a status's index in a MessageStatus's timestamps, and its
// canonical rank minus one.
func modelIndex(status string) int {
	return slices.Index([]string{"sent", "delivered", "read", "played", "failed"}, status)
}

// modelDerive returns the seen status of highest rank under p.
func modelDerive(p Policy, at [5]int64) string {
	best := "unknown"
	for _, s := range modelStatuses(p) {
		if at[modelIndex(s)] != 0 {
			best = s
		}
	}
	return best
}

// modelCandidate is one event's value of one attribute.
type modelCandidate struct {
	status string
	ts     int64
	key    []byte // the bytes compared last
	set    func(*schemas.MessageStatus)
}

// better reports whether c is preferred over d: higher canonical rank, then
// later timestamp, then greater bytes.
func (c *modelCandidate) better(d *modelCandidate) bool {
	if rc, rd := modelIndex(c.status), modelIndex(d.status); rc != rd {
		return rc > rd
	}
	if c.ts != d.ts {
		return c.ts > d.ts
	}
	return bytes.Compare(c.key, d.key) > 0
}

// modelAttributes lists, in the fixed order, each attribute's name and its
// candidate from one event (nil when the event does not carry it).
func modelAttributes(e *schemas.StatusEvent) []struct {
	name string
	c    *modelCandidate
} {
	str := func(v string, set func(*schemas.MessageStatus, string)) *modelCandidate {
		if v == "" {
			return nil
		}
		return &modelCandidate{key: []byte(v), set: func(m *schemas.MessageStatus) { set(m, v) }}
	}
	var convC, priceC, errsC *modelCandidate
	if c := e.Conversation; c != nil && *c != (schemas.Conversation{}) {
		cc := *c
		convC = &modelCandidate{
			key: appendConversation(nil, &conversation{id: cc.ID, exp: cc.ExpirationTimestamp, origin: cc.OriginType}),
			set: func(m *schemas.MessageStatus) { m.Conversation = &cc },
		}
	}
	if pr := e.Pricing; pr != nil && (pr.Billable != nil || pr.PricingModel != "" || pr.Type != "" || pr.Category != "") {
		pc := *pr
		if pr.Billable != nil {
			pc.Billable = ptr(*pr.Billable)
		}
		tri := uint8(0)
		if pc.Billable != nil {
			tri = 1
			if *pc.Billable {
				tri = 2
			}
		}
		priceC = &modelCandidate{
			key: appendPricing(nil, &pricing{billable: tri, model: pc.PricingModel, typ: pc.Type, category: pc.Category}),
			set: func(m *schemas.MessageStatus) { m.Pricing = &pc },
		}
	}
	if len(e.Errors) > 0 {
		errs := slices.Clone(e.Errors)
		errsC = &modelCandidate{key: appendErrors(nil, errs), set: func(m *schemas.MessageStatus) { m.Errors = errs }}
	}
	out := []struct {
		name string
		c    *modelCandidate
	}{
		{"recipient_id", str(e.RecipientID, func(m *schemas.MessageStatus, v string) { m.RecipientID = v })},
		{"recipient_user_id", str(e.RecipientUserID, func(m *schemas.MessageStatus, v string) { m.RecipientUserID = v })},
		{"parent_user_id", str(e.ParentUserID, func(m *schemas.MessageStatus, v string) { m.ParentUserID = v })},
		{"recipient_type", str(e.RecipientType, func(m *schemas.MessageStatus, v string) { m.RecipientType = v })},
		{"conversation", convC},
		{"pricing", priceC},
		{"errors", errsC},
		{"biz_opaque_callback_data", str(e.BizOpaqueCallbackData, func(m *schemas.MessageStatus, v string) { m.BizOpaqueCallbackData = v })},
		{"phone_number_id", str(e.PhoneNumberID, func(m *schemas.MessageStatus, v string) { m.PhoneNumberID = v })},
		{"display_phone_number", str(e.DisplayPhoneNumber, func(m *schemas.MessageStatus, v string) { m.DisplayPhoneNumber = v })},
		{"waba_id", str(e.WABAID, func(m *schemas.MessageStatus, v string) { m.WABAID = v })},
	}
	for i := range out {
		if out[i].c != nil {
			out[i].c.status, out[i].c.ts = e.Status, e.Timestamp
		}
	}
	return out
}

// modelView computes the view of a multiset of one message's events straight
// from the rules, without folding: per participant the earliest time of
// each status, statuses derived from the seen set, each attribute from its
// preferred event.
func modelView(evs []schemas.StatusEvent, p Policy) schemas.MessageStatus {
	v := schemas.MessageStatus{WAMID: evs[0].WAMID}
	parts := map[string][5]int64{}
	for _, e := range evs {
		at := parts[e.RecipientParticipantID]
		i := modelIndex(e.Status)
		if at[i] == 0 || e.Timestamp < at[i] {
			at[i] = e.Timestamp
		}
		parts[e.RecipientParticipantID] = at
		if e.ReceivedAt > 0 && (v.FirstReceivedAt == 0 || e.ReceivedAt < v.FirstReceivedAt) {
			v.FirstReceivedAt = e.ReceivedAt
		}
	}
	ids := make([]string, 0, len(parts))
	for id := range parts {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var top [5]int64
	for _, id := range ids {
		for i, t := range parts[id] {
			if t != 0 && (top[i] == 0 || t < top[i]) {
				top[i] = t
			}
		}
	}
	v.Status = modelDerive(p, top)
	v.SentAt, v.DeliveredAt, v.ReadAt, v.PlayedAt, v.FailedAt = top[0], top[1], top[2], top[3], top[4]
	if len(ids) > 1 || ids[0] != "" {
		for _, id := range ids {
			at := parts[id]
			v.Participants = append(v.Participants, schemas.Participant{ID: id, Status: modelDerive(p, at),
				SentAt: at[0], DeliveredAt: at[1], ReadAt: at[2], PlayedAt: at[3], FailedAt: at[4]})
		}
	}
	best := make([]*modelCandidate, numAttrs)
	var names []string
	for i := range evs {
		for a, nc := range modelAttributes(&evs[i]) {
			if a >= len(names) {
				names = append(names, nc.name)
			}
			if nc.c != nil && (best[a] == nil || nc.c.better(best[a])) {
				best[a] = nc.c
			}
		}
	}
	for a, c := range best {
		if c != nil {
			c.set(&v)
			v.Sources = append(v.Sources, schemas.AttributeSource{Attribute: names[a], Status: c.status, Timestamp: c.ts})
		}
	}
	return v
}

// randomEvents returns a multiset of one message's events from small value
// domains (so times tie and attributes conflict), with duplicates.
func randomEvents(r *rand.Rand) []schemas.StatusEvent {
	pick := func(vals ...string) string { return vals[r.IntN(len(vals))] }
	var partIDs []string
	switch r.IntN(4) {
	case 0, 1:
		partIDs = []string{""}
	case 2:
		partIDs = []string{"p1", "p2", "p3"}
	default:
		partIDs = []string{"", "p1", "p2"}
	}
	statuses := []string{"sent", "delivered", "read", "played", "failed"}
	n := 1 + r.IntN(8)
	evs := make([]schemas.StatusEvent, 0, n+6)
	for range n {
		e := schemas.StatusEvent{
			WAMID:                  "wamid.rand",
			Status:                 statuses[r.IntN(len(statuses))],
			Timestamp:              T + r.Int64N(4),
			RecipientParticipantID: partIDs[r.IntN(len(partIDs))],
			RecipientID:            pick("", "", "111", "222"),
			RecipientUserID:        pick("", "", "US.1", "US.2"),
			ParentUserID:           pick("", "", "", "US.9"),
			RecipientType:          pick("", "", "individual", "group"),
			BizOpaqueCallbackData:  pick("", "", "", "a", "b"),
			PhoneNumberID:          pick("", "pn1", "pn2"),
			DisplayPhoneNumber:     pick("", "155", "156"),
			WABAID:                 pick("", "", "waba"),
			Region:                 pick("eu", "us"),
			ReceivedAt:             r.Int64N(4) * 1000,
		}
		if r.IntN(3) == 0 {
			e.Conversation = &schemas.Conversation{ID: pick("", "c1", "c2"), ExpirationTimestamp: r.Int64N(2) * (T + 86400), OriginType: pick("", "marketing", "utility")}
		}
		if r.IntN(3) == 0 {
			e.Pricing = &schemas.Pricing{PricingModel: pick("", "PMP", "CBP"), Type: pick("", "regular"), Category: pick("", "marketing", "utility")}
			if r.IntN(3) > 0 {
				e.Pricing.Billable = ptr(r.IntN(2) == 0)
			}
		}
		if e.Status == "failed" || r.IntN(8) == 0 {
			for range r.IntN(3) {
				e.Errors = append(e.Errors, schemas.Error{Code: 131000 + r.Int64N(3), Title: pick("", "t1", "t2"), Href: pick("", "h")})
			}
		}
		evs = append(evs, e)
	}
	for range r.IntN(6) {
		evs = append(evs, evs[r.IntN(len(evs))])
	}
	return evs
}

// foldRandomly folds evs in the given order under p, by one of four
// strategies: plain Apply; Apply into separate Messages joined in a random
// order; Apply with a restore from the view (under a random policy) at
// random points; Apply with a binary round trip at random points. Plain
// Apply also checks each outcome against the change of the encoding.
func foldRandomly(t *testing.T, r *rand.Rand, evs []schemas.StatusEvent, p Policy) (Message, string) {
	t.Helper()
	apply := func(m *Message, e *schemas.StatusEvent) Outcome {
		o, err := m.Apply(e, p)
		if err != nil {
			t.Fatalf("Apply(%+v): %v", e, err)
		}
		return o
	}
	var m Message
	switch strategy := r.IntN(4); strategy {
	case 0:
		for i := range evs {
			before, status := encode(&m), m.Status(p)
			o := apply(&m, &evs[i])
			changed := !bytes.Equal(before, encode(&m))
			rose := p.Rank(m.Status(p)) > p.Rank(status)
			if o.Changed() != changed || (o == Advanced) != rose {
				t.Fatalf("event %d: outcome %v, but changed %t, status rose %t", i, o, changed, rose)
			}
		}
		return m, "apply"
	case 1:
		parts := make([]Message, 1+r.IntN(3))
		for i := range evs {
			apply(&parts[r.IntN(len(parts))], &evs[i])
		}
		for _, i := range r.Perm(len(parts)) {
			if err := m.Join(&parts[i]); err != nil {
				t.Fatalf("Join: %v", err)
			}
		}
		return m, "join"
	case 2:
		for i := range evs {
			apply(&m, &evs[i])
			if r.IntN(3) == 0 {
				v := m.View(Policy(r.IntN(2)))
				restored, err := FromView(&v)
				if err != nil {
					t.Fatalf("FromView(%s): %v", jsonString(v), err)
				}
				m = restored
			}
		}
		return m, "restore"
	default:
		for i := range evs {
			apply(&m, &evs[i])
			if r.IntN(3) == 0 {
				var d Message
				if err := d.UnmarshalBinary(encode(&m)); err != nil {
					t.Fatalf("UnmarshalBinary: %v", err)
				}
				m = d
			}
		}
		return m, "binary"
	}
}

// TestFoldPermutations is the lattice property: any permutation of any
// multiset of one message's events, folded any way, gives byte-identical
// state and exactly the view the model computes. At least 10,000
// permutations per run; WASTATUS_SEED reproduces a run.
func TestFoldPermutations(t *testing.T) {
	seed := testSeed(t)
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	const multisets, perms = 2000, 5
	var reused schemas.MessageStatus // ViewInto's, across every message
	for ms := range multisets {
		evs := randomEvents(r)
		want := [2]schemas.MessageStatus{modelView(evs, FailedWins), modelView(evs, DeliveryWins)}
		var wantBytes []byte
		for pi := range perms {
			order := slices.Clone(evs)
			r.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
			p := Policy(r.IntN(2))
			m, how := foldRandomly(t, r, order, p)
			fail := func(format string, args ...any) {
				t.Helper()
				t.Fatalf("seed %d (WASTATUS_SEED=%d), multiset %d, permutation %d, %s under %v: %s\nevents: %s",
					seed, seed, ms, pi, how, p, fmt.Sprintf(format, args...), jsonString(order))
			}
			got := encode(&m)
			if wantBytes == nil {
				wantBytes = got
			} else if !bytes.Equal(got, wantBytes) {
				fail("encoding %x, first permutation's %x", got, wantBytes)
			}
			for i, vp := range []Policy{FailedWins, DeliveryWins} {
				if v := m.View(vp); !reflect.DeepEqual(v, want[i]) {
					fail("View(%v):\n got %s\nwant %s", vp, jsonString(v), jsonString(want[i]))
				}
				if m.ViewInto(&reused, vp); !reflect.DeepEqual(reused, want[i]) {
					fail("ViewInto(%v) over an earlier view:\n got %s\nwant %s", vp, jsonString(reused), jsonString(want[i]))
				}
			}
			v := m.View(p)
			restored, err := FromView(&v)
			if err != nil || !restored.Equal(&m) {
				fail("FromView(View) = %v, equal %t", err, restored.Equal(&m))
			}
			var decoded Message
			if err := decoded.UnmarshalBinary(got); err != nil || !decoded.Equal(&m) {
				fail("UnmarshalBinary(AppendBinary) = %v, equal %t", err, decoded.Equal(&m))
			}
		}
	}
	t.Logf("%d permutations of %d multisets", multisets*perms, multisets)
}
