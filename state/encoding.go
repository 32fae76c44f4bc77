package state

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/wastatus/wastatus/schemas"
)

// encodingVersion is the first byte of every Message encoding.
const encodingVersion = 1

// The Message encoding, version 1. uvarint and varint are encoding/binary's
// (varint is zig-zag), always in their shortest form; str is a uvarint
// length and the bytes.
//
//	byte     version (1)
//	str      wamid
//	uvarint  number of participants; 0 ends the zero Message here
//	uvarint  base: the smallest timestamp of any participant (> 0)
//	per participant, sorted by id, ids unique:
//	  str      id
//	  byte     mask of the statuses seen (bit 0 sent ... bit 4 failed), not 0
//	  uvarint  per status in the mask, in order: timestamp - base
//	uvarint  first receive time, unix ms (0: unknown)
//	uvarint  mask of the attributes present (bit i: attribute i in the order
//	         recipient_id, recipient_user_id, parent_user_id, recipient_type,
//	         conversation, pricing, errors, biz_opaque_callback_data,
//	         phone_number_id, display_phone_number, waba_id)
//	per attribute present, in that order:
//	  byte     source status (1 sent ... 5 failed)
//	  uvarint  source timestamp - base
//	  value    a string attribute: str, not empty
//	           conversation: str id, varint expiration (0: absent),
//	                         str origin type; not all zero
//	           pricing: byte billable (0 absent, 1 false, 2 true),
//	                    str pricing model, str type, str category; not all zero
//	           errors: uvarint count (> 0), per error: varint code,
//	                   str title, str message, str details, str href
//
// A source's timestamp is never below base: the source event's status was
// folded, so its participant holds a timestamp no later than the source's.
// The value of a conversation, pricing or errors attribute, as encoded here
// (without the source), is also the byte string the preference compares.

// AppendBinary appends m's canonical encoding to dst. Equal Messages encode
// to equal bytes and different ones to different bytes. It never fails (the
// error is for encoding.BinaryAppender).
func (m *Message) AppendBinary(dst []byte) ([]byte, error) {
	return m.appendBinary(dst), nil
}

// MarshalBinary returns m's canonical encoding (see AppendBinary).
func (m *Message) MarshalBinary() ([]byte, error) {
	return m.appendBinary(make([]byte, 0, 128)), nil
}

// appendBinary is AppendBinary.
func (m *Message) appendBinary(dst []byte) []byte {
	dst = append(dst, encodingVersion)
	dst = appendString(dst, m.wamid)
	dst = binary.AppendUvarint(dst, uint64(len(m.parts)))
	if len(m.parts) == 0 {
		return dst
	}
	base := m.base()
	dst = binary.AppendUvarint(dst, uint64(base))
	for i := range m.parts {
		pt := &m.parts[i]
		dst = appendString(dst, pt.id)
		dst = append(dst, pt.seen())
		for _, t := range pt.at {
			if t != 0 {
				dst = binary.AppendUvarint(dst, uint64(t-base))
			}
		}
	}
	dst = binary.AppendUvarint(dst, uint64(m.firstReceivedAt))
	var mask uint64
	for a := range numAttrs {
		if m.src[a].status != StatusUnknown {
			mask |= 1 << a
		}
	}
	dst = binary.AppendUvarint(dst, mask)
	for a := range numAttrs {
		src := m.src[a]
		if src.status == StatusUnknown {
			continue
		}
		dst = append(dst, byte(src.status))
		dst = binary.AppendUvarint(dst, uint64(src.ts-base))
		switch a {
		case attrConversation:
			dst = appendConversation(dst, &m.conv)
		case attrPricing:
			dst = appendPricing(dst, &m.price)
		case attrErrors:
			dst = appendErrors(dst, m.errs)
		default:
			dst = appendString(dst, m.str[a])
		}
	}
	return dst
}

