package processor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// A hanging transaction is one a partition holds open while its
// transaction coordinator will never write its marker: the coordinator has
// forgotten it, or completed it without writing the marker to this
// partition (Kafka 4.4 does that when it finds the partition leaderless,
// docs/RELIABILITY.md). Its partition's last stable offset then stays at
// the transaction's first record for ever: read_committed consumers of the
// current topic stop there, restores from it never end, and when the
// partition is the group's partition of __consumer_offsets, every offset
// fetch of the group's partitions answers UNSTABLE_OFFSET_COMMIT, so the
// processors never start them.
//
// FindHanging finds such transactions the way Kafka's
// kafka-transactions.sh find-hanging does (KIP-664): a transaction is open
// on a partition (DescribeProducers gives its first offset), no record has
// been added to it for longer than any live transaction can last (the
// brokers' transaction.max.timeout.ms, past which a coordinator aborts what
// it knows of), and the coordinator of the producer's transactional id does
// not list the partition as part of a transaction it has yet to complete.
// AbortHanging writes the abort marker the coordinator never will.

// ErrNotHanging is returned by AbortHanging when the transaction is no
// longer open on its partition: something else ended it, and there is
// nothing to abort.
var ErrNotHanging = errors.New("transaction no longer open on its partition")

// HangingScope says where FindHanging looks.
type HangingScope struct {
	// Topics are checked partition by partition: the processors' output
	// topics, the current and dead-letter topics.
	Topics []string
	// Group, when set, adds the group's partition of __consumer_offsets,
	// where the processors' transactions commit the group's offsets. That
	// partition also holds other groups' offsets, so only transactions of
	// producers whose transactional id starts with TxnIDPrefix are
	// reported there.
	Group       string
	TxnIDPrefix string
	// OlderThan is how long a transaction must have gone without a record
	// before it can be hanging. Zero or less: the brokers'
	// transaction.max.timeout.ms, the longest any live transaction can
	// last. A shorter one may report, and lead to the abort of, a live
	// transaction of a slow producer.
	OlderThan time.Duration
}

// HangingTxn is an open transaction of one producer on one partition that
// its coordinator will not complete.
type HangingTxn struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	// StartOffset is the transaction's first offset on the partition: the
	// partition's last stable offset, where read_committed readers stop.
	StartOffset      int64     `json:"start_offset"`
	ProducerID       int64     `json:"producer_id"`
	ProducerEpoch    int16     `json:"producer_epoch"`
	CoordinatorEpoch int32     `json:"coordinator_epoch"`
	LastWrite        time.Time `json:"last_write"`
	// TransactionalID is the producer's transactional id, "" when no
	// coordinator knows the producer any more.
	TransactionalID string `json:"transactional_id,omitempty"`
	// CoordinatorState is what the coordinator says of that transactional
	// id (Empty, Ongoing, CompleteCommit, ...), "" when it knows none.
	CoordinatorState string `json:"coordinator_state,omitempty"`
}

// String names the transaction as the abort command does.
func (h HangingTxn) String() string {
	return fmt.Sprintf("%s/%d at offset %d (producer %d, epoch %d)", h.Topic, h.Partition, h.StartOffset, h.ProducerID, h.ProducerEpoch)
}

// offsetsTopic is Kafka's topic of committed offsets.
const offsetsTopic = "__consumer_offsets"

// defaultTxnMaxTimeout is Kafka's default transaction.max.timeout.ms, used
// when the brokers do not say theirs.
const defaultTxnMaxTimeout = 15 * time.Minute

// FindHanging returns the hanging transactions in scope, sorted by topic,
// partition and producer, as of now. It fails when a partition in scope
// cannot be described: a partition not looked at is not known to be well.
func FindHanging(ctx context.Context, adm *kadm.Client, scope HangingScope, now time.Time) ([]HangingTxn, error) {
	olderThan := scope.OlderThan
	if olderThan <= 0 {
		var err error
		if olderThan, err = txnMaxTimeout(ctx, adm); err != nil {
			return nil, err
		}
	}
	set, err := hangingPartitions(ctx, adm, scope)
	if err != nil {
		return nil, err
	}
	described, err := adm.DescribeProducers(ctx, set)
	if err != nil {
		return nil, fmt.Errorf("describe producers: %w", err)
	}
	var open []HangingTxn
	for _, dp := range described.SortedPartitions() {
		if dp.Err != nil {
			return nil, fmt.Errorf("describe producers of %s/%d: %w", dp.Topic, dp.Partition, dp.Err)
		}
		for _, pr := range dp.ActiveProducers.Sorted() {
			last := time.UnixMilli(pr.LastTimestamp)
			if pr.CurrentTxnStartOffset < 0 || now.Sub(last) <= olderThan {
				continue
			}
			open = append(open, HangingTxn{
				Topic: dp.Topic, Partition: dp.Partition, StartOffset: pr.CurrentTxnStartOffset,
				ProducerID: pr.ProducerID, ProducerEpoch: pr.ProducerEpoch, CoordinatorEpoch: pr.CoordinatorEpoch,
				LastWrite: last,
			})
		}
	}
	if len(open) == 0 {
		return nil, nil
	}
	return withCoordinators(ctx, adm, open, scope)
}

