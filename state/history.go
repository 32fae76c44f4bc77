package state

import (
	"encoding/binary"
	"fmt"

	"github.com/wastatus/wastatus/schemas"
)

// HistoryEntry is one event folded into a message, as Store.History returns
// it: the timeline of a message, in arrival order.
type HistoryEntry struct {
	Offset      int64   // the event's offset in its input partition
	Status      string  // the event's status
	Timestamp   int64   // payload time, unix seconds
	Participant string  // recipient_participant_id, "" for a one-to-one message
	Region      string  // the region of the edge that received it
	ReceivedAt  int64   // edge receive time, unix ms (0 when unknown)
	Outcome     Outcome // what folding it did
}

// The history of a message lives in its record, after its state: the
// processor reads the record for every event anyway, so recording an event
// costs no read, and the state and its history are one Pebble key, written
// together. A record (the value of a message's record key):
//
//	uvarint  length of the Message encoding
//	bytes    the Message encoding (see encoding.go)
//	uvarint  number of history entries
//	per entry, oldest first:
//	  uvarint  length of the entry
//	  varint   offset
//	  byte     status (1 sent ... 5 failed)
//	  byte     outcome
//	  varint   payload timestamp
//	  str      participant
//	  str      region
//	  varint   receive time
//
// A Batch appends an entry per event and, when it writes the record, drops
// the oldest entries beyond HistoryLimit.

// appendHistoryEntry appends the length-prefixed encoding of an event's
// history entry. scratch is reused for the entry itself.
func appendHistoryEntry(dst, scratch []byte, offset int64, ev *schemas.StatusEvent, st Status, out Outcome) (newDst, newScratch []byte) {
	e := binary.AppendVarint(scratch[:0], offset)
	e = append(e, byte(st), byte(out))
	e = binary.AppendVarint(e, ev.Timestamp)
	e = appendString(e, ev.RecipientParticipantID)
	e = appendString(e, ev.Region)
	e = binary.AppendVarint(e, ev.ReceivedAt)
	return append(binary.AppendUvarint(dst, uint64(len(e))), e...), e
}

// decodeHistoryEntry decodes one history entry (without its length).
func decodeHistoryEntry(s string) (HistoryEntry, error) {
	d := decoder{s: s}
	var e HistoryEntry
	e.Offset = d.varint()
	st := Status(d.byte())
	e.Outcome = Outcome(d.byte())
	e.Timestamp = d.varint()
	e.Participant = d.str()
	e.Region = d.str()
	e.ReceivedAt = d.varint()
	if err := d.end(); err != nil {
		return HistoryEntry{}, fmt.Errorf("%w: history entry: %w", ErrCorrupt, err)
	}
	if !st.valid() || e.Outcome < Advanced || e.Outcome > Duplicate {
		return HistoryEntry{}, fmt.Errorf("%w: history entry: status %d, outcome %d", ErrCorrupt, st, e.Outcome)
	}
	e.Status = st.String()
	return e, nil
}

// skipHistory returns h (a sequence of length-prefixed entries, checked by
// decodeRecord) without its first k entries.
func skipHistory(h []byte, k int) []byte {
	for ; k > 0; k-- {
		n, w := binary.Uvarint(h)
		h = h[w+int(n):]
	}
	return h
}

// appendRecord appends a message record: m's state and the last limit of
// the n entries in hist (all of them if limit <= 0).
func appendRecord(dst []byte, m *Message, hist []byte, n, limit int) []byte {
	// The state's length is not known before it is encoded: reserve the
	// longest uvarint, encode, then move the state down if the length is
	// shorter.
	start := len(dst)
	dst = append(dst, make([]byte, binary.MaxVarintLen64)...)
	dst = m.appendBinary(dst)
	stateLen := len(dst) - start - binary.MaxVarintLen64
	w := binary.PutUvarint(dst[start:], uint64(stateLen))
	copy(dst[start+w:], dst[start+binary.MaxVarintLen64:])
	dst = dst[:start+w+stateLen]

	if limit > 0 && n > limit {
		hist = skipHistory(hist, n-limit)
		n = limit
	}
	dst = binary.AppendUvarint(dst, uint64(n))
	return append(dst, hist...)
}

// decodeRecord decodes a record's state into the reset m (its strings are
// substrings of s) and returns its history section (the entries, without
// their count) and the number of entries.
func decodeRecord(s string, m *Message) (hist string, n int, err error) {
	d := decoder{s: s}
	stateLen := d.uvarint()
	if d.err == nil && stateLen > uint64(d.remaining()) {
		d.fail(errShort)
	}
	if d.err != nil {
		return "", 0, fmt.Errorf("%w: record: %w", ErrCorrupt, d.err)
	}
	if err := m.decode(s[d.off : d.off+int(stateLen)]); err != nil {
		return "", 0, fmt.Errorf("record: %w", err)
	}
	d.off += int(stateLen)
	count := d.uvarint()
	start := d.off
	for i := uint64(0); i < count && d.err == nil; i++ {
		d.str()
	}
	if err := d.end(); err != nil {
		return "", 0, fmt.Errorf("%w: record history: %w", ErrCorrupt, err)
	}
	return s[start:], int(count), nil
}

// decodeHistory decodes a record's history section, keeping the last limit
// entries (all if limit <= 0).
func decodeHistory(hist string, n, limit int) ([]HistoryEntry, error) {
	d := decoder{s: hist}
	skip := 0
	if limit > 0 && n > limit {
		skip = n - limit
	}
	out := make([]HistoryEntry, 0, n-skip)
	for i := range n {
		s := d.str()
		if d.err != nil {
			return nil, fmt.Errorf("%w: record history: %w", ErrCorrupt, d.err)
		}
		if i < skip {
			continue
		}
		e, err := decodeHistoryEntry(s)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}
