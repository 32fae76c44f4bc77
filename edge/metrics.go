package edge

import (
	"sync/atomic"

	"github.com/wastatus/wastatus/internal/hist"
)

// Stats is a snapshot of a Receiver's counters since it was created. The
// answer counters count requests by the status they were answered with;
// record counters count Kafka's verdicts, which can arrive after the answer
// (a record still in flight when its POST timed out is counted when Kafka
// settles it).
type Stats struct {
	Verified      uint64 // GET handshakes answered 200 with the challenge
	VerifyRefused uint64 // GET handshakes answered 403
	Accepted      uint64 // POSTs answered 200: every record acknowledged
	BadRequest    uint64 // POSTs answered 400: unreadable body, not JSON, not a WhatsApp webhook
	Unauthorized  uint64 // POSTs answered 401: signature missing, malformed or wrong
	TooLarge      uint64 // POSTs answered 413: body over Config.MaxBodyBytes
	Unsupported   uint64 // POSTs answered 415: not application/json, or encoded
	TimedOut      uint64 // POSTs answered 408: body not received within Config.BodyReadTimeout
	Unavailable   uint64 // POSTs answered 503: a record failed, timed out, or the client left first
	RateLimited   uint64 // requests (GET or POST) answered 429: the client was over its rate limit

	Events          uint64 // records Kafka acknowledged on the events topic
	DeadLetters     uint64 // records Kafka acknowledged on the dead-letter topic
	ProduceErrors   uint64 // records Kafka failed, or that were canceled unsent
	Rejected        uint64 // status objects sent to the dead-letter topic instead of the events topic
	InboundMessages uint64 // value.messages[] entries seen and skipped (not status objects)
	OtherChanges    uint64 // changes whose field is not "messages", skipped

	InFlight int64 // POSTs being handled right now
	Clients  int   // clients the rate limiter remembers (bounded by Config.MaxClients)

	Latency hist.Snapshot // how long POSTs took to answer, whatever the answer
}

// counters are the live values behind Stats. All fields are atomics, so the
// handlers and Kafka's promise goroutine update them without a lock.
type counters struct {
	verified, verifyRefused                                   atomic.Uint64
	accepted, badRequest, unauthorized, tooLarge, unavailable atomic.Uint64
	unsupportedMedia, timedOut, rateLimited                   atomic.Uint64
	events, deadLetters, produceErrors                        atomic.Uint64
	rejected, inboundMessages, otherChanges                   atomic.Uint64
	inFlight                                                  atomic.Int64
	latency                                                   *hist.Histogram
}

func (c *counters) snapshot() Stats {
	return Stats{
		Verified:        c.verified.Load(),
		VerifyRefused:   c.verifyRefused.Load(),
		Accepted:        c.accepted.Load(),
		BadRequest:      c.badRequest.Load(),
		Unauthorized:    c.unauthorized.Load(),
		TooLarge:        c.tooLarge.Load(),
		Unsupported:     c.unsupportedMedia.Load(),
		TimedOut:        c.timedOut.Load(),
		RateLimited:     c.rateLimited.Load(),
		Unavailable:     c.unavailable.Load(),
		Events:          c.events.Load(),
		DeadLetters:     c.deadLetters.Load(),
		ProduceErrors:   c.produceErrors.Load(),
		Rejected:        c.rejected.Load(),
		InboundMessages: c.inboundMessages.Load(),
		OtherChanges:    c.otherChanges.Load(),
		InFlight:        c.inFlight.Load(),
		Latency:         c.latency.Snapshot(),
	}
}
