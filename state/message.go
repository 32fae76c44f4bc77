package state

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"slices"

	"github.com/wastatus/wastatus/schemas"
)

// attr identifies one attribute of a message: a value merged on its own, with
// its source. The order is fixed: it is the order of the encoding and of
// View's Sources.
type attr uint8

const (
	attrRecipientID attr = iota
	attrRecipientUserID
	attrParentUserID
	attrRecipientType
	attrConversation
	attrPricing
	attrErrors
	attrBizOpaqueCallbackData
	attrPhoneNumberID
	attrDisplayPhoneNumber
	attrWABAID
	numAttrs
)

// name is the attribute's name in MessageStatus.Sources.
func (a attr) name() string {
	switch a {
	case attrRecipientID:
		return "recipient_id"
	case attrRecipientUserID:
		return "recipient_user_id"
	case attrParentUserID:
		return "parent_user_id"
	case attrRecipientType:
		return "recipient_type"
	case attrConversation:
		return "conversation"
	case attrPricing:
		return "pricing"
	case attrErrors:
		return "errors"
	case attrBizOpaqueCallbackData:
		return "biz_opaque_callback_data"
	case attrPhoneNumberID:
		return "phone_number_id"
	case attrDisplayPhoneNumber:
		return "display_phone_number"
	case attrWABAID:
		return "waba_id"
	}
	return ""
}

// parseAttr is the inverse of attr.name; ok is false for an unknown name.
func parseAttr(s string) (attr, bool) {
	for a := range numAttrs {
		if a.name() == s {
			return a, true
		}
	}
	return 0, false
}

// isString reports whether the attribute is a plain string (kept in
// Message.str).
func (a attr) isString() bool {
	return a != attrConversation && a != attrPricing && a != attrErrors
}

// source is the event an attribute was taken from: its status and payload
// timestamp. The zero source (StatusUnknown) means the attribute is absent.
type source struct {
	status Status
	ts     int64
}

// cmpSource orders sources by canonical status rank, then timestamp.
func cmpSource(a, b source) int {
	if c := cmp.Compare(a.status, b.status); c != 0 {
		return c
	}
	return cmp.Compare(a.ts, b.ts)
}

// participant is one recipient's sub-state: the earliest payload timestamp of
// each status (at[s-1]; 0 when never seen). id is "" for a one-to-one message.
type participant struct {
	id string
	at [numStatuses]int64
}

// seen returns the participant's seen-statuses mask.
func (p *participant) seen() uint8 {
	var mask uint8
	for i, t := range p.at {
		if t != 0 {
			mask |= 1 << i
		}
	}
	return mask
}

// conversation is schemas.Conversation held by value; the zero value is
// absent.
type conversation struct {
	id     string
	exp    int64
	origin string
}

// pricing is schemas.Pricing held by value; billable is 0 absent, 1 false, 2
// true. The zero value is absent.
type pricing struct {
	billable uint8
	model    string
	typ      string
	category string
}

// Message is the lattice element of one message (wamid): everything folded
// from its events. The zero value is the bottom of the lattice: nothing seen.
//
// A Message is not safe for concurrent use. Copying a Message by value
// shares its internal slices; use Clone for an independent copy.
type Message struct {
	wamid string
	// seen is the mask of statuses seen by any participant (bit s-1).
	seen uint8
	// parts is sorted by id, ids unique; every participant has at least
	// one timestamp.
	parts []participant
	// src[a] is attribute a's source; status StatusUnknown means absent.
	src   [numAttrs]source
	str   [numAttrs]string // string attributes; "" for the others
	conv  conversation
	price pricing
	errs  []schemas.Error // owned: never shared with an event or a view
	// firstReceivedAt is the minimum positive ReceivedAt (unix ms), 0 if none.
	firstReceivedAt int64
}

// WAMID returns the message's id, "" for the zero Message.
func (m *Message) WAMID() string { return m.wamid }

// Seen reports whether any participant of the message has reported status
// st; false for a status that is not foldable.
func (m *Message) Seen(st Status) bool {
	return st.valid() && m.seen&st.bit() != 0
}

// Status returns the message's status under p: of the statuses seen for any
// participant, the one of highest rank under p; StatusUnknown for the zero
// Message.
func (m *Message) Status(p Policy) Status { return p.derive(m.seen) }

