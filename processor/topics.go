package processor

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// TopicSpec is one topic the processor needs, with the configs it creates
// it with.
type TopicSpec struct {
	Name       string
	Partitions int32
	Configs    map[string]*string
}

// Topics returns the three topics of the contract as c creates them: the
// events topic with c.EventsRetention, the compacted current topic with the
// same partition count, and the dead-letter topic.
func (c Config) Topics() []TopicSpec {
	c = c.withDefaults()
	str := func(s string) *string { return &s }
	retention := strconv.FormatInt(c.EventsRetention.Milliseconds(), 10)
	return []TopicSpec{
		{Name: c.EventsTopic, Partitions: c.Partitions, Configs: map[string]*string{
			"retention.ms":   str(retention),
			"cleanup.policy": str("delete"),
		}},
		{Name: c.CurrentTopic, Partitions: c.Partitions, Configs: map[string]*string{
			"cleanup.policy": str("compact"),
		}},
		{Name: c.DLQTopic, Partitions: c.Partitions, Configs: map[string]*string{
			"retention.ms":   str(retention),
			"cleanup.policy": str("delete"),
		}},
	}
}

// EnsureTopics creates whichever of c's topics are missing and then checks
// that the events and current topics have the same partition count. It
// returns that count.
func EnsureTopics(ctx context.Context, adm *kadm.Client, c Config, create bool) (int32, error) {
	c = c.withDefaults()
	if create {
		for _, t := range c.Topics() {
			resp, err := adm.CreateTopic(ctx, t.Partitions, c.ReplicationFactor, t.Configs, t.Name)
			if err == nil {
				err = resp.Err
			}
			if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
				return 0, fmt.Errorf("processor: create topic %s: %w", t.Name, err)
			}
		}
	}
	return checkPartitions(ctx, adm, c)
}

func checkPartitions(ctx context.Context, adm *kadm.Client, c Config) (int32, error) {
	var (
		details kadm.TopicDetails
		err     error
	)
	// A topic just created may take a while to show in every broker's
	// metadata, longer on a loaded machine.
	deadline := time.Now().Add(30 * time.Second)
	for {
		details, err = adm.ListTopics(ctx, c.EventsTopic, c.CurrentTopic)
		if err == nil {
			err = details.Error()
		}
		if err == nil || !kerr.IsRetriable(err) || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	if err != nil {
		return 0, fmt.Errorf("processor: describe topics: %w", err)
	}
	ev, cur := len(details[c.EventsTopic].Partitions), len(details[c.CurrentTopic].Partitions)
	if ev == 0 || cur == 0 {
		return 0, fmt.Errorf("processor: topics %s (%d partitions) and %s (%d partitions) must both exist",
			c.EventsTopic, ev, c.CurrentTopic, cur)
	}
	if ev != cur {
		return 0, fmt.Errorf("%w: %s has %d, %s has %d; recreate %s with %d partitions",
			ErrPartitionMismatch, c.EventsTopic, ev, c.CurrentTopic, cur, c.CurrentTopic, ev)
	}
	return int32(ev), nil
}
