package schemas

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
)

// This file is a hand-written Avro binary codec for exactly the two current
// schemas, status_event.avsc and message_status.avsc: field by field, in
// schema order, straight between the typed structs and bytes. The Codec uses
// it for every record framed with its own ids; goavro is kept for the records
// of other writer schemas (which need resolution) and, in the tests, as the
// oracle this codec must agree with byte for byte (see the package doc).
//
// Encoding follows the Avro specification as goavro does: long as a zig-zag
// varint, string and bytes as a length then the bytes, a union as the branch
// index then the value ("" and 0 are null, branch 0), an array as one block
// of all its items then the 0 count (an empty array is the 0 count alone).
//
// Decoding reads untrusted bytes. Every length is checked against what is
// left before it is used; an array block's count must fit in what is left at
// the smallest encoding of an item, so no allocation exceeds a small multiple
// of the input's size; union branch indexes, booleans and varints (at most
// 10 bytes, no bits past the 64th) are checked; a record must end exactly
// where the input ends.

// errBinary is wrapped by every failure of the decoder here; the Codec wraps
// ErrDecode around it.
var errBinary = errors.New("avro binary")

// The smallest encoding of an item of each array, for the block count check:
// each field takes at least one byte (a varint, a length or a union index).
const (
	minErrorBytes       = 5 // code, title, message, details, href
	minParticipantBytes = 7 // id, status, five timestamps
	minSourceBytes      = 3 // attribute, status, timestamp
)

// Encoding.

func appendLong(b []byte, v int64) []byte {
	return binary.AppendUvarint(b, uint64(v<<1)^uint64(v>>63))
}

func appendString(b []byte, s string) []byte {
	return append(appendLong(b, int64(len(s))), s...)
}

func appendBytes(b []byte, p []byte) []byte {
	return append(appendLong(b, int64(len(p))), p...)
}

// Union branch indexes of ["null", T].
const (
	branchNull  = 0
	branchValue = 2 // the zig-zag encoding of 1
)

func appendOptString(b []byte, s string) []byte {
	if s == "" {
		return append(b, branchNull)
	}
	return appendString(append(b, branchValue), s)
}

func appendOptLong(b []byte, v int64) []byte {
	if v == 0 {
		return append(b, branchNull)
	}
	return appendLong(append(b, branchValue), v)
}

func appendConversation(b []byte, c *Conversation) []byte {
	if c == nil {
		return append(b, branchNull)
	}
	b = appendString(append(b, branchValue), c.ID)
	b = appendOptLong(b, c.ExpirationTimestamp)
	return appendOptString(b, c.OriginType)
}

func appendPricing(b []byte, p *Pricing) []byte {
	if p == nil {
		return append(b, branchNull)
	}
	b = append(b, branchValue)
	switch {
	case p.Billable == nil:
		b = append(b, branchNull)
	case *p.Billable:
		b = append(b, branchValue, 1)
	default:
		b = append(b, branchValue, 0)
	}
	b = appendOptString(b, p.PricingModel)
	b = appendOptString(b, p.Type)
	return appendOptString(b, p.Category)
}

// appendCount starts an array of n items: one block holding them all. The
// array ends with appendLong(b, 0) after the items (n == 0: that alone).
func appendCount(b []byte, n int) []byte {
	if n == 0 {
		return b
	}
	return appendLong(b, int64(n))
}

func appendErrors(b []byte, errs []Error) []byte {
	b = appendCount(b, len(errs))
	for i := range errs {
		e := &errs[i]
		b = appendLong(b, e.Code)
		b = appendOptString(b, e.Title)
		b = appendOptString(b, e.Message)
		b = appendOptString(b, e.Details)
		b = appendOptString(b, e.Href)
	}
	return append(b, 0)
}

// appendStatusEvent appends the Avro binary encoding of ev
// (status_event.avsc) to b.
func appendStatusEvent(b []byte, ev *StatusEvent) []byte {
	b = appendString(b, ev.WAMID)
	b = appendString(b, ev.Status)
	b = appendLong(b, ev.Timestamp)
	b = appendOptString(b, ev.RecipientID)
	b = appendOptString(b, ev.RecipientUserID)
	b = appendOptString(b, ev.ParentUserID)
	b = appendOptString(b, ev.RecipientType)
	b = appendOptString(b, ev.RecipientParticipantID)
	b = appendConversation(b, ev.Conversation)
	b = appendPricing(b, ev.Pricing)
	b = appendErrors(b, ev.Errors)
	b = appendOptString(b, ev.BizOpaqueCallbackData)
	b = appendOptString(b, ev.PhoneNumberID)
	b = appendOptString(b, ev.DisplayPhoneNumber)
	b = appendOptString(b, ev.WABAID)
	b = appendString(b, ev.Region)
	b = appendLong(b, ev.ReceivedAt)
	return appendBytes(b, ev.Raw)
}

