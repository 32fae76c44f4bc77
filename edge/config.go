package edge

import (
	"fmt"
	"log/slog"
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

	// Logger receives the receiver's logs. Default: discard.
	Logger *slog.Logger

	// Now is the receive clock, used only for StatusEvent.ReceivedAt (a
	// latency measure), never for ordering. Default time.Now.
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
	}
	return nil
}