// base returns the smallest timestamp of any participant (m has one).
func (m *Message) base() int64 {
	base := int64(math.MaxInt64)
	for i := range m.parts {
		for _, t := range m.parts[i].at {
			if t != 0 && t < base {
				base = t
			}
		}
	}
	return base
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func appendConversation(dst []byte, c *conversation) []byte {
	dst = appendString(dst, c.id)
	dst = binary.AppendVarint(dst, c.exp)
	return appendString(dst, c.origin)
}

func appendPricing(dst []byte, p *pricing) []byte {
	dst = append(dst, p.billable)
	dst = appendString(dst, p.model)
	dst = appendString(dst, p.typ)
	return appendString(dst, p.category)
}

func appendErrors(dst []byte, errs []schemas.Error) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(errs)))
	for i := range errs {
		e := &errs[i]
		dst = binary.AppendVarint(dst, e.Code)
		dst = appendString(dst, e.Title)
		dst = appendString(dst, e.Message)
		dst = appendString(dst, e.Details)
		dst = appendString(dst, e.Href)
	}
	return dst
}

// UnmarshalBinary sets m to the Message encoded in b. It accepts only
// canonical encodings of this version: if it succeeds, AppendBinary gives b
// back byte for byte. Otherwise it returns an error wrapping ErrCorrupt and
// leaves m unchanged. m does not retain b.
func (m *Message) UnmarshalBinary(b []byte) error {
	var d Message
	if err := d.decode(string(b)); err != nil {
		return err
	}
	*m = d
	return nil
}

// decode fills the reset m from the encoding s. Its strings are substrings
// of s: one allocation for the caller's conversion holds them all. On error
// m is left partly filled (reset it before reuse).
func (m *Message) decode(s string) error {
	d := decoder{s: s}
	if err := m.decodeFrom(&d); err != nil {
		return fmt.Errorf("%w: %w (at byte %d)", ErrCorrupt, err, d.off)
	}
	return nil
}

// Decoding errors, wrapped in ErrCorrupt.
var (
	errShort     = errors.New("truncated")
	errVarint    = errors.New("varint overflow or not in shortest form")
	errTrailing  = errors.New("trailing bytes")
	errRange     = errors.New("value out of range")
	errNotCanon  = errors.New("not canonical")
	errInvariant = errors.New("attribute source was not folded")
)

func (m *Message) decodeFrom(d *decoder) error {
	if v := d.byte(); d.err == nil && v != encodingVersion {
		return fmt.Errorf("unsupported encoding version %d", v)
	}
	m.wamid = d.str()
	n := d.uvarint()
	if d.err != nil {
		return d.err
	}
	if n == 0 {
		if m.wamid != "" {
			return fmt.Errorf("wamid without participants: %w", errNotCanon)
		}
		return d.end()
	}
	if m.wamid == "" {
		return fmt.Errorf("participants without wamid: %w", errNotCanon)
	}
	// A participant takes at least 3 bytes: this bounds the allocation.
	if n > uint64(d.remaining()/3) {
		return fmt.Errorf("participant count %d: %w", n, errShort)
	}
	base := d.uvarint()
	if d.err == nil && (base == 0 || base > math.MaxInt64) {
		return fmt.Errorf("base %d: %w", base, errRange)
	}
	if cap(m.parts) < int(n) {
		m.parts = make([]participant, 0, n)
	}
	sawBase := false
	for i := range int(n) {
		pt := participant{id: d.str()}
		mask := d.byte()
		if d.err != nil {
			return d.err
		}
		if i > 0 && pt.id <= m.parts[i-1].id {
			return fmt.Errorf("participant %q: order: %w", pt.id, errNotCanon)
		}
		if mask == 0 || mask >= 1<<numStatuses {
			return fmt.Errorf("participant %q: status mask %#x: %w", pt.id, mask, errRange)
		}
		for k := range numStatuses {
			if mask&(1<<k) == 0 {
				continue
			}
			delta := d.uvarint()
			if d.err != nil {
				return d.err
			}
			if delta > math.MaxInt64-base {
				return fmt.Errorf("timestamp delta %d: %w", delta, errRange)
			}
			sawBase = sawBase || delta == 0
			pt.at[k] = int64(base + delta)
		}
		m.parts = append(m.parts, pt)
		m.seen |= mask
	}
	if !sawBase {
		return fmt.Errorf("base is not the smallest timestamp: %w", errNotCanon)
	}
	top := m.times()

	fra := d.uvarint()
	attrs := d.uvarint()
	if d.err != nil {
		return d.err
	}
	if fra > math.MaxInt64 {
		return fmt.Errorf("first receive time %d: %w", fra, errRange)
	}
	m.firstReceivedAt = int64(fra)
	if attrs >= 1<<numAttrs {
		return fmt.Errorf("attribute mask %#x: %w", attrs, errRange)
	}
	for a := range numAttrs {
		if attrs&(1<<a) == 0 {
			continue
		}
		st := Status(d.byte())
		delta := d.uvarint()
		if d.err != nil {
			return d.err
		}
		if !st.valid() {
			return fmt.Errorf("attribute %s: source status %d: %w", a.name(), st, errRange)
		}
		if delta > math.MaxInt64-base {
			return fmt.Errorf("attribute %s: source timestamp delta %d: %w", a.name(), delta, errRange)
		}
		ts := int64(base + delta)
		if t := top[st-1]; t == 0 || t > ts {
			return fmt.Errorf("attribute %s: %w", a.name(), errInvariant)
		}
		m.src[a] = source{status: st, ts: ts}
		switch a {
		case attrConversation:
			m.conv = conversation{id: d.str(), exp: d.varint(), origin: d.str()}
		case attrPricing:
			m.price = pricing{billable: d.byte(), model: d.str(), typ: d.str(), category: d.str()}
			if m.price.billable > 2 {
				return fmt.Errorf("pricing billable %d: %w", m.price.billable, errRange)
			}
		case attrErrors:
			if err := m.decodeErrors(d); err != nil {
				return err
			}
		default:
			m.str[a] = d.str()
		}
		if d.err != nil {
			return d.err
		}
		if !m.present(a) {
			return fmt.Errorf("attribute %s: empty value: %w", a.name(), errNotCanon)
		}
	}
	return d.end()
}

