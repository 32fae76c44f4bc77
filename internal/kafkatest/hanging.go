package kafkatest

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
)

// Hanger makes hanging transactions, open on their partitions while no
// coordinator knows of them, as Kafka 4.4 leaves them after a restart of a
// single-node broker (docs/RELIABILITY.md), on a real broker of a test's
// own (OwnBroker).
//
// Kafka's brokers do not let a correct client make one: they check with
// the coordinator that a transactional append belongs to a transaction it
// knows (KIP-890). So NewHanger turns that check off on the broker until
// the test ends, and a Hanger appends with requests of the versions before
// KIP-890's, as a client with the bug would.
type Hanger struct {
	t   testing.TB
	raw *kgo.Client // requests of pre-KIP-890 versions
	adm *kadm.Client
}

// NewHanger returns a Hanger on the broker at addr, whose check of
// transactional appends is off until t ends. Transactions begun before
// keep their partitions known to their coordinators.
func NewHanger(t testing.TB, addr string) *Hanger {
	t.Helper()
	vs := kversion.Stable()
	vs.SetMaxKeyVersion(int16(kmsg.Produce), 11)
	vs.SetMaxKeyVersion(int16(kmsg.TxnOffsetCommit), 3)
	vs.SetMaxKeyVersion(int16(kmsg.OffsetFetch), 9)
	raw, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.MaxVersions(vs))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(raw.Close)
	admCl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(admCl.Close)
	h := &Hanger{t: t, raw: raw, adm: kadm.NewClient(admCl)}
	h.setChecks("false", kadm.SetConfig)
	t.Cleanup(func() { h.setChecks("true", kadm.DeleteConfig) })
	return h
}

// setChecks sets the broker's transaction.partition.verification.enable by
// op and waits until the broker says want.
func (h *Hanger) setChecks(want string, op kadm.IncrementalOp) {
	h.t.Helper()
	const name = "transaction.partition.verification.enable"
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := h.adm.AlterBrokerConfigs(ctx, []kadm.AlterConfig{{Op: op, Name: name, Value: kadm.StringPtr(want)}}); err != nil {
		h.t.Fatal(err)
	}
	Eventually(h.t, 30*time.Second, func() error {
		rcs, err := h.adm.DescribeBrokerConfigs(ctx, 1)
		if err != nil {
			return err
		}
		c, err := rcs.On("1", nil)
		if err != nil {
			return err
		}
		for _, kv := range c.Configs {
			if kv.Key == name && kv.MaybeValue() == want {
				return nil
			}
		}
		return fmt.Errorf("the broker's %s is not yet %s", name, want)
	})
}

// Append appends one record, keyed "committed ID" or "hung ID", to
// topic/part in a transaction of transactional id id that no coordinator
// hears of; unless hang, it ends the transaction with a commit marker. It
// returns the record's offset.
func (h *Hanger) Append(ctx context.Context, id, topic string, part int32, hang bool) int64 {
	h.t.Helper()
	pid, epoch := h.initProducer(ctx, id)
	rec := kmsg.NewRecord()
	rec.Key = []byte("committed " + id)
	if hang {
		rec.Key = []byte("hung " + id)
	}
	rec.Length = int32(len(rec.AppendTo(nil)) - 1) // the length's own varint was one byte
	batch := kmsg.NewRecordBatch()
	batch.PartitionLeaderEpoch = -1
	batch.Magic = 2
	batch.Attributes = 0x10 // transactional
	batch.FirstTimestamp = time.Now().UnixMilli()
	batch.MaxTimestamp = batch.FirstTimestamp
	batch.ProducerID, batch.ProducerEpoch = pid, epoch
	batch.NumRecords = 1
	batch.Records = rec.AppendTo(nil)
	raw := batch.AppendTo(nil)
	binary.BigEndian.PutUint32(raw[8:], uint32(len(raw)-12))                                          // length: what follows it
	binary.BigEndian.PutUint32(raw[17:], crc32.Checksum(raw[21:], crc32.MakeTable(crc32.Castagnoli))) // crc: from the attributes on

	req := kmsg.NewPtrProduceRequest()
	req.TransactionID = &id
	req.Acks = -1
	req.TimeoutMillis = 10000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Partition, rp.Records = part, raw
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, h.raw)
	if err != nil {
		h.t.Fatal(err)
	}
	r := resp.Topics[0].Partitions[0]
	if err := kerr.ErrorForCode(r.ErrorCode); err != nil {
		h.t.Fatalf("append to %s/%d: %v", topic, part, err)
	}
	if !hang {
		_, err := h.adm.WriteTxnMarkers(ctx, kadm.TxnMarkers{ProducerID: pid, ProducerEpoch: epoch, Commit: true, Topics: kadm.TopicsSet{topic: {part: {}}}})
		if err != nil {
			h.t.Fatal(err)
		}
	}
	return r.BaseOffset
}

// CommitOffset commits offset 1 of topic/0 for group in a transaction of
// transactional id id that no coordinator hears of, left open, and returns
// the offset of the commit's record in __consumer_offsets. Unless known,
// the producer id is an idempotent producer's, which no coordinator maps
// to a transactional id.
func (h *Hanger) CommitOffset(ctx context.Context, id, group, topic string, known bool) int64 {
	h.t.Helper()
	initID := id
	if !known {
		initID = ""
	}
	pid, epoch := h.initProducer(ctx, initID)
	ends, err := h.adm.ListEndOffsets(ctx, "__consumer_offsets")
	if err != nil {
		h.t.Fatal(err)
	}
	end, _ := ends.Lookup("__consumer_offsets", 0) // none yet: 0
	req := kmsg.NewPtrTxnOffsetCommitRequest()
	req.TransactionalID, req.Group = id, group
	req.ProducerID, req.ProducerEpoch = pid, epoch
	req.Generation = -1
	rt := kmsg.NewTxnOffsetCommitRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
	rp.Partition, rp.Offset = 0, 1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, h.raw)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := kerr.ErrorForCode(resp.Topics[0].Partitions[0].ErrorCode); err != nil {
		h.t.Fatalf("transactional offset commit of %s: %v", group, err)
	}
	return end.Offset
}

// initProducer returns a producer id and epoch for transactional id id, or
// for an idempotent producer if id is "".
func (h *Hanger) initProducer(ctx context.Context, id string) (int64, int16) {
	h.t.Helper()
	req := kmsg.NewPtrInitProducerIDRequest()
	if id != "" {
		req.TransactionalID = &id
	}
	req.TransactionTimeoutMillis = 60000
	resp, err := req.RequestWith(ctx, h.raw)
	if err == nil {
		err = kerr.ErrorForCode(resp.ErrorCode)
	}
	if err != nil {
		h.t.Fatalf("init producer %q: %v", id, err)
	}
	return resp.ProducerID, resp.ProducerEpoch
}

// FetchStable fetches group's offset of topic/0 as a transactional
// consumer does (RequireStable), and returns the partition's error:
// UNSTABLE_OFFSET_COMMIT while a transaction holds it.
func (h *Hanger) FetchStable(ctx context.Context, group, topic string) error {
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Group, req.RequireStable = group, true
	rt := kmsg.NewOffsetFetchRequestTopic()
	rt.Topic, rt.Partitions = topic, []int32{0}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, h.raw)
	if err != nil {
		return fmt.Errorf("offset fetch: %w", err)
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return fmt.Errorf("offset fetch: %w", err)
	}
	if err := kerr.ErrorForCode(resp.Topics[0].Partitions[0].ErrorCode); err != nil {
		return fmt.Errorf("offset fetch: %w", err)
	}
	return nil
}