// appendMessageStatus appends the Avro binary encoding of m
// (message_status.avsc) to b.
func appendMessageStatus(b []byte, m *MessageStatus) []byte {
	b = appendString(b, m.WAMID)
	b = appendString(b, m.Status)
	b = appendOptLong(b, m.SentAt)
	b = appendOptLong(b, m.DeliveredAt)
	b = appendOptLong(b, m.ReadAt)
	b = appendOptLong(b, m.PlayedAt)
	b = appendOptLong(b, m.FailedAt)
	b = appendOptString(b, m.RecipientID)
	b = appendOptString(b, m.RecipientUserID)
	b = appendOptString(b, m.ParentUserID)
	b = appendOptString(b, m.RecipientType)
	b = appendConversation(b, m.Conversation)
	b = appendPricing(b, m.Pricing)
	b = appendErrors(b, m.Errors)
	b = appendOptString(b, m.BizOpaqueCallbackData)
	b = appendOptString(b, m.PhoneNumberID)
	b = appendOptString(b, m.DisplayPhoneNumber)
	b = appendOptString(b, m.WABAID)
	b = appendOptLong(b, m.FirstReceivedAt)
	b = appendCount(b, len(m.Participants))
	for i := range m.Participants {
		p := &m.Participants[i]
		b = appendString(b, p.ID)
		b = appendString(b, p.Status)
		b = appendOptLong(b, p.SentAt)
		b = appendOptLong(b, p.DeliveredAt)
		b = appendOptLong(b, p.ReadAt)
		b = appendOptLong(b, p.PlayedAt)
		b = appendOptLong(b, p.FailedAt)
	}
	b = append(b, 0)
	b = appendCount(b, len(m.Sources))
	for i := range m.Sources {
		s := &m.Sources[i]
		b = appendString(b, s.Attribute)
		b = appendString(b, s.Status)
		b = appendLong(b, s.Timestamp)
	}
	return append(b, 0)
}

// Decoding.

// avroReader reads one record's Avro binary encoding. The first failure
// sticks: it is kept in err, the rest of the input is given up, and every
// later read returns a zero value, so that a record decodes as a plain
// sequence of reads with one error check at the end.
type avroReader struct {
	b   []byte
	off int
	err error
	in  *interner // for the values events repeat (see interner); nil: none
}

// fail records the first failure, at the current offset, and stops reading.
func (r *avroReader) fail(field, format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s at byte %d of the record: %s", errBinary, field, r.off, fmt.Sprintf(format, args...))
	}
	r.off = len(r.b)
}

// long reads a zig-zag varint.
func (r *avroReader) long(field string) int64 {
	if r.off < len(r.b) && r.b[r.off] < 0x80 {
		u := r.b[r.off]
		r.off++
		return int64(u>>1) ^ -int64(u&1)
	}
	return r.longSlow(field)
}

// longSlow reads a varint of more than one byte. Ten bytes hold 64 bits; a
// tenth byte with more than the last bit set, or an eleventh, is refused.
func (r *avroReader) longSlow(field string) int64 {
	var u uint64
	for i := 0; i < 10 && r.off+i < len(r.b); i++ {
		c := r.b[r.off+i]
		if i == 9 && c > 1 {
			r.fail(field, "varint overflows 64 bits")
			return 0
		}
		u |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			r.off += i + 1
			return int64(u>>1) ^ -int64(u&1)
		}
	}
	if r.err == nil {
		r.fail(field, "truncated varint")
	}
	return 0
}

// bytes reads a length-prefixed string or bytes value, as a slice of the
// input.
func (r *avroReader) bytes(field string) []byte {
	n := r.long(field)
	if left := len(r.b) - r.off; n < 0 || n > int64(left) {
		if r.err == nil {
			r.fail(field, "length %d with %d bytes left", n, left)
		}
		return nil
	}
	p := r.b[r.off : r.off+int(n) : r.off+int(n)]
	r.off += int(n)
	return p
}

// str reads a string. Its bytes are copied: the result does not alias the
// input, which the Kafka client may reuse.
func (r *avroReader) str(field string) string {
	return string(r.bytes(field))
}