// Clone returns a deep copy of m that shares nothing mutable with it.
func (m *Message) Clone() Message {
	c := *m
	c.parts = slices.Clone(m.parts)
	c.errs = slices.Clone(m.errs)
	return c
}

// Equal reports whether m and o hold the same state. It is true exactly when
// their AppendBinary encodings are equal.
func (m *Message) Equal(o *Message) bool {
	return m.wamid == o.wamid &&
		m.seen == o.seen &&
		slices.Equal(m.parts, o.parts) &&
		m.src == o.src &&
		m.str == o.str &&
		m.conv == o.conv &&
		m.price == o.price &&
		slices.Equal(m.errs, o.errs) &&
		m.firstReceivedAt == o.firstReceivedAt
}

// reset empties m for reuse, keeping its slices' capacity.
func (m *Message) reset() {
	clear(m.parts)
	clear(m.errs)
	*m = Message{parts: m.parts[:0], errs: m.errs[:0]}
}

// grouped reports whether m has a participant other than "" (a group
// message): View then lists the participants.
func (m *Message) grouped() bool {
	n := len(m.parts)
	return n > 1 || (n == 1 && m.parts[0].id != "")
}

// times returns the top-level timestamps: per status, the minimum over the
// participants (0 when no participant saw it).
func (m *Message) times() [numStatuses]int64 {
	var top [numStatuses]int64
	for i := range m.parts {
		for k, t := range m.parts[i].at {
			if t != 0 && (top[k] == 0 || t < top[k]) {
				top[k] = t
			}
		}
	}
	return top
}

// participant returns the index of participant id in m.parts, inserting an
// empty one there if absent (inserted reports that).
func (m *Message) participant(id string) (i int, inserted bool) {
	i, found := slices.BinarySearchFunc(m.parts, id, func(p participant, id string) int {
		return cmp.Compare(p.id, id)
	})
	if !found {
		m.parts = slices.Insert(m.parts, i, participant{id: id})
	}
	return i, !found
}

// checkEvent validates ev for folding and returns its status.
func checkEvent(ev *schemas.StatusEvent) (Status, error) {
	st := parseStatus(ev.Status)
	switch {
	case st == StatusUnknown:
		return st, fmt.Errorf("%w: %q", ErrUnknownStatus, ev.Status)
	case ev.WAMID == "":
		return st, fmt.Errorf("%w: empty wamid", ErrInvalidEvent)
	case ev.Timestamp <= 0:
		return st, fmt.Errorf("%w: timestamp %d is not positive", ErrInvalidEvent, ev.Timestamp)
	}
	return st, nil
}

// Apply folds one event into m and says what it did. p only decides the
// Outcome (which status counts as higher); the state after Apply is the
// same under every policy. On error m is unchanged: ErrUnknownStatus for a
// status that is not foldable, ErrInvalidEvent for an empty wamid or a
// timestamp that is not positive, ErrWAMIDMismatch for an event about
// another message. Apply never reads a clock and does not allocate, except
// to add a participant or to keep an errors list.
//
// m shares the event's strings (Go strings are immutable); it copies
// everything else.
func (m *Message) Apply(ev *schemas.StatusEvent, p Policy) (Outcome, error) {
	st, err := checkEvent(ev)
	if err != nil {
		return 0, err
	}
	if m.wamid != "" && m.wamid != ev.WAMID {
		return 0, fmt.Errorf("%w: event %q applied to %q", ErrWAMIDMismatch, ev.WAMID, m.wamid)
	}
	return m.apply(ev, st, p), nil
}

// apply is Apply for a checked event of status st.
func (m *Message) apply(ev *schemas.StatusEvent, st Status, p Policy) Outcome {
	before := p.derive(m.seen)
	changed := false
	if m.wamid == "" {
		m.wamid = ev.WAMID
		changed = true
	}

	i, inserted := m.participant(ev.RecipientParticipantID)
	changed = changed || inserted
	pt := &m.parts[i]
	partBefore := p.derive(pt.seen())
	if t := &pt.at[st-1]; *t == 0 || ev.Timestamp < *t {
		*t = ev.Timestamp
		changed = true
	}
	m.seen |= st.bit()

	src := source{status: st, ts: ev.Timestamp}
	if m.offerEvent(ev, src) {
		changed = true
	}
	if r := ev.ReceivedAt; r > 0 && (m.firstReceivedAt == 0 || r < m.firstReceivedAt) {
		m.firstReceivedAt = r
		changed = true
	}

	switch {
	case !changed && p.Rank(st) < p.Rank(partBefore):
		return Stale
	case !changed:
		return Duplicate
	case p.Rank(p.derive(m.seen)) > p.Rank(before):
		return Advanced
	default:
		return Filled
	}
}