// withCoordinators asks the coordinators about the producers of open and
// returns those whose transaction on their partition no coordinator will
// complete.
func withCoordinators(ctx context.Context, adm *kadm.Client, open []HangingTxn, scope HangingScope) ([]HangingTxn, error) {
	pids := make([]int64, 0, len(open))
	for _, h := range open {
		if !slices.Contains(pids, h.ProducerID) {
			pids = append(pids, h.ProducerID)
		}
	}
	listed, err := adm.ListTransactions(ctx, pids, nil)
	if err != nil {
		return nil, fmt.Errorf("list the transactions of producers %v: %w", pids, err)
	}
	txnIDs := make(map[int64]string)
	for _, l := range listed {
		if slices.Contains(pids, l.ProducerID) {
			txnIDs[l.ProducerID] = l.TxnID
		}
	}
	var described kadm.DescribedTransactions
	if len(txnIDs) > 0 {
		ids := make([]string, 0, len(txnIDs))
		for _, id := range txnIDs {
			ids = append(ids, id)
		}
		if described, err = adm.DescribeTransactions(ctx, ids...); err != nil {
			return nil, fmt.Errorf("describe transactions %v: %w", ids, err)
		}
	}
	var hanging []HangingTxn
	for _, h := range open {
		h.TransactionalID = txnIDs[h.ProducerID]
		if h.Topic == offsetsTopic && (h.TransactionalID == "" || !strings.HasPrefix(h.TransactionalID, scope.TxnIDPrefix)) {
			continue // another group's, or nobody's we can tell
		}
		if h.TransactionalID != "" {
			d, err := described.On(h.TransactionalID, nil)
			switch {
			case errors.Is(err, kerr.TransactionalIDNotFound):
			case err != nil:
				return nil, fmt.Errorf("describe transaction %s: %w", h.TransactionalID, err)
			case d.Err != nil && !errors.Is(d.Err, kerr.TransactionalIDNotFound):
				return nil, fmt.Errorf("describe transaction %s: %w", h.TransactionalID, d.Err)
			case d.Err == nil:
				h.CoordinatorState = d.State
				if _, pending := d.Topics[h.Topic][h.Partition]; pending && d.ProducerID == h.ProducerID {
					continue // the coordinator will write its marker
				}
			}
		}
		hanging = append(hanging, h)
	}
	return hanging, nil
}

// hangingPartitions returns every partition in scope.
func hangingPartitions(ctx context.Context, adm *kadm.Client, scope HangingScope) (kadm.TopicsSet, error) {
	topics := slices.Clone(scope.Topics)
	if scope.Group != "" {
		topics = append(topics, offsetsTopic)
	}
	md, err := adm.Metadata(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("metadata of %v: %w", topics, err)
	}
	set := make(kadm.TopicsSet)
	for _, t := range topics {
		td, ok := md.Topics[t]
		if t == offsetsTopic && (!ok || errors.Is(td.Err, kerr.UnknownTopicOrPartition)) {
			continue // no group has committed offsets yet: nothing to hang there
		}
		switch {
		case !ok:
			return nil, fmt.Errorf("metadata of %s: not in the answer: %w", t, kerr.UnknownTopicOrPartition)
		case td.Err != nil:
			return nil, fmt.Errorf("metadata of %s: %w", t, td.Err)
		case len(td.Partitions) == 0:
			return nil, fmt.Errorf("metadata of %s: no partitions", t)
		}
		if t != offsetsTopic {
			for p := range td.Partitions {
				set.Add(t, p)
			}
			continue
		}
		set.Add(t, groupOffsetsPartition(scope.Group, int32(len(td.Partitions))))
	}
	return set, nil
}

// groupOffsetsPartition returns the partition of __consumer_offsets that
// holds group's offsets when the topic has n partitions: Kafka's
// abs(group.hashCode()) % n, with Java's String.hashCode over the group's
// UTF-16 code units and Kafka's abs, which maps MinInt32 to 0.
func groupOffsetsPartition(group string, n int32) int32 {
	var h int32
	for _, r := range group {
		if r >= 0x10000 { // a surrogate pair in Java
			r -= 0x10000
			h = 31*h + int32(0xd800+(r>>10))
			h = 31*h + int32(0xdc00+(r&0x3ff))
			continue
		}
		h = 31*h + int32(r)
	}
	if h == -1<<31 {
		h = 0
	} else if h < 0 {
		h = -h
	}
	return h % n
}

