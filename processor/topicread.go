package processor

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Span is the part of one partition that a read_committed read from the
// start covers: offsets from Start (the log's start) up to, not including,
// End (the last stable offset). End-Start bounds the records read: control
// records and records of aborted transactions take offsets too.
type Span struct {
	Start, End int64
}

// Len returns End-Start: at most the number of records a read of s reads.
func (s Span) Len() int64 { return max(s.End-s.Start, 0) }

// Spans returns the Span of every partition of topic as of now, on a client
// of its own. It fails when the topic does not exist.
func Spans(ctx context.Context, cfg Config, topic string) (map[int32]Span, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(cfg.Brokers...)}, cfg.ClientOpts...)...)
	if err != nil {
		return nil, fmt.Errorf("processor: admin client: %w", err)
	}
	defer cl.Close()
	spans, _, err := topicSpans(ctx, kadm.NewClient(cl), topic)
	return spans, err
}

// topicSpans returns the Span of every partition of topic and the topic's
// id.
func topicSpans(ctx context.Context, adm *kadm.Client, topic string) (map[int32]Span, kadm.TopicID, error) {
	details, err := adm.ListTopics(ctx, topic)
	if err != nil {
		return nil, kadm.TopicID{}, fmt.Errorf("processor: describe topic %s: %w", topic, err)
	}
	d, ok := details[topic]
	if !ok || errors.Is(d.Err, kerr.UnknownTopicOrPartition) {
		return nil, kadm.TopicID{}, fmt.Errorf("processor: topic %s does not exist", topic)
	}
	if d.Err != nil {
		return nil, kadm.TopicID{}, fmt.Errorf("processor: describe topic %s: %w", topic, d.Err)
	}
	starts, err := listStartOffsets(ctx, adm, topic)
	if err != nil {
		return nil, kadm.TopicID{}, err
	}
	ends, err := listOffsets(ctx, "committed end", topic, adm.ListCommittedOffsets)
	if err != nil {
		return nil, kadm.TopicID{}, err
	}
	spans := make(map[int32]Span, len(d.Partitions))
	for part := range d.Partitions {
		start, ok1 := starts.Lookup(topic, part)
		end, ok2 := ends.Lookup(topic, part)
		if !ok1 || !ok2 {
			return nil, kadm.TopicID{}, fmt.Errorf("processor: no offsets for %s[%d]", topic, part)
		}
		spans[part] = Span{Start: start.Offset, End: end.Offset}
	}
	return spans, d.ID, nil
}

// ReadTopic calls fn for every record of every partition of topic, partition
// by partition in ascending order and in offset order within each, from
// each partition's start up to the last stable offset it had when ReadTopic
// began, reading with read_committed isolation on clients of its own:
// records of aborted transactions and transaction markers are never passed
// to fn. Records written after ReadTopic began are not read, so fn may
// write to topic without reading its own writes. The first error fn returns
// stops the read and is returned as is. ReadTopic returns the number of
// records passed to fn.
func ReadTopic(ctx context.Context, cfg Config, topic string, fn func(*kgo.Record) error) (int64, error) {
	spans, err := Spans(ctx, cfg, topic)
	if err != nil {
		return 0, err
	}
	r := ranger{cfg: cfg.withDefaults()}
	var total int64
	for _, part := range sortedPartitions(spans) {
		s := spans[part]
		if s.Len() == 0 {
			continue
		}
		n, err := r.readRange(ctx, topic, part, s.Start, s.End, nil, fn)
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

func sortedPartitions(spans map[int32]Span) []int32 {
	parts := make([]int32, 0, len(spans))
	for part := range spans {
		parts = append(parts, part)
	}
	slices.Sort(parts)
	return parts
}
