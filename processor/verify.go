package processor

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wastatus/wastatus/schemas"
	"github.com/wastatus/wastatus/state"
)

// VerifyStore is what Verify needs of a store: its policy and a scan of a
// partition's messages. *state.Store is one.
type VerifyStore interface {
	Policy() state.Policy
	Scan(partition int32, fn func(*state.Message) error) error
}

var _ VerifyStore = (*state.Store)(nil)

// DifferenceKind says how a message differs between a store and the
// current topic.
type DifferenceKind uint8

// The kinds of Difference.
const (
	// MissingInStore: the topic has a state for the message, the store none.
	MissingInStore DifferenceKind = iota + 1
	// MissingInTopic: the store has a state, the topic none (or a
	// tombstone last).
	MissingInTopic
	// Differs: both have a state and they differ; Fields names how.
	Differs
	// Unreadable: the topic's latest record of the message does not decode,
	// or is not a state View can produce; Detail says why.
	Unreadable
)

func (k DifferenceKind) String() string {
	switch k {
	case MissingInStore:
		return "missing-in-store"
	case MissingInTopic:
		return "missing-in-topic"
	case Differs:
		return "differs"
	case Unreadable:
		return "unreadable"
	}
	return fmt.Sprintf("DifferenceKind(%d)", uint8(k))
}

// Order places two differing states of a message in the lattice.
type Order uint8

// The orders of a Difference of kind Differs.
const (
	// StoreBehind: the topic's state is the store's joined with more
	// events. Expected for messages that changed after the store was
	// built, while processors run.
	StoreBehind Order = iota + 1
	// StoreAhead: the store's state is the topic's joined with more
	// events. Expected for messages whose events the processors had not
	// folded yet when the topic was read.
	StoreAhead
	// Diverged: neither state contains the other (or the states are equal
	// and their statuses differ, by another policy). Never expected.
	Diverged
)

func (o Order) String() string {
	switch o {
	case StoreBehind:
		return "store-behind"
	case StoreAhead:
		return "store-ahead"
	case Diverged:
		return "diverged"
	}
	return ""
}

// Difference is one message that differs between a store and the current
// topic.
type Difference struct {
	Partition int32
	WAMID     string
	Kind      DifferenceKind
	// Order is set for Differs.
	Order Order
	// Fields names each field of the MessageStatus that differs, in schema
	// order, for Differs.
	Fields []FieldDifference
	// Store is the store's state (under its policy), nil when missing.
	Store *schemas.MessageStatus
	// Topic is the topic's latest state, nil when missing or unreadable.
	Topic *schemas.MessageStatus
	// TopicOffset is the offset of the topic's latest record of the
	// message, -1 when it has none.
	TopicOffset int64
	// Detail says why the topic's record is Unreadable.
	Detail string
}

// FieldDifference is one field of a message's state that differs: its
// name in message_status.avsc and each side's value as compact JSON.
type FieldDifference struct {
	Field string
	Store string
	Topic string
}

// String describes d on one line.
func (d Difference) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "partition %d %s: %s", d.Partition, d.WAMID, d.Kind)
	if d.Order != 0 {
		fmt.Fprintf(&b, " (%s)", d.Order)
	}
	if d.TopicOffset >= 0 {
		fmt.Fprintf(&b, " at offset %d", d.TopicOffset)
	}
	for i, f := range d.Fields {
		sep := ", "
		if i == 0 {
			sep = ": "
		}
		fmt.Fprintf(&b, "%s%s store=%s topic=%s", sep, f.Field, f.Store, f.Topic)
	}
	if d.Detail != "" {
		fmt.Fprintf(&b, ": %s", d.Detail)
	}
	return b.String()
}

// VerifyResult counts what Verify compared.
type VerifyResult struct {
	Partitions     int
	TopicRecords   int64 // records read from the current topic, tombstones included
	Messages       int64 // distinct messages, in the store, the topic or both
	Equal          int64
	MissingInStore int64
	MissingInTopic int64
	Differing      int64
	Unreadable     int64
}

// Differences returns the number of messages that differ.
func (r VerifyResult) Differences() int64 {
	return r.MissingInStore + r.MissingInTopic + r.Differing + r.Unreadable
}