// offerEvent offers each attribute the event carries; it reports whether
// any was taken.
func (m *Message) offerEvent(ev *schemas.StatusEvent, src source) bool {
	changed := m.offerString(attrRecipientID, ev.RecipientID, src)
	changed = m.offerString(attrRecipientUserID, ev.RecipientUserID, src) || changed
	changed = m.offerString(attrParentUserID, ev.ParentUserID, src) || changed
	changed = m.offerString(attrRecipientType, ev.RecipientType, src) || changed
	if c := ev.Conversation; c != nil {
		changed = m.offerConversation(conversation{id: c.ID, exp: c.ExpirationTimestamp, origin: c.OriginType}, src) || changed
	}
	if pr := ev.Pricing; pr != nil {
		changed = m.offerPricing(pricingOf(pr), src) || changed
	}
	changed = m.offerErrors(ev.Errors, src) || changed
	changed = m.offerString(attrBizOpaqueCallbackData, ev.BizOpaqueCallbackData, src) || changed
	changed = m.offerString(attrPhoneNumberID, ev.PhoneNumberID, src) || changed
	changed = m.offerString(attrDisplayPhoneNumber, ev.DisplayPhoneNumber, src) || changed
	changed = m.offerString(attrWABAID, ev.WABAID, src) || changed
	return changed
}

// pricingOf converts a schemas.Pricing (not nil).
func pricingOf(pr *schemas.Pricing) pricing {
	v := pricing{model: pr.PricingModel, typ: pr.Type, category: pr.Category}
	if pr.Billable != nil {
		v.billable = 1
		if *pr.Billable {
			v.billable = 2
		}
	}
	return v
}

// prefer reports whether a candidate value from source src beats attribute
// a's current value: a higher source, or an equal source and a greater value
// (byDiff compares the candidate's value with the current one and is only
// called on equal sources).
func (m *Message) prefer(a attr, src source, byDiff func() int) bool {
	cur := m.src[a]
	if cur.status == StatusUnknown {
		return true
	}
	if c := cmpSource(src, cur); c != 0 {
		return c > 0
	}
	return byDiff() > 0
}

// offerString offers a string attribute ("" is absent).
func (m *Message) offerString(a attr, v string, src source) bool {
	if v == "" {
		return false
	}
	cur := m.src[a]
	if cur.status != StatusUnknown {
		c := cmpSource(src, cur)
		if c < 0 || (c == 0 && v <= m.str[a]) {
			return false
		}
	}
	m.str[a], m.src[a] = v, src
	return true
}

// offerConversation offers a conversation (the zero value is absent).
func (m *Message) offerConversation(v conversation, src source) bool {
	if v == (conversation{}) {
		return false
	}
	if !m.prefer(attrConversation, src, func() int { return compareConversation(&v, &m.conv) }) {
		return false
	}
	m.conv, m.src[attrConversation] = v, src
	return true
}

// offerPricing offers a pricing (the zero value is absent).
func (m *Message) offerPricing(v pricing, src source) bool {
	if v == (pricing{}) {
		return false
	}
	if !m.prefer(attrPricing, src, func() int { return comparePricing(&v, &m.price) }) {
		return false
	}
	m.price, m.src[attrPricing] = v, src
	return true
}

// offerErrors offers an errors list (empty is absent); it copies v if taken.
func (m *Message) offerErrors(v []schemas.Error, src source) bool {
	if len(v) == 0 {
		return false
	}
	if !m.prefer(attrErrors, src, func() int { return compareErrors(v, m.errs) }) {
		return false
	}
	m.errs = append(m.errs[:0], v...)
	m.src[attrErrors] = src
	return true
}

// compareConversation compares the canonical encodings of a and b.
func compareConversation(a, b *conversation) int {
	if *a == *b {
		return 0
	}
	var x, y [96]byte
	return bytes.Compare(appendConversation(x[:0], a), appendConversation(y[:0], b))
}

