package gen

import (
	"container/heap"
	"fmt"
	"math/rand/v2"
)

// Region is where an event is delivered from, and how late: an event's
// arrival is its message's send slot plus Delay plus up to Jitter slots. A
// slot is one message's turn in the send order.
type Region struct {
	Name   string
	Weight float64 // share of events delivered through it
	Delay  int64   // slots
	Jitter int64   // slots
}

// DefaultRegions are three regions whose delays differ by an order of
// magnitude, so a message's events routinely cross each other.
func DefaultRegions() []Region {
	return []Region{
		{Name: "us-east-1", Weight: 0.5, Delay: 0, Jitter: 50},
		{Name: "eu-west-1", Weight: 0.3, Delay: 20, Jitter: 400},
		{Name: "ap-south-1", Weight: 0.2, Delay: 100, Jitter: 2000},
	}
}

// StreamOptions shape a Stream.
type StreamOptions struct {
	Messages  int     // distinct wamids
	Events    int     // events to deliver; 0: what the lifecycles and DupRate give (about 3 per message)
	DupRate   float64 // base fraction of events delivered again (Meta's retries)
	LateRate  float64 // fraction of duplicates delivered late, LateSlots after the original
	LateSlots int64   // how late a late duplicate comes, at most (default 50,000 slots)
	GroupRate float64 // fraction of messages sent to a group of 2-4 participants
	Regions   []Region
	Start     int64 // payload time of the first send, unix seconds
	Seed      uint64
}

// Arrival is one delivered status: what Meta sends, through which region,
// and whether it is a retry of one delivered before.
type Arrival struct {
	Status
	Region    string
	Duplicate bool
}

// Stream delivers the statuses of Messages messages one at a time, in
// arrival order, in memory bounded by the regions' delays and LateSlots
// rather than by the workload's size: the bench produces tens of millions
// of events, which Events would hold all at once.
//
// Message i is sent in slot i; each of its events arrives after its
// region's delay, duplicates arrive again shortly or (LateRate of them)
// late. Events is met exactly: when it asks for fewer than the lifecycles
// give, events other than each message's first are dropped at random (so
// every message still exists); when it asks for more, more duplicates are
// sent; if the messages run out first, delivery starts over from message 0
// with the same lifecycles (a late replay of everything, which changes no
// state).
type Stream struct {
	o        StreamOptions
	keep     float64 // chance to keep each event but a message's first
	dups     float64 // expected duplicates per kept event
	pcg      *rand.PCG
	r        *rand.Rand // per message, reseeded from (Seed, message)
	next     int64      // next message slot to send
	pending  arrivals
	seq      uint64
	sent     int
	seen     []uint64 // bitset of messages with an event delivered
	messages int      // distinct messages with an event delivered
	weights  float64
}

// NewStream returns a Stream; see StreamOptions for defaults.
func NewStream(o StreamOptions) *Stream {
	if o.Start == 0 {
		o.Start = 1_750_000_000
	}
	if len(o.Regions) == 0 {
		o.Regions = DefaultRegions()
	}
	if o.LateSlots == 0 {
		o.LateSlots = 50_000
	}
	o.Messages = max(o.Messages, 1)
	pcg := rand.NewPCG(o.Seed, 0)
	s := &Stream{o: o, keep: 1, dups: o.DupRate, pcg: pcg, r: rand.New(pcg), seen: make([]uint64, (o.Messages+63)/64)}
	for _, rg := range o.Regions {
		s.weights += rg.Weight
	}
	mean := s.meanLifecycle()
	if o.Events == 0 {
		s.o.Events = int(float64(o.Messages)*mean*(1+o.DupRate) + 0.5)
		return s
	}
	perMessage := float64(o.Events) / float64(o.Messages)
	if natural := mean * (1 + o.DupRate); perMessage >= natural {
		s.dups = perMessage/mean - 1
	} else if mean > 1 {
		// Keep the first event of each message and a share of the others.
		s.keep = max(0, (perMessage/(1+o.DupRate)-1)/(mean-1))
	}
	return s
}

