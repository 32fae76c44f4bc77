package schemas

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/linkedin/goavro/v2"
	"github.com/twmb/franz-go/pkg/sr"
	"golang.org/x/sync/singleflight"
)

// IDs are the schema ids of the current schemas: written in the Confluent
// framing of each record type, and decoded without resolution. A zero field
// means its default (StatusEventSchemaID, MessageStatusSchemaID).
// NewRegistryCodec fills them with the ids the registry assigned.
type IDs struct {
	StatusEvent   uint32
	MessageStatus uint32
}

// Kind is one of the two record types a Codec encodes and decodes.
type Kind uint8

// The record types.
const (
	KindStatusEvent   Kind = iota + 1 // StatusEvent, status_event.avsc
	KindMessageStatus                 // MessageStatus, message_status.avsc
)

func (k Kind) String() string {
	switch k {
	case KindStatusEvent:
		return "StatusEvent"
	case KindMessageStatus:
		return "MessageStatus"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Codec encodes and decodes StatusEvent and MessageStatus as Avro in the
// Confluent wire format. Build one with NewCodec or NewRegistryCodec and
// share the pointer: it is safe for concurrent use (and must not be copied).
//
// It writes with the current schemas under their ids (IDs) and reads those
// ids directly, with the hand-written codec of avrobinary.go; it reads a
// record written with an earlier version of a schema, under another id, with
// goavro and schema resolution (see the package doc).
type Codec struct {
	ids        IDs
	eventType  *avroType // the current schemas, parsed, as resolution's readers
	statusType *avroType

	strs *interner // the values events repeat, decoded once

	registry *sr.Client         // nil without a schema registry
	lookups  singleflight.Group // one registry lookup per unknown id at a time

	mu      sync.RWMutex
	writers map[writerKey]*writerSchema // the other ids met or added; guarded by mu
}

// writerKey names an earlier schema: its id, as read as a record type.
type writerKey struct {
	kind Kind
	id   uint32
}

// writerSchema reads records written with a schema other than the Codec's
// current one as the current schema of a kind. Read-only once built.
type writerSchema struct {
	text    string        // the writer schema's JSON
	codec   *goavro.Codec // decodes with the writer schema
	shape   *shape        // checks data of the writer schema
	resolve resolver      // writer's native form to the reader's; nil: the same
	err     error         // non-nil: the id does not decode as this kind (cached)
}

// headerLen is the size of the Confluent framing: magic byte 0, then the
// schema id as 4 big-endian bytes.
const headerLen = 5

// Names goavro gives the non-null branches of the schemas' unions.
const (
	unionString       = "string"
	unionLong         = "long"
	unionBoolean      = "boolean"
	unionMillis       = "long.timestamp-millis"
	unionConversation = "wastatus.v1.Conversation"
	unionPricing      = "wastatus.v1.Pricing"
)

// NewCodec compiles both embedded schemas once, for the fixed-id world (no
// schema registry; see NewRegistryCodec for one). It fails with ErrSchemaID
// when both record types would share an id.
func NewCodec(ids IDs) (*Codec, error) {
	if ids.StatusEvent == 0 {
		ids.StatusEvent = StatusEventSchemaID
	}
	if ids.MessageStatus == 0 {
		ids.MessageStatus = MessageStatusSchemaID
	}
	if ids.StatusEvent == ids.MessageStatus {
		return nil, fmt.Errorf("%w: StatusEvent and MessageStatus both use id %d", ErrSchemaID, ids.StatusEvent)
	}
	c := &Codec{ids: ids, strs: new(interner), writers: map[writerKey]*writerSchema{}}
	var err error
	if c.eventType, err = parseSchema(statusEventAVSC); err != nil {
		return nil, fmt.Errorf("schemas: parse status_event.avsc: %w", err)
	}
	if c.statusType, err = parseSchema(messageStatusAVSC); err != nil {
		return nil, fmt.Errorf("schemas: parse message_status.avsc: %w", err)
	}
	return c, nil
}

// AddWriterSchema makes the Codec read records framed with id as records of
// kind written with schema, an earlier version of that kind's schema (its
// Avro JSON text): it is how the fixed-id world, without a registry, reads
// data written before a schema changed. With a registry there is no need:
// an unknown id is looked up there.
//
// It fails with ErrSchemaID when id is 0, one of the Codec's own ids, or
// already added with another schema, and with ErrIncompatible when schema
// is not valid Avro or cannot be read as the current schema of kind (the
// detail says why). Adding the same schema under the same id again is a
// no-op.
func (c *Codec) AddWriterSchema(id uint32, kind Kind, schema string) error {
	if err := c.checkWriterID(id, kind); err != nil {
		return err
	}
	w, err := c.compileWriter(kind, schema)
	if err != nil {
		return fmt.Errorf("schemas: writer schema %d: %w", id, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range []Kind{KindStatusEvent, KindMessageStatus} {
		if old := c.writers[writerKey{k, id}]; old != nil && old.err == nil && !sameSchemaText(old.text, schema) {
			return fmt.Errorf("%w: %d was added with another %s schema", ErrSchemaID, id, k)
		}
	}
	c.writers[writerKey{kind, id}] = w
	return nil
}

// checkWriterID refuses an id that cannot name an earlier schema of kind.
func (c *Codec) checkWriterID(id uint32, kind Kind) error {
	switch {
	case kind != KindStatusEvent && kind != KindMessageStatus:
		return fmt.Errorf("%w: %v is not a record type", ErrIncompatible, kind)
	case id == 0:
		return fmt.Errorf("%w: 0 is not a schema id", ErrSchemaID)
	case id == c.ids.StatusEvent:
		return fmt.Errorf("%w: %d is the current StatusEvent schema", ErrSchemaID, id)
	case id == c.ids.MessageStatus:
		return fmt.Errorf("%w: %d is the current MessageStatus schema", ErrSchemaID, id)
	}
	return nil
}

// compileWriter builds what reads data of writer schema text as kind. Its
// errors wrap ErrIncompatible.
func (c *Codec) compileWriter(kind Kind, text string) (*writerSchema, error) {
	codec, err := goavro.NewCodec(text)
	if err != nil {
		return nil, fmt.Errorf("%w: not a valid Avro schema: %w", ErrIncompatible, err)
	}
	t, err := parseSchema(text)
	if err != nil {
		return nil, fmt.Errorf("%w: not a valid Avro schema: %w", ErrIncompatible, err)
	}
	reader := c.eventType
	if kind == KindMessageStatus {
		reader = c.statusType
	}
	res, err := compileResolver(t, reader)
	if err != nil {
		return nil, fmt.Errorf("%w: cannot be read as %s: %w", ErrIncompatible, kind, err)
	}
	return &writerSchema{text: text, codec: codec, shape: shapeOf(t, map[*avroType]*shape{}), resolve: res}, nil
}

// writer returns what reads records framed with id, an id other than the
// Codec's own for kind: one added or met before, else one looked up in the
// registry.
func (c *Codec) writer(ctx context.Context, kind Kind, id uint32) (*writerSchema, error) {
	key := writerKey{kind, id}
	c.mu.RLock()
	w := c.writers[key]
	c.mu.RUnlock()
	switch {
	case w != nil && w.err != nil:
		return nil, w.err
	case w != nil:
		return w, nil
	case id == c.ids.StatusEvent || id == c.ids.MessageStatus:
		other := KindStatusEvent
		if kind == KindStatusEvent {
			other = KindMessageStatus
		}
		return nil, fmt.Errorf("%w: %d is the %s schema, not a %s one", ErrSchemaID, id, other, kind)
	case c.registry == nil:
		return nil, fmt.Errorf("%w: %d is not a known %s schema (want %d)", ErrSchemaID, id, kind, c.ownID(kind))
	case id == 0 || id > math.MaxInt32:
		return nil, fmt.Errorf("%w: %d cannot be a schema registry id", ErrSchemaID, id)
	}
	return c.lookup(ctx, key)
}

func (c *Codec) ownID(kind Kind) uint32 {
	if kind == KindMessageStatus {
		return c.ids.MessageStatus
	}
	return c.ids.StatusEvent
}

// IDs returns the schema ids in use, defaults filled in.
func (c *Codec) IDs() IDs { return c.ids }

// AppendStatusEvent appends ev in the Confluent wire format (0x00, the 4-byte
// big-endian StatusEvent schema id, the Avro binary record) to dst and
// returns the extended slice. On error it returns dst unchanged.
func (c *Codec) AppendStatusEvent(dst []byte, ev *StatusEvent) ([]byte, error) {
	if ev == nil {
		return dst, fmt.Errorf("%w: nil *StatusEvent", ErrEncode)
	}
	out := appendHeader(dst, c.ids.StatusEvent, statusEventSize(ev))
	return appendStatusEvent(out, ev), nil
}

// AppendMessageStatus appends m in the Confluent wire format with the
// MessageStatus schema id to dst and returns the extended slice. On error it
// returns dst unchanged.
func (c *Codec) AppendMessageStatus(dst []byte, m *MessageStatus) ([]byte, error) {
	if m == nil {
		return dst, fmt.Errorf("%w: nil *MessageStatus", ErrEncode)
	}
	out := appendHeader(dst, c.ids.MessageStatus, messageStatusSize(m))
	return appendMessageStatus(out, m), nil
}

// appendHeader appends the Confluent header to dst, growing dst at most once
// for a record of about size bytes after it.
func appendHeader(dst []byte, id uint32, size int) []byte {
	out := slices.Grow(dst, headerLen+size)
	return binary.BigEndian.AppendUint32(append(out, 0), id)
}

// DecodeStatusEvent decodes one StatusEvent value: DecodeStatusEventContext
// without a context (a registry lookup, rare, is then bounded by the
// sr.Client's HTTP timeout only).
func (c *Codec) DecodeStatusEvent(b []byte) (StatusEvent, error) {
	return c.DecodeStatusEventContext(context.Background(), b)
}

// DecodeStatusEventContext decodes one StatusEvent value written with the
// current schema or, by schema resolution, with an earlier one (an id added
// with AddWriterSchema, or found in the registry; ctx bounds that lookup).
// Every error wraps exactly one of ErrFraming (short, or not magic byte 0),
// ErrSchemaID (an id that does not name a StatusEvent schema this Codec can
// read), ErrDecode (not exactly one valid record of the writer schema) and
// ErrRegistry (the registry could not be asked about a new id: the record
// may be fine, so retry rather than dead-letter it). The result shares no
// memory with b. Empty Errors and Raw decode as nil.
func (c *Codec) DecodeStatusEventContext(ctx context.Context, b []byte) (StatusEvent, error) {
	return c.decodeStatusEvent(ctx, b, true)
}

// DecodeStatusEventNoRaw decodes as DecodeStatusEventContext does, but leaves
// Raw nil: for readers that fold events and never hand their JSON on, as the
// processor does. Copying it was most of the bytes a decode allocated.
func (c *Codec) DecodeStatusEventNoRaw(ctx context.Context, b []byte) (StatusEvent, error) {
	return c.decodeStatusEvent(ctx, b, false)
}

func (c *Codec) decodeStatusEvent(ctx context.Context, b []byte, raw bool) (StatusEvent, error) {
	id, payload, err := frame(b)
	if err != nil {
		return StatusEvent{}, err
	}
	if id == c.ids.StatusEvent {
		ev, err := decodeStatusEvent(payload, c.strs, raw)
		if err != nil {
			return StatusEvent{}, fmt.Errorf("%w: %w", ErrDecode, err)
		}
		return ev, nil
	}
	native, err := c.decodeWritten(ctx, KindStatusEvent, id, payload)
	if err != nil {
		return StatusEvent{}, err
	}
	ev, err := statusEventOfNative(native)
	if !raw {
		ev.Raw = nil
	}
	return ev, err
}

// DecodeMessageStatus decodes one MessageStatus value:
// DecodeMessageStatusContext without a context.
func (c *Codec) DecodeMessageStatus(b []byte) (MessageStatus, error) {
	return c.DecodeMessageStatusContext(context.Background(), b)
}

// DecodeMessageStatusContext decodes one MessageStatus value, as
// DecodeStatusEventContext does a StatusEvent, with its errors. Empty Errors,
// Participants and Sources decode as nil.
func (c *Codec) DecodeMessageStatusContext(ctx context.Context, b []byte) (MessageStatus, error) {
	id, payload, err := frame(b)
	if err != nil {
		return MessageStatus{}, err
	}
	if id == c.ids.MessageStatus {
		m, err := decodeMessageStatus(payload, c.strs)
		if err != nil {
			return MessageStatus{}, fmt.Errorf("%w: %w", ErrDecode, err)
		}
		return m, nil
	}
	native, err := c.decodeWritten(ctx, KindMessageStatus, id, payload)
	if err != nil {
		return MessageStatus{}, err
	}
	return messageStatusOfNative(native)
}

// frame splits a value in the Confluent wire format into its schema id and
// the Avro record after the header.
func frame(b []byte) (uint32, []byte, error) {
	if len(b) < headerLen {
		return 0, nil, fmt.Errorf("%w: %d bytes, need at least %d", ErrFraming, len(b), headerLen)
	}
	if b[0] != 0 {
		return 0, nil, fmt.Errorf("%w: magic byte %#x, want 0", ErrFraming, b[0])
	}
	return binary.BigEndian.Uint32(b[1:headerLen]), b[headerLen:], nil
}

// decodeWritten decodes payload, framed with id, an id other than the
// Codec's own for kind, into the current schema's native form: with the
// writer schema of id, then resolved.
func (c *Codec) decodeWritten(ctx context.Context, kind Kind, id uint32, payload []byte) (map[string]any, error) {
	w, err := c.writer(ctx, kind, id)
	if err != nil {
		return nil, err
	}
	return w.native(payload)
}

// native decodes payload, one record of w's schema, with goavro after the
// structural check, and resolves it into the current schema's native form.
// Its errors wrap ErrDecode.
func (w *writerSchema) native(payload []byte) (map[string]any, error) {
	if err := w.shape.check(payload); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDecode, err)
	}
	native, _, err := w.codec.NativeFromBinary(payload)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDecode, err)
	}
	if w.resolve != nil {
		if native, err = w.resolve(native); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrDecode, err)
		}
	}
	m, ok := native.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: record decoded as %T", ErrDecode, native)
	}
	return m, nil
}

