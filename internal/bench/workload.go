package bench

import (
	"strconv"
	"time"

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

// eventRecord builds the events-topic record an edge in a's region would
// write for a: the same Avro value and region header, without the HTTP
// round trip. The edge's own parser reads the status JSON, so the fields
// are exactly the edge's.
func eventRecord(codec *schemas.Codec, topic string, a *gen.Arrival, now time.Time, scratch []byte) (*kgo.Record, []byte, error) {
	scratch = appendWebhook(scratch[:0], a)
	wh, err := schemas.ParseWebhook(scratch, a.Region, now.UnixMilli())
	if err != nil {
		return nil, scratch, err
	}
	if len(wh.Events) != 1 {
		return nil, scratch, errEventCount(len(wh.Events))
	}
	val, err := codec.AppendStatusEvent(nil, &wh.Events[0])
	if err != nil {
		return nil, scratch, err
	}
	return &kgo.Record{
		Topic:   topic,
		Key:     []byte(a.WAMID),
		Value:   val,
		Headers: []kgo.RecordHeader{{Key: edge.HeaderRegion, Value: []byte(a.Region)}},
	}, scratch, nil
}
