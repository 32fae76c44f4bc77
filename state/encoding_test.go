package state

import (
	"bytes"
	"encoding"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/wastatus/wastatus/schemas"
)

var (
	_ encoding.BinaryAppender    = (*Message)(nil)
	_ encoding.BinaryMarshaler   = (*Message)(nil)
	_ encoding.BinaryUnmarshaler = (*Message)(nil)
)

// TestEncodingGolden pins version 1 of the encoding: a change here must come
// with a new encodingVersion (and a format version if stored data changes).
func TestEncodingGolden(t *testing.T) {
	m, _ := fold(t, FailedWins,
		ev("sent", T, wamid("w"), recipientID("1"), receivedAt(5)),
		ev("read", T+2, wamid("w"), participantID("p"), pricingCategory("m")))
	got := encode(&m)
	want := "01" + "0177" + // version, wamid "w"
		"02" + "f9adbdc206" + // 2 participants, base T
		"00" + "01" + "00" + // "": sent at base
		"0170" + "04" + "02" + // "p": read at base+2
		"05" + // first receive time 5
		"21" + // attributes: recipient_id (bit 0), pricing (bit 5)
		"01" + "00" + "0131" + // recipient_id from sent at base: "1"
		"03" + "02" + "02" + "03504d50" + "07726567756c6172" + "016d" // pricing from read at base+2
	if hex.EncodeToString(got) != want {
		t.Errorf("encoding\n got %x\nwant %s", got, want)
	}
	mb, _ := m.MarshalBinary()
	if !bytes.Equal(mb, got) {
		t.Errorf("MarshalBinary %x differs from AppendBinary %x", mb, got)
	}
	prefix := []byte("prefix")
	if ab, _ := m.AppendBinary(prefix); !bytes.Equal(ab[:len(prefix)], prefix) || !bytes.Equal(ab[len(prefix):], got) {
		t.Errorf("AppendBinary does not append")
	}
}

func TestEncodingRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	msgs := []Message{{}}
	for range 200 {
		m, _ := fold(t, FailedWins, randomEvents(r)...)
		msgs = append(msgs, m)
	}
	for _, m := range msgs {
		b := encode(&m)
		var d Message
		if err := d.UnmarshalBinary(b); err != nil {
			t.Fatalf("UnmarshalBinary(%x): %v", b, err)
		}
		if !d.Equal(&m) {
			t.Fatalf("round trip of %x differs", b)
		}
		if got := encode(&d); !bytes.Equal(got, b) {
			t.Fatalf("re-encoding %x, want %x", got, b)
		}
		// The decoded Message does not share memory with the input.
		clear(b)
		if !d.Equal(&m) {
			t.Fatalf("decoded Message aliases its input")
		}
	}
}

// enc builds encodings by hand for the rejection tests.
type enc []byte

func (e enc) b(v ...byte) enc  { return append(e, v...) }
func (e enc) u(v uint64) enc   { return binary.AppendUvarint(e, v) }
func (e enc) s(v string) enc   { return append(binary.AppendUvarint(e, uint64(len(v))), v...) }
func (e enc) raw(v string) enc { return append(e, v...) }
func header(parts uint64) enc  { return enc{encodingVersion}.s("w").u(parts) }
func oneSent() enc             { return header(1).u(uint64(T)).s("").b(Sent.bit()).u(0) }
func oneSentNoAttrs() enc      { return oneSent().u(0).u(0) }
func withAttr(a attr, st Status) enc {
	return oneSent().u(0).u(1 << a).b(byte(st)).u(0)
}

