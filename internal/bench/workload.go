package bench

import (
	"fmt"
	"strconv"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wastatus/wastatus/edge"
	"github.com/wastatus/wastatus/internal/gen"
	"github.com/wastatus/wastatus/schemas"
)

// The envelope ids of every generated webhook.
const (
	wabaID             = "102290129340398"
	phoneNumberID      = "106540352242922"
	displayPhoneNumber = "15550783881"
)

func (b *Bench) stream(events int) *gen.Stream {
	c := b.cfg
	return gen.NewStream(gen.StreamOptions{
		Messages:  b.messages(events),
		Events:    events,
		DupRate:   c.DupRate,
		LateRate:  c.LateRate,
		GroupRate: c.GroupRate,
		Seed:      c.Seed,
	})
}

// messages is how many distinct messages a workload of events is about.
func (b *Bench) messages(events int) int {
	if b.cfg.Messages > 0 {
		return b.cfg.Messages
	}
	return max(events/5, 1)
}

// appendStatusJSON appends a's status object as Meta sends it. A sent
// status carries conversation and pricing, as Meta's do, so records have
// their real size.
func appendStatusJSON(dst []byte, a *gen.Arrival) []byte {
	dst = append(dst, `{"id":"`...)
	dst = append(dst, a.WAMID...)
	dst = append(dst, `","status":"`...)
	dst = append(dst, a.Status.Status...)
	dst = append(dst, `","timestamp":"`...)
	dst = strconv.AppendInt(dst, a.Timestamp, 10)
	dst = append(dst, `","recipient_id":"`...)
	dst = append(dst, a.RecipientID...)
	dst = append(dst, '"')
	if a.Participant != "" {
		dst = append(dst, `,"recipient_type":"group","recipient_participant_id":"`...)
		dst = append(dst, a.Participant...)
		dst = append(dst, '"')
	}
	if a.Status.Status == "sent" {
		dst = append(dst, `,"conversation":{"id":"CONVERSATION_ID","expiration_timestamp":"`...)
		dst = strconv.AppendInt(dst, a.Timestamp+86400, 10)
		dst = append(dst, `","origin":{"type":"marketing"}},"pricing":{"billable":true,"pricing_model":"PMP","category":"marketing","type":"regular"}`...)
	}
	if a.Status.Status == "failed" {
		dst = append(dst, `,"errors":[{"code":131026,"title":"Message undeliverable","message":"Message undeliverable","error_data":{"details":"Message could not be delivered"}}]`...)
	}
	return append(dst, '}')
}

// appendWebhook appends a webhook POST body carrying one status, in Meta's
// shape.
func appendWebhook(dst []byte, a *gen.Arrival) []byte {
	dst = append(dst, `{"object":"whatsapp_business_account","entry":[{"id":"`+wabaID+`","changes":[{"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"`+displayPhoneNumber+`","phone_number_id":"`+phoneNumberID+`"},"statuses":[`...)
	dst = appendStatusJSON(dst, a)
	return append(dst, `]},"field":"messages"}]}]}`...)
}

// Fields of the status objects appendStatusJSON writes beyond the arrival's
// own: what statusEvent sets for them must be what ParseWebhook reads.
const (
	conversationID     = "CONVERSATION_ID"
	conversationOrigin = "marketing"
	conversationTTL    = 86400
	pricingModel       = "PMP"
	pricingCategory    = "marketing"
	pricingType        = "regular"
	failedCode         = 131026
	failedTitle        = "Message undeliverable"
	failedMessage      = "Message undeliverable"
	failedDetails      = "Message could not be delivered"
	groupRecipientType = "group"
	statusSent         = "sent"
	statusFailed       = "failed"
)

