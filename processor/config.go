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

// Fetch limits of the group's client and the view's, which franz-go's
// defaults (50 MiB a fetch, 1 MiB a partition) would let hold tens of MiB
// of records: a client buffers one fetch per broker until it is polled
// whole, decompressed (four to five times its size for the bench's
// records), and a record's key and value keep its whole batch alive until
// the transaction that folds it ends. Under a backlog a transaction is
// about one poll of one fetch, so FetchMaxBytes also sizes transactions: 1
// MiB holds 7,000-9,000 of the bench's events, near TxnMaxRecords.
// FetchMaxPartitionBytes lets four or more partitions share a fetch, so
// their workers fold in parallel. Measured with `wastatus bench` (1M
// events, 300k messages): the live Go heap's peak fell from 214 MiB to
// 53-74 MiB, and events per second did not fall, on kfake or on a real
// broker (2 MiB and 512 KiB kept 85-93 MiB live). Raise them with
// ClientOpts (kgo.FetchMaxBytes, kgo.FetchMaxPartitionBytes) together with
// TxnMaxRecords.
const (
	FetchMaxBytes          = 1 << 20
	FetchMaxPartitionBytes = 256 << 10
)

// MetadataMinAge is the least time between two metadata refreshes of the
// processor's transactional client: 250 ms, not franz-go's 5 s. A broker
// with transactions of version 2 (KIP-890, Kafka 4.0 and up) can answer
// the first produce of a transaction with CONCURRENT_TRANSACTIONS while it
// still writes the markers of the one before. franz-go retries the batch
// after a metadata refresh, and it waited for the refresh until 5 s had
// passed since the last one: within 5 s of a processor's start (or of any
// refresh) the transaction, and every partition's progress with it,
// stalled for up to 5 s. `wastatus bench` on Kafka 4.4.0 (1M messages)
// had such a stall of 2-4 s in 6 of 21 runs, always after the
// processor's first 35-57 thousand events. The Java client waits 100 ms
// to 1 s between such refreshes (retry.backoff.ms, retry.backoff.max.ms).
// Set kgo.MetadataMinAge in ClientOpts to change it.
const MetadataMinAge = 250 * time.Millisecond

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

	// TxnMaxRecords bounds the input records of one transaction (one poll,
	// or several with TxnMaxWait). Default 10,000.
	TxnMaxRecords int

	// TxnMaxWait, when positive, keeps polling after the first records of
	// a transaction arrive, until TxnMaxRecords or this much time: fewer,
	// larger transactions under a light load, at that much latency.
	// Default 0: one poll per transaction.
	TxnMaxWait time.Duration

	// TransactionalID is this instance's transactional id. It must be
	// unique among running instances and should be stable across restarts
	// of one instance, so that a restart fences and aborts the transaction
	// its crash left open at once rather than after the transaction timeout.
	// Default: the group, a dot, and an instance id kept in the store.
	TransactionalID string

	// TransactionTimeout is how long the broker keeps a transaction of a
	// vanished instance open before aborting it. Default 30s.
	TransactionTimeout time.Duration

	// GroupProtocol chooses the consumer group protocol: "classic" (the
	// default; cooperative-sticky, balanced by the clients) or "consumer"
	// (KIP-848, balanced by the broker; Kafka 4.0+).
	GroupProtocol string

	// MaxRecordBytes is the largest event value that is folded; larger ones
	// go to the dead-letter topic. Default 1 MiB.
	MaxRecordBytes int

	// ClientOpts are extra franz-go options for every client the processor
	// makes (TLS, SASL, tuning). They come last and win.
	ClientOpts []kgo.Opt

	// Hooks go on the processor's group client only (kprom's metrics, say):
	// the short-lived clients of restores and catch-ups, and the view's,
	// would register a metrics hook's collectors a second time.
	Hooks []kgo.Hook

	// ServeAll keeps a view of the whole current topic in the store, so the
	// query API answers for every message, not only for those of the
	// partitions this instance owns. Turn it on when several instances
	// share the partitions.
	ServeAll bool

	// TopicCheckInterval is how often Run checks, even with no traffic, that
	// the events topic was not deleted and recreated. Default 5s.
	TopicCheckInterval time.Duration

	// Logger receives the processor's logs. Default: discard.
	Logger *slog.Logger

	// Testing holds hooks for crash tests; leave it zero in production.
	Testing TestingKnobs
}

// TestingKnobs are hooks at the points where a crash is most interesting,
// so crash tests can kill the process exactly there; switches that keep
// background work out of a test's way; and switches that stand in for what
// franz-go does and a test cannot make it do on demand (SwallowRevoke), or
// that undo a safeguard so a test can see what it guards against
// (CommitDespiteWaitingCallback, EndGrace). Each hook is called, when set,
// from the poll loop.
type TestingKnobs struct {
	// AfterTxnCommit runs after a transaction committed and before its
	// store batches are committed.
	AfterTxnCommit func()
	// BeforeTxnEnd runs after a transaction's outputs were produced and
	// before it is ended.
	BeforeTxnEnd func()
	// NoUnstartedCheck turns off the periodic check of workers left
	// waiting for their offsets (reconcile.go), for tests that run it
	// themselves.
	NoUnstartedCheck bool
	// SwallowRevoke, when it returns true for a revoked partition, keeps
	// that partition's worker as if its revoke had never reached the
	// processor: what franz-go's GroupTransactSession does to every revoke
	// after the first until a transaction ends (see wakePoll).
	SwallowRevoke func(partition int32) bool
	// CommitDespiteWaitingCallback tries to commit a transaction even
	// while a rebalance callback waits for the poll loop, so that a test
	// can see End wait for that callback, and cancelled (see end).
	CommitDespiteWaitingCallback bool
	// EndGrace, when set, replaces endGrace: how long an End that tries to
	// commit may go on once a rebalance callback waits for it. A test sets
	// it past the transaction timeout to see the timeout cancel End.
	EndGrace time.Duration
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
	if c.TxnMaxRecords == 0 {
		c.TxnMaxRecords = 10_000
	}
	if c.TransactionTimeout == 0 {
		c.TransactionTimeout = 30 * time.Second
	}
	if c.TopicCheckInterval == 0 {
		c.TopicCheckInterval = 5 * time.Second
	}
	if c.GroupProtocol == "" {
		c.GroupProtocol = "classic"
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
	case c.TxnMaxRecords < 1:
		return fmt.Errorf("%w: transaction max records must be positive", ErrConfig)
	case c.TxnMaxWait < 0:
		return fmt.Errorf("%w: transaction max wait must not be negative", ErrConfig)
	case c.GroupProtocol != "classic" && c.GroupProtocol != "consumer":
		return fmt.Errorf("%w: group protocol %q is not classic or consumer", ErrConfig, c.GroupProtocol)
	}
	return nil
}