// word reads a string that is usually one of a few known words (a status or
// an attribute name); those are returned as constants, without allocating.
func (r *avroReader) word(field string) string {
	p := r.bytes(field)
	switch string(p) { // compiled to comparisons: no allocation
	case "sent":
		return "sent"
	case "delivered":
		return "delivered"
	case "read":
		return "read"
	case "played":
		return "played"
	case "failed":
		return "failed"
	case "recipient":
		return "recipient"
	case "conversation":
		return "conversation"
	case "pricing":
		return "pricing"
	case "errors":
		return "errors"
	case "biz_opaque_callback_data":
		return "biz_opaque_callback_data"
	case "metadata":
		return "metadata"
	}
	return string(p)
}

// present reads the branch index of a ["null", T] union: whether T follows.
func (r *avroReader) present(field string) bool {
	switch i := r.long(field); i {
	case 0:
		return false
	case 1:
		return true
	default:
		if r.err == nil {
			r.fail(field, "union branch %d of 2", i)
		}
		return false
	}
}

func (r *avroReader) optStr(field string) string {
	if !r.present(field) {
		return ""
	}
	return r.str(field)
}

// common reads a string that many events repeat, through the interner.
func (r *avroReader) common(field string, f internField) string {
	return r.in.str(f, r.bytes(field))
}

// optCommon reads an optional string that many events repeat.
func (r *avroReader) optCommon(field string, f internField) string {
	if !r.present(field) {
		return ""
	}
	return r.common(field, f)
}

func (r *avroReader) optLong(field string) int64 {
	if !r.present(field) {
		return 0
	}
	return r.long(field)
}

func (r *avroReader) boolean(field string) bool {
	if r.off >= len(r.b) || r.b[r.off] > 1 {
		if r.err == nil {
			r.fail(field, "not a boolean")
		}
		return false
	}
	r.off++
	return r.b[r.off-1] == 1
}

// block reads an array block's count: the number of items that follow, 0 at
// the end of the array. A negative count is followed by the block's size in
// bytes, which is read and ignored (as goavro does). A count that cannot fit
// in the bytes left at minItem bytes an item is refused before anything is
// allocated for it.
func (r *avroReader) block(field string, minItem int) int {
	n := r.long(field)
	if n < 0 {
		if n == math.MinInt64 {
			r.fail(field, "block count %d", n)
			return 0
		}
		n = -n
		r.long(field)
	}
	if r.err != nil {
		return 0
	}
	if left := len(r.b) - r.off; n > math.MaxInt32 || n > int64(left/minItem) {
		r.fail(field, "block of %d items with %d bytes left", n, left)
		return 0
	}
	return int(n)
}

// grow returns s with room for n more items: for the first block, which is
// usually the only one, exactly n.
func grow[E any](s []E, n int) []E {
	if s == nil {
		return make([]E, 0, n)
	}
	return slices.Grow(s, n)
}

// end fails unless the whole input was read.
func (r *avroReader) end() {
	if r.err == nil && r.off != len(r.b) {
		r.fail("record", "%d trailing bytes", len(r.b)-r.off)
	}
}

func (r *avroReader) conversation() *Conversation {
	if !r.present("conversation") {
		return nil
	}
	return &Conversation{
		ID:                  r.str("conversation.id"),
		ExpirationTimestamp: r.optLong("conversation.expiration_timestamp"),
		OriginType:          r.optCommon("conversation.origin_type", internOriginType),
	}
}

// pricingBillable is a Pricing with room for the bool its Billable points
// to: one allocation instead of two.
type pricingBillable struct {
	p        Pricing
	billable bool
}

func (r *avroReader) pricing() *Pricing {
	if !r.present("pricing") {
		return nil
	}
	pb := new(pricingBillable)
	if r.present("pricing.billable") {
		pb.billable = r.boolean("pricing.billable")
		pb.p.Billable = &pb.billable
	}
	pb.p.PricingModel = r.optCommon("pricing.pricing_model", internPricingModel)
	pb.p.Type = r.optCommon("pricing.type", internPricingType)
	pb.p.Category = r.optCommon("pricing.category", internPricingCategory)
	return &pb.p
}

// array reads an array field block by block, each item with item; empty
// is nil. block checks each count against the bytes left (minItem bytes
// an item at least) before anything is allocated.
func array[T any](r *avroReader, field string, minItem int, item func() T) []T {
	var out []T
	for n := r.block(field, minItem); n > 0; n = r.block(field, minItem) {
		out = grow(out, n)
		for range n {
			out = append(out, item())
		}
	}
	return out
}