// comparePricing compares the canonical encodings of a and b.
func comparePricing(a, b *pricing) int {
	if *a == *b {
		return 0
	}
	var x, y [96]byte
	return bytes.Compare(appendPricing(x[:0], a), appendPricing(y[:0], b))
}

// compareErrors compares the canonical encodings of a and b.
func compareErrors(a, b []schemas.Error) int {
	if slices.Equal(a, b) {
		return 0
	}
	var x, y [256]byte
	return bytes.Compare(appendErrors(x[:0], a), appendErrors(y[:0], b))
}

// Join sets m to the join (least upper bound) of m and o: per participant
// and status the earlier timestamp, per attribute the preferred value, the
// earlier first receive time. Join is commutative, associative and
// idempotent, and folding events into separate Messages and joining them
// gives exactly the Message that folding all of them into one gives. o is
// not modified and shares nothing mutable with m afterwards. Joining the
// zero Message is a no-op; ErrWAMIDMismatch if both have different wamids
// (m is then unchanged).
func (m *Message) Join(o *Message) error {
	_, err := m.join(o)
	return err
}

// join is Join; it reports whether m changed.
func (m *Message) join(o *Message) (bool, error) {
	if o.wamid == "" || m == o {
		return false, nil
	}
	if m.wamid != "" && m.wamid != o.wamid {
		return false, fmt.Errorf("%w: joining %q into %q", ErrWAMIDMismatch, o.wamid, m.wamid)
	}
	changed := false
	if m.wamid == "" {
		m.wamid = o.wamid
		changed = true
	}
	if m.joinParticipants(o.parts) {
		changed = true
	}
	m.seen |= o.seen
	for a := range numAttrs {
		src := o.src[a]
		if src.status == StatusUnknown {
			continue
		}
		switch {
		case a.isString():
			changed = m.offerString(a, o.str[a], src) || changed
		case a == attrConversation:
			changed = m.offerConversation(o.conv, src) || changed
		case a == attrPricing:
			changed = m.offerPricing(o.price, src) || changed
		case a == attrErrors:
			changed = m.offerErrors(o.errs, src) || changed
		}
	}
	if r := o.firstReceivedAt; r > 0 && (m.firstReceivedAt == 0 || r < m.firstReceivedAt) {
		m.firstReceivedAt = r
		changed = true
	}
	return changed, nil
}

// joinParticipants merges the sorted participants ps into m.parts, keeping
// the earlier timestamp of each status. It reports whether m changed.
func (m *Message) joinParticipants(ps []participant) bool {
	changed := false
	merged := make([]participant, 0, len(m.parts)+len(ps))
	i, j := 0, 0
	for i < len(m.parts) || j < len(ps) {
		switch {
		case j == len(ps) || (i < len(m.parts) && m.parts[i].id < ps[j].id):
			merged = append(merged, m.parts[i])
			i++
		case i == len(m.parts) || ps[j].id < m.parts[i].id:
			merged = append(merged, ps[j])
			j++
			changed = true
		default:
			pt := m.parts[i]
			for k, t := range ps[j].at {
				if t != 0 && (pt.at[k] == 0 || t < pt.at[k]) {
					pt.at[k] = t
					changed = true
				}
			}
			merged = append(merged, pt)
			i++
			j++
		}
	}
	if changed {
		m.parts = merged
	}
	return changed
}

// View returns the message's state as the Avro-facing record, with statuses
// derived under p. The record shares nothing mutable with m. Top-level
// timestamps are the minimum over the participants; Participants is empty
// unless the message has a participant other than "" (then every
// participant is listed, sorted by id, "" first if present); Sources lists
// the present attributes in a fixed order.
func (m *Message) View(p Policy) schemas.MessageStatus {
	var v schemas.MessageStatus
	m.ViewInto(&v, p)
	return v
}

