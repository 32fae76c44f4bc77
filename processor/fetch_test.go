package processor

import (
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wastatus/wastatus/internal/kafkatest"
	"github.com/wastatus/wastatus/schemas"
	"github.com/wastatus/wastatus/state"
)

// unstartedProcessors returns a function that makes Processors, never
// run, on one kfake cluster and in-memory store, with the given
// ClientOpts: for checking the options of the clients they would make.
func unstartedProcessors(t *testing.T) func(extra ...kgo.Opt) *Processor {
	t.Helper()
	c := kafkatest.New(t)
	store, err := state.Open("", state.Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	codec, err := schemas.NewCodec(schemas.IDs{})
	if err != nil {
		t.Fatal(err)
	}
	return func(extra ...kgo.Opt) *Processor {
		t.Helper()
		p, err := New(Config{Brokers: c.Brokers, ClientOpts: extra}, store, codec)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
}

// TestFetchLimits checks that every consuming client the processor makes
// bounds what it fetches (franz-go's defaults let one client buffer tens of
// MiB of records: see FetchMaxBytes), and that the caller's ClientOpts still
// win.
func TestFetchLimits(t *testing.T) {
	newProcessor := unstartedProcessors(t)
	clients := func(t *testing.T, extra ...kgo.Opt) map[string][]kgo.Opt {
		t.Helper()
		p := newProcessor(extra...)
		r := ranger{cfg: p.cfg}
		return map[string][]kgo.Opt{
			"group": p.clientOpts("txn"),
			"view":  p.viewClientOpts(map[int32]kgo.Offset{0: kgo.NewOffset().AtStart()}),
			"range": r.clientOpts(p.cfg.CurrentTopic, 0, 0),
		}
	}
	check := func(t *testing.T, name string, opts []kgo.Opt, wantMax, wantPartition int32) {
		t.Helper()
		cl, err := kgo.NewClient(opts...)
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		if got := cl.OptValue(kgo.FetchMaxBytes); got != wantMax {
			t.Errorf("%s client: FetchMaxBytes = %v, want %d", name, got, wantMax)
		}
		if got := cl.OptValue(kgo.FetchMaxPartitionBytes); got != wantPartition {
			t.Errorf("%s client: FetchMaxPartitionBytes = %v, want %d", name, got, wantPartition)
		}
	}

	t.Run("defaults", func(t *testing.T) {
		want := map[string][2]int32{
			"group": {FetchMaxBytes, FetchMaxPartitionBytes},
			"view":  {FetchMaxBytes, FetchMaxPartitionBytes},
			"range": {rangeFetchBytes, rangeFetchBytes},
		}
		for name, opts := range clients(t) {
			check(t, name, opts, want[name][0], want[name][1])
		}
	})
	t.Run("client opts win", func(t *testing.T) {
		for name, opts := range clients(t, kgo.FetchMaxBytes(16<<20), kgo.FetchMaxPartitionBytes(4<<20)) {
			check(t, name, opts, 16<<20, 4<<20)
		}
	})
}

// TestMetadataMinAge checks that the processor's transactional client may
// refresh its metadata soon after the last refresh (see MetadataMinAge), so
// that a produce retried after CONCURRENT_TRANSACTIONS does not wait for
// franz-go's 5 s, and that the caller's ClientOpts still win.
func TestMetadataMinAge(t *testing.T) {
	newProcessor := unstartedProcessors(t)
	for _, tc := range []struct {
		extra []kgo.Opt
		want  time.Duration
	}{
		{nil, MetadataMinAge},
		{[]kgo.Opt{kgo.MetadataMinAge(2 * time.Second)}, 2 * time.Second},
	} {
		cl, err := kgo.NewClient(newProcessor(tc.extra...).clientOpts("txn")...)
		if err != nil {
			t.Fatal(err)
		}
		got := cl.OptValue(kgo.MetadataMinAge)
		cl.Close()
		if got != tc.want {
			t.Errorf("with %d client opts: MetadataMinAge = %v, want %v", len(tc.extra), got, tc.want)
		}
	}
}