// statusEventSize estimates the Avro size of ev, so that dst grows once.
func statusEventSize(ev *StatusEvent) int {
	n := 64 + len(ev.WAMID) + len(ev.Status) + len(ev.RecipientID) + len(ev.RecipientUserID) +
		len(ev.ParentUserID) + len(ev.RecipientType) + len(ev.RecipientParticipantID) +
		len(ev.BizOpaqueCallbackData) + len(ev.PhoneNumberID) + len(ev.DisplayPhoneNumber) +
		len(ev.WABAID) + len(ev.Region) + len(ev.Raw)
	return n + conversationSize(ev.Conversation) + pricingSize(ev.Pricing) + errorsSize(ev.Errors)
}

// messageStatusSize estimates the Avro size of m, so that dst grows once.
func messageStatusSize(m *MessageStatus) int {
	n := 96 + len(m.WAMID) + len(m.Status) + len(m.RecipientID) + len(m.RecipientUserID) +
		len(m.ParentUserID) + len(m.RecipientType) + len(m.BizOpaqueCallbackData) +
		len(m.PhoneNumberID) + len(m.DisplayPhoneNumber) + len(m.WABAID)
	for i := range m.Participants {
		n += 32 + len(m.Participants[i].ID) + len(m.Participants[i].Status)
	}
	for i := range m.Sources {
		n += 12 + len(m.Sources[i].Attribute) + len(m.Sources[i].Status)
	}
	return n + conversationSize(m.Conversation) + pricingSize(m.Pricing) + errorsSize(m.Errors)
}

