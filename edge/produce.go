package edge

import (
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wastatus/wastatus/schemas"
)

// Record header keys the edge writes. Event records carry HeaderRegion;
// dead-letter records carry HeaderError, HeaderSource, HeaderRegion and
// HeaderReceivedAt (unix milliseconds, decimal), the envelope's ids the
// status came in (HeaderPhoneNumberID, HeaderDisplayPhoneNumber,
// HeaderWABAID; each only when present and at most 256 bytes), so that a
// replay makes an event as complete as the original, and HeaderTruncated
// only when the value was cut to fit Config.MaxRecordBytes (its value is
// the original length in bytes, decimal).
const (
	HeaderRegion             = "region"
	HeaderError              = "error"
	HeaderSource             = "source"
	HeaderTruncated          = "truncated"
	HeaderReceivedAt         = "received_at"
	HeaderPhoneNumberID      = "phone_number_id"
	HeaderDisplayPhoneNumber = "display_phone_number"
	HeaderWABAID             = "waba_id"

	// SourceEdge is the value of the "source" header of the dead-letter
	// records the edge writes.
	SourceEdge = "edge"
)

const (
	// producerBatchMaxBytes is the record batch limit ProducerOpts sets:
	// franz-go's default, which is also the smallest max.message.bytes a
	// Kafka broker has shipped with, so every record the edge writes fits.
	producerBatchMaxBytes = 1_000_012

	// producerLinger is how long a partition waits for more records before
	// a produce request is cut. Zero: a POST waits on Kafka, not on a
	// timer, and requests still batch while earlier ones are in flight.
	producerLinger = 0 * time.Millisecond

	// recordOverhead bounds what Kafka's batch framing adds to a record's
	// key, value and headers (batch header, varints, attributes).
	recordOverhead = 512

	// maxErrorHeaderBytes bounds the "error" header of a dead-letter record.
	maxErrorHeaderBytes = 1 << 10

	// maxDLQKeyBytes bounds a dead-letter key; a longer wamid is not a
	// wamid, and the record is written without a key.
	maxDLQKeyBytes = 1 << 10

	// maxEnvelopeHeaderBytes bounds an envelope id in a dead-letter header;
	// a longer one is not an id, and is left out rather than let the
	// headers crowd out the status they describe.
	maxEnvelopeHeaderBytes = 256
)

// envelope is what a dead letter keeps of the body around its status.
type envelope struct {
	phoneNumberID, displayPhoneNumber, wabaID string
	receivedAt                                int64 // unix milliseconds
}

// ProducerOpts returns the franz-go options an edge producer needs: acks
// from all in-sync replicas, idempotent writes (franz-go's default, left on),
// the Java-compatible murmur2 key partitioner so that every edge in every
// region sends a wamid to the same partition, no linger, and a batch limit
// that holds any record the edge writes. Append seed brokers, TLS, SASL,
// logging and metrics hooks; do not add a transactional id, manual flushing
// or DefaultProduceTopicAlways (New refuses such a client).
func ProducerOpts() []kgo.Opt {
	return []kgo.Opt{
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
		kgo.ProducerLinger(producerLinger),
		kgo.ProducerBatchMaxBytes(producerBatchMaxBytes),
	}
}

