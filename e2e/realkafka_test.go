package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/linkedin/goavro/v2"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wastatus/wastatus/internal/gen"
	"github.com/wastatus/wastatus/internal/kafkatest"
	"github.com/wastatus/wastatus/processor"
	"github.com/wastatus/wastatus/state"
)

func (e *env) admin() *kadm.Client {
	e.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.cluster.Brokers...))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

// postAll posts events in chunks to url and returns once every POST was
// acknowledged.
func postAll(t *testing.T, url string, events []gen.Status, s uint64) {
	t.Helper()
	for _, p := range gen.Split(events, 25, s) {
		post(t, url, gen.Webhook(p))
	}
}

// TestTopicsAsCreated checks the topics the processor creates: the events
// topic keeps Meta's retry horizon and more, the current topic is compacted,
// and their partition counts match.
func TestTopicsAsCreated(t *testing.T) {
	e := newEnv(t)
	rp := e.startProcessor(dataDir(t, "state"))
	defer rp.stop(t)

	adm := e.admin()
	// A creation is acknowledged once the controller has it; the broker
	// answering a describe may learn of the topic a moment later
	// (UNKNOWN_TOPIC_OR_PARTITION until then).
	var cfgs kadm.ResourceConfigs
	kafkatest.Eventually(t, 30*time.Second, func() error {
		var err error
		if cfgs, err = adm.DescribeTopicConfigs(t.Context(), e.events, e.current, e.dlq); err != nil {
			return err
		}
		for _, rc := range cfgs {
			if rc.Err != nil {
				return fmt.Errorf("%s: %w", rc.Name, rc.Err)
			}
		}
		return nil
	})
	want := map[string]map[string]string{
		e.events:  {"cleanup.policy": "delete", "retention.ms": strconv.FormatInt((30 * 24 * time.Hour).Milliseconds(), 10)},
		e.current: {"cleanup.policy": "compact"},
		e.dlq:     {"cleanup.policy": "delete"},
	}
	for _, rc := range cfgs {
		for _, c := range rc.Configs {
			if w, ok := want[rc.Name][c.Key]; ok {
				if c.Value == nil || *c.Value != w {
					t.Errorf("%s %s = %v, want %s", rc.Name, c.Key, c.MaybeValue(), w)
				}
				delete(want[rc.Name], c.Key)
			}
		}
	}
	for topic, left := range want {
		if len(left) > 0 {
			t.Errorf("%s: configs %v not reported", topic, left)
		}
	}
	details, err := adm.ListTopics(t.Context(), e.events, e.current)
	if err != nil {
		t.Fatal(err)
	}
	if a, b := len(details[e.events].Partitions), len(details[e.current].Partitions); a != b || a != 6 {
		t.Errorf("partitions: events %d, current %d, want 6 and 6", a, b)
	}
}