// statusEvent is the event the edge makes of a's webhook (appendWebhook)
// received at receivedAt (unix milliseconds), built from a's fields rather
// than parsed: parsing costs twenty times what building does
// (BenchmarkPreloadRecord), and held a 30M-event preload to ~25k events/s. raw must be appendStatusJSON's bytes
// for a; billable is the value pricing.billable points to. A test holds
// this to ParseWebhook's result.
func statusEvent(a *gen.Arrival, receivedAt int64, raw []byte, billable *bool) schemas.StatusEvent {
	ev := schemas.StatusEvent{
		WAMID:              a.WAMID,
		Status:             a.Status.Status,
		Timestamp:          a.Timestamp,
		RecipientID:        a.RecipientID,
		PhoneNumberID:      phoneNumberID,
		DisplayPhoneNumber: displayPhoneNumber,
		WABAID:             wabaID,
		Region:             a.Region,
		ReceivedAt:         receivedAt,
		Raw:                raw,
	}
	if a.Participant != "" {
		ev.RecipientType = groupRecipientType
		ev.RecipientParticipantID = a.Participant
	}
	switch a.Status.Status {
	case statusSent:
		ev.Conversation = &schemas.Conversation{ID: conversationID, ExpirationTimestamp: a.Timestamp + conversationTTL, OriginType: conversationOrigin}
		ev.Pricing = &schemas.Pricing{Billable: billable, PricingModel: pricingModel, Type: pricingType, Category: pricingCategory}
	case statusFailed:
		ev.Errors = []schemas.Error{{Code: failedCode, Title: failedTitle, Message: failedMessage, Details: failedDetails}}
	}
	return ev
}

// Sizes of recordBuilder's slabs: records and key/value bytes are cut from
// them so that a record costs no allocation of its own; a slab is freed when
// the last record cut from it is acked and dropped.
const (
	recordSlab = 4096
	byteSlab   = 1 << 20
)

// recordBuilder makes the events-topic records an edge in each arrival's
// region would write: the same key, Avro value and region header (one
// shared, read-only header slice per region, as the edge shares its own).
// Not safe for concurrent use; the records it returns are.
type recordBuilder struct {
	codec    *schemas.Codec
	topic    string
	headers  map[string][]kgo.RecordHeader
	billable bool
	raw      []byte       // the status JSON, reused: it is in the value
	recs     []kgo.Record // the rest of the current record slab
	buf      []byte       // the current byte slab; records own buf[:len(buf)]
}

func newRecordBuilder(codec *schemas.Codec, topic string) *recordBuilder {
	return &recordBuilder{codec: codec, topic: topic, headers: make(map[string][]kgo.RecordHeader), billable: true}
}

// record returns the record for a, received at receivedAt (unix
// milliseconds).
func (rb *recordBuilder) record(a *gen.Arrival, receivedAt int64) (*kgo.Record, error) {
	rb.raw = appendStatusJSON(rb.raw[:0], a)
	ev := statusEvent(a, receivedAt, rb.raw, &rb.billable)
	// The value is about the raw JSON plus its fields again; a slab with
	// less room left than twice that is retired rather than regrown under
	// the records already cut from it.
	if need := len(a.WAMID) + 2*len(rb.raw) + 256; cap(rb.buf)-len(rb.buf) < need {
		rb.buf = make([]byte, 0, max(byteSlab, need))
	}
	start := len(rb.buf)
	buf := append(rb.buf, a.WAMID...)
	mid := len(buf)
	buf, err := rb.codec.AppendStatusEvent(buf, &ev)
	if err != nil {
		return nil, fmt.Errorf("bench: encode event: %w", err)
	}
	if len(rb.recs) == 0 {
		rb.recs = make([]kgo.Record, recordSlab)
	}
	rec := &rb.recs[0]
	rb.recs = rb.recs[1:]
	rec.Topic = rb.topic
	rec.Key = buf[start:mid:mid]
	rec.Value = buf[mid:len(buf):len(buf)]
	rec.Headers = rb.regionHeaders(a.Region)
	rb.buf = buf
	return rec, nil
}

func (rb *recordBuilder) regionHeaders(region string) []kgo.RecordHeader {
	hs, ok := rb.headers[region]
	if !ok {
		hs = []kgo.RecordHeader{{Key: edge.HeaderRegion, Value: []byte(region)}}
		rb.headers[region] = hs
	}
	return hs
}