func conversationSize(c *Conversation) int {
	if c == nil {
		return 0
	}
	return 16 + len(c.ID) + len(c.OriginType)
}

func pricingSize(p *Pricing) int {
	if p == nil {
		return 0
	}
	return 16 + len(p.PricingModel) + len(p.Type) + len(p.Category)
}

func errorsSize(errs []Error) int {
	n := 0
	for i := range errs {
		e := &errs[i]
		n += 24 + len(e.Title) + len(e.Message) + len(e.Details) + len(e.Href)
	}
	return n
}

// goavro's native form back to typed structs. goavro returns unions as nil or
// a one-entry map keyed by the branch's type name, longs as int64 and
// timestamp-millis as time.Time.

// nativeReader reads fields of a decoded native map, keeping the first
// mismatch. A mismatch would mean goavro's native form changed; it is
// reported as ErrDecode rather than a panic.
type nativeReader struct{ err error }

func (r *nativeReader) fail(key string, v any) {
	if r.err == nil {
		r.err = fmt.Errorf("field %q decoded as %T", key, v)
	}
}

func (r *nativeReader) str(m map[string]any, key string) string {
	s, ok := m[key].(string)
	if !ok {
		r.fail(key, m[key])
	}
	return s
}

func (r *nativeReader) long(m map[string]any, key string) int64 {
	n, ok := m[key].(int64)
	if !ok {
		r.fail(key, m[key])
	}
	return n
}

