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

// ErrNotHanging is returned by AbortHanging when the partition no longer
// holds the transaction open as FindHanging found it: something ended it,
// or its producer wrote to it since, and it is not to be aborted.
var ErrNotHanging = errors.New("transaction no longer open on its partition as found")

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
	// transaction.max.timeout.ms, past which a coordinator aborts a
	// transaction it knows of. The age only spares transactions too young
	// to judge (the record's timestamp is the producer's clock); what
	// tells a hanging transaction from a live one is its coordinator.
	OlderThan time.Duration
}

// HangingTxn is an open transaction of one producer on one partition that
// its coordinator will not complete.
type HangingTxn struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	// StartOffset is the transaction's first offset on the partition;
	// read_committed readers stop there (at the earliest, when several
	// transactions are open on the partition).
	StartOffset      int64     `json:"start_offset"`
	ProducerID       int64     `json:"producer_id"`
	ProducerEpoch    int16     `json:"producer_epoch"`
	CoordinatorEpoch int32     `json:"coordinator_epoch"`
	LastWrite        time.Time `json:"last_write"`
	// TransactionalID is the producer's transactional id, "" when no
	// coordinator knows the producer any more.
	TransactionalID string `json:"transactional_id,omitempty"`
	// Unattributed: the transaction is on __consumer_offsets and no
	// coordinator knows its producer, so whether it holds the group's
	// offsets or another group's cannot be told (its transactional id
	// expired, or its producer id was replaced). It is hanging all the
	// same.
	Unattributed bool `json:"unattributed,omitempty"`
	// CoordinatorState is what the coordinator says of that transactional
	// id (Empty, Ongoing, CompleteCommit, ...), "" when it knows none.
	CoordinatorState string `json:"coordinator_state,omitempty"`
}

// String names the transaction as the abort command does.
func (h HangingTxn) String() string {
	return fmt.Sprintf("%s/%d at offset %d (producer %d, epoch %d)", h.Topic, h.Partition, h.StartOffset, h.ProducerID, h.ProducerEpoch)
}

// OffsetsTopic is Kafka's topic of committed offsets.
const OffsetsTopic = "__consumer_offsets"

// defaultTxnMaxTimeout is Kafka's default transaction.max.timeout.ms, used
// when the brokers do not say theirs.
const defaultTxnMaxTimeout = 15 * time.Minute

