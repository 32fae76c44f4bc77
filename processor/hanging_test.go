package processor_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wastatus/wastatus/internal/kafkatest"
	"github.com/wastatus/wastatus/processor"
)

// TestHangingTransactions makes, on a real broker of its own, the hanging
// transactions a broker bug leaves (docs/RELIABILITY.md; kafkatest.Hanger).
func TestHangingTransactions(t *testing.T) {
	b := kafkatest.OwnBroker(t)
	admCl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer admCl.Close()
	adm := kadm.NewClient(admCl)
	t.Run("found and aborted", func(t *testing.T) { testHangingFound(t, b.Addr(), adm) })
	t.Run("processor freed", func(t *testing.T) { testHangingProcessor(t, b.Addr(), adm) })
}

// testHangingFound makes a hanging transaction on a partition of the
// current topic and one holding the group's offsets in __consumer_offsets.
// It checks that they stall what they stall (the partition's last stable
// offset; the group's offset fetch answers UNSTABLE_OFFSET_COMMIT), that
// FindHanging finds exactly them, and not a live transaction nor another
// group's hanging one, and that AbortHanging frees both partitions.
func testHangingFound(t *testing.T, addr string, adm *kadm.Client) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	current, dlq, group := kafkatest.Name(t, "current"), kafkatest.Name(t, "dlq"), kafkatest.Name(t, "group")
	for _, topic := range []string{current, dlq} {
		if _, err := adm.CreateTopic(ctx, 3, 1, nil, topic); err != nil {
			t.Fatal(err)
		}
	}
	scope := processor.HangingScope{Topics: []string{current, dlq}, Group: group, TxnIDPrefix: group + ".", OlderThan: time.Millisecond}

	// A live transaction, begun while the broker still checks: its
	// coordinator lists current/2.
	live, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.TransactionalID(group+".live"), kgo.TransactionTimeout(5*time.Minute),
		kgo.DefaultProduceTopic(current), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	if err := live.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := live.ProduceSync(ctx, &kgo.Record{Partition: 2, Key: []byte("live")}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	hg := kafkatest.NewHanger(t, addr)
	// Committed records before the hanging ones, so that the last stable
	// offset it holds back is not the log's start.
	hg.Append(ctx, group+".a", current, 1, false)
	hungRecords := hg.Append(ctx, group+".b", current, 1, true)
	hungOffsets := hg.CommitOffset(ctx, group+".c", group, current, true)
	hg.CommitOffset(ctx, "other.d", "other", current, true)     // another group's: not ours to abort
	hg.CommitOffset(ctx, "ghost."+group, group, current, false) // nobody's any more: unattributed

	if got := lastStable(ctx, t, adm, current, 1); got != hungRecords {
		t.Fatalf("current/1's last stable offset %d, want %d: the hanging transaction holds it", got, hungRecords)
	}
	if err := hg.FetchStable(ctx, group, current); !errors.Is(err, kerr.UnstableOffsetCommit) {
		t.Fatalf("the group's offset fetch: %v, want UNSTABLE_OFFSET_COMMIT", err)
	}

	// The brokers' longest transaction timeout (15 min by default) has not
	// passed: nothing can be called hanging yet.
	if h, err := processor.FindHanging(ctx, adm, processor.HangingScope{Topics: scope.Topics, Group: group, TxnIDPrefix: scope.TxnIDPrefix}, time.Now()); err != nil || len(h) != 0 {
		t.Fatalf("with the brokers' timeout: %v, %v; want none", h, err)
	}
	time.Sleep(2 * scope.OlderThan) // the only wait: OlderThan must pass on the clock
	hanging, err := processor.FindHanging(ctx, adm, scope, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, h := range hanging {
		found = append(found, fmt.Sprintf("%s@%s unattributed=%t", h.Topic, h.TransactionalID, h.Unattributed))
	}
	want := []string{ // by topic, then producer id: in the order they were made
		current + "@" + group + ".b unattributed=false",
		"__consumer_offsets@" + group + ".c unattributed=false",
		"__consumer_offsets@ unattributed=true",
	}
	if !slices.Equal(found, want) {
		t.Fatalf("found %q (%+v), want %q", found, hanging, want)
	}
	if h := hanging[0]; h.Partition != 1 || h.StartOffset != hungRecords || h.CoordinatorState != "Empty" {
		t.Errorf("current's hanging transaction %+v, want partition 1 from offset %d, coordinator state Empty", h, hungRecords)
	}
	if h := hanging[1]; h.StartOffset != hungOffsets {
		t.Errorf("the offsets' hanging transaction %+v, want from offset %d", h, hungOffsets)
	}

	// A transaction its producer has written to since it was found, or
	// that a newer epoch of its producer now holds, is not aborted.
	for _, changed := range []func(*processor.HangingTxn){
		func(h *processor.HangingTxn) { h.LastWrite = h.LastWrite.Add(-time.Millisecond) },
		func(h *processor.HangingTxn) { h.ProducerEpoch++ },
	} {
		h := hanging[0]
		changed(&h)
		if err := processor.AbortHanging(ctx, adm, h); !errors.Is(err, processor.ErrNotHanging) {
			t.Fatalf("abort of %+v, changed since found: %v, want ErrNotHanging", h, err)
		}
	}
	if got := lastStable(ctx, t, adm, current, 1); got != hungRecords {
		t.Fatalf("current/1's last stable offset %d after refused aborts, want %d", got, hungRecords)
	}
	for _, h := range hanging {
		if err := processor.AbortHanging(ctx, adm, h); err != nil {
			t.Fatal(err)
		}
	}
	if got, end := lastStable(ctx, t, adm, current, 1), highWatermark(ctx, t, adm, current, 1); got != end {
		t.Errorf("current/1's last stable offset %d after the abort, want its end %d", got, end)
	}
	if err := hg.FetchStable(ctx, group, current); err != nil {
		t.Errorf("the group's offset fetch after the abort: %v", err)
	}
	if err := processor.AbortHanging(ctx, adm, hanging[0]); !errors.Is(err, processor.ErrNotHanging) {
		t.Errorf("a second abort: %v, want ErrNotHanging", err)
	}
	if h, err := processor.FindHanging(ctx, adm, scope, time.Now()); err != nil || len(h) != 0 {
		t.Errorf("after the aborts: %v, %v; want none", h, err)
	}
	// The aborted record is gone for read_committed readers; the live
	// transaction is untouched and still commits.
	if err := live.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	keys := readCommitted(ctx, t, addr, current)
	if !slices.Equal(keys, []string{"committed " + group + ".a", "live"}) {
		t.Errorf("read_committed sees %q", keys)
	}
}

// testHangingProcessor stalls a processor as Kafka 4.4 did in the chaos
// run: a hanging transaction holds the group's offsets, so the processor
// given the events topic's partition waits for them without end. The
// processor warns of it once, and once the transaction is aborted it
// starts the partition and folds what came meanwhile.
func testHangingProcessor(t *testing.T, addr string, adm *kadm.Client) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	f := newFixtureOn(t, &kafkatest.Cluster{Brokers: []string{addr}}, 1)
	var logs lockedBuffer
	f.cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	f.cfg.Testing.NoUnstartedCheck = true // the test runs the check itself
	dir := t.TempDir()
	first := f.start(dir)
	f.produce(f.event("wamid.HANG1", "sent", 1_750_000_000))
	f.consume(f.cfg.CurrentTopic, hasKeys("wamid.HANG1"))
	first.stop(t)

	kafkatest.NewHanger(t, addr).CommitOffset(ctx, f.cfg.Group+".stuck", f.cfg.Group, f.cfg.EventsTopic, true)
	f.produce(f.event("wamid.HANG2", "delivered", 1_750_000_060))

	r := f.launch(f.cfg, openStore(t, dir))
	defer r.stop(t)
	kafkatest.Eventually(t, 60*time.Second, func() error {
		if owned := r.p.Owned(); len(owned) != 1 {
			return fmt.Errorf("owns %v", owned)
		}
		return nil
	})
	if ok, why := r.p.Ready(); ok || why != "partition 0 catching up" {
		t.Fatalf("ready %t (%s) while the group's offsets are held", ok, why)
	}
	const warning = "a hanging transaction may hold them"
	r.p.WarnLongWaits(ctx, 0)
	r.p.WarnLongWaits(ctx, 0)
	if n := logs.count(warning); n != 1 {
		t.Fatalf("warned %d times, want once:\n%s", n, logs.String())
	}

	hanging, err := processor.FindHanging(ctx, adm, processor.HangingScope{
		Topics: []string{f.cfg.CurrentTopic, f.cfg.DLQTopic}, Group: f.cfg.Group, TxnIDPrefix: f.cfg.Group + ".", OlderThan: time.Nanosecond,
	}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(hanging) != 1 || hanging[0].TransactionalID != f.cfg.Group+".stuck" {
		t.Fatalf("found %+v, want the group's stuck offsets commit alone", hanging)
	}
	if err := processor.AbortHanging(ctx, adm, hanging[0]); err != nil {
		t.Fatal(err)
	}
	kafkatest.Eventually(t, 60*time.Second, func() error {
		if ok, why := r.p.Ready(); !ok {
			return errors.New(why)
		}
		return nil
	})
	f.consume(f.cfg.CurrentTopic, hasKeys("wamid.HANG1", "wamid.HANG2"))
}

func lastStable(ctx context.Context, t *testing.T, adm *kadm.Client, topic string, part int32) int64 {
	t.Helper()
	o, err := adm.ListCommittedOffsets(ctx, topic)
	return listedOffset(t, o, err, topic, part)
}

func highWatermark(ctx context.Context, t *testing.T, adm *kadm.Client, topic string, part int32) int64 {
	t.Helper()
	o, err := adm.ListEndOffsets(ctx, topic)
	return listedOffset(t, o, err, topic, part)
}

// listedOffset returns topic/part's offset in o, listed with err.
func listedOffset(t *testing.T, o kadm.ListedOffsets, err error, topic string, part int32) int64 {
	t.Helper()
	if err == nil {
		err = o.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
	l, ok := o.Lookup(topic, part)
	if !ok {
		t.Fatalf("no offset listed for %s/%d", topic, part)
	}
	return l.Offset
}

// readCommitted appends a non-transactional "end" record to each of
// partitions 1 and 2 of topic and returns the keys a read_committed
// consumer reads before them, in partition order.
func readCommitted(ctx context.Context, t *testing.T, addr, topic string) []string {
	t.Helper()
	parts := []int32{1, 2}
	start := make(map[int32]kgo.Offset)
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for _, p := range parts {
		if err := cl.ProduceSync(ctx, &kgo.Record{Partition: p, Key: []byte("end")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		start[p] = kgo.NewOffset().AtStart()
	}
	rd, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: start}), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	byPart := make(map[int32][]string)
	for ended := 0; ended < len(parts); {
		fs := rd.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if string(r.Key) == "end" {
				ended++
				return
			}
			byPart[r.Partition] = append(byPart[r.Partition], string(r.Key))
		})
	}
	var keys []string
	for _, p := range parts {
		keys = append(keys, byPart[p]...)
	}
	return keys
}