func (r *nativeReader) bytes(m map[string]any, key string) []byte {
	b, ok := m[key].([]byte)
	if !ok {
		r.fail(key, m[key])
	}
	if len(b) == 0 {
		return nil
	}
	// goavro returns a slice of the input buffer; the result must not alias it.
	return append([]byte(nil), b...)
}

func (r *nativeReader) millis(m map[string]any, key string) int64 {
	t, ok := m[key].(time.Time)
	if !ok {
		r.fail(key, m[key])
	}
	return unixMillis(t)
}

// unixMillis inverts goavro's time.Unix(ms/1e3, ms%1e3*1e6) exactly, for every
// int64 (the multiplication may wrap; the sum wraps back).
func unixMillis(t time.Time) int64 {
	return t.Unix()*1e3 + int64(t.Nanosecond())/1e6
}

// union returns the value of a union field's branch, or nil for null.
func (r *nativeReader) union(m map[string]any, key, branch string) any {
	v := m[key]
	if v == nil {
		return nil
	}
	u, ok := v.(map[string]any)
	if !ok {
		r.fail(key, v)
		return nil
	}
	b, ok := u[branch]
	if !ok || len(u) != 1 {
		r.fail(key, v)
		return nil
	}
	return b
}

func (r *nativeReader) optStr(m map[string]any, key string) string {
	v := r.union(m, key, unionString)
	if v == nil {
		return ""
	}
	s, ok := v.(string)
	if !ok {
		r.fail(key, v)
	}
	return s
}