// FindHanging returns the hanging transactions in scope, sorted by topic,
// partition and producer, as of now.
//
// A hanging transaction is one a partition holds open while no transaction
// coordinator will ever write its marker there: the coordinator has
// forgotten it, or completed it without writing the marker to this
// partition (Kafka 4.4 does that when it finds the partition leaderless,
// docs/RELIABILITY.md). The partition's last stable offset then stays at
// the transaction's first record for ever: read_committed consumers of the
// current topic stop there and restores from it never end; in the group's
// partition of __consumer_offsets, fetches of the offsets it holds answer
// UNSTABLE_OFFSET_COMMIT, so the processors never start those partitions.
//
// FindHanging finds them as Kafka's kafka-transactions.sh find-hanging does
// (KIP-664): a transaction is open on a partition (DescribeProducers gives
// its first offset), no record has joined it for OlderThan, and the
// coordinator of its producer's transactional id does not list the
// partition in a transaction of that producer it has yet to complete. It
// fails rather than guess: when a partition in scope cannot be described,
// when a partition of __transaction_state has no leader (a coordinator
// that cannot answer would make its transactions look forgotten), or when
// a coordinator does not answer for a transactional id. AbortHanging then
// writes the abort marker no coordinator will.
func FindHanging(ctx context.Context, adm *kadm.Client, scope HangingScope, now time.Time) ([]HangingTxn, error) {
	olderThan := scope.OlderThan
	if olderThan <= 0 {
		var err error
		if olderThan, err = txnMaxTimeout(ctx, adm); err != nil {
			return nil, err
		}
	}
	set, err := scopePartitions(ctx, adm, scope)
	if err != nil {
		return nil, err
	}
	described, err := adm.DescribeProducers(ctx, set)
	if err != nil {
		return nil, fmt.Errorf("describe producers: %w", err)
	}
	var unanswered []string
	set.Each(func(t string, p int32) {
		if _, ok := described[t].Partitions[p]; !ok {
			unanswered = append(unanswered, fmt.Sprintf("%s/%d", t, p))
		}
	})
	if len(unanswered) > 0 {
		slices.Sort(unanswered)
		return nil, fmt.Errorf("describe producers: no answer for %v", unanswered)
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
	if err := coordinatorsUp(ctx, adm); err != nil {
		return nil, err
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
		if h.Topic == OffsetsTopic {
			if h.TransactionalID != "" && !strings.HasPrefix(h.TransactionalID, scope.TxnIDPrefix) {
				continue // another group's
			}
			h.Unattributed = h.TransactionalID == ""
		}
		if h.TransactionalID != "" {
			d, ok := described[h.TransactionalID]
			switch {
			case !ok:
				return nil, fmt.Errorf("describe transaction %s: no answer", h.TransactionalID)
			case d.Err != nil && !errors.Is(d.Err, kerr.TransactionalIDNotFound):
				return nil, fmt.Errorf("describe transaction %s: %w", h.TransactionalID, d.Err)
			case d.Err == nil:
				h.CoordinatorState = d.State
				// A coordinator that moved the id to another producer
				// has completed every transaction of the old one.
				if _, pending := d.Topics[h.Topic][h.Partition]; pending && d.ProducerID == h.ProducerID {
					continue // the coordinator will write its marker
				}
			}
		}
		hanging = append(hanging, h)
	}
	return hanging, nil
}

// scopePartitions returns every partition in scope.
func scopePartitions(ctx context.Context, adm *kadm.Client, scope HangingScope) (kadm.TopicsSet, error) {
	topics := slices.Clone(scope.Topics)
	if scope.Group != "" {
		topics = append(topics, OffsetsTopic)
	}
	md, err := adm.Metadata(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("metadata of %v: %w", topics, err)
	}
	set := make(kadm.TopicsSet)
	for _, t := range topics {
		td, ok := md.Topics[t]
		if t == OffsetsTopic && (!ok || errors.Is(td.Err, kerr.UnknownTopicOrPartition)) {
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
		if t != OffsetsTopic {
			for p := range td.Partitions {
				set.Add(t, p)
			}
			continue
		}
		set.Add(t, groupOffsetsPartition(scope.Group, int32(len(td.Partitions))))
	}
	return set, nil
}

// transactionsTopic is Kafka's topic of transaction coordinators' state.
const transactionsTopic = "__transaction_state"

// coordinatorsUp checks that every partition of __transaction_state has a
// leader, so that every transaction coordinator can answer: ListTransactions
// leaves out, without an error, the transactions of a coordinator that
// cannot, and they would look forgotten. A cluster without the topic has
// never had a transaction.
func coordinatorsUp(ctx context.Context, adm *kadm.Client) error {
	md, err := adm.Metadata(ctx, transactionsTopic)
	if err != nil {
		return fmt.Errorf("metadata of %s: %w", transactionsTopic, err)
	}
	td, ok := md.Topics[transactionsTopic]
	if !ok || errors.Is(td.Err, kerr.UnknownTopicOrPartition) {
		return nil
	}
	if td.Err != nil {
		return fmt.Errorf("metadata of %s: %w", transactionsTopic, td.Err)
	}
	for _, p := range td.Partitions.Sorted() {
		if p.Err != nil || p.Leader < 0 {
			return fmt.Errorf("transaction coordinators cannot all answer: %s/%d has no leader (%v); try again once it has", transactionsTopic, p.Partition, p.Err)
		}
	}
	return nil
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
// checked that the partition still holds h open, as FindHanging saw it
// (the same producer, epoch, first offset and last record): ErrNotHanging
// if it does not. It does not check that h is hanging: FindHanging does,
// just before. The marker drops the transaction's records for
// read_committed readers and lets the partition's last stable offset move
// past them.
func AbortHanging(ctx context.Context, adm *kadm.Client, h HangingTxn) error {
	cur, err := openTxn(ctx, adm, h)
	if err != nil {
		return err
	}
	resp, err := adm.WriteTxnMarkers(ctx, kadm.TxnMarkers{
		ProducerID: h.ProducerID,
		// h's epoch, not a newer one: records of a newer epoch belong to
		// a live transaction, and the broker refuses the marker.
		ProducerEpoch: h.ProducerEpoch,
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
		return fmt.Errorf("abort %s: marker written, not confirmed: %w", h, err)
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
	if !ok || pr.CurrentTxnStartOffset != h.StartOffset || pr.ProducerEpoch != h.ProducerEpoch || pr.LastTimestamp != h.LastWrite.UnixMilli() {
		return kadm.DescribedProducer{}, fmt.Errorf("%s: %w", h, ErrNotHanging)
	}
	return pr, nil
}