// TestCompactedCurrentRestores needs a real broker's log cleaner: after it
// has compacted the current topic (small segments, low dirty ratio) the topic
// holds one record per message, and a store restored from it alone equals,
// message by message and byte for byte, the store that folded every event.
func TestCompactedCurrentRestores(t *testing.T) {
	kafkatest.RequireReal(t)
	s := seed(t)
	e := newEnv(t)
	adm := e.admin()
	str := func(s string) *string { return &s }
	for topic, configs := range map[string]map[string]*string{
		e.events: nil,
		e.current: {
			"cleanup.policy":            str("compact"),
			"segment.ms":                str("100"),
			"min.cleanable.dirty.ratio": str("0.01"),
			"delete.retention.ms":       str("100"),
			"min.compaction.lag.ms":     str("0"),
		},
	} {
		resp, err := adm.CreateTopic(t.Context(), 3, -1, configs, topic)
		if err == nil {
			err = resp.Err
		}
		if err != nil {
			t.Fatalf("create %s: %v", topic, err)
		}
	}

	full := e.startProcessor(dataDir(t, "full"))
	defer full.stop(t)
	url := e.startEdge("us-east-1")
	events := gen.Events(gen.Options{Messages: 300, DupRate: 0.2, GroupRate: 0.1, Seed: s})
	want := gen.Fold(events)
	// The events spread over many batches, so most states are emitted
	// several times: the cleaner has something to remove.
	postAll(t, url, events, s)

	// Wait for the fold, then keep rolling the current topic's active
	// segment (a tombstone for a key no message has) until the cleaner has
	// left one record per message.
	reader := e.readCurrent()
	reader.waitFold(t, want)
	roller, err := kgo.NewClient(kgo.SeedBrokers(e.cluster.Brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer roller.Close()
	var records int
	kafkatest.Eventually(t, 120*time.Second, func() error {
		for p := range int32(3) {
			roller.Produce(t.Context(), &kgo.Record{Topic: e.current, Partition: p, Key: []byte("roll")}, nil)
		}
		if err := roller.Flush(t.Context()); err != nil {
			return err
		}
		keys, n, err := countKeys(t.Context(), e.cluster.Brokers, e.current)
		if err != nil {
			return err
		}
		records = n
		if n != len(want) || len(keys) != len(want) {
			return fmt.Errorf("current topic holds %d state records for %d messages", n, len(want))
		}
		return nil
	})
	t.Logf("compacted: %d records for %d messages (from %d emitted)", records, len(want), reader.records)

	restored, err := state.Open(dataDir(t, "restored"), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer restored.Close()
	cfg := e.processorConfig()
	next := map[int32]int64{0: -1, 1: -1, 2: -1}
	if _, err := processor.RestoreFromCurrent(t.Context(), cfg, restored, e.codec, next, nil); err != nil {
		t.Fatal(err)
	}
	for part := range int32(3) {
		n := 0
		err := full.store.Scan(part, func(m *state.Message) error {
			n++
			got, ok, err := restored.Get(part, m.WAMID())
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("%s: not restored", m.WAMID())
			}
			a, _ := m.AppendBinary(nil)
			b, _ := got.AppendBinary(nil)
			if !bytes.Equal(a, b) {
				return fmt.Errorf("%s: restored state differs from the full fold", m.WAMID())
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			t.Errorf("partition %d: the full fold has no messages", part)
		}
	}
}

// countKeys reads topic from its start to its end with read_committed and
// counts its non-tombstone records and distinct keys.
func countKeys(ctx context.Context, brokers []string, topic string) (map[string]int, int, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords())
	if err != nil {
		return nil, 0, err
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListCommittedOffsets(ctx, topic)
	if err != nil {
		return nil, 0, err
	}
	left := make(map[int32]int64)
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			left[o.Partition] = o.Offset
		}
	})
	keys := make(map[string]int)
	n := 0
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for len(left) > 0 {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			return nil, 0, err
		}
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset+1 >= left[r.Partition] {
				delete(left, r.Partition)
			}
			if r.Attrs.IsControl() || r.Value == nil {
				return
			}
			n++
			keys[string(r.Key)]++
		})
	}
	return keys, n, nil
}