// checkClient returns an error wrapping ErrClient when cl cannot give the
// receiver's guarantee that a 200 means every record is durably in Kafka.
func checkClient(cl *kgo.Client, cfg Config) error {
	if cl == nil {
		return fmt.Errorf("%w: nil client", ErrClient)
	}
	if acks, _ := cl.OptValue(kgo.RequiredAcks).(kgo.Acks); acks != kgo.AllISRAcks() {
		return fmt.Errorf("%w: acks must be all in-sync replicas (kgo.AllISRAcks)", ErrClient)
	}
	if off, _ := cl.OptValue(kgo.DisableIdempotentWrite).(bool); off {
		return fmt.Errorf("%w: idempotent writes are disabled", ErrClient)
	}
	if vs := cl.OptValues(kgo.TransactionalID); len(vs) == 2 && vs[1] == true {
		return fmt.Errorf("%w: a transactional client cannot produce outside a transaction", ErrClient)
	}
	if manual, _ := cl.OptValue(kgo.ManualFlushing).(bool); manual {
		return fmt.Errorf("%w: manual flushing would never send a record", ErrClient)
	}
	if always, _ := cl.OptValue(kgo.DefaultProduceTopicAlways).(bool); always {
		return fmt.Errorf("%w: DefaultProduceTopicAlways would send dead letters to the events topic", ErrClient)
	}
	if batchMax, ok := cl.OptValue(kgo.ProducerBatchMaxBytesFn).(func(string) int32); ok {
		for _, topic := range []string{cfg.EventsTopic, cfg.DLQTopic} {
			if n := int(batchMax(topic)); n < cfg.MaxRecordBytes+recordOverhead {
				return fmt.Errorf("%w: producer batch max bytes %d for %q is below max record bytes %d plus %d of overhead",
					ErrClient, n, topic, cfg.MaxRecordBytes, recordOverhead)
			}
		}
	}
	return nil
}

// outbox is the records of one POST.
type outbox struct {
	recs     []kgo.Record // one allocation for all: a POST can carry a thousand statuses
	accepted int          // records for the events topic
	rejected int          // records for the dead-letter topic
	firstErr error        // the first rejection's reason, for the log
}

// records turns a parsed webhook, received at receivedAt (unix
// milliseconds), into records: one event record per event that encodes and
// fits, one dead-letter record per rejected status and per event that does
// not. The records follow the events in body order, then the rejected
// statuses in body order.
func (r *Receiver) records(wh *schemas.Webhook, receivedAt int64) outbox {
	out := outbox{recs: make([]kgo.Record, len(wh.Events)+len(wh.Rejected))}
	size := 0
	for i := range wh.Events {
		// An event's key is its wamid, and its value holds its raw JSON,
		// fields decoded from it (no longer than their JSON), the
		// envelope's ids, and a little framing.
		ev := &wh.Events[i]
		size += len(ev.WAMID) + 2*len(ev.Raw) + len(ev.Region) + len(ev.PhoneNumberID) +
			len(ev.DisplayPhoneNumber) + len(ev.WABAID) + 96
	}
	// One buffer for all keys and values of the events.
	buf := make([]byte, 0, size)

	i := 0
	for k := range wh.Events {
		ev := &wh.Events[k]
		rec := &out.recs[i]
		i++
		keyStart := len(buf)
		buf = append(buf, ev.WAMID...)
		start := len(buf)
		enc, err := r.codec.AppendStatusEvent(buf, ev)
		if err != nil {
			buf = buf[:keyStart]
			err = fmt.Errorf("%w: %w", ErrEncode, err)
			r.deadLetter(rec, ev.WAMID, ev.Raw, err, eventEnvelope(ev))
			out.reject(err)
			continue
		}
		if sz := len(ev.WAMID) + len(enc) - start + r.eventHeadersSize; sz > r.cfg.MaxRecordBytes {
			buf = buf[:keyStart]
			err := fmt.Errorf("%w: event record of %d bytes, limit %d", ErrRecordTooLarge, sz, r.cfg.MaxRecordBytes)
			r.deadLetter(rec, ev.WAMID, ev.Raw, err, eventEnvelope(ev))
			out.reject(err)
			continue
		}
		buf = enc
		rec.Topic = r.cfg.EventsTopic
		rec.Key = buf[keyStart:start:start]
		rec.Value = buf[start:len(buf):len(buf)]
		rec.Headers = r.eventHeaders
		out.accepted++
	}
	for k := range wh.Rejected {
		rs := &wh.Rejected[k]
		rec := &out.recs[i]
		i++
		r.deadLetter(rec, rs.WAMID, rs.Raw, rs.Err, envelope{
			phoneNumberID:      rs.PhoneNumberID,
			displayPhoneNumber: rs.DisplayPhoneNumber,
			wabaID:             rs.WABAID,
			receivedAt:         receivedAt,
		})
		out.reject(rs.Err)
	}
	return out
}

func (o *outbox) reject(reason error) {
	o.rejected++
	if o.firstErr == nil {
		o.firstErr = reason
	}
}