func (r *nativeReader) optLong(m map[string]any, key string) int64 {
	v := r.union(m, key, unionLong)
	if v == nil {
		return 0
	}
	n, ok := v.(int64)
	if !ok {
		r.fail(key, v)
	}
	return n
}

func (r *nativeReader) optMillis(m map[string]any, key string) int64 {
	v := r.union(m, key, unionMillis)
	if v == nil {
		return 0
	}
	t, ok := v.(time.Time)
	if !ok {
		r.fail(key, v)
	}
	return unixMillis(t)
}

func (r *nativeReader) records(m map[string]any, key string) []map[string]any {
	v, ok := m[key].([]any)
	if !ok {
		r.fail(key, m[key])
		return nil
	}
	if len(v) == 0 {
		return nil
	}
	out := make([]map[string]any, len(v))
	for i, item := range v {
		if out[i], ok = item.(map[string]any); !ok {
			r.fail(key, item)
			return nil
		}
	}
	return out
}

func (r *nativeReader) conversation(m map[string]any) *Conversation {
	v := r.union(m, "conversation", unionConversation)
	if v == nil {
		return nil
	}
	cm, ok := v.(map[string]any)
	if !ok {
		r.fail("conversation", v)
		return nil
	}
	return &Conversation{
		ID:                  r.str(cm, "id"),
		ExpirationTimestamp: r.optLong(cm, "expiration_timestamp"),
		OriginType:          r.optStr(cm, "origin_type"),
	}
}

func (r *nativeReader) pricing(m map[string]any) *Pricing {
	v := r.union(m, "pricing", unionPricing)
	if v == nil {
		return nil
	}
	pm, ok := v.(map[string]any)
	if !ok {
		r.fail("pricing", v)
		return nil
	}
	p := &Pricing{
		PricingModel: r.optStr(pm, "pricing_model"),
		Type:         r.optStr(pm, "type"),
		Category:     r.optStr(pm, "category"),
	}
	if b := r.union(pm, "billable", unionBoolean); b != nil {
		billable, ok := b.(bool)
		if !ok {
			r.fail("billable", b)
		}
		p.Billable = &billable
	}
	return p
}

func (r *nativeReader) errors(m map[string]any) []Error {
	items := r.records(m, "errors")
	if len(items) == 0 {
		return nil
	}
	errs := make([]Error, len(items))
	for i, em := range items {
		errs[i] = Error{
			Code:    r.long(em, "code"),
			Title:   r.optStr(em, "title"),
			Message: r.optStr(em, "message"),
			Details: r.optStr(em, "details"),
			Href:    r.optStr(em, "href"),
		}
	}
	return errs
}