// ViewInto sets *v to m.View(p), reusing the memory of what v held: its
// slices and its Conversation and Pricing records, which the caller must
// not share with anything still in use. A processor encodes a view and
// forgets it, once per changed message: reusing one saves it up to four
// allocations of every state it emits (Sources, Conversation, Pricing and
// its Billable).
func (m *Message) ViewInto(v *schemas.MessageStatus, p Policy) {
	top := m.times()
	conv, price := v.Conversation, v.Pricing
	errs, parts, srcs := v.Errors[:0], v.Participants[:0], v.Sources[:0]
	*v = schemas.MessageStatus{
		WAMID:                 m.wamid,
		Status:                p.derive(m.seen).String(),
		SentAt:                top[Sent-1],
		DeliveredAt:           top[Delivered-1],
		ReadAt:                top[Read-1],
		PlayedAt:              top[Played-1],
		FailedAt:              top[Failed-1],
		RecipientID:           m.str[attrRecipientID],
		RecipientUserID:       m.str[attrRecipientUserID],
		ParentUserID:          m.str[attrParentUserID],
		RecipientType:         m.str[attrRecipientType],
		BizOpaqueCallbackData: m.str[attrBizOpaqueCallbackData],
		PhoneNumberID:         m.str[attrPhoneNumberID],
		DisplayPhoneNumber:    m.str[attrDisplayPhoneNumber],
		WABAID:                m.str[attrWABAID],
		FirstReceivedAt:       m.firstReceivedAt,
	}
	if m.src[attrConversation].status != StatusUnknown {
		if conv == nil {
			conv = new(schemas.Conversation)
		}
		*conv = schemas.Conversation{ID: m.conv.id, ExpirationTimestamp: m.conv.exp, OriginType: m.conv.origin}
		v.Conversation = conv
	}
	if m.src[attrPricing].status != StatusUnknown {
		if price == nil {
			price = new(schemas.Pricing)
		}
		billable := price.Billable
		*price = schemas.Pricing{PricingModel: m.price.model, Type: m.price.typ, Category: m.price.category}
		if m.price.billable != 0 {
			if billable == nil {
				billable = new(bool)
			}
			*billable = m.price.billable == 2
			price.Billable = billable
		}
		v.Pricing = price
	}
	if len(m.errs) > 0 {
		v.Errors = append(errs, m.errs...)
	}
	if m.grouped() {
		parts = slices.Grow(parts, len(m.parts))
		for i := range m.parts {
			pt := &m.parts[i]
			parts = append(parts, schemas.Participant{
				ID:          pt.id,
				Status:      p.derive(pt.seen()).String(),
				SentAt:      pt.at[Sent-1],
				DeliveredAt: pt.at[Delivered-1],
				ReadAt:      pt.at[Read-1],
				PlayedAt:    pt.at[Played-1],
				FailedAt:    pt.at[Failed-1],
			})
		}
		v.Participants = parts
	}
	n := 0
	for a := range numAttrs {
		if m.src[a].status != StatusUnknown {
			n++
		}
	}
	srcs = slices.Grow(srcs, n)
	for a := range numAttrs {
		if s := m.src[a]; s.status != StatusUnknown {
			srcs = append(srcs, schemas.AttributeSource{Attribute: a.name(), Status: s.status.String(), Timestamp: s.ts})
		}
	}
	if len(srcs) > 0 {
		v.Sources = srcs
	}
}

// FromView rebuilds the Message that View returned v for (under either
// policy): FromView(View(m)) equals m, so a state restored from the current
// topic keeps folding exactly as the original would. It accepts only what
// View can produce; anything else is an error wrapping ErrInvalidView.
// Empty and nil slices are the same. The Message shares nothing mutable
// with v.
func FromView(v *schemas.MessageStatus) (Message, error) {
	var m Message
	if err := m.fromView(v); err != nil {
		return Message{}, fmt.Errorf("%w: %s: %w", ErrInvalidView, v.WAMID, err)
	}
	return m, nil
}

// viewTimes returns a view's five timestamps in status order.
func viewTimes(sent, delivered, read, played, failed int64) [numStatuses]int64 {
	return [numStatuses]int64{sent, delivered, read, played, failed}
}