func (m *Message) decodeErrors(d *decoder) error {
	n := d.uvarint()
	if d.err != nil {
		return d.err
	}
	// An error takes at least 5 bytes: this bounds the allocation.
	if n > uint64(d.remaining()/5) {
		return fmt.Errorf("error count %d: %w", n, errShort)
	}
	if cap(m.errs) < int(n) {
		m.errs = make([]schemas.Error, 0, n)
	}
	for range n {
		m.errs = append(m.errs, schemas.Error{
			Code:    d.varint(),
			Title:   d.str(),
			Message: d.str(),
			Details: d.str(),
			Href:    d.str(),
		})
	}
	return d.err
}

// decoder reads the encoding; the first error sticks and later reads return
// zero values.
type decoder struct {
	s   string
	off int
	err error
}

func (d *decoder) remaining() int { return len(d.s) - d.off }

func (d *decoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if d.off >= len(d.s) {
		d.fail(errShort)
		return 0
	}
	b := d.s[d.off]
	d.off++
	return b
}

// uvarint reads a uvarint in its shortest form.
func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	var x uint64
	for i := 0; i < binary.MaxVarintLen64; i++ {
		if d.off >= len(d.s) {
			d.fail(errShort)
			return 0
		}
		b := d.s[d.off]
		d.off++
		if b < 0x80 {
			if (i > 0 && b == 0) || (i == binary.MaxVarintLen64-1 && b > 1) {
				d.fail(errVarint)
				return 0
			}
			return x | uint64(b)<<(7*i)
		}
		x |= uint64(b&0x7f) << (7 * i)
	}
	d.fail(errVarint)
	return 0
}

// varint reads a zig-zag varint in its shortest form.
func (d *decoder) varint() int64 {
	ux := d.uvarint()
	return int64(ux>>1) ^ -int64(ux&1)
}

// str reads a length-prefixed string as a substring of the input.
func (d *decoder) str() string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(d.remaining()) {
		d.fail(errShort)
		return ""
	}
	s := d.s[d.off : d.off+int(n)]
	d.off += int(n)
	return s
}

// end checks that the input is consumed.
func (d *decoder) end() error {
	if d.err != nil {
		return d.err
	}
	if d.off != len(d.s) {
		return errTrailing
	}
	return nil
}