// statusEventOfNative converts the current schema's native form to a
// StatusEvent. Its errors wrap ErrDecode.
func statusEventOfNative(native map[string]any) (StatusEvent, error) {
	r := nativeReader{}
	ev := statusEventFromNative(&r, native)
	if r.err != nil {
		return StatusEvent{}, fmt.Errorf("%w: %w", ErrDecode, r.err)
	}
	return ev, nil
}

// messageStatusOfNative converts the current schema's native form to a
// MessageStatus. Its errors wrap ErrDecode.
func messageStatusOfNative(native map[string]any) (MessageStatus, error) {
	r := nativeReader{}
	m := messageStatusFromNative(&r, native)
	if r.err != nil {
		return MessageStatus{}, fmt.Errorf("%w: %w", ErrDecode, r.err)
	}
	return m, nil
}

func statusEventFromNative(r *nativeReader, m map[string]any) StatusEvent {
	return StatusEvent{
		WAMID:                  r.str(m, "wamid"),
		Status:                 r.str(m, "status"),
		Timestamp:              r.long(m, "timestamp"),
		RecipientID:            r.optStr(m, "recipient_id"),
		RecipientUserID:        r.optStr(m, "recipient_user_id"),
		ParentUserID:           r.optStr(m, "parent_user_id"),
		RecipientType:          r.optStr(m, "recipient_type"),
		RecipientParticipantID: r.optStr(m, "recipient_participant_id"),
		Conversation:           r.conversation(m),
		Pricing:                r.pricing(m),
		Errors:                 r.errors(m),
		BizOpaqueCallbackData:  r.optStr(m, "biz_opaque_callback_data"),
		PhoneNumberID:          r.optStr(m, "phone_number_id"),
		DisplayPhoneNumber:     r.optStr(m, "display_phone_number"),
		WABAID:                 r.optStr(m, "waba_id"),
		Region:                 r.str(m, "region"),
		ReceivedAt:             r.millis(m, "received_at"),
		Raw:                    r.bytes(m, "raw"),
	}
}

func messageStatusFromNative(r *nativeReader, m map[string]any) MessageStatus {
	s := MessageStatus{
		WAMID:                 r.str(m, "wamid"),
		Status:                r.str(m, "status"),
		SentAt:                r.optLong(m, "sent_at"),
		DeliveredAt:           r.optLong(m, "delivered_at"),
		ReadAt:                r.optLong(m, "read_at"),
		PlayedAt:              r.optLong(m, "played_at"),
		FailedAt:              r.optLong(m, "failed_at"),
		RecipientID:           r.optStr(m, "recipient_id"),
		RecipientUserID:       r.optStr(m, "recipient_user_id"),
		ParentUserID:          r.optStr(m, "parent_user_id"),
		RecipientType:         r.optStr(m, "recipient_type"),
		Conversation:          r.conversation(m),
		Pricing:               r.pricing(m),
		Errors:                r.errors(m),
		BizOpaqueCallbackData: r.optStr(m, "biz_opaque_callback_data"),
		PhoneNumberID:         r.optStr(m, "phone_number_id"),
		DisplayPhoneNumber:    r.optStr(m, "display_phone_number"),
		WABAID:                r.optStr(m, "waba_id"),
		FirstReceivedAt:       r.optMillis(m, "first_received_at"),
	}
	if ps := r.records(m, "participants"); len(ps) > 0 {
		s.Participants = make([]Participant, len(ps))
		for i, pm := range ps {
			s.Participants[i] = Participant{
				ID:          r.str(pm, "id"),
				Status:      r.str(pm, "status"),
				SentAt:      r.optLong(pm, "sent_at"),
				DeliveredAt: r.optLong(pm, "delivered_at"),
				ReadAt:      r.optLong(pm, "read_at"),
				PlayedAt:    r.optLong(pm, "played_at"),
				FailedAt:    r.optLong(pm, "failed_at"),
			}
		}
	}
	if ss := r.records(m, "sources"); len(ss) > 0 {
		s.Sources = make([]AttributeSource, len(ss))
		for i, sm := range ss {
			s.Sources[i] = AttributeSource{
				Attribute: r.str(sm, "attribute"),
				Status:    r.str(sm, "status"),
				Timestamp: r.long(sm, "timestamp"),
			}
		}
	}
	return s
}