// txnMaxTimeout returns the brokers' transaction.max.timeout.ms, Kafka's
// default when no broker says it.
func txnMaxTimeout(ctx context.Context, adm *kadm.Client) (time.Duration, error) {
	md, err := adm.BrokerMetadata(ctx)
	if err != nil {
		return 0, fmt.Errorf("brokers: %w", err)
	}
	// Without brokers named, a broker answers with the cluster's dynamic
	// defaults only, not the static config that sets this.
	rcs, err := adm.DescribeBrokerConfigs(ctx, md.Brokers.NodeIDs()...)
	if err != nil {
		return 0, fmt.Errorf("describe broker configs: %w", err)
	}
	longest := time.Duration(0)
	for _, rc := range rcs {
		if rc.Err != nil {
			return 0, fmt.Errorf("describe broker %s configs: %w", rc.Name, rc.Err)
		}
		for _, c := range rc.Configs {
			if c.Key != "transaction.max.timeout.ms" || c.Value == nil {
				continue
			}
			ms, err := strconv.ParseInt(*c.Value, 10, 64)
			if err != nil {
				return 0, fmt.Errorf("broker %s transaction.max.timeout.ms %q: %w", rc.Name, *c.Value, err)
			}
			longest = max(longest, time.Duration(ms)*time.Millisecond)
		}
	}
	if longest == 0 {
		return defaultTxnMaxTimeout, nil
	}
	return longest, nil
}

// AbortHanging writes the abort marker of h to its partition, once it has
// checked that the partition still holds h open; ErrNotHanging if it does
// not. It does not check that h is hanging: FindHanging does. The marker
// drops the transaction's records for read_committed readers and lets the
// partition's last stable offset move past them.
func AbortHanging(ctx context.Context, adm *kadm.Client, h HangingTxn) error {
	cur, err := openTxn(ctx, adm, h)
	if err != nil {
		return err
	}
	resp, err := adm.WriteTxnMarkers(ctx, kadm.TxnMarkers{
		ProducerID:    cur.ProducerID,
		ProducerEpoch: cur.ProducerEpoch,
		Commit:        false,
		// A producer with no marker written yet on the partition reports
		// -1; 0 is at most any epoch a coordinator can have had.
		CoordinatorEpoch: max(cur.CoordinatorEpoch, 0),
		Topics:           kadm.TopicsSet{h.Topic: {h.Partition: {}}},
	})
	if err != nil {
		return fmt.Errorf("abort %s: %w", h, err)
	}
	written := false
	for _, r := range resp.SortedPartitions() {
		if r.Err != nil {
			return fmt.Errorf("abort %s: %w", h, r.Err)
		}
		written = written || r.Topic == h.Topic && r.Partition == h.Partition
	}
	if !written {
		return fmt.Errorf("abort %s: the broker did not answer for the partition", h)
	}
	if _, err := openTxn(ctx, adm, h); !errors.Is(err, ErrNotHanging) {
		if err == nil {
			err = errors.New("still open after its abort marker")
		}
		return fmt.Errorf("abort %s: %w", h, err)
	}
	return nil
}

// openTxn returns the partition's current state of h's producer if it
// still holds h open, ErrNotHanging if it does not.
func openTxn(ctx context.Context, adm *kadm.Client, h HangingTxn) (kadm.DescribedProducer, error) {
	described, err := adm.DescribeProducers(ctx, kadm.TopicsSet{h.Topic: {h.Partition: {}}})
	if err != nil {
		return kadm.DescribedProducer{}, fmt.Errorf("describe producers of %s/%d: %w", h.Topic, h.Partition, err)
	}
	dp, ok := described[h.Topic].Partitions[h.Partition]
	if !ok {
		return kadm.DescribedProducer{}, fmt.Errorf("describe producers of %s/%d: no answer", h.Topic, h.Partition)
	}
	if dp.Err != nil {
		return kadm.DescribedProducer{}, fmt.Errorf("describe producers of %s/%d: %w", h.Topic, h.Partition, dp.Err)
	}
	pr, ok := dp.ActiveProducers[h.ProducerID]
	if !ok || pr.CurrentTxnStartOffset != h.StartOffset {
		return kadm.DescribedProducer{}, fmt.Errorf("%s: %w", h, ErrNotHanging)
	}
	return pr, nil
}
