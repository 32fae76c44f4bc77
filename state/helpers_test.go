package state

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/wastatus/wastatus/schemas"
)

// testWAMID is the wamid of the shared samples.
const testWAMID = "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA="

// ev builds an event of testWAMID with the given status and payload time;
// opts set the rest.
func ev(status string, ts int64, opts ...func(*schemas.StatusEvent)) schemas.StatusEvent {
	e := schemas.StatusEvent{WAMID: testWAMID, Status: status, Timestamp: ts, Region: "eu"}
	for _, o := range opts {
		o(&e)
	}
	return e
}

func participantID(id string) func(*schemas.StatusEvent) {
	return func(e *schemas.StatusEvent) { e.RecipientParticipantID = id }
}

func recipientID(id string) func(*schemas.StatusEvent) {
	return func(e *schemas.StatusEvent) { e.RecipientID = id }
}

func userIDs(user, parent string) func(*schemas.StatusEvent) {
	return func(e *schemas.StatusEvent) { e.RecipientUserID, e.ParentUserID = user, parent }
}

func recipientType(typ string) func(*schemas.StatusEvent) {
	return func(e *schemas.StatusEvent) { e.RecipientType = typ }
}

func conv(id string, exp int64, origin string) func(*schemas.StatusEvent) {
	return func(e *schemas.StatusEvent) {
		e.Conversation = &schemas.Conversation{ID: id, ExpirationTimestamp: exp, OriginType: origin}
	}
}

func pricingCategory(category string) func(*schemas.StatusEvent) {
	return func(e *schemas.StatusEvent) {
		billable := true
		e.Pricing = &schemas.Pricing{Billable: &billable, PricingModel: "PMP", Type: "regular", Category: category}
	}
}

func errorsOf(codes ...int64) func(*schemas.StatusEvent) {
	return func(e *schemas.StatusEvent) {
		for _, c := range codes {
			e.Errors = append(e.Errors, schemas.Error{Code: c, Title: "title " + strconv.FormatInt(c, 10)})
		}
	}
}

func biz(s string) func(*schemas.StatusEvent) {
	return func(e *schemas.StatusEvent) { e.BizOpaqueCallbackData = s }
}

func metadata(phoneID, display, waba string) func(*schemas.StatusEvent) {
	return func(e *schemas.StatusEvent) { e.PhoneNumberID, e.DisplayPhoneNumber, e.WABAID = phoneID, display, waba }
}

func receivedAt(ms int64) func(*schemas.StatusEvent) {
	return func(e *schemas.StatusEvent) { e.ReceivedAt = ms }
}

func wamid(id string) func(*schemas.StatusEvent) {
	return func(e *schemas.StatusEvent) { e.WAMID = id }
}

// fold applies evs in order to a zero Message under p.
func fold(t testing.TB, p Policy, evs ...schemas.StatusEvent) (Message, []Outcome) {
	t.Helper()
	var m Message
	outs := make([]Outcome, 0, len(evs))
	for i := range evs {
		o, err := m.Apply(&evs[i], p)
		if err != nil {
			t.Fatalf("Apply(event %d %+v): %v", i, evs[i], err)
		}
		outs = append(outs, o)
	}
	return m, outs
}

// encode returns m's encoding.
func encode(m *Message) []byte {
	b, _ := m.AppendBinary(nil)
	return b
}

// jsonString renders v for failure messages.
func jsonString(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%+v", v)
	}
	return string(b)
}

// testSeed returns the seed of a randomized test: WASTATUS_SEED if set,
// else the clock. It logs how to rerun.
func testSeed(t testing.TB) uint64 {
	t.Helper()
	if s := os.Getenv("WASTATUS_SEED"); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("WASTATUS_SEED=%q: %v", s, err)
		}
		t.Logf("seed %d (from WASTATUS_SEED)", seed)
		return seed
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d (rerun with WASTATUS_SEED=%d)", seed, seed)
	return seed
}

func ptr[T any](v T) *T { return &v }

// indexKeyOf returns the key of wamid's index entry in partition p of db,
// in whichever epoch it is, and its value.
func indexKeyOf(t testing.TB, db *pebble.DB, p int32, wamid string) (key, val []byte) {
	t.Helper()
	lo, hi := kindBounds(p, kindIndex)
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	for valid := it.First(); valid; valid = it.Next() {
		if _, h, ok := indexEntry(it.Key(), p); ok && h == wamidHash(wamid) {
			return slices.Clone(it.Key()), slices.Clone(it.Value())
		}
	}
	t.Fatalf("no index entry of %s: %v", wamid, it.Error())
	return nil, nil
}

// checkIndexInFilter checks that every index entry of partition p is in
// an epoch the partition's filter would read for its hash: otherwise a
// lookup would miss a stored message, and a batch would write it again as
// new.
func checkIndexInFilter(t testing.TB, s *Store, p int32) {
	t.Helper()
	k := s.knownIfAny(p)
	if k == nil || k.f == nil {
		t.Fatalf("partition %d has no filter", p)
	}
	lo, hi := kindBounds(p, kindIndex)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	n := 0
	for valid := it.First(); valid; valid = it.Next() {
		e, h, ok := indexEntry(it.Key(), p)
		if !ok {
			t.Fatalf("index key %x", it.Key())
		}
		if c := candidates(k.f, h, nil); !slices.Contains(c, e) {
			t.Fatalf("index entry %x of epoch %d: the filter reads epochs %v for its hash", it.Key(), e, c)
		}
		n++
	}
	if n == 0 {
		t.Fatalf("partition %d has no index entry", p)
	}
}

// recordKeyOf returns the key of wamid's record in partition p of db,
// through its index entry.
func recordKeyOf(t testing.TB, db *pebble.DB, p int32, wamid string) []byte {
	t.Helper()
	_, val := indexKeyOf(t, db, p, wamid)
	seq, n := binary.Uvarint(val)
	if n <= 0 {
		t.Fatalf("index entry of %s: %x", wamid, val)
	}
	return appendRecordKey(nil, p, seq)
}

// setRecord writes value as the record of seq, and an index entry of hash
// h in epoch 0 pointing to it alone, bypassing the store.
func setRecord(t testing.TB, db *pebble.DB, p int32, h, seq uint64, value []byte) {
	t.Helper()
	err := errors.Join(
		db.Set(appendIndexKey(nil, p, 0, h), binary.AppendUvarint(nil, seq), pebble.Sync),
		db.Set(appendRecordKey(nil, p, seq), value, pebble.Sync))
	if err != nil {
		t.Fatal(err)
	}
}
