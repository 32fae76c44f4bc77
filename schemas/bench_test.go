package schemas

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
)

// benchEvent is a typical event: the sample sent status with conversation and
// pricing, as the edge writes it.
func benchEvent(b testing.TB) StatusEvent {
	b.Helper()
	w, err := ParseWebhook(readTestdata(b, "sent_with_conversation_and_pricing.json"), testRegion, testReceivedAt)
	if err != nil || len(w.Events) != 1 {
		b.Fatalf("ParseWebhook: %v", err)
	}
	return w.Events[0]
}

// benchMessageStatus is a typical folded one-to-one message.
func benchMessageStatus() MessageStatus {
	return MessageStatus{
		WAMID: wamidSample, Status: "read", SentAt: 1750030073, DeliveredAt: 1750030073, ReadAt: 1750030075,
		RecipientID:   "16505551234",
		Conversation:  &Conversation{ID: "72b14d6bd5407799e66f64d1b338e567", ExpirationTimestamp: 1750116480, OriginType: "marketing"},
		Pricing:       &Pricing{Billable: ptr(true), PricingModel: "PMP", Type: "regular", Category: "marketing"},
		PhoneNumberID: "106540352242922", DisplayPhoneNumber: "15550783881", WABAID: "102290129340398",
		FirstReceivedAt: testReceivedAt,
		Sources: []AttributeSource{
			{Attribute: "conversation", Status: "sent", Timestamp: 1750030073},
			{Attribute: "metadata", Status: "read", Timestamp: 1750030075},
			{Attribute: "pricing", Status: "sent", Timestamp: 1750030073},
			{Attribute: "recipient", Status: "read", Timestamp: 1750030075},
		},
	}
}

func BenchmarkParseWebhook(b *testing.B) {
	const status = `{"id":"wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA=","status":"delivered","timestamp":"1750030073","recipient_id":"16505551234"}`
	bodies := []struct {
		name string
		body []byte
	}{
		{"sample", readTestdata(b, "sent_with_conversation_and_pricing.json")},
		{"several", readTestdata(b, "several_statuses.json")},
		{"1000-statuses", envelope(strings.TrimSuffix(strings.Repeat(status+",", 1000), ","))},
	}
	for _, bb := range bodies {
		b.Run(bb.name, func(b *testing.B) {
			b.SetBytes(int64(len(bb.body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ParseWebhook(bb.body, testRegion, testReceivedAt); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// The codec benchmarks run each record through both paths in one run: /fast
// is the Codec (the hand-written codec of avrobinary.go), /goavro the same
// framing through goavro's native maps, as the Codec did before. Compare
// them with, for example,
//
//	go test -run '^$' -bench 'Code|Decode|Encode' -benchmem ./schemas/

func BenchmarkEncodeStatusEvent(b *testing.B) {
	c := newOracle(b)
	ev := benchEvent(b)
	benchEncode(b, map[string]func([]byte) ([]byte, error){
		"fast":   func(dst []byte) ([]byte, error) { return c.AppendStatusEvent(dst, &ev) },
		"goavro": func(dst []byte) ([]byte, error) { return c.goavroAppendStatusEvent(dst, &ev) },
	})
}

func BenchmarkDecodeStatusEvent(b *testing.B) {
	c := newOracle(b)
	ev := benchEvent(b)
	buf, err := c.AppendStatusEvent(nil, &ev)
	if err != nil {
		b.Fatal(err)
	}
	benchDecode(b, buf, map[string]func([]byte) error{
		"fast": func(v []byte) error {
			_, err := c.DecodeStatusEvent(v)
			return err
		},
		"fast-noraw": func(v []byte) error {
			_, err := c.DecodeStatusEventNoRaw(context.Background(), v)
			return err
		},
		"goavro": func(v []byte) error {
			_, err := c.goavroDecodeStatusEvent(v)
			return err
		},
	})
}

// BenchmarkDecodeStatusEventRegions decodes the sample event as three
// regions' edges wrote it, interleaved, as a processor's partition reads
// them: the interner must keep all three regions.
func BenchmarkDecodeStatusEventRegions(b *testing.B) {
	c := newOracle(b)
	ev := benchEvent(b)
	var bufs [][]byte
	for _, region := range []string{"eu-west-1", "us-east-1", "ap-south-1"} {
		ev.Region = region
		buf, err := c.AppendStatusEvent(nil, &ev)
		if err != nil {
			b.Fatal(err)
		}
		bufs = append(bufs, buf)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := c.DecodeStatusEventNoRaw(context.Background(), bufs[i%len(bufs)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkEncodeMessageStatus(b *testing.B) {
	c := newOracle(b)
	m := benchMessageStatus()
	benchEncode(b, map[string]func([]byte) ([]byte, error){
		"fast":   func(dst []byte) ([]byte, error) { return c.AppendMessageStatus(dst, &m) },
		"goavro": func(dst []byte) ([]byte, error) { return c.goavroAppendMessageStatus(dst, &m) },
	})
}

func BenchmarkDecodeMessageStatus(b *testing.B) {
	c := newOracle(b)
	m := benchMessageStatus()
	buf, err := c.AppendMessageStatus(nil, &m)
	if err != nil {
		b.Fatal(err)
	}
	benchDecode(b, buf, map[string]func([]byte) error{
		"fast": func(v []byte) error {
			_, err := c.DecodeMessageStatus(v)
			return err
		},
		"goavro": func(v []byte) error {
			_, err := c.goavroDecodeMessageStatus(v)
			return err
		},
	})
}

// benchEncode runs each encoder as a sub-benchmark, appending to a reused
// buffer, in name order.
func benchEncode(b *testing.B, encoders map[string]func([]byte) ([]byte, error)) {
	for _, name := range slices.Sorted(maps.Keys(encoders)) {
		encode := encoders[name]
		b.Run(name, func(b *testing.B) {
			buf, err := encode(nil)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(buf)))
			b.ReportAllocs()
			for b.Loop() {
				if buf, err = encode(buf[:0]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// benchDecode runs each decoder of v as a sub-benchmark.
func benchDecode(b *testing.B, v []byte, decoders map[string]func([]byte) error) {
	for _, name := range slices.Sorted(maps.Keys(decoders)) {
		decode := decoders[name]
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(v)))
			b.ReportAllocs()
			for b.Loop() {
				if err := decode(v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// The structural check alone: its share of a decode.
func BenchmarkCheckStatusEvent(b *testing.B) {
	c := newOracle(b)
	ev := benchEvent(b)
	buf, err := c.AppendStatusEvent(nil, &ev)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := c.event.shape.check(buf[headerLen:]); err != nil {
			b.Fatal(fmt.Sprint(err))
		}
	}
}

// A record of the previous schema: decoded with it, then resolved.
func BenchmarkDecodeEarlierStatusEvent(b *testing.B) {
	c := newV1Codec(b)
	v := encodeWith(b, readSchema(b, "status_event.v1.avsc"), v1StatusEventID, v1StatusEvents()[1].native)
	b.SetBytes(int64(len(v)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.DecodeStatusEvent(v); err != nil {
			b.Fatal(err)
		}
	}
}
