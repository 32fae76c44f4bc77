package schemas

import (
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/linkedin/goavro/v2"
)

// goavro, used directly, is the oracle the hand-written codec (avrobinary.go)
// is tested against. An oracle is a Codec with goavro's codecs of its own
// schemas beside it, which encode and decode the Codec's own records the way
// the Codec did before it had the hand-written codec: through goavro's
// native form, with the same framing, structural check and errors. It is for
// one goroutine at a time.
type oracle struct {
	*Codec
	event, status *writerSchema
	scratch       nativeScratch
}

func newOracle(t testing.TB) *oracle {
	t.Helper()
	o := &oracle{Codec: newTestCodec(t)}
	var err error
	if o.event, err = goavroSchema(statusEventAVSC); err != nil {
		t.Fatal(err)
	}
	if o.status, err = goavroSchema(messageStatusAVSC); err != nil {
		t.Fatal(err)
	}
	return o
}

// goavroSchema is goavro's codec of a current schema, as a writer schema
// that needs no resolution.
func goavroSchema(text string) (*writerSchema, error) {
	codec, err := goavro.NewCodec(text)
	if err != nil {
		return nil, err
	}
	t, err := parseSchema(text)
	if err != nil {
		return nil, err
	}
	return &writerSchema{text: text, codec: codec, shape: shapeOf(t, map[*avroType]*shape{})}, nil
}

// goavroAppendStatusEvent is AppendStatusEvent through goavro.
func (o *oracle) goavroAppendStatusEvent(dst []byte, ev *StatusEvent) ([]byte, error) {
	defer o.scratch.reset()
	return goavroAppend(dst, o.ids.StatusEvent, o.event.codec, o.scratch.statusEvent(ev))
}

// goavroAppendMessageStatus is AppendMessageStatus through goavro.
func (o *oracle) goavroAppendMessageStatus(dst []byte, m *MessageStatus) ([]byte, error) {
	defer o.scratch.reset()
	return goavroAppend(dst, o.ids.MessageStatus, o.status.codec, o.scratch.messageStatus(m))
}

func goavroAppend(dst []byte, id uint32, codec *goavro.Codec, native map[string]any) ([]byte, error) {
	out := binary.BigEndian.AppendUint32(append(dst, 0), id)
	out, err := codec.BinaryFromNative(out, native)
	if err != nil {
		return dst, fmt.Errorf("%w: %w", ErrEncode, err)
	}
	return out, nil
}

// goavroDecodeStatusEvent is DecodeStatusEvent with goavro decoding the
// records of the Codec's own id too (after the structural check).
func (o *oracle) goavroDecodeStatusEvent(b []byte) (StatusEvent, error) {
	id, payload, err := frame(b)
	if err != nil {
		return StatusEvent{}, err
	}
	if id != o.ids.StatusEvent {
		return o.DecodeStatusEvent(b) // goavro already
	}
	native, err := o.event.native(payload)
	if err != nil {
		return StatusEvent{}, err
	}
	return statusEventOfNative(native)
}

// goavroDecodeMessageStatus is goavroDecodeStatusEvent for MessageStatus.
func (o *oracle) goavroDecodeMessageStatus(b []byte) (MessageStatus, error) {
	id, payload, err := frame(b)
	if err != nil {
		return MessageStatus{}, err
	}
	if id != o.ids.MessageStatus {
		return o.DecodeMessageStatus(b)
	}
	native, err := o.status.native(payload)
	if err != nil {
		return MessageStatus{}, err
	}
	return messageStatusOfNative(native)
}

// Typed structs to goavro's native form. Absent optional values are left out
// of the map: goavro then writes the field's default, null or [].
//
// goavro wants a map per record and a one-entry map per non-null union value:
// a dozen maps per record. nativeScratch hands them out from a reusable set,
// so that only the boxing of values into interfaces allocates (as the Codec
// did with a pool of them, before it had its own codec: the benchmarks
// compare with that).

// nativeScratch is the reusable native form of one record being encoded. It
// is used by one goroutine at a time.
type nativeScratch struct {
	maps  []map[string]any // handed out in order; maps[:nmaps] are in use
	nmaps int
	lists [][]any // likewise for arrays
	nlist int
}

func (s *nativeScratch) record() map[string]any {
	if s.nmaps == len(s.maps) {
		s.maps = append(s.maps, make(map[string]any, 8))
	}
	m := s.maps[s.nmaps]
	s.nmaps++
	return m
}

// union returns goavro's form of a non-null union value: {branch: v}.
func (s *nativeScratch) union(branch string, v any) map[string]any {
	m := s.record()
	m[branch] = v
	return m
}

func (s *nativeScratch) list(n int) []any {
	if s.nlist == len(s.lists) {
		s.lists = append(s.lists, nil)
	}
	l := s.lists[s.nlist]
	if cap(l) < n {
		l = make([]any, n)
	}
	s.lists[s.nlist] = l
	s.nlist++
	return l[:n]
}

// reset clears the scratch for reuse.
func (s *nativeScratch) reset() {
	for _, m := range s.maps[:s.nmaps] {
		clear(m)
	}
	for _, l := range s.lists[:s.nlist] {
		clear(l[:cap(l)])
	}
	s.nmaps, s.nlist = 0, 0
}

