// Package kafkatest gives tests a Kafka cluster: franz-go's in-process kfake
// by default, or the real broker named by WASTATUS_TEST_BROKERS, so one set of
// scenarios runs against both backends.
//
// Tests that share a real broker must not share topics or groups: Names gives
// each test its own.
package kafkatest

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/wastatus/wastatus/internal/kafkabroker"
)

// EnvBrokers names the environment variable that points the tests at a real
// broker: a comma-separated list of seed brokers, as scripts/kafka start
// prints them.
const EnvBrokers = "WASTATUS_TEST_BROKERS"

// Cluster is a Kafka cluster for one test.
type Cluster struct {
	Brokers []string
	// Fake is the in-process cluster, nil against a real broker.
	Fake *kfake.Cluster
}

// Real reports whether the cluster is a real broker.
func (c *Cluster) Real() bool { return c.Fake == nil }

// New returns a cluster for t: the real broker when WASTATUS_TEST_BROKERS is
// set, else a new in-process kfake cluster with opts, closed when t ends.
func New(t testing.TB, opts ...kfake.Opt) *Cluster {
	t.Helper()
	if b := os.Getenv(EnvBrokers); b != "" {
		return &Cluster{Brokers: strings.Split(b, ",")}
	}
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		t.Fatalf("kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return &Cluster{Brokers: c.ListenAddrs(), Fake: c}
}

// RequireReal skips t unless WASTATUS_TEST_BROKERS names a real broker, and
// says how to run it.
func RequireReal(t testing.TB) *Cluster {
	t.Helper()
	if os.Getenv(EnvBrokers) == "" {
		t.Skipf("needs a real Kafka broker: run `scripts/kafka start` and set %s to the address it prints", EnvBrokers)
	}
	return New(t)
}

// Name returns a topic or group name unique to t and this run, with suffix.
func Name(t testing.TB, suffix string) string {
	t.Helper()
	base := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' {
			return r
		}
		return '_'
	}, t.Name())
	if len(base) > 80 {
		base = base[:80]
	}
	return fmt.Sprintf("%s.%s.%s", base, rand.Text()[:8], suffix)
}

// Eventually polls cond every few milliseconds until it returns nil or
// timeout passes, and then fails t with cond's last error.
func Eventually(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	wait := time.Millisecond
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met after %s: %v", timeout, err)
		}
		time.Sleep(wait)
		wait = min(2*wait, 100*time.Millisecond)
	}
}

// EnvOwnBroker names the environment variable that lets tests start real
// brokers of their own (to stop and kill them): "1" allows it. Setting
// WASTATUS_TEST_BROKERS allows it too, since a machine that runs one real
// broker can run another.
const EnvOwnBroker = "WASTATUS_TEST_OWN_BROKER"

// OwnBroker starts a real broker for t alone, in a temporary state directory,
// so that t can stop, kill and restart it; it is removed when t ends. It
// skips t unless WASTATUS_TEST_OWN_BROKER=1 or WASTATUS_TEST_BROKERS is set.
func OwnBroker(t testing.TB) *kafkabroker.Broker {
	t.Helper()
	if os.Getenv(EnvOwnBroker) != "1" && os.Getenv(EnvBrokers) == "" {
		t.Skipf("starts a real Kafka broker of its own (Java 17 and Maven): set %s=1", EnvOwnBroker)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	b, err := kafkabroker.Start(ctx, filepath.Join(t.TempDir(), "kafka"))
	if err != nil {
		t.Fatalf("start a broker: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("broker log:\n%s", b.Log(60))
		}
		if err := b.Close(); err != nil {
			t.Errorf("stop the broker: %v", err)
		}
	})
	return b
}

// RefuseProduce answers req with code for every partition: a kfake control
// function's response for a produce the broker refuses.
func RefuseProduce(req *kmsg.ProduceRequest, code *kerr.Error) *kmsg.ProduceResponse {
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	for _, rt := range req.Topics {
		t := kmsg.NewProduceResponseTopic()
		t.Topic, t.TopicID = rt.Topic, rt.TopicID
		for _, rp := range rt.Partitions {
			p := kmsg.NewProduceResponseTopicPartition()
			p.Partition = rp.Partition
			p.ErrorCode = code.Code
			t.Partitions = append(t.Partitions, p)
		}
		resp.Topics = append(resp.Topics, t)
	}
	return resp
}