// TestKcatReadsCurrent proves the contract with a client nobody here wrote:
// kcat lists the topics, reads the current topic with read_committed, and its
// keys and values, decoded with the published message_status.avsc and the
// Confluent framing (not with this project's codec), match what the API says.
func TestKcatReadsCurrent(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Skip("kcat is not installed (apt-get install kcat); .ci/run installs it")
	}
	s := seed(t)
	e := newEnv(t)
	rp := e.startProcessor(dataDir(t, "state"))
	defer rp.stop(t)
	url := e.startEdge("eu-west-1")
	events := gen.Events(gen.Options{Messages: 100, DupRate: 0.2, GroupRate: 0.1, Seed: s})
	want := gen.Fold(events)
	postAll(t, url, events, s)
	reader := e.readCurrent()
	reader.waitFold(t, want)

	brokers := strings.Join(e.cluster.Brokers, ",")
	// Metadata: every topic of the contract, with matching partition counts.
	out, err := exec.CommandContext(t.Context(), kcat, "-b", brokers, "-L", "-J").Output()
	if err != nil {
		t.Fatalf("kcat -L: %v", err)
	}
	var md struct {
		Topics []struct {
			Topic      string            `json:"topic"`
			Partitions []json.RawMessage `json:"partitions"`
		} `json:"topics"`
	}
	if err := json.Unmarshal(out, &md); err != nil {
		t.Fatalf("kcat -L -J: %v\n%s", err, out)
	}
	parts := map[string]int{}
	for _, tp := range md.Topics {
		parts[tp.Topic] = len(tp.Partitions)
	}
	if parts[e.events] != 6 || parts[e.current] != 6 || parts[e.dlq] == 0 {
		t.Errorf("kcat sees partitions %d (events), %d (current), %d (dlq)", parts[e.events], parts[e.current], parts[e.dlq])
	}

	// The current topic, read_committed, to its end.
	cmd := exec.CommandContext(t.Context(), kcat, "-b", brokers, "-C", "-t", e.current, "-o", "beginning", "-e",
		"-X", "isolation.level=read_committed", "-f", "%k\t%S\n%s\n")
	out, err = cmd.Output()
	if err != nil {
		t.Fatalf("kcat -C: %v", err)
	}
	schema, err := os.ReadFile("../schemas/message_status.avsc")
	if err != nil {
		t.Fatal(err)
	}
	codec, err := goavro.NewCodec(string(schema))
	if err != nil {
		t.Fatal(err)
	}
	latest := map[string]map[string]any{}
	br := bufio.NewReader(bytes.NewReader(out))
	for {
		head, err := br.ReadString('\n')
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		key, size, _ := strings.Cut(strings.TrimSuffix(head, "\n"), "\t")
		n, err := strconv.Atoi(size)
		if err != nil {
			t.Fatalf("kcat record header %q: %v", head, err)
		}
		val := make([]byte, n+1)
		if _, err := io.ReadFull(br, val); err != nil {
			t.Fatal(err)
		}
		val = val[:n]
		if len(val) < 5 || val[0] != 0 || binary.BigEndian.Uint32(val[1:5]) != 2 {
			t.Fatalf("%s: value is not Confluent-framed with schema id 2: % x", key, val[:min(len(val), 5)])
		}
		native, rest, err := codec.NativeFromBinary(val[5:])
		if err != nil || len(rest) != 0 {
			t.Fatalf("%s: published schema cannot decode the value: %v (%d bytes left)", key, err, len(rest))
		}
		rec := native.(map[string]any)
		if rec["wamid"] != key {
			t.Fatalf("key %s carries wamid %v", key, rec["wamid"])
		}
		latest[key] = rec
	}
	if len(latest) != len(want) {
		t.Fatalf("kcat read %d messages, want %d", len(latest), len(want))
	}
	for wamid, rec := range latest {
		api, _, err := rp.proc.Get(wamid)
		if err != nil {
			t.Fatal(err)
		}
		if rec["status"] != api.Status {
			t.Errorf("%s: kcat says %v, API says %s", wamid, rec["status"], api.Status)
		}
		for field, v := range map[string]int64{"sent_at": api.SentAt, "delivered_at": api.DeliveredAt,
			"read_at": api.ReadAt, "played_at": api.PlayedAt, "failed_at": api.FailedAt} {
			if got := avroLong(rec[field]); got != v {
				t.Errorf("%s: kcat %s = %d, API %d", wamid, field, got, v)
			}
		}
	}
}

// avroLong reads goavro's native form of ["null","long"].
func avroLong(v any) int64 {
	m, ok := v.(map[string]any)
	if !ok {
		return 0
	}
	n, _ := m["long"].(int64)
	return n
}