func (s *nativeScratch) statusEvent(ev *StatusEvent) map[string]any {
	m := s.record()
	m["wamid"] = ev.WAMID
	m["status"] = ev.Status
	m["timestamp"] = ev.Timestamp
	s.putString(m, "recipient_id", ev.RecipientID)
	s.putString(m, "recipient_user_id", ev.RecipientUserID)
	s.putString(m, "parent_user_id", ev.ParentUserID)
	s.putString(m, "recipient_type", ev.RecipientType)
	s.putString(m, "recipient_participant_id", ev.RecipientParticipantID)
	s.putConversation(m, ev.Conversation)
	s.putPricing(m, ev.Pricing)
	s.putErrors(m, ev.Errors)
	s.putString(m, "biz_opaque_callback_data", ev.BizOpaqueCallbackData)
	s.putString(m, "phone_number_id", ev.PhoneNumberID)
	s.putString(m, "display_phone_number", ev.DisplayPhoneNumber)
	s.putString(m, "waba_id", ev.WABAID)
	m["region"] = ev.Region
	m["received_at"] = ev.ReceivedAt
	m["raw"] = ev.Raw
	return m
}

func (s *nativeScratch) messageStatus(ms *MessageStatus) map[string]any {
	m := s.record()
	m["wamid"] = ms.WAMID
	m["status"] = ms.Status
	s.putLong(m, "sent_at", ms.SentAt)
	s.putLong(m, "delivered_at", ms.DeliveredAt)
	s.putLong(m, "read_at", ms.ReadAt)
	s.putLong(m, "played_at", ms.PlayedAt)
	s.putLong(m, "failed_at", ms.FailedAt)
	s.putString(m, "recipient_id", ms.RecipientID)
	s.putString(m, "recipient_user_id", ms.RecipientUserID)
	s.putString(m, "parent_user_id", ms.ParentUserID)
	s.putString(m, "recipient_type", ms.RecipientType)
	s.putConversation(m, ms.Conversation)
	s.putPricing(m, ms.Pricing)
	s.putErrors(m, ms.Errors)
	s.putString(m, "biz_opaque_callback_data", ms.BizOpaqueCallbackData)
	s.putString(m, "phone_number_id", ms.PhoneNumberID)
	s.putString(m, "display_phone_number", ms.DisplayPhoneNumber)
	s.putString(m, "waba_id", ms.WABAID)
	if ms.FirstReceivedAt != 0 {
		m["first_received_at"] = s.union(unionMillis, ms.FirstReceivedAt)
	}
	if len(ms.Participants) > 0 {
		ps := s.list(len(ms.Participants))
		for i := range ms.Participants {
			p := &ms.Participants[i]
			pm := s.record()
			pm["id"] = p.ID
			pm["status"] = p.Status
			s.putLong(pm, "sent_at", p.SentAt)
			s.putLong(pm, "delivered_at", p.DeliveredAt)
			s.putLong(pm, "read_at", p.ReadAt)
			s.putLong(pm, "played_at", p.PlayedAt)
			s.putLong(pm, "failed_at", p.FailedAt)
			ps[i] = pm
		}
		m["participants"] = ps
	}
	if len(ms.Sources) > 0 {
		ss := s.list(len(ms.Sources))
		for i := range ms.Sources {
			src := &ms.Sources[i]
			sm := s.record()
			sm["attribute"] = src.Attribute
			sm["status"] = src.Status
			sm["timestamp"] = src.Timestamp
			ss[i] = sm
		}
		m["sources"] = ss
	}
	return m
}

func (s *nativeScratch) putString(m map[string]any, key, v string) {
	if v != "" {
		m[key] = s.union(unionString, v)
	}
}

func (s *nativeScratch) putLong(m map[string]any, key string, v int64) {
	if v != 0 {
		m[key] = s.union(unionLong, v)
	}
}

func (s *nativeScratch) putConversation(m map[string]any, c *Conversation) {
	if c == nil {
		return
	}
	cm := s.record()
	cm["id"] = c.ID
	s.putLong(cm, "expiration_timestamp", c.ExpirationTimestamp)
	s.putString(cm, "origin_type", c.OriginType)
	m["conversation"] = s.union(unionConversation, cm)
}

func (s *nativeScratch) putPricing(m map[string]any, p *Pricing) {
	if p == nil {
		return
	}
	pm := s.record()
	if p.Billable != nil {
		pm["billable"] = s.union(unionBoolean, *p.Billable)
	}
	s.putString(pm, "pricing_model", p.PricingModel)
	s.putString(pm, "type", p.Type)
	s.putString(pm, "category", p.Category)
	m["pricing"] = s.union(unionPricing, pm)
}

func (s *nativeScratch) putErrors(m map[string]any, errs []Error) {
	if len(errs) == 0 {
		return
	}
	es := s.list(len(errs))
	for i := range errs {
		e := &errs[i]
		em := s.record()
		em["code"] = e.Code
		s.putString(em, "title", e.Title)
		s.putString(em, "message", e.Message)
		s.putString(em, "details", e.Details)
		s.putString(em, "href", e.Href)
		es[i] = em
	}
	m["errors"] = es
}
