package edge

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wastatus/wastatus/internal/hist"
	"github.com/wastatus/wastatus/schemas"
)

// WebhookPath is the path Register serves: GET for Meta's subscription
// handshake, POST for notifications.
const WebhookPath = "/webhook"

// Receiver is Meta's webhook endpoint. It is safe for concurrent use by any
// number of HTTP requests; it starts no goroutines of its own.
type Receiver struct {
	cfg    Config
	client *kgo.Client
	codec  *schemas.Codec
	log    *slog.Logger

	// eventHeaders is shared, read-only, by every event record; its
	// capacity equals its length so that an append can never write into it.
	eventHeaders     []kgo.RecordHeader
	eventHeadersSize int

	timeout error // the cause of a produce context that ran out of time

	verifier *verifier // checks signatures under Config.AppSecret
	bodies   sync.Pool // of *[]byte, the buffers POST bodies are read into (see readBody)

	limits *clientLimits // nil when Config.ClientRate is negative

	stats counters
}

// New returns a Receiver that writes to Kafka through client and encodes
// events with codec. The client stays the caller's: close it after the HTTP
// server has shut down. It must be a plain producer with acks from all
// in-sync replicas and idempotence, as ProducerOpts configures; New returns
// an error wrapping ErrClient otherwise, and one wrapping ErrConfig for an
// invalid cfg or a nil codec.
func New(cfg Config, client *kgo.Client, codec *schemas.Codec) (*Receiver, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if codec == nil {
		return nil, fmt.Errorf("%w: nil codec", ErrConfig)
	}
	if err := checkClient(client, cfg); err != nil {
		return nil, err
	}
	hs := []kgo.RecordHeader{{Key: HeaderRegion, Value: []byte(cfg.Region)}}
	r := &Receiver{
		cfg:              cfg,
		client:           client,
		codec:            codec,
		log:              cfg.Logger,
		eventHeaders:     hs[:len(hs):len(hs)],
		eventHeadersSize: headersSize(hs),
		timeout:          fmt.Errorf("no acknowledgement within %s", cfg.ProduceTimeout),
		limits:           newClientLimits(cfg),
		verifier:         newVerifier(cfg.AppSecret),
	}
	r.stats.latency = hist.New()
	if cfg.InsecureSkipSignature {
		r.log.Warn("webhook signatures are not verified")
	}
	if cfg.VerifyToken == "" {
		r.log.Warn("no verify token: subscription handshakes will be refused")
	}
	if r.limits == nil {
		r.log.Warn("per-client rate limits are off")
	}
	return r, nil
}

// Register adds GET and POST WebhookPath to mux, both under the per-client
// rate limit. Like any ServeMux registration it panics if mux already has a
// conflicting pattern. Other methods on the path are answered 405 by the
// mux.
func (r *Receiver) Register(mux *http.ServeMux) {
	mux.HandleFunc(http.MethodGet+" "+WebhookPath, r.limited(r.handleVerify))
	mux.HandleFunc(http.MethodPost+" "+WebhookPath, r.limited(r.handleNotify))
}

// Stats returns a snapshot of the receiver's counters.
func (r *Receiver) Stats() Stats {
	s := r.stats.snapshot()
	if r.limits != nil {
		s.Clients = r.limits.size()
	}
	return s
}

// limited answers 429 to a client over its rate limit, before anything of
// its request is read, and passes the others to h.
func (r *Receiver) limited(h http.HandlerFunc) http.HandlerFunc {
	if r.limits == nil {
		return h
	}
	return func(w http.ResponseWriter, req *http.Request) {
		key := r.limits.clientKey(req)
		ok, wait := r.limits.allow(key, r.cfg.Now())
		if ok {
			h(w, req)
			return
		}
		r.stats.rateLimited.Add(1)
		// Debug: a flood of these is what the limit is for, and the
		// counter shows it without a log line per request.
		r.log.Debug("client over its rate limit", "client", key, "remote", req.RemoteAddr)
		secs := retryAfter(wait)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		w.Header().Set("Connection", "close") // the body is not read, and a flood gets no kept connection
		writeError(w, http.StatusTooManyRequests, ErrRateLimited.Error()+"; retry after "+strconv.Itoa(secs)+"s")
	}
}

