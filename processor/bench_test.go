package processor_test

import (
	"context"
	"fmt"
	"os"
	"runtime/pprof"
	"strconv"
	"syscall"
	"testing"
	"time"

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
	produceStates(b, n, cfg, codec, cl)
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

// produceStates writes the states of n messages (delivered, then read) to
// the current topic, spread over its 12 partitions.
func produceStates(b *testing.B, n int, cfg processor.Config, codec *schemas.Codec, cl *kgo.Client) {
	b.Helper()
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
}

// BenchmarkViewLoad measures how fast a new instance that serves every
// message (Config.ServeAll) reads the states of WASTATUS_BENCH_MESSAGES
// messages (default 100,000) over 12 partitions into its view: from Run
// until Ready, joining the group included. It reports states per second.
//
//	WASTATUS_BENCH_MESSAGES=1000000 go test -run '^$' -bench ViewLoad -benchtime 1x ./processor/
func BenchmarkViewLoad(b *testing.B) {
	n, cfg, codec, cl := benchSetup(b, "WASTATUS_BENCH_MESSAGES", kgo.RecordPartitioner(kgo.ManualPartitioner()))
	produceStates(b, n, cfg, codec, cl)
	cfg.ServeAll = true
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		cfg.Group = kafkatest.Name(b, fmt.Sprintf("group%d", i))
		store, err := state.Open(b.TempDir(), state.Options{})
		if err != nil {
			b.Fatal(err)
		}
		p, err := processor.New(cfg, store, codec)
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(b.Context())
		done := make(chan error, 1)
		b.StartTimer()
		go func() { done <- p.Run(ctx) }()
		tick := time.NewTicker(5 * time.Millisecond)
		for ready := false; !ready; {
			select {
			case err := <-done:
				b.Fatalf("Run returned: %v", err)
			case <-tick.C:
				ready, _ = p.Ready()
			}
		}
		b.StopTimer()
		tick.Stop()
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		store.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "states/s")
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

// BenchmarkProcess measures the live processor, exactly-once, against a raw
// franz-go exactly-once consume-transform-produce passthrough on the same
// cluster and transaction sizing: WASTATUS_BENCH_EVENTS events (default
// 300,000; three statuses per message, in order) over 12 partitions are
// folded from the start of the events topic by a fresh processor and
// store, then copied by the passthrough. It reports both rates and their
// ratio, and the CPU time (user and system, the whole test process: kfake
// included) each spent per event, which the other load of a shared machine
// disturbs far less than the rates. WASTATUS_BENCH_CPUPROFILE names a file
// for a CPU profile of the processor's runs alone.
//
//	WASTATUS_BENCH_EVENTS=1000000 go test -run '^$' -bench Process -benchtime 1x ./processor/
func BenchmarkProcess(b *testing.B) {
	n, cfg, codec, cl := benchSetup(b, "WASTATUS_BENCH_EVENTS")
	if os.Getenv("WASTATUS_BENCH_EVENTS") == "" {
		n = 300_000
	}
	statuses := []string{"sent", "delivered", "read"}
	for i := range (n + 2) / 3 {
		wamid := fmt.Sprintf("wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQz%09dQUFERjg0NDEz", i)
		for k := range min(3, n-3*i) {
			ts := 1_750_000_000 + int64(i%3600) + int64(k)
			ev := schemas.StatusEvent{
				WAMID: wamid, Status: statuses[k], Timestamp: ts, RecipientID: "16505551234",
				PhoneNumberID: "106540352242922", DisplayPhoneNumber: "15550783881", WABAID: "102290129340398",
				Region: "eu-west-1", ReceivedAt: ts*1000 + 250,
				Raw: fmt.Appendf(nil, `{"id":%q,"status":%q,"timestamp":"%d","recipient_id":"16505551234"}`, wamid, statuses[k], ts),
			}
			val, err := codec.AppendStatusEvent(nil, &ev)
			if err != nil {
				b.Fatal(err)
			}
			cl.Produce(b.Context(), &kgo.Record{Topic: cfg.EventsTopic, Key: []byte(wamid), Value: val}, func(_ *kgo.Record, err error) {
				if err != nil {
					panic(err)
				}
			})
		}
	}
	if err := cl.Flush(b.Context()); err != nil {
		b.Fatal(err)
	}

	var procIn, passIn, procCPU, passCPU time.Duration
	profiled := false
	for b.Loop() {
		b.StopTimer()
		store, err := state.Open(b.TempDir(), state.Options{})
		if err != nil {
			b.Fatal(err)
		}
		run := cfg
		run.Group = kafkatest.Name(b, "group")
		p, err := processor.New(run, store, codec)
		if err != nil {
			b.Fatal(err)
		}
		stopProfile := func() {}
		if name := os.Getenv("WASTATUS_BENCH_CPUPROFILE"); name != "" && !profiled {
			profiled = true
			stopProfile = startCPUProfile(b, name)
		}
		b.StartTimer()
		cpu0 := cpuTime(b)
		began := time.Now()
		ctx, cancel := context.WithCancel(b.Context())
		done := make(chan error, 1)
		go func() { done <- p.Run(ctx) }()
		var first time.Time
		for p.Stats().Events < uint64(n) {
			if first.IsZero() && p.Stats().Events > 0 {
				first = time.Now()
			}
			select {
			case err := <-done:
				b.Fatalf("Run: %v", err)
			case <-time.After(time.Millisecond):
			}
		}
		procIn += time.Since(began)
		procCPU += cpuTime(b) - cpu0
		stopProfile()
		b.Logf("processor: first commit after %v, then %v; %+v", first.Sub(began), time.Since(first), p.Stats().Batches)
		b.StopTimer()
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		store.Close()

		cpu0 = cpuTime(b)
		began = time.Now()
		passthrough(b, cfg, n)
		passIn += time.Since(began)
		passCPU += cpuTime(b) - cpu0
		b.StartTimer()
	}
	proc := float64(n*b.N) / procIn.Seconds()
	pass := float64(n*b.N) / passIn.Seconds()
	b.ReportMetric(proc, "events/s")
	b.ReportMetric(pass, "baseline-events/s")
	b.ReportMetric(proc/pass, "ratio")
	b.ReportMetric(float64(procCPU.Nanoseconds())/float64(n*b.N), "cpu-ns/event")
	b.ReportMetric(float64(passCPU.Nanoseconds())/float64(n*b.N), "baseline-cpu-ns/event")
}

// startCPUProfile starts a CPU profile written to name, and returns the
// function that stops it.
func startCPUProfile(b *testing.B, name string) (stop func()) {
	f, err := os.Create(name)
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		b.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// cpuTime returns the CPU time the process has used so far, user and system.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// passthrough copies the events topic to the dead-letter topic (any other
// topic would do) with a raw franz-go exactly-once consume-transform-produce
// loop: the processor's transaction sizing (one poll of at most 10,000
// records a transaction), no state, and a flush before each commit.
func passthrough(b *testing.B, cfg processor.Config, n int) {
	b.Helper()
	sess, err := kgo.NewGroupTransactSession(
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ConsumerGroup(kafkatest.Name(b, "passthrough")),
		kgo.ConsumeTopics(cfg.EventsTopic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.TransactionalID(kafkatest.Name(b, "passthrough")),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(0),
	)
	if err != nil {
		b.Fatal(err)
	}
	defer sess.Close()
	for done := 0; done < n; {
		fs := sess.PollRecords(b.Context(), 10_000)
		if err := fs.Err0(); err != nil {
			b.Fatal(err)
		}
		if err := sess.Begin(); err != nil {
			b.Fatal(err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			done++
			sess.Produce(b.Context(), &kgo.Record{Topic: cfg.DLQTopic, Partition: r.Partition, Key: r.Key, Value: r.Value}, nil)
		})
		if err := sess.Client().Flush(b.Context()); err != nil {
			b.Fatal(err)
		}
		if committed, err := sess.End(b.Context(), kgo.TryCommit); err != nil || !committed {
			b.Fatalf("end: committed %t, %v", committed, err)
		}
	}
}
