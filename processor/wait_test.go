package processor_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/wastatus/wastatus/internal/kafkatest"
	"github.com/wastatus/wastatus/processor"
	"github.com/wastatus/wastatus/schemas"
	"github.com/wastatus/wastatus/state"
)

// lockedBuffer is a log sink safe for concurrent writes.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *lockedBuffer) count(s string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Count(b.buf.Bytes(), []byte(s))
}

// An instance started while Kafka cannot be reached waits for it, saying
// so, instead of exiting; once a broker listens it gets ready.
func TestWaitsForKafkaAtStart(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close() // nothing listens there until the cluster starts below

	var logs lockedBuffer
	codec, err := schemas.NewCodec(schemas.IDs{})
	if err != nil {
		t.Fatal(err)
	}
	store, err := state.Open(t.TempDir(), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	p, err := processor.New(processor.Config{
		Brokers:      []string{"127.0.0.1:" + strconv.Itoa(port)},
		Group:        "g",
		EventsTopic:  "events",
		CurrentTopic: "current",
		DLQTopic:     "dlq",
		Partitions:   2,
		Logger:       slog.New(slog.NewTextHandler(&logs, nil)),
	}, store, codec)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()

	kafkatest.Eventually(t, 90*time.Second, func() error {
		select {
		case err := <-done:
			t.Fatalf("Run returned while Kafka was down: %v", err)
		default:
		}
		if logs.count("kafka not ready") < 2 {
			return errors.New("no retries logged yet")
		}
		return nil
	})

	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	kafkatest.Eventually(t, 60*time.Second, func() error {
		select {
		case err := <-done:
			t.Fatalf("Run returned: %v", err)
		default:
		}
		if ok, why := p.Ready(); !ok {
			return errors.New(why)
		}
		return nil
	})
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}
