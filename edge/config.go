package edge

import (
	"fmt"
	"log/slog"
	"net/netip"
	"time"
)

// Defaults applied by New to zero fields of Config. Topic names match the
// processor's defaults; every one is configurable.
const (
	DefaultEventsTopic    = "whatsapp.status.events"
	DefaultDLQTopic       = "whatsapp.status.dlq"
	DefaultMaxBodyBytes   = 4 << 20 // Meta documents bodies up to 3 MB
	DefaultMaxRecordBytes = 960 << 10
	DefaultProduceTimeout = 5 * time.Second

	// DefaultBodyReadTimeout: Meta's largest body, 3 MB, in 10 s needs
	// 300 KB/s, far below any data centre link; a sender slower than that
	// is holding the connection open, not sending a webhook.
	DefaultBodyReadTimeout = 10 * time.Second

	// DefaultClientRate and DefaultClientBurst never throttle Meta: one
	// phone number at Meta's highest throughput tier (1,000 messages/s)
	// makes about 4,000 status webhooks a second, and even if all of them
	// reach the edge from one load-balancer address (TrustedProxies unset)
	// they fit 2.5 times over. One edge process on 2 cores answers over
	// 40,000 POSTs/s with no HTTP or network (BenchmarkHandler/parallel,
	// on a quiet machine), and about 20,000 over HTTP beside its load
	// generator and broker (wastatus bench --mode edge), so the limit bites
	// only for a single client that would take a large part of an instance
	// alone. The burst covers 2 s at that rate: the backlog
	// Meta redelivers after an outage.
	DefaultClientRate  = 10_000
	DefaultClientBurst = 2 * DefaultClientRate

	// DefaultMaxClients bounds the limiter table: at about 300 bytes an
	// entry, 16,384 clients take about 5 MiB.
	DefaultMaxClients = 16_384
)

// Config configures a Receiver. Zero fields take the defaults above; Region
// and AppSecret (or InsecureSkipSignature) are required.
type Config struct {
	// EventsTopic receives one Avro StatusEvent per status object.
	// Default "whatsapp.status.events".
	EventsTopic string

	// DLQTopic receives the raw bytes of status objects that could not be
	// made into an event. Default "whatsapp.status.dlq". It must differ
	// from EventsTopic.
	DLQTopic string

	// Region names this edge (for example "eu-west-1"). It is carried in
	// every event and in a "region" header of every record. Required.
	Region string

	// AppSecret is the Meta app secret: the HMAC-SHA256 key of the
	// X-Hub-Signature-256 header. Required unless InsecureSkipSignature.
	// It is never logged.
	AppSecret []byte

	// InsecureSkipSignature accepts POSTs without checking their signature.
	// For local demos and tests only; it cannot be combined with AppSecret,
	// so that a configured secret is never silently ignored.
	InsecureSkipSignature bool

	// VerifyToken is the token Meta echoes in the GET /webhook
	// subscription handshake. When empty, every handshake is refused.
	VerifyToken string

	// MaxBodyBytes bounds a POST body; a larger one is answered 413.
	// Default 4 MiB.
	MaxBodyBytes int64

	// MaxRecordBytes bounds one record (key, value and headers). A status
	// whose event record would be larger goes to the dead-letter topic with
	// ErrRecordTooLarge, and a dead-letter value is truncated to fit, so an
	// oversize status can never make Kafka refuse a POST forever. It must
	// stay below the producer's ProducerBatchMaxBytes and the topics'
	// max.message.bytes; New checks the former. Default 960 KiB.
	MaxRecordBytes int

	// ProduceTimeout bounds the wait for Kafka to acknowledge every record
	// of a POST; past it the POST is answered 503 and Meta retries it.
	// Default 5s.
	ProduceTimeout time.Duration

	// BodyReadTimeout bounds the time to read a POST body, from the moment
	// the handler starts; a body not received in time is answered 408. It
	// is set on the connection with http.ResponseController, so it holds
	// whatever the http.Server's ReadTimeout is, and is lifted once the
	// body is read so that the wait for Kafka is ProduceTimeout's alone.
	// Default 10s.
	BodyReadTimeout time.Duration

	// ClientRate is how many requests a second (GET and POST /webhook)
	// one client may make on average, and ClientBurst how many it may make
	// at once; a request over the limit is answered 429 with Retry-After
	// before its body is read. A client is its address (TrustedProxies
	// says when that is taken from X-Forwarded-For); IPv6 addresses are
	// grouped by /64, the block one host is usually given. Default 10,000
	// a second (see DefaultClientRate for why) and a burst of 2 s at
	// ClientRate; a negative ClientRate turns the limit off.
	ClientRate  float64
	ClientBurst int

	// MaxClients bounds how many clients' limits are remembered. An entry
	// is forgotten once its client has been idle long enough for its
	// allowance to be full again (ClientBurst/ClientRate), when it is
	// equal to a new one; when the table is full of active clients, the
	// least recently seen is forgotten. Default 16,384.
	MaxClients int

	// TrustedProxies are the load balancers and proxies whose
	// X-Forwarded-For header is believed. A request from one of them is
	// keyed by the rightmost address of X-Forwarded-For that is not itself
	// a trusted proxy; a request from anywhere else by its own address,
	// whatever headers it carries, so that a client cannot pick its own
	// key. Default none: without it, every request behind a load balancer
	// shares the balancer's limit, which the defaults allow for.
	TrustedProxies []netip.Prefix

	// Logger receives the receiver's logs. Default: discard.
	Logger *slog.Logger

	// Now is the receive clock, used for StatusEvent.ReceivedAt (a latency
	// measure, never for ordering), the future-timestamp check and the
	// clients' rate limits. Default time.Now.
	Now func() time.Time
}