func (r *avroReader) errorList() []Error {
	return array(r, "errors", minErrorBytes, func() Error {
		return Error{
			Code:    r.long("errors.code"),
			Title:   r.optStr("errors.title"),
			Message: r.optStr("errors.message"),
			Details: r.optStr("errors.details"),
			Href:    r.optStr("errors.href"),
		}
	})
}

func (r *avroReader) participants() []Participant {
	return array(r, "participants", minParticipantBytes, func() Participant {
		return Participant{
			ID:          r.str("participants.id"),
			Status:      r.word("participants.status"),
			SentAt:      r.optLong("participants.sent_at"),
			DeliveredAt: r.optLong("participants.delivered_at"),
			ReadAt:      r.optLong("participants.read_at"),
			PlayedAt:    r.optLong("participants.played_at"),
			FailedAt:    r.optLong("participants.failed_at"),
		}
	})
}

func (r *avroReader) sources() []AttributeSource {
	return array(r, "sources", minSourceBytes, func() AttributeSource {
		return AttributeSource{
			Attribute: r.word("sources.attribute"),
			Status:    r.word("sources.status"),
			Timestamp: r.long("sources.timestamp"),
		}
	})
}

// decodeStatusEvent decodes b, exactly one record of status_event.avsc. Its
// errors wrap errBinary.
func decodeStatusEvent(b []byte, in *interner, raw bool) (StatusEvent, error) {
	r := avroReader{b: b, in: in}
	// Go evaluates the calls of a composite literal in order: field order.
	ev := StatusEvent{
		WAMID:                  r.str("wamid"),
		Status:                 r.word("status"),
		Timestamp:              r.long("timestamp"),
		RecipientID:            r.optStr("recipient_id"),
		RecipientUserID:        r.optStr("recipient_user_id"),
		ParentUserID:           r.optStr("parent_user_id"),
		RecipientType:          r.optCommon("recipient_type", internRecipientType),
		RecipientParticipantID: r.optStr("recipient_participant_id"),
		Conversation:           r.conversation(),
		Pricing:                r.pricing(),
		Errors:                 r.errorList(),
		BizOpaqueCallbackData:  r.optStr("biz_opaque_callback_data"),
		PhoneNumberID:          r.optCommon("phone_number_id", internPhoneNumberID),
		DisplayPhoneNumber:     r.optCommon("display_phone_number", internDisplayPhoneNumber),
		WABAID:                 r.optCommon("waba_id", internWABAID),
		Region:                 r.common("region", internRegion),
		ReceivedAt:             r.long("received_at"),
	}
	if p := r.bytes("raw"); len(p) > 0 && raw {
		ev.Raw = slices.Clone(p)
	}
	if r.end(); r.err != nil {
		return StatusEvent{}, r.err
	}
	return ev, nil
}

// decodeMessageStatus decodes b, exactly one record of message_status.avsc.
// Its errors wrap errBinary.
func decodeMessageStatus(b []byte, in *interner) (MessageStatus, error) {
	r := avroReader{b: b, in: in}
	m := MessageStatus{
		WAMID:                 r.str("wamid"),
		Status:                r.word("status"),
		SentAt:                r.optLong("sent_at"),
		DeliveredAt:           r.optLong("delivered_at"),
		ReadAt:                r.optLong("read_at"),
		PlayedAt:              r.optLong("played_at"),
		FailedAt:              r.optLong("failed_at"),
		RecipientID:           r.optStr("recipient_id"),
		RecipientUserID:       r.optStr("recipient_user_id"),
		ParentUserID:          r.optStr("parent_user_id"),
		RecipientType:         r.optCommon("recipient_type", internRecipientType),
		Conversation:          r.conversation(),
		Pricing:               r.pricing(),
		Errors:                r.errorList(),
		BizOpaqueCallbackData: r.optStr("biz_opaque_callback_data"),
		PhoneNumberID:         r.optCommon("phone_number_id", internPhoneNumberID),
		DisplayPhoneNumber:    r.optCommon("display_phone_number", internDisplayPhoneNumber),
		WABAID:                r.optCommon("waba_id", internWABAID),
		FirstReceivedAt:       r.optLong("first_received_at"),
		Participants:          r.participants(),
		Sources:               r.sources(),
	}
	if r.end(); r.err != nil {
		return MessageStatus{}, r.err
	}
	return m, nil
}