// handleVerify answers Meta's subscription handshake: the challenge, as
// text, when hub.mode is "subscribe" and hub.verify_token equals
// Config.VerifyToken; 403 otherwise.
func (r *Receiver) handleVerify(w http.ResponseWriter, req *http.Request) {
	q := req.URL.Query()
	token := q.Get("hub.verify_token")
	if q.Get("hub.mode") != "subscribe" || r.cfg.VerifyToken == "" ||
		subtle.ConstantTimeCompare([]byte(token), []byte(r.cfg.VerifyToken)) != 1 {
		r.stats.verifyRefused.Add(1)
		r.log.Warn("subscription handshake refused", "mode", q.Get("hub.mode"), "remote", req.RemoteAddr)
		writeError(w, http.StatusForbidden, "edge: verification refused")
		return
	}
	r.stats.verified.Add(1)
	r.log.Info("subscription handshake verified", "remote", req.RemoteAddr)
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff") // the challenge is caller input
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, q.Get("hub.challenge"))
}

// handleNotify turns one notification POST into records and answers 200
// only once Kafka has acknowledged all of them.
func (r *Receiver) handleNotify(w http.ResponseWriter, req *http.Request) {
	r.stats.inFlight.Add(1)
	defer r.stats.inFlight.Add(-1)
	start := time.Now()
	defer func() { r.stats.latency.Observe(time.Since(start)) }()
	receivedAt := r.cfg.Now().UnixMilli()

	if err := checkContentType(req.Header); err != nil {
		w.Header().Set("Connection", "close") // the body is not read
		r.stats.unsupportedMedia.Add(1)
		r.log.Warn("unsupported content type", "remote", req.RemoteAddr, "err", err)
		writeError(w, http.StatusUnsupportedMediaType, err.Error())
		return
	}

	buf := r.bodyBuffer()
	defer r.bodies.Put(buf)
	body, err := r.readBody(w, req, buf)
	if err != nil {
		// What is left of the body must not be read as the next request,
		// nor waited for: close the connection after the answer.
		w.Header().Set("Connection", "close")
		if tooLarge := (*http.MaxBytesError)(nil); errors.As(err, &tooLarge) {
			r.stats.tooLarge.Add(1)
			r.log.Warn("body too large", "limit", r.cfg.MaxBodyBytes, "remote", req.RemoteAddr)
			writeError(w, http.StatusRequestEntityTooLarge,
				"edge: body larger than "+strconv.FormatInt(r.cfg.MaxBodyBytes, 10)+" bytes")
			return
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			r.stats.timedOut.Add(1)
			r.log.Warn("body not received in time", "limit", r.cfg.BodyReadTimeout, "remote", req.RemoteAddr)
			writeError(w, http.StatusRequestTimeout, fmt.Sprintf("%s within %s", ErrBodyTimeout, r.cfg.BodyReadTimeout))
			return
		}
		r.stats.badRequest.Add(1)
		r.log.Warn("cannot read body", "remote", req.RemoteAddr, "err", err)
		writeError(w, http.StatusBadRequest, "edge: cannot read body")
		return
	}

	if !r.cfg.InsecureSkipSignature {
		if err := r.verifier.verify(body, req.Header.Get(SignatureHeader)); err != nil {
			r.stats.unauthorized.Add(1)
			r.log.Warn("signature rejected", "remote", req.RemoteAddr, "err", err)
			writeError(w, http.StatusUnauthorized, err.Error())
			return
		}
	}

	wh, err := schemas.ParseWebhook(body, r.cfg.Region, receivedAt)
	if err != nil {
		r.stats.badRequest.Add(1)
		r.log.Warn("malformed webhook", "remote", req.RemoteAddr, "err", err)
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	r.stats.inboundMessages.Add(uint64(wh.InboundMessages))
	r.stats.otherChanges.Add(uint64(wh.OtherChanges))

	out := r.records(&wh, receivedAt)
	if out.rejected > 0 {
		r.stats.rejected.Add(uint64(out.rejected))
		r.log.Warn("statuses sent to the dead-letter topic",
			"topic", r.cfg.DLQTopic, "rejected", out.rejected, "err", out.firstErr)
	}
	if err := r.produce(req.Context(), out.recs); err != nil {
		r.stats.unavailable.Add(1)
		if req.Context().Err() != nil {
			r.log.Info("client went away before kafka acknowledged", "records", len(out.recs), "err", err)
		} else {
			r.log.Error("kafka did not acknowledge every record", "records", len(out.recs), "err", err)
		}
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	r.stats.accepted.Add(1)
	r.log.Debug("webhook accepted", "accepted", out.accepted, "rejected", out.rejected,
		"inbound_messages", wh.InboundMessages, "took", time.Since(start))
	writeAccepted(w, out.accepted, out.rejected)
}

// maxPooledBody bounds the buffers kept for reading bodies: Meta's are a
// few KB, and one 3 MB body must not pin 3 MB for good.
const maxPooledBody = 64 << 10

// bodyBuffer returns a buffer to read a body into, to be put back in
// r.bodies once the POST is answered. Nothing outlives the answer that
// points into it: ParseWebhook copies what it keeps.
func (r *Receiver) bodyBuffer() *[]byte {
	if b, ok := r.bodies.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, 0, 4<<10)
	return &b
}

// readBody reads the whole body into *buf (growing it as needed), or
// returns an *http.MaxBytesError when it is longer than
// Config.MaxBodyBytes, or an error wrapping os.ErrDeadlineExceeded when it
// took longer than Config.BodyReadTimeout. A declared length over the limit
// is refused before anything is read.
func (r *Receiver) readBody(w http.ResponseWriter, req *http.Request, buf *[]byte) ([]byte, error) {
	limit := r.cfg.MaxBodyBytes
	if req.ContentLength > limit {
		return nil, &http.MaxBytesError{Limit: limit}
	}
	// The deadline is the connection's: lift it once the body is read, so
	// that it cannot end the request while it waits for Kafka. A writer
	// that cannot take deadlines (a test recorder) reads without one.
	rc := http.NewResponseController(w)
	deadline := rc.SetReadDeadline(time.Now().Add(r.cfg.BodyReadTimeout)) == nil
	b := (*buf)[:0]
	if n := int(req.ContentLength) + 1; n > cap(b) {
		// +1 so that reading to EOF does not grow the buffer.
		b = make([]byte, 0, n)
	}
	b, err := readAll(b, http.MaxBytesReader(w, req.Body, limit))
	if cap(b) <= maxPooledBody {
		*buf = b
	}
	if err != nil {
		return nil, fmt.Errorf("edge: reading body: %w", err)
	}
	if deadline {
		_ = rc.SetReadDeadline(time.Time{})
	}
	return b, nil
}

// readAll appends what r holds to b, growing b only when it is full.
func readAll(b []byte, r io.Reader) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

// produce writes recs and waits until Kafka has acknowledged all of them.
// It returns an error wrapping ErrNotAcknowledged when a record failed, when
// Config.ProduceTimeout passed first, or when ctx (the request's) ended.
// Either way it returns without waiting further: records still in flight
// settle in franz-go, and their contexts are canceled so that those not yet
// sent are dropped.
func (r *Receiver) produce(ctx context.Context, recs []kgo.Record) error {
	if len(recs) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeoutCause(ctx, r.cfg.ProduceTimeout, r.timeout)
	defer cancel()

	a := newAcks(r, len(recs))
	for i := range recs {
		if ctx.Err() != nil {
			break // Produce was blocked on a full buffer until ctx ended
		}
		r.client.Produce(ctx, &recs[i], a.promise)
	}
	select {
	case <-a.done:
	case <-ctx.Done():
		select {
		case <-a.done: // settled as the timer fired: the verdicts decide
		default:
			return fmt.Errorf("%w: %w", ErrNotAcknowledged, context.Cause(ctx))
		}
	}
	if err := a.failure(); err != nil {
		return fmt.Errorf("%w: %w", ErrNotAcknowledged, err)
	}
	return nil
}

// checkContentType returns an error wrapping ErrContentType unless h
// declares a JSON body Meta could have sent: Content-Type application/json
// (any case, with at most a utf-8 charset) or none at all, and no content
// encoding. The signature is over the raw bytes and the parser reads only
// JSON, so the check adds no safety; it turns a form post or a compressed
// body into a clear 415 instead of a puzzling 401 or 400.
func checkContentType(h http.Header) error {
	if enc := h.Get("Content-Encoding"); enc != "" && !strings.EqualFold(enc, "identity") {
		return fmt.Errorf("%w: content encoding must be identity", ErrContentType)
	}
	ct := h.Get("Content-Type")
	if ct == "" || ct == "application/json" {
		return nil // what Meta sends, without ParseMediaType's map
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return fmt.Errorf("%w: content type must be application/json", ErrContentType)
	}
	for k, v := range params {
		if k != "charset" || !strings.EqualFold(v, "utf-8") {
			return fmt.Errorf("%w: content type parameters must be at most charset=utf-8", ErrContentType)
		}
	}
	return nil
}

func writeAccepted(w http.ResponseWriter, accepted, rejected int) {
	b := make([]byte, 0, 64)
	b = append(b, `{"accepted":`...)
	b = strconv.AppendInt(b, int64(accepted), 10)
	b = append(b, `,"rejected":`...)
	b = strconv.AppendInt(b, int64(rejected), 10)
	b = append(b, "}\n"...)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	b, err := json.Marshal(struct {
		Error string `json:"error"`
	}{msg})
	if err != nil { // a string always marshals; keep the answer valid anyway
		b = []byte(`{"error":"edge: internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}