// TestGroupOffsetsPartition checks the partition of __consumer_offsets
// that holds a group's offsets against Java's String.hashCode, as worked
// out apart from this code: non-ASCII, a surrogate pair, and a hash of
// MinInt32, which Kafka's abs maps to 0.
func TestGroupOffsetsPartition(t *testing.T) {
	for _, c := range []struct {
		group string
		want  int32 // of 50 partitions, Kafka's default
	}{
		{"", 0},
		{"hello", 22},             // hashCode 99162322
		{"wastatus", 44},          // 532029244
		{"wastatus-processor", 5}, // -1155697855
		{"grüße", 23},             // 98768023
		{"😀group", 32},            // -1231696132
		{"polygenelubricants", 0}, // -2147483648
	} {
		if got := processor.GroupOffsetsPartition(c.group, 50); got != c.want {
			t.Errorf("group %q: partition %d of 50, want %d", c.group, got, c.want)
		}
		if got := processor.GroupOffsetsPartition(c.group, 1); got != 0 {
			t.Errorf("group %q: partition %d of 1", c.group, got)
		}
	}
}

// hasKeys holds once records hold every one of keys.
func hasKeys(keys ...string) func([]*kgo.Record) error {
	return func(recs []*kgo.Record) error {
		for _, k := range keys {
			if !slices.ContainsFunc(recs, func(r *kgo.Record) bool { return string(r.Key) == k }) {
				return fmt.Errorf("no record of %s in %d", k, len(recs))
			}
		}
		return nil
	}
}
