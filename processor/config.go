package processor

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Default topic and group names. Every one is configurable.
const (
	DefaultEventsTopic  = "whatsapp.status.events"
	DefaultCurrentTopic = "whatsapp.status.current"
	DefaultDLQTopic     = "whatsapp.status.dlq"
	DefaultGroup        = "wastatus-processor"
)

// Config configures a Processor. The zero value of every field but Brokers is
// usable: withDefaults fills the documented defaults in one place.
type Config struct {
	// Brokers are the seed brokers of the Kafka cluster. Required.
	Brokers []string

	// Group is the consumer group that spreads the events topic's partitions
	// over processor instances. Default "wastatus-processor".
	Group string

	// EventsTopic, CurrentTopic and DLQTopic name the three topics of the
	// contract (DESIGN.md). Defaults: whatsapp.status.events,
	// whatsapp.status.current, whatsapp.status.dlq.
	EventsTopic  string
	CurrentTopic string
	DLQTopic     string

	// Partitions is the partition count used when the processor creates the
	// events and current topics. Default 12. Existing topics are not changed.
	Partitions int32

	// ReplicationFactor for created topics; -1 (the default) uses the
	// broker's default.
	ReplicationFactor int16

	// EventsRetention is the retention of a created events topic. It must
	// cover Meta's 7-day retry horizon. Default 30 days.
	EventsRetention time.Duration

	// SkipCreateTopics turns off the creation of missing topics at start,
	// for clusters whose topics an operator owns.
	SkipCreateTopics bool

	// MaxPollRecords bounds one polled batch. Default 10,000.
	MaxPollRecords int

	// MaxRecordBytes is the largest event value that is folded; larger ones
	// go to the dead-letter topic. Default 1 MiB.
	MaxRecordBytes int

	// ClientOpts are extra franz-go options appended to the processor's
	// client (TLS, SASL, tuning, kprom hooks). They come last and win.
	ClientOpts []kgo.Opt

	// Logger receives the processor's logs. Default: discard.
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Group == "" {
		c.Group = DefaultGroup
	}
	if c.EventsTopic == "" {
		c.EventsTopic = DefaultEventsTopic
	}
	if c.CurrentTopic == "" {
		c.CurrentTopic = DefaultCurrentTopic
	}
	if c.DLQTopic == "" {
		c.DLQTopic = DefaultDLQTopic
	}
	if c.Partitions == 0 {
		c.Partitions = 12
	}
	if c.ReplicationFactor == 0 {
		c.ReplicationFactor = -1
	}
	if c.EventsRetention == 0 {
		c.EventsRetention = 30 * 24 * time.Hour
	}
	if c.MaxPollRecords == 0 {
		c.MaxPollRecords = 10_000
	}
	if c.MaxRecordBytes == 0 {
		c.MaxRecordBytes = 1 << 20
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports the first problem with c after defaults are applied.
func (c Config) Validate() error {
	c = c.withDefaults()
	switch {
	case len(c.Brokers) == 0:
		return fmt.Errorf("%w: no brokers", ErrConfig)
	case c.Partitions < 1:
		return fmt.Errorf("%w: partitions must be positive, got %d", ErrConfig, c.Partitions)
	case c.EventsRetention < 7*24*time.Hour:
		return fmt.Errorf("%w: events retention %s is shorter than Meta's 7-day retry horizon", ErrConfig, c.EventsRetention)
	case c.EventsTopic == c.CurrentTopic || c.EventsTopic == c.DLQTopic || c.CurrentTopic == c.DLQTopic:
		return fmt.Errorf("%w: the events, current and dead-letter topics must differ", ErrConfig)
	case c.MaxPollRecords < 1:
		return fmt.Errorf("%w: max poll records must be positive", ErrConfig)
	}
	return nil
}