// withDefaults returns c with every zero field that has a default filled in.
// It is the one place defaults are applied.
func (c Config) withDefaults() Config {
	if c.EventsTopic == "" {
		c.EventsTopic = DefaultEventsTopic
	}
	if c.DLQTopic == "" {
		c.DLQTopic = DefaultDLQTopic
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.MaxRecordBytes == 0 {
		c.MaxRecordBytes = DefaultMaxRecordBytes
	}
	if c.ProduceTimeout == 0 {
		c.ProduceTimeout = DefaultProduceTimeout
	}
	if c.BodyReadTimeout == 0 {
		c.BodyReadTimeout = DefaultBodyReadTimeout
	}
	if c.ClientRate == 0 {
		c.ClientRate = DefaultClientRate
	}
	if c.ClientBurst == 0 && c.ClientRate > 0 {
		c.ClientBurst = max(int(2*c.ClientRate), 1)
	}
	if c.MaxClients == 0 {
		c.MaxClients = DefaultMaxClients
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// minRecordBytes is the smallest MaxRecordBytes accepted: room for a wamid
// key, the headers and a small status object.
const minRecordBytes = 1 << 10

// Validate reports the first problem with c once defaults are applied, as an
// error wrapping ErrConfig. It does not modify c.
func (c Config) Validate() error {
	c = c.withDefaults()
	switch {
	case c.Region == "":
		return fmt.Errorf("%w: region is required", ErrConfig)
	case len(c.AppSecret) == 0 && !c.InsecureSkipSignature:
		return fmt.Errorf("%w: an app secret is required (or InsecureSkipSignature)", ErrConfig)
	case len(c.AppSecret) != 0 && c.InsecureSkipSignature:
		return fmt.Errorf("%w: an app secret and InsecureSkipSignature exclude each other", ErrConfig)
	case c.EventsTopic == c.DLQTopic:
		return fmt.Errorf("%w: the events and dead-letter topics must differ, both are %q", ErrConfig, c.EventsTopic)
	case c.MaxBodyBytes < 0:
		return fmt.Errorf("%w: max body bytes must be positive, got %d", ErrConfig, c.MaxBodyBytes)
	case c.MaxRecordBytes < minRecordBytes:
		return fmt.Errorf("%w: max record bytes must be at least %d, got %d", ErrConfig, minRecordBytes, c.MaxRecordBytes)
	case c.ProduceTimeout < 0:
		return fmt.Errorf("%w: produce timeout must be positive, got %s", ErrConfig, c.ProduceTimeout)
	case c.BodyReadTimeout < 0:
		return fmt.Errorf("%w: body read timeout must be positive, got %s", ErrConfig, c.BodyReadTimeout)
	case c.ClientRate > 0 && c.ClientBurst < 1:
		return fmt.Errorf("%w: client burst must be at least 1, got %d", ErrConfig, c.ClientBurst)
	case c.MaxClients < 1:
		return fmt.Errorf("%w: max clients must be at least 1, got %d", ErrConfig, c.MaxClients)
	}
	for _, p := range c.TrustedProxies {
		if !p.IsValid() {
			return fmt.Errorf("%w: invalid trusted proxy prefix %q", ErrConfig, p)
		}
	}
	return nil
}
