package state

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/wastatus/wastatus/schemas"
)

func TestRecordRoundTrip(t *testing.T) {
	m, outs := fold(t, FailedWins, ev("sent", T, receivedAt(3)), ev("read", T+2, participantID("p"), func(e *schemas.StatusEvent) { e.Region = "us" }))
	var hist, scratch []byte
	hist, scratch = appendHistoryEntry(hist, scratch, 7, &schemas.StatusEvent{Status: "sent", Timestamp: T, Region: "eu", ReceivedAt: 3}, Sent, outs[0])
	hist, _ = appendHistoryEntry(hist, scratch, 9, &schemas.StatusEvent{Status: "read", Timestamp: T + 2, RecipientParticipantID: "p", Region: "us"}, Read, outs[1])
	want := []HistoryEntry{
		{Offset: 7, Status: "sent", Timestamp: T, Region: "eu", ReceivedAt: 3, Outcome: Advanced},
		{Offset: 9, Status: "read", Timestamp: T + 2, Participant: "p", Region: "us", Outcome: Advanced},
	}
	for _, tt := range []struct {
		limit int
		want  []HistoryEntry
	}{{0, want}, {-1, want}, {2, want}, {5, want}, {1, want[1:]}} {
		rec := appendRecord([]byte("prefix"), &m, hist, 2, tt.limit)
		if string(rec[:6]) != "prefix" {
			t.Fatalf("appendRecord does not append")
		}
		var d Message
		h, n, err := decodeRecord(string(rec[6:]), &d)
		if err != nil || !d.Equal(&m) {
			t.Fatalf("limit %d: decodeRecord = %v, state equal %t", tt.limit, err, d.Equal(&m))
		}
		got, err := decodeHistory(h, n, 0)
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("limit %d: history %+v, %v; want %+v", tt.limit, got, err, tt.want)
		}
		if got, _ := decodeHistory(h, n, 1); !reflect.DeepEqual(got, want[1:]) {
			t.Errorf("limit %d: history read with limit 1 = %+v", tt.limit, got)
		}
	}
	// A state longer than 127 bytes needs a longer length prefix.
	big, _ := fold(t, FailedWins, ev("failed", T, errorsOf(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12)))
	rec := appendRecord(nil, &big, nil, 0, 0)
	var d Message
	if _, n, err := decodeRecord(string(rec), &d); err != nil || n != 0 || !d.Equal(&big) {
		t.Errorf("big record: %v, %d entries", err, n)
	}
}

// FuzzDecodeRecord checks that a stored record, however corrupt, never
// panics a reader, and that what decodes re-encodes to the same bytes.
func FuzzDecodeRecord(f *testing.F) {
	r := rand.New(rand.NewPCG(5, 6))
	for range 20 {
		evs := randomEvents(r)
		var m Message
		var hist, scratch []byte
		for i := range evs {
			out, err := m.Apply(&evs[i], FailedWins)
			if err != nil {
				f.Fatal(err)
			}
			hist, scratch = appendHistoryEntry(hist, scratch, int64(i), &evs[i], parseStatus(evs[i].Status), out)
		}
		f.Add(appendRecord(nil, &m, hist, len(evs), 0))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var m Message
		hist, n, err := decodeRecord(string(b), &m)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		if got := appendRecord(nil, &m, []byte(hist), n, 0); !bytes.Equal(got, b) {
			t.Fatalf("re-encoding differs:\n in %x\nout %x", b, got)
		}
		if _, err := decodeHistory(hist, n, 0); err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("history error %v does not wrap ErrCorrupt", err)
		}
		for limit := 1; limit <= n; limit++ {
			appendRecord(nil, &m, []byte(hist), n, limit) // trims without panicking
		}
	})
}