func eventEnvelope(ev *schemas.StatusEvent) envelope {
	return envelope{
		phoneNumberID:      ev.PhoneNumberID,
		displayPhoneNumber: ev.DisplayPhoneNumber,
		wabaID:             ev.WABAID,
		receivedAt:         ev.ReceivedAt,
	}
}

// deadLetter fills rec as a dead-letter record for raw, a status object that
// could not become an event for reason, and that came in env. The value is
// cut to keep the record within Config.MaxRecordBytes, and the cut recorded
// in a header.
func (r *Receiver) deadLetter(rec *kgo.Record, wamid string, raw []byte, reason error, env envelope) {
	msg := "unknown"
	if reason != nil {
		msg = reason.Error()
	}
	if len(msg) > maxErrorHeaderBytes {
		msg = msg[:maxErrorHeaderBytes]
	}
	rec.Topic = r.cfg.DLQTopic
	if wamid != "" && len(wamid) <= maxDLQKeyBytes {
		rec.Key = []byte(wamid)
	}
	hs := make([]kgo.RecordHeader, 0, 8) // room for every header without growing
	hs = append(hs,
		kgo.RecordHeader{Key: HeaderError, Value: []byte(msg)},
		kgo.RecordHeader{Key: HeaderSource, Value: []byte(SourceEdge)},
		kgo.RecordHeader{Key: HeaderRegion, Value: []byte(r.cfg.Region)},
		kgo.RecordHeader{Key: HeaderReceivedAt, Value: strconv.AppendInt(nil, env.receivedAt, 10)},
	)
	for _, h := range [...]struct{ key, value string }{
		{HeaderPhoneNumberID, env.phoneNumberID},
		{HeaderDisplayPhoneNumber, env.displayPhoneNumber},
		{HeaderWABAID, env.wabaID},
	} {
		if h.value != "" && len(h.value) <= maxEnvelopeHeaderBytes {
			hs = append(hs, kgo.RecordHeader{Key: h.key, Value: []byte(h.value)})
		}
	}
	rec.Headers = hs
	rec.Value = raw
	if recordSize(rec) <= r.cfg.MaxRecordBytes {
		return
	}
	rec.Headers = append(rec.Headers, kgo.RecordHeader{
		Key:   HeaderTruncated,
		Value: strconv.AppendInt(nil, int64(len(raw)), 10),
	})
	keep := max(r.cfg.MaxRecordBytes-(recordSize(rec)-len(raw)), 0)
	rec.Value = raw[:keep:keep]
}

// recordSize is the part of a record's size that its contents decide; the
// framing adds at most recordOverhead.
func recordSize(rec *kgo.Record) int {
	return len(rec.Key) + len(rec.Value) + headersSize(rec.Headers)
}

func headersSize(hs []kgo.RecordHeader) int {
	n := 0
	for _, h := range hs {
		n += len(h.Key) + len(h.Value)
	}
	return n
}

// acks collects Kafka's verdicts on the records of one POST. Its promise is
// called once per record by franz-go's promise goroutine, possibly after the
// POST was answered; it only counts and never blocks, so an abandoned POST
// leaves nothing waiting behind it.
type acks struct {
	stats       *counters
	eventsTopic string
	pending     atomic.Int64
	done        chan struct{} // closed when every record has a verdict

	mu  sync.Mutex
	err error // the first failure
}

func newAcks(r *Receiver, n int) *acks {
	a := &acks{stats: &r.stats, eventsTopic: r.cfg.EventsTopic, done: make(chan struct{})}
	a.pending.Store(int64(n))
	return a
}

func (a *acks) promise(rec *kgo.Record, err error) {
	switch {
	case err != nil:
		a.stats.produceErrors.Add(1)
		a.mu.Lock()
		if a.err == nil {
			a.err = fmt.Errorf("topic %s: %w", rec.Topic, err)
		}
		a.mu.Unlock()
	case rec.Topic == a.eventsTopic:
		a.stats.events.Add(1)
	default:
		a.stats.deadLetters.Add(1)
	}
	if a.pending.Add(-1) == 0 {
		close(a.done)
	}
}

// failure returns the first failure reported so far, or nil.
func (a *acks) failure() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.err
}
