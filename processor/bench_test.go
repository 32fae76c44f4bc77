package processor_test

import (
	"fmt"
	"os"
	"strconv"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wastatus/wastatus/internal/kafkatest"
	"github.com/wastatus/wastatus/processor"
	"github.com/wastatus/wastatus/schemas"
	"github.com/wastatus/wastatus/state"
)

// BenchmarkRestore measures a restore from the current topic: the states of
// WASTATUS_BENCH_MESSAGES messages (default 100,000) over 12 partitions are
// read back into an empty store. It reports records per second.
//
//	WASTATUS_BENCH_MESSAGES=1000000 go test -run '^$' -bench Restore -benchtime 1x ./processor/
func BenchmarkRestore(b *testing.B) {
	n, cfg, codec, cl := benchSetup(b, "WASTATUS_BENCH_MESSAGES", kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for i := range n {
		var m state.Message
		ev := schemas.StatusEvent{WAMID: fmt.Sprintf("wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQz%09dQUFERjg0NDEz", i), Status: "read", Timestamp: 1_750_000_000 + int64(i%3600), RecipientID: "16505551234"}
		if _, err := m.Apply(&ev, state.FailedWins); err != nil {
			b.Fatal(err)
		}
		ev.Status, ev.Timestamp = "delivered", ev.Timestamp-2
		if _, err := m.Apply(&ev, state.FailedWins); err != nil {
			b.Fatal(err)
		}
		v := m.View(state.FailedWins)
		val, err := codec.AppendMessageStatus(nil, &v)
		if err != nil {
			b.Fatal(err)
		}
		cl.Produce(b.Context(), &kgo.Record{Topic: cfg.CurrentTopic, Partition: int32(i % 12), Key: []byte(ev.WAMID), Value: val}, func(_ *kgo.Record, err error) {
			if err != nil {
				panic(err)
			}
		})
	}
	if err := cl.Flush(b.Context()); err != nil {
		b.Fatal(err)
	}
	next := make(map[int32]int64)
	for p := range int32(12) {
		next[p] = -1
	}
	b.ResetTimer()
	var read int64
	for b.Loop() {
		b.StopTimer()
		store, err := state.Open(b.TempDir(), state.Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		r, err := processor.RestoreFromCurrent(b.Context(), cfg, store, codec, next, nil)
		if err != nil {
			b.Fatal(err)
		}
		read += r
		b.StopTimer()
		store.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(read)/b.Elapsed().Seconds(), "records/s")
}

// benchSetup reads the benchmark's size from env (default 100,000), and
// returns a cluster's config with the three topics created (12 partitions),
// a codec, and a producer with opts, closed when b ends.
func benchSetup(b *testing.B, env string, opts ...kgo.Opt) (int, processor.Config, *schemas.Codec, *kgo.Client) {
	b.Helper()
	n := 100_000
	if v := os.Getenv(env); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			b.Fatalf("%s: %v", env, err)
		}
	}
	c := kafkatest.New(b)
	codec, err := schemas.NewCodec(schemas.IDs{})
	if err != nil {
		b.Fatal(err)
	}
	cfg := processor.Config{Brokers: c.Brokers, CurrentTopic: kafkatest.Name(b, "current"), EventsTopic: kafkatest.Name(b, "events"), DLQTopic: kafkatest.Name(b, "dlq"), Partitions: 12}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.Brokers...), kgo.ProducerBatchMaxBytes(1 << 20)}, opts...)...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(cl.Close)
	if _, err := processor.EnsureTopics(b.Context(), kadm.NewClient(cl), cfg, true); err != nil {
		b.Fatal(err)
	}
	return n, cfg, codec, cl
}
