package kafkabroker_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wastatus/wastatus/internal/kafkatest"
)

// A record produced before a SIGKILL and a clean stop is still there after
// each restart, on the same address.
func TestKillAndRestartKeepData(t *testing.T) {
	b := kafkatest.OwnBroker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	addr := b.Addr()
	admin, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kadm.NewClient(admin).CreateTopic(ctx, 1, 1, nil, "t"); err != nil {
		t.Fatalf("create topic: %v", err)
	}
	admin.Close()
	produce := func(v string) {
		t.Helper()
		cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "t", Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatalf("produce %s: %v", v, err)
		}
	}
	count := func() int {
		t.Helper()
		cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics("t"),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		n := 0
		for n < 2 {
			fs := cl.PollFetches(ctx)
			if err := ctx.Err(); err != nil {
				t.Fatalf("read back: %d records: %v", n, err)
			}
			n += fs.NumRecords()
		}
		return n
	}
	produce("a")
	if err := b.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	produce("b")
	if err := b.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if b.Addr() != addr {
		t.Fatalf("address moved from %s to %s", addr, b.Addr())
	}
	if n := count(); n != 2 {
		t.Fatalf("read %d records after restarts, want 2", n)
	}
}