// fromView fills the zero m from v; its errors are plain descriptions.
func (m *Message) fromView(v *schemas.MessageStatus) error {
	if v.WAMID == "" {
		return errors.New("empty wamid")
	}
	m.wamid = v.WAMID
	top := viewTimes(v.SentAt, v.DeliveredAt, v.ReadAt, v.PlayedAt, v.FailedAt)
	for _, t := range top {
		if t < 0 {
			return fmt.Errorf("negative timestamp %d", t)
		}
	}
	if len(v.Participants) == 0 {
		pt := participant{at: top}
		if pt.seen() == 0 {
			return errors.New("no status timestamp")
		}
		m.parts = []participant{pt}
	} else {
		m.parts = make([]participant, len(v.Participants))
		for i := range v.Participants {
			vp := &v.Participants[i]
			if i > 0 && vp.ID <= v.Participants[i-1].ID {
				return fmt.Errorf("participants not sorted by unique id at %q", vp.ID)
			}
			pt := participant{id: vp.ID, at: viewTimes(vp.SentAt, vp.DeliveredAt, vp.ReadAt, vp.PlayedAt, vp.FailedAt)}
			for _, t := range pt.at {
				if t < 0 {
					return fmt.Errorf("participant %q: negative timestamp %d", vp.ID, t)
				}
			}
			if pt.seen() == 0 {
				return fmt.Errorf("participant %q: no status timestamp", vp.ID)
			}
			m.parts[i] = pt
		}
		if !m.grouped() {
			return errors.New("participants listed for a one-to-one message")
		}
		if got := m.times(); got != top {
			return fmt.Errorf("top-level timestamps %v are not the participants' minimum %v", top, got)
		}
	}
	for i := range m.parts {
		m.seen |= m.parts[i].seen()
	}
	if err := m.checkViewStatuses(v); err != nil {
		return err
	}

	if v.FirstReceivedAt < 0 {
		return fmt.Errorf("negative first_received_at %d", v.FirstReceivedAt)
	}
	m.firstReceivedAt = v.FirstReceivedAt

	m.str[attrRecipientID] = v.RecipientID
	m.str[attrRecipientUserID] = v.RecipientUserID
	m.str[attrParentUserID] = v.ParentUserID
	m.str[attrRecipientType] = v.RecipientType
	m.str[attrBizOpaqueCallbackData] = v.BizOpaqueCallbackData
	m.str[attrPhoneNumberID] = v.PhoneNumberID
	m.str[attrDisplayPhoneNumber] = v.DisplayPhoneNumber
	m.str[attrWABAID] = v.WABAID
	if c := v.Conversation; c != nil {
		m.conv = conversation{id: c.ID, exp: c.ExpirationTimestamp, origin: c.OriginType}
	}
	if pr := v.Pricing; pr != nil {
		m.price = pricingOf(pr)
	}
	if len(v.Errors) > 0 {
		m.errs = slices.Clone(v.Errors)
	}

	for _, s := range v.Sources {
		a, ok := parseAttr(s.Attribute)
		if !ok {
			return fmt.Errorf("unknown attribute %q in sources", s.Attribute)
		}
		if m.src[a].status != StatusUnknown {
			return fmt.Errorf("attribute %q sourced twice", s.Attribute)
		}
		st := parseStatus(s.Status)
		if st == StatusUnknown {
			return fmt.Errorf("attribute %q: unknown source status %q", s.Attribute, s.Status)
		}
		// The source event's status was seen no later than the source's
		// timestamp.
		if t := top[st-1]; t == 0 || t > s.Timestamp {
			return fmt.Errorf("attribute %q: source %s at %d was not folded", s.Attribute, s.Status, s.Timestamp)
		}
		m.src[a] = source{status: st, ts: s.Timestamp}
	}
	for a := range numAttrs {
		if present, sourced := m.present(a), m.src[a].status != StatusUnknown; present != sourced {
			return fmt.Errorf("attribute %q: value present %t, source present %t", a.name(), present, sourced)
		}
	}
	return nil
}

// present reports whether attribute a has a value.
func (m *Message) present(a attr) bool {
	switch a {
	case attrConversation:
		return m.conv != conversation{}
	case attrPricing:
		return m.price != pricing{}
	case attrErrors:
		return len(m.errs) > 0
	}
	return m.str[a] != ""
}

// checkViewStatuses checks that v's status strings are derived from m's
// timestamps under one policy.
func (m *Message) checkViewStatuses(v *schemas.MessageStatus) error {
	for _, p := range []Policy{FailedWins, DeliveryWins} {
		ok := v.Status == p.derive(m.seen).String()
		for i := range v.Participants {
			ok = ok && v.Participants[i].Status == p.derive(m.parts[i].seen()).String()
		}
		if ok {
			return nil
		}
	}
	return fmt.Errorf("status %q (or a participant's) is not derived from the timestamps under any policy", v.Status)
}