// Verify compares the store's state of each of partitions with the same
// partition of the current topic, message by message, and calls report
// (never concurrently) for every message that differs. The topic is read
// with read_committed isolation from its start to its last stable offset as
// of the call, keeping the latest record of each wamid (compaction's view
// of it: a tombstone last means no state). Two states are equal when the
// store's, viewed under store.Policy(), encodes to the topic's value, or
// else has the same fields once decoded (a value framed with another
// schema id, say).
//
// It reads with clients of its own and only reads the store, so it runs
// beside live processors; but a store built at one moment and a topic read
// at a later one differ by the messages that changed in between. Each
// Difference of kind Differs says which side is ahead (Order); only
// Diverged states, and differences that persist once the processors have
// caught up, are faults.
//
// Partitions are compared one at a time, in the order given; one
// partition's latest topic values are held in memory meanwhile. Within a
// partition, differences come in the store's scan order, then messages
// missing in the store by wamid.
func Verify(ctx context.Context, cfg Config, store VerifyStore, codec *schemas.Codec, partitions []int32, report func(Difference)) (VerifyResult, error) {
	if err := cfg.Validate(); err != nil {
		return VerifyResult{}, err
	}
	if store == nil || codec == nil {
		return VerifyResult{}, fmt.Errorf("%w: a store and a codec are required", ErrConfig)
	}
	cfg = cfg.withDefaults()
	cfg.ClientOpts = append([]kgo.Opt{kgo.FetchMaxPartitionBytes(rangeFetchBytes)}, cfg.ClientOpts...)
	spans, err := Spans(ctx, cfg, cfg.CurrentTopic)
	if err != nil {
		return VerifyResult{}, err
	}
	for _, part := range partitions {
		if _, ok := spans[part]; !ok {
			return VerifyResult{}, fmt.Errorf("processor: %s has no partition %d", cfg.CurrentTopic, part)
		}
	}
	if report == nil {
		report = func(Difference) {}
	}
	v := verifier{ranger: ranger{cfg: cfg, codec: codec}, store: store, policy: store.Policy(), report: report}
	v.res.Partitions = len(partitions)
	for _, part := range partitions {
		if err := v.partition(ctx, part, spans[part]); err != nil {
			return v.res, err
		}
	}
	return v.res, nil
}

type verifier struct {
	ranger
	store  VerifyStore
	policy state.Policy
	report func(Difference)
	res    VerifyResult
	buf    []byte // scratch encoding
}

// latest is the topic's last record of a message.
type latest struct {
	offset int64
	value  []byte // nil: a tombstone
}

func (v *verifier) partition(ctx context.Context, part int32, span Span) error {
	topic := make(map[string]latest)
	n, err := v.readRange(ctx, v.cfg.CurrentTopic, part, span.Start, span.End, nil, func(rec *kgo.Record) error {
		l := latest{offset: rec.Offset}
		if rec.Value != nil {
			l.value = bytes.Clone(rec.Value) // not the fetch buffer's: free it
		}
		topic[string(rec.Key)] = l
		return nil
	})
	v.res.TopicRecords += n
	if err != nil {
		return err
	}
	err = v.store.Scan(part, func(m *state.Message) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		v.res.Messages++
		view := m.View(v.policy)
		l, ok := topic[view.WAMID]
		delete(topic, view.WAMID)
		if !ok || l.value == nil {
			off := int64(-1)
			if ok {
				off = l.offset
			}
			v.res.MissingInTopic++
			v.report(Difference{Partition: part, WAMID: view.WAMID, Kind: MissingInTopic, Store: &view, TopicOffset: off})
			return nil
		}
		v.compare(part, m, &view, l)
		return nil
	})
	if err != nil {
		return fmt.Errorf("processor: verify partition %d: %w", part, err)
	}
	rest := make([]string, 0, len(topic))
	for wamid, l := range topic {
		if l.value != nil {
			rest = append(rest, wamid)
		}
	}
	slices.Sort(rest)
	for _, wamid := range rest {
		l := topic[wamid]
		v.res.Messages++
		d := Difference{Partition: part, WAMID: wamid, Kind: MissingInStore, TopicOffset: l.offset}
		tv, err := v.codec.DecodeMessageStatus(l.value)
		if err != nil {
			v.res.Unreadable++
			d.Kind, d.Detail = Unreadable, err.Error()
		} else {
			v.res.MissingInStore++
			d.Topic = &tv
		}
		v.report(d)
	}
	return nil
}

