package state

import (
	"encoding/base64"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/wastatus/wastatus/schemas"
)

// benchWAMIDs returns n wamids shaped like Meta's: a long shared prefix and
// a random tail.
func benchWAMIDs(n int) []string {
	r := rand.New(rand.NewPCG(1, 1))
	ids := make([]string, n)
	var tail [15]byte
	for i := range ids {
		for j := range tail {
			tail[j] = byte(r.Uint32())
		}
		ids[i] = "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQz" + base64.StdEncoding.EncodeToString(tail[:])
	}
	return ids
}

// benchEvent fills e as status st of message id, with the attributes a
// real event carries.
func benchEvent(e *schemas.StatusEvent, id string, st Status, pr *schemas.Pricing, cv *schemas.Conversation) {
	*e = schemas.StatusEvent{
		WAMID: id, Status: st.String(), Timestamp: T + int64(st), RecipientID: phone,
		PhoneNumberID: phoneID, DisplayPhoneNumber: display, WABAID: wabaID, Region: "eu", ReceivedAt: 1750030073000 + int64(st),
	}
	if st == Sent {
		e.Conversation, e.Pricing = cv, pr
	}
}

// benchTraffic is a realistic arrival order: each message's sent, then its
// delivered about a thousand events later, then its read tens of thousands
// later, and some retries.
type benchTraffic struct {
	ids   []string
	order []uint64 // message index << 8 | status
}

func newBenchTraffic(messages int) *benchTraffic {
	r := rand.New(rand.NewPCG(2, 2))
	type arrival struct {
		pos  int
		code uint64
	}
	var arrivals []arrival
	for i := range messages {
		base := i * 3
		arrivals = append(arrivals,
			arrival{base, uint64(i)<<8 | uint64(Sent)},
			arrival{base + r.IntN(3000), uint64(i)<<8 | uint64(Delivered)},
			arrival{base + r.IntN(150000), uint64(i)<<8 | uint64(Read)})
		if r.IntN(10) == 0 {
			arrivals = append(arrivals, arrival{base + r.IntN(300000), uint64(i)<<8 | uint64(Delivered)})
		}
	}
	slices.SortStableFunc(arrivals, func(a, b arrival) int { return a.pos - b.pos })
	t := &benchTraffic{ids: benchWAMIDs(messages), order: make([]uint64, len(arrivals))}
	for i, a := range arrivals {
		t.order[i] = a.code
	}
	return t
}

// event fills e with the i-th arrival (cycling).
func (t *benchTraffic) event(e *schemas.StatusEvent, i int, pr *schemas.Pricing, cv *schemas.Conversation) {
	code := t.order[i%len(t.order)]
	benchEvent(e, t.ids[code>>8], Status(code&0xff), pr, cv)
}

func benchAttrs() (*schemas.Pricing, *schemas.Conversation) {
	return &schemas.Pricing{Billable: ptr(true), PricingModel: "PMP", Type: "regular", Category: "marketing"},
		&schemas.Conversation{ID: "72b14d6bd5407799e66f64d1b338e567", ExpirationTimestamp: T + 86400, OriginType: "marketing"}
}

// BenchmarkApply folds events into in-memory Messages: sent (with
// conversation and pricing), delivered, read, each time into a fresh state.
func BenchmarkApply(b *testing.B) {
	pr, cv := benchAttrs()
	ids := benchWAMIDs(1024)
	evs := make([]schemas.StatusEvent, 0, 3*len(ids))
	for _, id := range ids {
		for _, st := range []Status{Sent, Delivered, Read} {
			var e schemas.StatusEvent
			benchEvent(&e, id, st, pr, cv)
			evs = append(evs, e)
		}
	}
	msgs := make([]Message, len(ids))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		k := i % len(evs)
		m := &msgs[k/3]
		if k%3 == 0 {
			m.reset()
		}
		if _, err := m.Apply(&evs[k], FailedWins); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkBatchApply is the processor's hot path on disk: Batch.Apply for
// every event of a realistic arrival order over 200k messages, a synced
// Commit every 1000 events. ns/op is per event, commit included.
func BenchmarkBatchApply(b *testing.B) {
	traffic := newBenchTraffic(200_000)
	s, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	pr, cv := benchAttrs()
	batch := s.NewBatch(0)
	defer batch.Close()
	var e schemas.StatusEvent
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		traffic.event(&e, i, pr, cv)
		if _, _, err := batch.Apply(&e, int64(i)); err != nil {
			b.Fatal(err)
		}
		i++
		if i%1000 == 0 {
			batch.SetNextOffset(int64(i))
			if err := batch.Commit(); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := batch.Commit(); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(i)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkBatchCommit measures Commit alone: one synced Pebble batch of
// 1000 changed messages with their history and the offset.
func BenchmarkBatchCommit(b *testing.B) {
	traffic := newBenchTraffic(200_000)
	s, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	pr, cv := benchAttrs()
	batch := s.NewBatch(0)
	defer batch.Close()
	var e schemas.StatusEvent
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		for range 1000 {
			traffic.event(&e, i, pr, cv)
			if _, _, err := batch.Apply(&e, int64(i)); err != nil {
				b.Fatal(err)
			}
			i++
		}
		batch.SetNextOffset(int64(i))
		b.StartTimer()
		if err := batch.Commit(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStoreGet reads random committed messages out of 200k.
func BenchmarkStoreGet(b *testing.B) {
	const messages = 200_000
	ids := benchWAMIDs(messages)
	s, err := Open(b.TempDir(), Options{HistoryLimit: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	pr, cv := benchAttrs()
	batch := s.NewBatch(0)
	defer batch.Close()
	var e schemas.StatusEvent
	for i, id := range ids {
		benchEvent(&e, id, Sent, pr, cv)
		if _, _, err := batch.Apply(&e, int64(i)); err != nil {
			b.Fatal(err)
		}
		if i%10_000 == 0 {
			if err := batch.Commit(); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := batch.Commit(); err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(3, 3))
	b.ReportAllocs()
	for b.Loop() {
		if _, ok, err := s.Get(0, ids[r.IntN(messages)]); err != nil || !ok {
			b.Fatal(ok, err)
		}
	}
}

func benchMessage(b *testing.B) Message {
	pr, cv := benchAttrs()
	var m Message
	var e schemas.StatusEvent
	for _, st := range []Status{Sent, Delivered, Read} {
		benchEvent(&e, testWAMID, st, pr, cv)
		if _, err := m.Apply(&e, FailedWins); err != nil {
			b.Fatal(err)
		}
	}
	return m
}

func BenchmarkAppendBinary(b *testing.B) {
	m := benchMessage(b)
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = m.AppendBinary(buf[:0])
	}
	b.ReportMetric(float64(len(buf)), "bytes")
}

func BenchmarkUnmarshalBinary(b *testing.B) {
	m := benchMessage(b)
	enc, _ := m.AppendBinary(nil)
	var d Message
	b.ReportAllocs()
	for b.Loop() {
		if err := d.UnmarshalBinary(enc); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkView(b *testing.B) {
	m := benchMessage(b)
	b.ReportAllocs()
	for b.Loop() {
		_ = m.View(FailedWins)
	}
}

func BenchmarkFromView(b *testing.B) {
	m := benchMessage(b)
	v := m.View(FailedWins)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := FromView(&v); err != nil {
			b.Fatal(err)
		}
	}
}