func TestUnmarshalRejects(t *testing.T) {
	if err := new(Message).UnmarshalBinary(oneSentNoAttrs()); err != nil {
		t.Fatalf("the base case is rejected: %v", err)
	}
	tests := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"unknown version", append(enc{2}, oneSentNoAttrs()[1:]...)},
		{"trailing byte", oneSentNoAttrs().b(0)},
		{"truncated", oneSentNoAttrs()[:8]},
		{"varint not in shortest form", enc{encodingVersion}.b(0x81, 0x00).raw("w").u(0)},
		{"varint overflow", enc{encodingVersion}.s("w").b(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02)},
		{"string longer than the input", enc{encodingVersion}.u(100).raw("w")},
		{"wamid without participants", header(0)},
		{"participants without wamid", enc{encodingVersion}.s("").u(1).u(uint64(T)).s("").b(1).u(0).u(0).u(0)},
		{"participant count beyond the input", header(1000).u(uint64(T))},
		{"zero base", header(1).u(0).s("").b(1).u(0).u(0).u(0)},
		{"base is not the minimum", header(1).u(uint64(T)).s("").b(1).u(1).u(0).u(0)},
		{"participants unsorted", header(2).u(uint64(T)).s("b").b(1).u(0).s("a").b(1).u(0).u(0).u(0)},
		{"participants repeated", header(2).u(uint64(T)).s("a").b(1).u(0).s("a").b(1).u(0).u(0).u(0)},
		{"empty status mask", header(1).u(uint64(T)).s("").b(0).u(0).u(0)},
		{"status mask out of range", header(1).u(uint64(T)).s("").b(0x21).u(0).u(0).u(0).u(0)},
		{"timestamp overflow", header(1).u(1).s("").b(3).u(0).u(1 << 63).u(0).u(0)},
		{"attribute mask out of range", oneSent().u(0).u(1 << numAttrs)},
		{"source status zero", withAttr(attrRecipientID, 0).s("x")},
		{"source status out of range", withAttr(attrRecipientID, 6).s("x")},
		{"source status not folded", withAttr(attrRecipientID, Read).s("x")},
		{"source before its status", header(1).u(uint64(T)).s("").b(Sent.bit() | Delivered.bit()).u(5).u(0).u(0).u(1).b(byte(Sent)).u(0).s("x")},
		{"empty string attribute", withAttr(attrWABAID, Sent).s("")},
		{"empty conversation", withAttr(attrConversation, Sent).s("").u(0).s("")},
		{"pricing billable out of range", withAttr(attrPricing, Sent).b(3).s("").s("").s("")},
		{"empty pricing", withAttr(attrPricing, Sent).b(0).s("").s("").s("")},
		{"empty errors", withAttr(attrErrors, Sent).u(0)},
		{"error count beyond the input", withAttr(attrErrors, Sent).u(50).u(0)},
		{"first receive time overflow", oneSent().u(1 << 63).u(0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m Message
			m.wamid = "unchanged"
			err := m.UnmarshalBinary(tt.in)
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("UnmarshalBinary(%x) = %v, want ErrCorrupt", tt.in, err)
			}
			if m.wamid != "unchanged" {
				t.Errorf("m changed on error")
			}
		})
	}
}

// FuzzUnmarshalBinary checks that UnmarshalBinary never panics, accepts only
// canonical encodings (re-encoding gives the input back), and that whatever
// it accepts is a valid state: it survives View/FromView and keeps folding.
func FuzzUnmarshalBinary(f *testing.F) {
	r := rand.New(rand.NewPCG(3, 4))
	f.Add([]byte{})
	f.Add([]byte(oneSentNoAttrs()))
	for range 30 {
		m, _ := fold(f, FailedWins, randomEvents(r)...)
		f.Add(encode(&m))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var m Message
		if err := m.UnmarshalBinary(b); err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		if got := encode(&m); !bytes.Equal(got, b) {
			t.Fatalf("accepted a non-canonical encoding:\n in %x\nout %x", b, got)
		}
		if m.wamid == "" {
			return
		}
		for _, p := range []Policy{FailedWins, DeliveryWins} {
			v := m.View(p)
			r, err := FromView(&v)
			if err != nil || !r.Equal(&m) {
				t.Fatalf("View/FromView of a decoded state: %v", err)
			}
		}
		e := schemas.StatusEvent{WAMID: m.wamid, Status: "read", Timestamp: T, RecipientID: "x"}
		if _, err := m.Apply(&e, FailedWins); err != nil {
			t.Fatalf("Apply to a decoded state: %v", err)
		}
		var d Message
		if err := d.UnmarshalBinary(encode(&m)); err != nil || !d.Equal(&m) {
			t.Fatalf("state after Apply does not round-trip: %v", err)
		}
	})
}