// meanLifecycle estimates the mean number of statuses of one message,
// group fan-out included, from a fixed sample.
func (s *Stream) meanLifecycle() float64 {
	r := rand.New(rand.NewPCG(s.o.Seed^0x5bd1e995, 1))
	const n = 20_000
	total := 0
	for range n {
		parts := 1
		if r.Float64() < s.o.GroupRate {
			parts = 2 + r.IntN(3)
		}
		for range parts {
			total += len(lifecycle(r, 0))
		}
	}
	return float64(total) / n
}

// Len is the number of events the stream delivers in all.
func (s *Stream) Len() int { return s.o.Events }

// Messages is the number of distinct messages with an event delivered so
// far. At the end it can fall a little short of Messages: the last
// messages' delayed events may be past Len.
func (s *Stream) Messages() int { return s.messages }

// Next returns the next arrival, or false when Len have been delivered.
func (s *Stream) Next() (Arrival, bool) {
	if s.sent >= s.o.Events {
		return Arrival{}, false
	}
	for len(s.pending) == 0 || s.pending[0].at > s.next {
		s.schedule(s.next)
		s.next++
	}
	a := heap.Pop(&s.pending).(arrival)
	s.sent++
	if w, bit := a.msg/64, uint64(1)<<(a.msg%64); s.seen[w]&bit == 0 {
		s.seen[w] |= bit
		s.messages++
	}
	return a.Arrival, true
}

// schedule sends message slot % Messages: its lifecycle, drawn from a
// generator seeded by the message alone, so a replay repeats it exactly.
func (s *Stream) schedule(slot int64) {
	i := int(slot % int64(s.o.Messages))
	s.pcg.Seed(s.o.Seed, uint64(i)+1)
	r := s.r
	sentAt := s.o.Start + int64(i)/1000
	for k, st := range Message(r, i, sentAt, s.o.GroupRate) {
		if k > 0 && r.Float64() >= s.keep {
			continue
		}
		rg := s.region(r)
		at := slot + rg.Delay + r.Int64N(rg.Jitter+1) + (st.Timestamp - sentAt)
		s.push(i, at, Arrival{Status: st, Region: rg.Name})
		n := int(s.dups)
		if r.Float64() < s.dups-float64(n) {
			n++
		}
		for range n {
			delay := 1 + r.Int64N(200)
			if r.Float64() < s.o.LateRate {
				delay = 1 + r.Int64N(s.o.LateSlots)
			}
			s.push(i, at+delay, Arrival{Status: st, Region: s.region(r).Name, Duplicate: true})
		}
	}
}

func (s *Stream) region(r *rand.Rand) Region {
	x := r.Float64() * s.weights
	for _, rg := range s.o.Regions {
		if x < rg.Weight {
			return rg
		}
		x -= rg.Weight
	}
	return s.o.Regions[len(s.o.Regions)-1]
}

func (s *Stream) push(msg int, at int64, a Arrival) {
	s.seq++
	heap.Push(&s.pending, arrival{at: at, seq: s.seq, msg: msg, Arrival: a})
}

// arrival is a scheduled Arrival; seq breaks ties in scheduling order.
type arrival struct {
	at  int64
	seq uint64
	msg int
	Arrival
}

type arrivals []arrival

func (h arrivals) Len() int { return len(h) }
func (h arrivals) Less(i, j int) bool {
	return h[i].at < h[j].at || h[i].at == h[j].at && h[i].seq < h[j].seq
}
func (h arrivals) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *arrivals) Push(x any)   { *h = append(*h, x.(arrival)) }
func (h *arrivals) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// WAMID returns the wamid of message i. Real wamids share a long prefix,
// which is what a store's key encoding has to cope with.
func WAMID(i int) string {
	return fmt.Sprintf("wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQz%08dQUFERjg0NDEzNDdFODU3MUMxMAA=", i)
}
