package main

import (
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wastatus/wastatus/internal/kafkatest"
	"github.com/wastatus/wastatus/processor"
)

// TestTxnHangingLeavesLiveTransactions runs txn hanging and txn abort, on
// kfake or the real broker, while a processor-named transaction is open on
// the current topic and the group's offsets: its coordinator lists both
// partitions, so neither command may call it hanging, even with
// --older-than far below its age. (Making a hanging transaction takes a
// broker of the test's own: processor's TestHangingTransactions.)
func TestTxnHangingLeavesLiveTransactions(t *testing.T) {
	e := newKafkaEnv(t, 2)
	live, err := kgo.NewClient(kgo.SeedBrokers(e.cfg.Brokers...), kgo.TransactionalID(e.cfg.Group+".live"),
		kgo.DefaultProduceTopic(e.cfg.CurrentTopic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	if err := live.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := live.ProduceSync(t.Context(), &kgo.Record{Partition: 1, Key: []byte("wamid.LIVE")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	args := func(a ...string) []string {
		return append(append([]string{"txn"}, a...), "--brokers", strings.Join(e.cfg.Brokers, ","), "--current-topic", e.cfg.CurrentTopic,
			"--dlq-topic", e.cfg.DLQTopic, "--group", e.cfg.Group, "--older-than", "1ms")
	}
	time.Sleep(5 * time.Millisecond) // the only wait: --older-than must pass on the clock
	out, errOut, err := runWastatus(t, args("hanging")...)
	if err != nil || strings.TrimSpace(out) != "no hanging transactions" {
		t.Errorf("txn hanging: %v\n%s\n%s", err, out, errOut)
	}
	out, errOut, err = runWastatus(t, args("abort", "--json")...)
	if err != nil || out != "" || strings.Contains(errOut, "would abort") {
		t.Errorf("txn abort --json: %v\n%q\n%s", err, out, errOut)
	}
	if err := live.EndTransaction(t.Context(), kgo.TryCommit); err != nil {
		t.Errorf("the live transaction, after the commands: %v", err)
	}

	_, _, err = runWastatus(t, "txn", "hanging", "--brokers", strings.Join(e.cfg.Brokers, ","), "--current-topic", e.cfg.CurrentTopic+".missing")
	if err == nil || !strings.Contains(err.Error(), e.cfg.CurrentTopic+".missing") {
		t.Errorf("txn hanging on a missing topic: %v, want an error naming it", err)
	}
}

// TestPrintHanging checks both forms of the list.
func TestPrintHanging(t *testing.T) {
	h := processor.HangingTxn{Topic: "whatsapp.status.current", Partition: 7, StartOffset: 1234, ProducerID: 42, ProducerEpoch: 3,
		CoordinatorEpoch: -1, LastWrite: time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC), CoordinatorState: "CompleteCommit"}
	var table strings.Builder
	if err := printHanging(&table, []processor.HangingTxn{h}, false); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(table.String()), "\n")
	if len(lines) != 2 || strings.Join(strings.Fields(lines[1]), " ") != "whatsapp.status.current 7 1234 42 3 2026-11-29T10:00:00Z - CompleteCommit" {
		t.Errorf("table:\n%s", table.String())
	}
	var js strings.Builder
	if err := printHanging(&js, []processor.HangingTxn{h, h}, true); err != nil {
		t.Fatal(err)
	}
	lines = strings.Split(strings.TrimSpace(js.String()), "\n")
	var back processor.HangingTxn
	if len(lines) != 2 || json.Unmarshal([]byte(lines[0]), &back) != nil || back != h {
		t.Errorf("json: %s\nread back as %+v", js.String(), back)
	}
	var none strings.Builder
	if err := printHanging(&none, nil, false); err != nil || none.String() != "no hanging transactions\n" {
		t.Errorf("none: %q %v", none.String(), err)
	}
}

// TestAbortHangingLeavesWhatChanged runs abort's loop on a transaction the
// partition does not hold open as found: it is left alone, said so, and
// not an error.
func TestAbortHangingLeavesWhatChanged(t *testing.T) {
	e := newKafkaEnv(t, 1)
	var logs, out syncBuffer
	gone := processor.HangingTxn{Topic: e.cfg.CurrentTopic, Partition: 0, StartOffset: 0, ProducerID: 4242, LastWrite: time.UnixMilli(1)}
	err := abortHanging(t.Context(), kadm.NewClient(e.cl), []processor.HangingTxn{gone}, slog.New(slog.NewTextHandler(&logs, nil)), &out, false)
	if err != nil || out.String() != "aborted 0 of 1\n" || !strings.Contains(logs.String(), "no longer open as found") {
		t.Errorf("abort of a transaction not open: %v\n%s\n%s", err, out.String(), logs.String())
	}
}

// TestTxnAbort runs the commands on a real broker of the test's own, on
// hanging transactions (kafkatest.Hanger): one on the current topic whose
// offsets commit was not left hanging with it, one holding the group's
// offsets, and one on the group's offsets partition whose producer no
// coordinator knows.
func TestTxnAbort(t *testing.T) {
	b := kafkatest.OwnBroker(t)
	e := newKafkaEnvOn(t, &kafkatest.Cluster{Brokers: []string{b.Addr()}}, 2)
	ctx := t.Context()
	hg := kafkatest.NewHanger(t, b.Addr())
	hg.Append(ctx, e.cfg.Group+".x", e.cfg.CurrentTopic, 1, true)
	hg.CommitOffset(ctx, e.cfg.Group+".y", e.cfg.Group, e.cfg.EventsTopic, true)
	hg.CommitOffset(ctx, "ghost", e.cfg.Group, e.cfg.EventsTopic, false)
	time.Sleep(5 * time.Millisecond) // the only wait: --older-than must pass on the clock
	args := func(a ...string) []string {
		return append(append([]string{"txn"}, a...), "--brokers", strings.Join(e.cfg.Brokers, ","), "--current-topic", e.cfg.CurrentTopic,
			"--dlq-topic", e.cfg.DLQTopic, "--group", e.cfg.Group, "--older-than", "1ms")
	}

	out, _, err := runWastatus(t, args("hanging")...)
	if err == nil || err.Error() != "3 hanging transactions" || strings.Count(out, "\n") != 4 || !strings.Contains(out, "(unattributed)") ||
		!strings.Contains(out, e.cfg.Group+".x") || !strings.Contains(out, e.cfg.Group+".y") {
		t.Fatalf("txn hanging: %v\n%s", err, out)
	}
	if _, _, err := runWastatus(t, args("abort")...); err == nil || !strings.Contains(err.Error(), "would abort 2 of 3") {
		t.Fatalf("txn abort without --yes: %v", err)
	}
	if err := hg.FetchStable(ctx, e.cfg.Group, e.cfg.EventsTopic); !errors.Is(err, kerr.UnstableOffsetCommit) {
		t.Fatalf("after a dry run the group's offsets: %v, want still held", err)
	}
	out, errOut, err := runWastatus(t, args("abort", "--yes")...)
	if err == nil || !strings.Contains(err.Error(), "1 unattributed hanging transactions left") || !strings.Contains(out, "aborted 2 of 2") ||
		strings.Count(errOut, "whose offsets commit was not aborted with it") != 1 || !strings.Contains(errOut, e.cfg.CurrentTopic+"/1") {
		t.Fatalf("txn abort --yes: %v\n%s\n%s", err, out, errOut)
	}
	if err := hg.FetchStable(ctx, e.cfg.Group, e.cfg.EventsTopic); !errors.Is(err, kerr.UnstableOffsetCommit) {
		t.Fatalf("the group's offsets with the unattributed commit left: %v, want still held", err)
	}
	out, errOut, err = runWastatus(t, args("abort", "--yes", "--unattributed")...)
	if err != nil || !strings.Contains(out, "aborted 1 of 1") {
		t.Fatalf("txn abort --yes --unattributed: %v\n%s\n%s", err, out, errOut)
	}
	if err := hg.FetchStable(ctx, e.cfg.Group, e.cfg.EventsTopic); err != nil {
		t.Errorf("the group's offsets after the aborts: %v", err)
	}
	out, _, err = runWastatus(t, args("hanging")...)
	if err != nil || strings.TrimSpace(out) != "no hanging transactions" {
		t.Errorf("txn hanging after the aborts: %v\n%s", err, out)
	}
}