// compare compares the store's state m (viewed as view) with the topic's
// latest record l of the same message.
func (v *verifier) compare(part int32, m *state.Message, view *schemas.MessageStatus, l latest) {
	var err error
	v.buf, err = v.codec.AppendMessageStatus(v.buf[:0], view)
	if err == nil && bytes.Equal(v.buf, l.value) {
		v.res.Equal++
		return
	}
	d := Difference{Partition: part, WAMID: view.WAMID, Store: view, TopicOffset: l.offset}
	tv, err := v.codec.DecodeMessageStatus(l.value)
	if err != nil {
		v.res.Unreadable++
		d.Kind, d.Detail = Unreadable, err.Error()
		v.report(d)
		return
	}
	d.Topic = &tv
	d.Fields = diffFields(view, &tv)
	if len(d.Fields) == 0 {
		v.res.Equal++ // the same state, encoded differently
		return
	}
	tm, err := state.FromView(&tv)
	if err != nil {
		v.res.Unreadable++
		d.Kind, d.Detail = Unreadable, err.Error()
		v.report(d)
		return
	}
	v.res.Differing++
	d.Kind, d.Order = Differs, order(m, &tm)
	v.report(d)
}

// order places the store's state s and the topic's t in the lattice; they
// are known to differ.
func order(s, t *state.Message) Order {
	if s.Equal(t) {
		return Diverged // equal states viewed under different policies
	}
	if j := t.Clone(); j.Join(s) == nil && j.Equal(t) {
		return StoreBehind
	}
	if j := s.Clone(); j.Join(t) == nil && j.Equal(s) {
		return StoreAhead
	}
	return Diverged
}

// sourceJSON is the JSON form of an attribute source in a FieldDifference.
type sourceJSON struct {
	Attribute string `json:"attribute"`
	Status    string `json:"status"`
	Timestamp int64  `json:"timestamp"`
}

// diffFields returns the fields of a and b that differ, in schema order,
// with their values as compact JSON. An empty list and a missing one are
// the same.
func diffFields(a, b *schemas.MessageStatus) []FieldDifference {
	var out []FieldDifference
	add := func(field string, x, y any) {
		xs, ys := compactJSON(x), compactJSON(y)
		if xs != ys {
			out = append(out, FieldDifference{Field: field, Store: xs, Topic: ys})
		}
	}
	ja, jb := MessageJSON(*a, 0), MessageJSON(*b, 0)
	add("wamid", a.WAMID, b.WAMID)
	add("status", a.Status, b.Status)
	add("sent_at", a.SentAt, b.SentAt)
	add("delivered_at", a.DeliveredAt, b.DeliveredAt)
	add("read_at", a.ReadAt, b.ReadAt)
	add("played_at", a.PlayedAt, b.PlayedAt)
	add("failed_at", a.FailedAt, b.FailedAt)
	add("recipient_id", a.RecipientID, b.RecipientID)
	add("recipient_user_id", a.RecipientUserID, b.RecipientUserID)
	add("parent_user_id", a.ParentUserID, b.ParentUserID)
	add("recipient_type", a.RecipientType, b.RecipientType)
	add("conversation", ja.Conversation, jb.Conversation)
	add("pricing", ja.Pricing, jb.Pricing)
	add("errors", ja.Errors, jb.Errors)
	add("biz_opaque_callback_data", a.BizOpaqueCallbackData, b.BizOpaqueCallbackData)
	add("phone_number_id", a.PhoneNumberID, b.PhoneNumberID)
	add("display_phone_number", a.DisplayPhoneNumber, b.DisplayPhoneNumber)
	add("waba_id", a.WABAID, b.WABAID)
	add("first_received_at", a.FirstReceivedAt, b.FirstReceivedAt)
	add("participants", ja.Participants, jb.Participants)
	add("sources", sources(a.Sources), sources(b.Sources))
	return out
}

func sources(ss []schemas.AttributeSource) []sourceJSON {
	if len(ss) == 0 {
		return nil
	}
	out := make([]sourceJSON, len(ss))
	for i, s := range ss {
		out[i] = sourceJSON(s)
	}
	return out
}

// compactJSON renders v as compact JSON; the types here always marshal.
func compactJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%v", v)
	}
	return string(b)
}
