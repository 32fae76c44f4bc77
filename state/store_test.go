package state

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/wastatus/wastatus/schemas"
	"go.uber.org/goleak"
)

// openMem opens a store on a fresh in-memory file system.
func openMem(t testing.TB, o Options) (*Store, vfs.FS) {
	t.Helper()
	if o.FS == nil {
		o.FS = vfs.NewMem()
	}
	s, err := Open("db", o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, o.FS
}

// commit applies evs at consecutive offsets from first in one batch and
// commits it with the next offset.
func commit(t testing.TB, s *Store, partition int32, first int64, evs ...schemas.StatusEvent) []Outcome {
	t.Helper()
	b := s.NewBatch(partition)
	defer b.Close()
	var outs []Outcome
	for i := range evs {
		o, _, err := b.Apply(&evs[i], first+int64(i))
		if err != nil {
			t.Fatalf("Apply: %v", err)
		}
		outs = append(outs, o)
	}
	b.SetNextOffset(first + int64(len(evs)))
	if err := b.Commit(); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	return outs
}

func mustGet(t testing.TB, s *Store, partition int32, id string) (Message, bool) {
	t.Helper()
	m, ok, err := s.Get(partition, id)
	if err != nil {
		t.Fatalf("Get(%d, %s): %v", partition, id, err)
	}
	return m, ok
}

func TestStoreApplyCommitGet(t *testing.T) {
	s, _ := openMem(t, Options{})
	if _, ok, err := s.NextOffset(0); ok || err != nil {
		t.Fatalf("NextOffset of an empty partition = %t, %v", ok, err)
	}
	if _, ok := mustGet(t, s, 0, testWAMID); ok {
		t.Fatalf("Get found a message in an empty store")
	}
	evs := []schemas.StatusEvent{ev("sent", T, recipientID(phone)), ev("read", T+5), ev("sent", T), ev("delivered", T+1, wamid("wamid.b"))}
	outs := commit(t, s, 3, 10, evs...)
	if want := []Outcome{Advanced, Advanced, Stale, Advanced}; !reflect.DeepEqual(outs, want) {
		t.Errorf("outcomes %v, want %v", outs, want)
	}
	want, _ := fold(t, FailedWins, evs[:3]...)
	got, ok := mustGet(t, s, 3, testWAMID)
	if !ok || !got.Equal(&want) {
		t.Errorf("Get = %s, %t; want %s", jsonString(got.View(FailedWins)), ok, jsonString(want.View(FailedWins)))
	}
	if off, ok, err := s.NextOffset(3); off != 14 || !ok || err != nil {
		t.Errorf("NextOffset = %d, %t, %v; want 14", off, ok, err)
	}
	// Another partition is another key space.
	if _, ok := mustGet(t, s, 4, testWAMID); ok {
		t.Errorf("message visible in another partition")
	}
	// A later batch reads the committed state and continues the fold.
	outs = commit(t, s, 3, 14, ev("delivered", T+2), ev("read", T+6))
	if want := []Outcome{Filled, Duplicate}; !reflect.DeepEqual(outs, want) {
		t.Errorf("second batch outcomes %v, want %v", outs, want)
	}
	want, _ = fold(t, FailedWins, append(evs[:3:3], ev("delivered", T+2), ev("read", T+6))...)
	if got, _ := mustGet(t, s, 3, testWAMID); !got.Equal(&want) {
		t.Errorf("after the second batch: %s", jsonString(got.View(FailedWins)))
	}
}

func TestStoreReopen(t *testing.T) {
	fs := vfs.NewMem()
	s, err := Open("db", Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	commit(t, s, 0, 0, ev("sent", T))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("second Close = %v, want ErrClosed", err)
	}
	if _, _, err := s.Get(0, testWAMID); !errors.Is(err, ErrClosed) {
		t.Errorf("Get after Close = %v, want ErrClosed", err)
	}
	s, err = Open("db", Options{FS: fs})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	if _, ok := mustGet(t, s, 0, testWAMID); !ok {
		t.Errorf("state lost across reopen")
	}
}

// TestStoreOnDiskLeavesNoGoroutine opens, restores into and closes a store
// on the operating system's file system (Options.FS nil, as wastatus runs),
// and has a second Open of it refused meanwhile: whatever Pebble starts
// for either, its disk-health checks included, ends. Before the store
// wrapped the file system itself, the refused Open left Pebble's ticker
// goroutine running.
func TestStoreOnDiskLeavesNoGoroutine(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	dir := t.TempDir()
	for round := range int32(2) {
		s, err := Open(dir, Options{})
		if err != nil {
			t.Fatal(err)
		}
		commit(t, s, 0, 0, ev("sent", T))
		// A restore's Loader writes its runs and tables beside the store.
		l, err := s.NewLoader(1+round, 64)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 100 {
			m, _ := fold(t, s.Policy(), ev("sent", T, wamid(fmt.Sprintf("wamid.%d", i))))
			if err := l.Add(&m); err != nil {
				t.Fatal(err)
			}
		}
		if err := l.Finish(t.Context()); err != nil {
			t.Fatal(err)
		}
		l.Close()
		// A second Open of a store in use is refused.
		if s2, err := Open(dir, Options{}); err == nil {
			s2.Close()
			t.Fatal("a second Open of a store in use succeeded")
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestStoreFormatVersion(t *testing.T) {
	tests := []struct {
		name  string
		setup func(db *pebble.DB) error
	}{
		{"later version", func(db *pebble.DB) error {
			return db.Set([]byte(formatKey), []byte{formatVersion + 1}, pebble.Sync)
		}},
		{"version 0", func(db *pebble.DB) error { return db.Set([]byte(formatKey), []byte{0}, pebble.Sync) }},
		{"garbage version", func(db *pebble.DB) error { return db.Set([]byte(formatKey), []byte{0x81}, pebble.Sync) }},
		{"keys without version", func(db *pebble.DB) error {
			if err := db.Delete([]byte(formatKey), pebble.Sync); err != nil {
				return err
			}
			return db.Set([]byte("other"), []byte("x"), pebble.Sync)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := vfs.NewMem()
			s, err := Open("db", Options{FS: fs})
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			db, err := pebble.Open("db", &pebble.Options{FS: fs, Logger: pebbleLogger{Options{}.withDefaults().Logger}})
			if err != nil {
				t.Fatal(err)
			}
			if err := errors.Join(tt.setup(db), db.Close()); err != nil {
				t.Fatal(err)
			}
			if s, err := Open("db", Options{FS: fs}); !errors.Is(err, ErrFormatVersion) {
				if err == nil {
					s.Close()
				}
				t.Errorf("Open = %v, want ErrFormatVersion", err)
			}
		})
	}
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name string
		o    Options
		want error
	}{
		{"zero", Options{}, nil},
		{"negative cache", Options{CacheSize: -1}, errAny},
		{"huge memtable", Options{MemTableSize: 4 << 30}, errAny},
		{"unknown policy", Options{Policy: 9}, ErrUnknownPolicy},
	}
	for _, tt := range tests {
		err := tt.o.Validate()
		if (err == nil) != (tt.want == nil) || (tt.want != nil && tt.want != errAny && !errors.Is(err, tt.want)) {
			t.Errorf("%s: Validate = %v, want %v", tt.name, err, tt.want)
		}
		if tt.want != nil {
			if _, err := Open("db", Options{FS: vfs.NewMem(), CacheSize: tt.o.CacheSize, MemTableSize: tt.o.MemTableSize, Policy: tt.o.Policy}); err == nil {
				t.Errorf("%s: Open accepted invalid options", tt.name)
			}
		}
	}
	d := Options{}.withDefaults()
	if d.CacheSize != DefaultCacheSize || d.MemTableSize != DefaultMemTableSize || d.HistoryLimit != DefaultHistoryLimit || d.Logger == nil {
		t.Errorf("defaults = %+v", d)
	}
}

// errAny marks an expected error of no particular sentinel.
var errAny = errors.New("any error")

func TestInvalidPartition(t *testing.T) {
	s, _ := openMem(t, Options{})
	e := ev("sent", T)
	b := s.NewBatch(-1)
	defer b.Close()
	checks := map[string]error{
		"Get":           func() error { _, _, err := s.Get(-1, "w"); return err }(),
		"History":       func() error { _, err := s.History(-1, "w"); return err }(),
		"NextOffset":    func() error { _, _, err := s.NextOffset(-1); return err }(),
		"DropPartition": s.DropPartition(-1),
		"Scan":          s.Scan(-1, func(*Message) error { return nil }),
		"Batch.Apply":   func() error { _, _, err := b.Apply(&e, 0); return err }(),
		"Batch.Restore": b.Restore(&Message{wamid: "w"}),
		"Batch.Commit":  b.Commit(),
	}
	for name, err := range checks {
		if !errors.Is(err, ErrInvalidPartition) {
			t.Errorf("%s(-1) = %v, want ErrInvalidPartition", name, err)
		}
	}
}

func TestBatchApplyErrorsChangeNothing(t *testing.T) {
	s, _ := openMem(t, Options{})
	b := s.NewBatch(0)
	defer b.Close()
	for _, e := range []schemas.StatusEvent{ev("queued", T), ev("sent", 0), ev("sent", T, wamid(""))} {
		if _, m, err := b.Apply(&e, 1); err == nil || m != nil {
			t.Errorf("Apply(%+v) = %v, %v; want an error", e, m, err)
		}
	}
	if b.Len() != 0 || len(b.Changed()) != 0 {
		t.Errorf("a rejected event touched the batch: len %d", b.Len())
	}
	if h, _ := s.History(0, testWAMID); len(h) != 0 {
		t.Errorf("history of rejected events: %v", h)
	}
}

func TestBatchChangedResetRestore(t *testing.T) {
	s, _ := openMem(t, Options{})
	commit(t, s, 0, 0, ev("sent", T, wamid("w1")), ev("read", T+3, wamid("w2")))

	b := s.NewBatch(0)
	defer b.Close()
	apply := func(e schemas.StatusEvent, off int64) Outcome {
		t.Helper()
		o, m, err := b.Apply(&e, off)
		if err != nil {
			t.Fatal(err)
		}
		if m.WAMID() != e.WAMID {
			t.Fatalf("Apply returned message %q for %q", m.WAMID(), e.WAMID)
		}
		return o
	}
	apply(ev("read", T+5, wamid("w2")), 2) // touched first, but unchanged
	apply(ev("delivered", T+1, wamid("w3")), 3)
	apply(ev("delivered", T+1, wamid("w1")), 4)
	apply(ev("read", T+2, wamid("w3")), 5)
	var got []string
	for _, m := range b.Changed() {
		got = append(got, m.WAMID())
	}
	if want := []string{"w3", "w1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Changed = %v, want %v (first-touch order, changed only)", got, want)
	}
	if b.Len() != 3 {
		t.Errorf("Len = %d, want 3", b.Len())
	}

	// Reset discards it all.
	b.Reset()
	if len(b.Changed()) != 0 || b.Len() != 0 {
		t.Errorf("Reset left messages")
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	if _, ok := mustGet(t, s, 0, "w3"); ok {
		t.Errorf("Reset did not discard w3")
	}
	if off, _, _ := s.NextOffset(0); off != 2 {
		t.Errorf("empty commit moved the offset to %d", off)
	}

	// Restore joins a state into what is stored.
	restored, _ := fold(t, FailedWins, ev("delivered", T+1, wamid("w1"), pricingCategory("x")))
	if err := b.Restore(&restored); err != nil {
		t.Fatal(err)
	}
	w2, _ := fold(t, FailedWins, ev("read", T+3, wamid("w2")))
	if err := b.Restore(&w2); err != nil { // already there: no change
		t.Fatal(err)
	}
	if err := b.Restore(&Message{}); err != nil {
		t.Errorf("Restore(zero) = %v", err)
	}
	if n := len(b.Changed()); n != 1 {
		t.Errorf("Changed after a restore = %d messages, want 1", n)
	}
	b.SetNextOffset(100)
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	want, _ := fold(t, FailedWins, ev("sent", T, wamid("w1")), ev("delivered", T+1, wamid("w1"), pricingCategory("x")))
	if got, _ := mustGet(t, s, 0, "w1"); !got.Equal(&want) {
		t.Errorf("restored w1 = %s, want %s", jsonString(got.View(FailedWins)), jsonString(want.View(FailedWins)))
	}
	if h, _ := s.History(0, "w1"); len(h) != 1 {
		t.Errorf("Restore recorded history: %v", h)
	}
	// Restoring the same state again changes nothing.
	if err := b.Restore(&restored); err != nil {
		t.Fatal(err)
	}
	if n := len(b.Changed()); n != 0 {
		t.Errorf("a repeated restore changed %d messages", n)
	}

	b.Close()
	b.Close()
	if err := b.Commit(); !errors.Is(err, ErrClosed) {
		t.Errorf("Commit after Close = %v, want ErrClosed", err)
	}
}

func TestHistory(t *testing.T) {
	s, _ := openMem(t, Options{HistoryLimit: 3})
	evs := []schemas.StatusEvent{
		ev("sent", T, receivedAt(1)), ev("delivered", T+1, participantID("p1")), ev("sent", T),
		ev("read", T+2, func(e *schemas.StatusEvent) { e.Region = "us" }), ev("delivered", T+1, receivedAt(7)),
	}
	commit(t, s, 1, 40, evs[:2]...)
	commit(t, s, 1, 42, evs[2:]...)
	want := []HistoryEntry{
		{Offset: 42, Status: "sent", Timestamp: T, Region: "eu", Outcome: Duplicate},
		{Offset: 43, Status: "read", Timestamp: T + 2, Region: "us", Outcome: Advanced},
		{Offset: 44, Status: "delivered", Timestamp: T + 1, Region: "eu", ReceivedAt: 7, Outcome: Filled},
	}
	got, err := s.History(1, testWAMID)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("History:\n got %+v\nwant %+v", got, want)
	}
	if h, err := s.History(1, "wamid.unknown"); err != nil || len(h) != 0 {
		t.Errorf("History of an unknown message = %v, %v", h, err)
	}
	// Another wamid's history is its own.
	commit(t, s, 1, 45, ev("sent", T, wamid(testWAMID+"x")))
	if got, _ := s.History(1, testWAMID); len(got) != 3 {
		t.Errorf("history mixed with another wamid: %+v", got)
	}
}

// TestHistoryLimitChange reopens with a lower and then a higher limit: the
// newest entries are always the ones returned, in arrival order.
func TestHistoryLimitChange(t *testing.T) {
	fs := vfs.NewMem()
	offsets := func(h []HistoryEntry) []int64 {
		var o []int64
		for _, e := range h {
			o = append(o, e.Offset)
		}
		return o
	}
	run := func(limit int, from, to int64) []int64 {
		t.Helper()
		s, err := Open("db", Options{FS: fs, HistoryLimit: limit})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		for off := from; off < to; off++ {
			commit(t, s, 0, off, ev("sent", T+off))
		}
		h, err := s.History(0, testWAMID)
		if err != nil {
			t.Fatal(err)
		}
		return offsets(h)
	}
	if got, want := run(6, 0, 10), []int64{4, 5, 6, 7, 8, 9}; !reflect.DeepEqual(got, want) {
		t.Errorf("limit 6: %v, want %v", got, want)
	}
	if got, want := run(3, 10, 10), []int64{7, 8, 9}; !reflect.DeepEqual(got, want) {
		t.Errorf("lowered to 3, nothing written: %v, want %v", got, want)
	}
	if got, want := run(3, 10, 12), []int64{9, 10, 11}; !reflect.DeepEqual(got, want) {
		t.Errorf("lowered to 3: %v, want %v", got, want)
	}
	if got, want := run(8, 12, 14), []int64{9, 10, 11, 12, 13}; !reflect.DeepEqual(got, want) {
		// Entries dropped under the lower limit do not come back.
		t.Errorf("raised to 8: %v, want %v", got, want)
	}
	if got := run(-1, 14, 16); !reflect.DeepEqual(got, []int64{9, 10, 11, 12, 13}) {
		t.Errorf("history off: %v; want the old entries unchanged", got)
	}
}

func TestDropPartition(t *testing.T) {
	s, _ := openMem(t, Options{})
	for p := int32(0); p < 3; p++ {
		commit(t, s, p, 5, ev("sent", T), ev("read", T+1, wamid("w2")))
	}
	if err := s.DropPartition(1); err != nil {
		t.Fatal(err)
	}
	for p := int32(0); p < 3; p++ {
		_, found := mustGet(t, s, p, testWAMID)
		_, hasOffset, _ := s.NextOffset(p)
		h, _ := s.History(p, testWAMID)
		n := 0
		_ = s.Scan(p, func(*Message) error { n++; return nil })
		want := p != 1
		if found != want || hasOffset != want || (len(h) > 0) != want || (n > 0) != want {
			t.Errorf("partition %d after dropping 1: message %t, offset %t, history %d, scanned %d", p, found, hasOffset, len(h), n)
		}
	}
	// The highest partition number has an end key too.
	commit(t, s, 1<<31-1, 0, ev("sent", T))
	if err := s.DropPartition(1<<31 - 1); err != nil {
		t.Fatal(err)
	}
	if _, ok := mustGet(t, s, 1<<31-1, testWAMID); ok {
		t.Errorf("partition MaxInt32 not dropped")
	}
	// The store still opens: the format version key survived.
	if _, ok := mustGet(t, s, 0, testWAMID); !ok {
		t.Errorf("partition 0 lost")
	}
}

func TestScan(t *testing.T) {
	s, _ := openMem(t, Options{})
	var evs []schemas.StatusEvent
	var want []string
	for i := range 50 {
		id := fmt.Sprintf("wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQz%04d", i)
		want = append(want, id)
		evs = append(evs, ev("sent", T+int64(i), wamid(id)))
	}
	commit(t, s, 2, 0, evs...)
	commit(t, s, 3, 0, ev("sent", T, wamid("other")))
	var got []string
	if err := s.Scan(2, func(m *Message) error {
		got = append(got, m.WAMID())
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Scan = %v, want %v", got, want)
	}
	stop := errors.New("stop")
	n := 0
	if err := s.Scan(2, func(*Message) error { n++; return stop }); err != stop || n != 1 {
		t.Errorf("Scan with a failing fn = %v after %d calls; want stop after 1", err, n)
	}
}

func TestStats(t *testing.T) {
	s, _ := openMem(t, Options{})
	commit(t, s, 0, 0, ev("sent", T))
	st := s.Stats()
	if st.MemTableCount < 1 || st.MemTableSize == 0 {
		t.Errorf("Stats = %+v", st)
	}
	if s.Policy() != FailedWins {
		t.Errorf("Policy = %v", s.Policy())
	}
}

// TestBatchApplyAllocations checks that a warm batch folds events of cached
// messages without allocating.
func TestBatchApplyAllocations(t *testing.T) {
	s, _ := openMem(t, Options{})
	b := s.NewBatch(0)
	defer b.Close()
	evs := []schemas.StatusEvent{
		ev("sent", T, recipientID(phone), pricingCategory("m"), conv("c", 1, "o")),
		ev("delivered", T+1, userIDs(userID, parentID)),
		ev("read", T+2, metadata(phoneID, display, wabaID)),
	}
	for i := range evs {
		if _, _, err := b.Apply(&evs[i], int64(i)); err != nil {
			t.Fatal(err)
		}
	}
	off := int64(10)
	allocs := testing.AllocsPerRun(100, func() {
		for i := range evs {
			if _, _, err := b.Apply(&evs[i], off); err != nil {
				t.Fatal(err)
			}
			off++
		}
	})
	if allocs > 0 {
		t.Errorf("Batch.Apply allocates %.1f times per 3 events on a cached message", allocs)
	}
	var m Message
	allocs = testing.AllocsPerRun(100, func() {
		m.reset()
		for i := range evs {
			if _, err := m.Apply(&evs[i], FailedWins); err != nil {
				t.Fatal(err)
			}
		}
	})
	if allocs > 0 {
		t.Errorf("Message.Apply allocates %.1f times per fold of 3 events", allocs)
	}
}

// TestHistoryBusyMessage folds many events of one message in one batch: the
// history keeps the last HistoryLimit, in arrival order.
func TestHistoryBusyMessage(t *testing.T) {
	s, _ := openMem(t, Options{HistoryLimit: 3})
	var evs []schemas.StatusEvent
	for i := range 20 {
		evs = append(evs, ev("delivered", T+int64(i), participantID(fmt.Sprintf("p%02d", i))))
	}
	commit(t, s, 0, 100, evs...)
	h, err := s.History(0, testWAMID)
	if err != nil {
		t.Fatal(err)
	}
	var got []int64
	for _, e := range h {
		got = append(got, e.Offset)
	}
	if want := []int64{117, 118, 119}; !reflect.DeepEqual(got, want) {
		t.Errorf("history offsets %v, want %v", got, want)
	}
}

// TestCorruptRecord stores bytes that are not a record: every read of it
// fails with ErrCorrupt.
func TestCorruptRecord(t *testing.T) {
	other, _ := fold(t, FailedWins, ev("sent", T, wamid("wamid.other")))
	var otherRecord []byte
	otherRecord = appendRecord(otherRecord, &other, nil, 0, 0)
	good, _ := fold(t, FailedWins, ev("sent", T))
	goodRecord := appendRecord(nil, &good, nil, 0, 0)
	tests := []struct {
		name  string
		value []byte
	}{
		{"garbage", []byte{0xff, 0x01}},
		{"empty", nil},
		{"another message's record", otherRecord},
		{"trailing history bytes", append(append([]byte(nil), goodRecord...), 0x00)},
		{"history count beyond the entries", append(append([]byte(nil), goodRecord[:len(goodRecord)-1]...), 0x05)},
		{"undecodable history entry", append(append([]byte(nil), goodRecord[:len(goodRecord)-1]...), 0x01, 0x02, 0x00, 0x09)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := openMem(t, Options{})
			setRecord(t, s.db, 0, wamidHash(testWAMID), 0, tt.value)
			_, _, err := s.Get(0, testWAMID)
			_, herr := s.History(0, testWAMID)
			serr := s.Scan(0, func(*Message) error { return nil })
			b := s.NewBatch(0)
			defer b.Close()
			e := ev("read", T)
			_, _, berr := b.Apply(&e, 0)
			switch tt.name {
			case "undecodable history entry":
				// Only History decodes the entries.
				err, serr, berr = ErrCorrupt, ErrCorrupt, ErrCorrupt
			case "another message's record":
				// Scan reads records, not the index that points here.
				serr = ErrCorrupt
			}
			for name, err := range map[string]error{"Get": err, "History": herr, "Scan": serr, "Batch.Apply": berr} {
				if !errors.Is(err, ErrCorrupt) {
					t.Errorf("%s = %v, want ErrCorrupt", name, err)
				}
			}
		})
	}
	s, _ := openMem(t, Options{})
	if err := s.db.Set(appendOffsetKey(nil, 0), []byte{0x80}, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.NextOffset(0); !errors.Is(err, ErrCorrupt) {
		t.Errorf("NextOffset of garbage = %v, want ErrCorrupt", err)
	}
}

// TestBatchRetention: what a batch keeps between commits follows its last
// use, not the largest it ever had. A processor keeps a batch per partition
// for good, so one large transaction must not leave every partition holding
// its size; the next smaller commit lets it go, and a busy message's long
// history buffer is not kept for the next message.
func TestBatchRetention(t *testing.T) {
	s, _ := openMem(t, Options{HistoryLimit: 100})
	b := s.NewBatch(0)
	defer b.Close()
	off := int64(0)
	apply := func(evs ...schemas.StatusEvent) {
		t.Helper()
		for i := range evs {
			if _, _, err := b.Apply(&evs[i], off); err != nil {
				t.Fatal(err)
			}
			off++
		}
	}
	commitBatch := func() {
		t.Helper()
		b.SetNextOffset(off)
		if err := b.Commit(); err != nil {
			t.Fatal(err)
		}
	}

	const large, small = 5000, 10
	for i := range large {
		apply(ev("sent", T, wamid(fmt.Sprintf("wamid.large.%d", i))))
	}
	// One busy group message: its history (about 18 bytes an event) and
	// its participants outgrow what an entry keeps.
	for i := range 100 {
		apply(ev("delivered", T+int64(i), wamid("wamid.busy"), participantID(fmt.Sprintf("p%03d", i))))
	}
	commitBatch()
	if len(b.free) != large+1 {
		t.Fatalf("after a commit of %d messages the batch keeps %d entries, want them all", large+1, len(b.free))
	}
	for _, e := range b.free {
		if cap(e.hist) > retainHistoryBytes || cap(e.m.parts) > retainParticipants {
			t.Fatalf("a kept entry holds a history buffer of %d bytes and room for %d participants, more than %d and %d",
				cap(e.hist), cap(e.m.parts), retainHistoryBytes, retainParticipants)
		}
	}

	// A commit of nothing but the offset, and a Reset of nothing (an
	// aborted transaction whose records were all stored already), teach
	// the batch nothing: it keeps what it had.
	commitBatch()
	b.Reset()
	if len(b.free) != large+1 {
		t.Errorf("after empty commits the batch keeps %d entries, want the %d it had", len(b.free), large+1)
	}

	// An aborted transaction's Reset follows the same rule as a commit.
	for i := range 2 * small {
		apply(ev("delivered", T+1, wamid(fmt.Sprintf("wamid.large.%d", i))))
	}
	b.Reset()
	if len(b.free) != 2*small {
		t.Errorf("after a Reset of %d messages the batch keeps %d entries, want %d", 2*small, len(b.free), 2*small)
	}
	for i := range small {
		apply(ev("delivered", T+1, wamid(fmt.Sprintf("wamid.large.%d", i))))
	}
	commitBatch()
	if len(b.free) != small {
		t.Errorf("after a commit of %d messages the batch keeps %d entries, want %d", small, len(b.free), small)
	}
	if b.peak > 2*small || cap(b.order) > 2*small {
		t.Errorf("after small batches the batch's map and slices are sized for %d messages (order capacity %d), want at most the last two batches' %d",
			b.peak, cap(b.order), 2*small)
	}

	// The batch still folds and finds what it committed.
	apply(ev("read", T+2, wamid("wamid.large.0")))
	commitBatch()
	m, ok := mustGet(t, s, 0, "wamid.large.0")
	if !ok || m.Status(FailedWins) != Read {
		t.Errorf("wamid.large.0 after the small commits: found %v, status %v, want read", ok, m.Status(FailedWins))
	}
	if m, ok := mustGet(t, s, 0, "wamid.large.4999"); !ok || m.Status(FailedWins) != Sent {
		t.Errorf("wamid.large.4999: found %v, status %v, want sent", ok, m.Status(FailedWins))
	}
}

// TestBatchPresize checks that a commit larger than a batch keeps between
// commits gets a Pebble batch sized for it at once, by the last commit's
// bytes a record, and a small one does not.
func TestBatchPresize(t *testing.T) {
	s, _ := openMem(t, Options{})
	b := s.NewBatch(0)
	defer b.Close()
	apply := func(prefix string, n int) {
		t.Helper()
		for i := range n {
			e := ev("sent", T, wamid(fmt.Sprintf("%s%d", prefix, i)))
			if _, _, err := b.Apply(&e, int64(i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	apply("wamid.first.", 3000)
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	perRecord := b.recordBytes
	if perRecord < 64 {
		t.Fatalf("after 3000 records: %d bytes a record", perRecord)
	}

	apply("wamid.second.", 5000) // more than retainBatchBytes
	b.presize(5000)
	b.presize(5000) // again: the batch is sized already
	if c, want := cap(b.pb.Repr()), 5000*perRecord; want <= retainBatchBytes || c < want || c > 2*want {
		t.Fatalf("presized to %d bytes, want about %d", c, want)
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"wamid.first.0", "wamid.second.4999"} {
		if _, ok := mustGet(t, s, 0, id); !ok {
			t.Fatalf("%s not stored", id)
		}
	}

	apply("wamid.third.", 10)
	b.presize(10)
	if c := cap(b.pb.Repr()); c > retainBatchBytes {
		t.Fatalf("a commit of 10 records presized to %d bytes", c)
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
}

// TestCommitInKeyOrder checks that a commit adds its keys to the Pebble
// batch in key order (index entries, then records), whatever order its
// messages were touched in: stored and new ones interleaved, new ones
// sharing an epoch with stored ones, and what it wrote reads back.
func TestCommitInKeyOrder(t *testing.T) {
	s, _ := openMem(t, Options{})
	s.epochKeys = 16 // several epochs
	b := s.NewBatch(3)
	defer b.Close()
	apply := func(id string, st string, off int64) {
		t.Helper()
		e := ev(st, T+off, wamid(id))
		if _, _, err := b.Apply(&e, off); err != nil {
			t.Fatal(err)
		}
	}
	r := rand.New(rand.NewPCG(testSeed(t), 7))
	var stored []string
	for i := range 40 {
		id := fmt.Sprintf("wamid.stored.%d", i)
		apply(id, "sent", int64(i))
		stored = append(stored, id)
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	// Touch stored messages in random order, new ones between them.
	for i, k := range r.Perm(len(stored)) {
		apply(stored[k], "delivered", int64(100+2*i))
		apply(fmt.Sprintf("wamid.new.%d", i), "sent", int64(101+2*i))
	}
	n, err := b.writeMessages()
	if err != nil {
		t.Fatal(err)
	}
	if n != 2*len(stored) {
		t.Fatalf("wrote %d records, want %d", n, 2*len(stored))
	}
	var keys [][]byte
	it := b.pb.Reader()
	for {
		kind, k, _, ok, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		if kind != pebble.InternalKeyKindSet {
			t.Fatalf("key %x: kind %v", k, kind)
		}
		keys = append(keys, slices.Clone(k))
	}
	if want := 2*len(stored) + len(stored); len(keys) < want-5 || len(keys) > want {
		t.Fatalf("%d keys in the batch, want about %d (the records and the new messages' index entries)", len(keys), want)
	}
	for i := 1; i < len(keys); i++ {
		if bytes.Compare(keys[i-1], keys[i]) >= 0 {
			t.Fatalf("key %d (%x) after key %d (%x)", i, keys[i], i-1, keys[i-1])
		}
	}
	b.Reset()
	for i := range len(stored) {
		apply(stored[i], "delivered", int64(100+2*i))
		apply(fmt.Sprintf("wamid.new.%d", i), "sent", int64(101+2*i))
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	checkIndexInFilter(t, s, 3)
	for i := range len(stored) {
		for _, id := range []string{stored[i], fmt.Sprintf("wamid.new.%d", i)} {
			if _, ok := mustGet(t, s, 3, id); !ok {
				t.Fatalf("%s not stored", id)
			}
		}
	}
}
