package state

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/wastatus/wastatus/schemas"
)

// TestCollidingWAMIDs folds the same random traffic into two stores and checks that
// they hold the same states and histories: a store whose wamids collide
// (its hash gives every wamid one of two values, so index entries hold
// many seqs, and its epochs are of 8 messages, so a hash has entries in
// many epochs) against one with the real hash. Some messages are first
// restored by a Loader, batches see the same message several times and
// meet new messages of one hash together, and the colliding store is
// reopened between batches, so that it finds its next seq in Pebble and
// rebuilds its epochs from the index.
func TestCollidingWAMIDs(t *testing.T) {
	seed := testSeed(t)
	r := rand.New(rand.NewPCG(seed, seed+1))
	collide := func(w string) uint64 { return uint64(len(w)) % 2 }

	got, fs := openMem(t, Options{HistoryLimit: 8})
	got.hash, got.epochKeys = collide, 8
	want, _ := openMem(t, Options{HistoryLimit: 8})

	const restored, messages = 40, 120
	ids := make([]string, messages)
	for i := range ids {
		ids[i] = fmt.Sprintf("wamid.%0*d", 1+i%3, i) // lengths of both parities
	}
	for _, s := range []*Store{got, want} {
		l, err := s.NewLoader(0, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range ids[:restored] {
			var m Message
			e := ev("delivered", T, wamid(id))
			if _, err := m.Apply(&e, s.Policy()); err != nil {
				t.Fatal(err)
			}
			if err := l.Add(&m); err != nil {
				t.Fatal(err)
			}
		}
		if err := l.Finish(t.Context()); err != nil {
			t.Fatal(err)
		}
	}

	statuses := []string{"sent", "delivered", "read", "failed", "played"}
	off := int64(0)
	for batch := range 30 {
		if batch%10 == 9 {
			if err := got.Close(); err != nil {
				t.Fatal(err)
			}
			s, err := Open("db", Options{HistoryLimit: 8, FS: fs})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Close() })
			s.hash, s.epochKeys = collide, 8
			got = s
		}
		seen := min(messages, restored+4*(batch+1)) // new messages every batch
		evs := make([]schemas.StatusEvent, 1+r.IntN(12))
		for i := range evs {
			evs[i] = ev(statuses[r.IntN(len(statuses))], T+int64(r.IntN(5)), wamid(ids[r.IntN(seen)]))
		}
		commit(t, got, 0, off, evs...)
		commit(t, want, 0, off, evs...)
		off += int64(len(evs))
	}

	n := 0
	if err := got.Scan(0, func(*Message) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	stored := 0
	for _, id := range ids {
		w, wok := mustGet(t, want, 0, id)
		g, gok := mustGet(t, got, 0, id)
		if gok != wok || !reflect.DeepEqual(g.View(FailedWins), w.View(FailedWins)) {
			t.Fatalf("%s: colliding store has %+v (%v), want %+v (%v)", id, g.View(FailedWins), gok, w.View(FailedWins), wok)
		}
		gh, err := got.History(0, id)
		if err != nil {
			t.Fatal(err)
		}
		wh, err := want.History(0, id)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(gh, wh) {
			t.Fatalf("%s: history %+v, want %+v", id, gh, wh)
		}
		if wok {
			stored++
		}
	}
	if n != stored {
		t.Fatalf("Scan saw %d records, want %d", n, stored)
	}
	if stored <= restored {
		t.Fatalf("only %d messages stored: the traffic added none", stored)
	}
	if n := len(got.knownKeys(0, true).f.layers); n < 5 {
		t.Fatalf("%d epochs: the test should make many", n)
	}
	checkIndexInFilter(t, got, 0)
}

// TestNewMessagesAfterLoad checks that a partition's new messages after a
// Loader's, and after a reopen, get seqs of their own: a seq handed out
// twice would write one message's record over another's.
func TestNewMessagesAfterLoad(t *testing.T) {
	s, fs := openMem(t, Options{})
	loadStates(t, s, 3, 100, "wamid.loaded.", "delivered")
	loadStates(t, s, 4, 100, "wamid.loaded.", "delivered") // nothing new before the reopen
	for i := range 50 {
		commit(t, s, 3, int64(i), ev("sent", T, wamid(fmt.Sprintf("wamid.new.%d", i))))
	}
	// The Loader's epoch is sealed: new index entries do not fall among
	// the loaded ones, whose tables are in the bottom level.
	for i := range 50 {
		key, _ := indexKeyOf(t, s.db, 3, fmt.Sprintf("wamid.new.%d", i))
		if e, _, _ := indexEntry(key, 3); e == 0 {
			t.Fatalf("a new message after a Loader's is in its epoch, 0")
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := Open("db", Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range 50 {
		commit(t, s, 3, int64(50+i), ev("read", T, wamid(fmt.Sprintf("wamid.later.%d", i))))
	}
	check := func(prefix string, n int, want Status) {
		t.Helper()
		for i := range n {
			id := fmt.Sprintf("%s%d", prefix, i)
			m, ok := mustGet(t, s, 3, id)
			if !ok || m.Status(s.Policy()) != want {
				t.Fatalf("%s: %v (found %v), want %v", id, m.Status(s.Policy()), ok, want)
			}
		}
	}
	check("wamid.loaded.", 100, Delivered)
	check("wamid.new.", 50, Sent)
	check("wamid.later.", 50, Read)
	for i := range 50 {
		key, _ := indexKeyOf(t, s.db, 3, fmt.Sprintf("wamid.later.%d", i))
		if e, _, _ := indexEntry(key, 3); e == 0 {
			t.Fatalf("a new message after a reopen is in the Loader's epoch, 0")
		}
	}
	checkIndexInFilter(t, s, 3)
	commit(t, s, 4, 0, ev("sent", T, wamid("wamid.after.reopen")))
	key, _ := indexKeyOf(t, s.db, 4, "wamid.after.reopen")
	if e, _, _ := indexEntry(key, 4); e == 0 {
		t.Fatalf("a new message after a reopen is in the epoch of the Loader's alone, 0")
	}
	checkIndexInFilter(t, s, 4)
}

// TestStoreUpgrades opens a store written in an earlier format: format 1
// (records keyed by the wamid's hash) and format 2 (index entries keyed by
// the hash alone, whose 13-byte keys this format's index reader would take
// for corruption). It is emptied, so that its partitions restore, and
// marked with this format.
func TestStoreUpgrades(t *testing.T) {
	format1 := append(appendPartition(nil, 0), 0x02)
	format1 = binary.BigEndian.AppendUint64(format1, wamidHash(testWAMID))
	format1 = append(format1, testWAMID...)
	format2 := append(appendPartition(nil, 0), kindIndex)
	format2 = binary.BigEndian.AppendUint64(format2, wamidHash(testWAMID))
	for _, tc := range []struct {
		version uint64
		key     []byte
	}{{formatVersion1, format1}, {formatVersion2, format2}} {
		t.Run(fmt.Sprint("format ", tc.version), func(t *testing.T) {
			testStoreUpgrade(t, tc.version, tc.key)
		})
	}
}

func testStoreUpgrade(t *testing.T, version uint64, oldKey []byte) {
	db, fs := closedStore(t)
	err := db.Set(oldKey, []byte("an old format's entry"), pebble.Sync)
	err = errors.Join(err, db.Set([]byte(formatKey), binary.AppendUvarint(nil, version), pebble.Sync), db.Close())
	if err != nil {
		t.Fatal(err)
	}

	s, err := Open("db", Options{FS: fs})
	if err != nil {
		t.Fatalf("Open of a format %d store: %v", version, err)
	}
	defer s.Close()
	if _, ok := mustGet(t, s, 0, testWAMID); ok {
		t.Error("a message survived the upgrade")
	}
	if _, ok, err := s.NextOffset(0); err != nil || ok {
		t.Errorf("NextOffset after the upgrade = %v, %v; want none", ok, err)
	}
	lo, hi := partitionBounds(0)
	if none, err := s.noKeys(lo, []byte{0xff}); err != nil || !none {
		t.Errorf("keys left below the format key: %v, %v (partition 0 is [%x, %x))", none, err, lo, hi)
	}
	commit(t, s, 0, 0, ev("sent", T))
	if m, ok := mustGet(t, s, 0, testWAMID); !ok || m.Status(s.Policy()) != Sent {
		t.Errorf("after the upgrade: %v, %v; want sent", m.Status(s.Policy()), ok)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open("db", Options{FS: fs}); err != nil {
		t.Fatalf("reopen after the upgrade: %v", err)
	}
	if m, ok := mustGet(t, s, 0, testWAMID); !ok || m.Status(s.Policy()) != Sent {
		t.Errorf("after reopening: %v, %v; want sent", m.Status(s.Policy()), ok)
	}
}

// TestTablesSplitAtKinds checks that every sstable holds keys of one
// partition and one kind (or the format key alone), and index entries of
// one epoch: a table of recent records must not reach into the next
// partition's index, nor one of new index entries into older epochs
// (splitKinds).
func TestTablesSplitAtKinds(t *testing.T) {
	s, _ := openMem(t, Options{})
	s.epochKeys = 64
	for p := range int32(3) {
		evs := make([]schemas.StatusEvent, 200)
		for i := range evs {
			evs[i] = ev("sent", T, wamid(fmt.Sprintf("wamid.%d.%d", p, i)))
		}
		commit(t, s, p, 0, evs...)
	}
	if err := s.db.Flush(); err != nil {
		t.Fatal(err)
	}
	levels, err := s.db.SSTables()
	if err != nil {
		t.Fatal(err)
	}
	tables, indexTables := 0, 0
	for _, level := range levels {
		for _, tb := range level {
			tables++
			lo, hi := tb.Smallest.UserKey, tb.Largest.UserKey
			if lo[0] == 0xff {
				continue // the format key
			}
			if len(lo) < 5 || len(hi) < 5 || !bytes.Equal(lo[:5], hi[:5]) {
				t.Errorf("table %s holds [%x, %x]: more than one partition's keys of one kind", tb.FileNum, lo, hi)
			}
			if lo[4] == kindIndex {
				indexTables++
				if !bytes.Equal(lo[:9], hi[:9]) {
					t.Errorf("table %s holds [%x, %x]: index entries of more than one epoch", tb.FileNum, lo, hi)
				}
			}
		}
	}
	// Three partitions' offsets, index entries in epochs of 64 messages,
	// and records, and the format key.
	if tables < 10 || indexTables < 6 {
		t.Errorf("%d tables, %d of index entries; want at least 10 and 6", tables, indexTables)
	}
}

// TestRecordsInBlobFiles checks that a flush writes message records to
// blob files, and index entries and offsets to sstables alone, and that a
// compaction then moves the records' references, not the records
// (valueSeparation), and every message still reads back as its fold.
func TestRecordsInBlobFiles(t *testing.T) {
	s, _ := openMem(t, Options{})
	type stored struct {
		p  int32
		id string
		m  Message
	}
	var want []stored
	for p := range int32(3) {
		evs := make([]schemas.StatusEvent, 0, 400)
		for i := range 200 {
			id := fmt.Sprintf("wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI4QUNCNzRG%02d%06d", p, i)
			sent, read := ev("sent", T, wamid(id), recipientID("16505551234")), ev("read", T+30, wamid(id))
			evs = append(evs, sent, read)
			m, _ := fold(t, s.Policy(), sent, read)
			want = append(want, stored{p, id, m})
		}
		commit(t, s, p, 0, evs...)
	}
	if err := s.db.Flush(); err != nil {
		t.Fatal(err)
	}
	// checkTables returns the blob files the tables refer to.
	checkTables := func(stage string) map[string]bool {
		t.Helper()
		levels, err := s.db.SSTables()
		if err != nil {
			t.Fatal(err)
		}
		records, files := 0, map[string]bool{}
		for _, level := range levels {
			for _, tb := range level {
				lo, blobs := tb.Smallest.UserKey, len(tb.GetBlobReferenceFiles())
				switch {
				case len(lo) >= 5 && lo[0] != 0xff && lo[4] == kindRecord:
					records++
					if blobs == 0 {
						t.Errorf("%s: table %s of records [%x, %x] refers to no blob file: its records are in it", stage, tb.FileNum, lo, tb.Largest.UserKey)
					}
					for _, f := range tb.GetBlobReferenceFiles() {
						files[f.String()] = true
					}
				case blobs > 0:
					t.Errorf("%s: table %s of [%x, %x], no records, refers to %d blob files", stage, tb.FileNum, lo, tb.Largest.UserKey, blobs)
				}
			}
		}
		if records < 3 {
			t.Errorf("%s: %d tables of records, want one a partition at least", stage, records)
		}
		return files
	}
	// blobBytes is what flushes and compactions wrote to blob files
	// (Pebble counts a flush's in BlobBytesCompacted too).
	blobBytes := func() (n uint64) {
		for _, l := range s.db.Metrics().Levels {
			n += l.BlobBytesCompacted
		}
		return n
	}
	flushed, flushedBytes := checkTables("flushed"), blobBytes()

	if err := s.db.Compact(t.Context(), []byte{0}, []byte{0xff, 0xff}, false); err != nil {
		t.Fatal(err)
	}
	for f := range checkTables("compacted") {
		if !flushed[f] {
			t.Errorf("the compaction wrote blob file %s: it moved records, not their references", f)
		}
	}
	if n := blobBytes(); flushedBytes == 0 || n != flushedBytes {
		t.Errorf("blob bytes written: %d by the flush, %d after the compaction; want some, and none by the compaction", flushedBytes, n)
	}
	for _, w := range want {
		got, ok := mustGet(t, s, w.p, w.id)
		if !ok || !bytes.Equal(encode(&got), encode(&w.m)) {
			t.Fatalf("%s: stored %t %x, want %x", w.id, ok, encode(&got), encode(&w.m))
		}
	}
}

// TestRecordsWithoutIndexFailStore opens a store whose partition holds
// records but no index entry: its first batch must fail the store
// (ErrCorrupt), not take every message for new and write it again.
func TestRecordsWithoutIndexFailStore(t *testing.T) {
	db, fs := closedStore(t)
	lo, hi := kindBounds(0, kindIndex)
	if err := errors.Join(db.DeleteRange(lo, hi, pebble.Sync), db.Close()); err != nil {
		t.Fatal(err)
	}
	s, err := Open("db", Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	b := s.NewBatch(0)
	defer b.Close()
	e := ev("delivered", T)
	_, _, err = b.Apply(&e, 1)
	checkFailed(t, s, err, ErrCorrupt)
}

// TestGetRacesDrop reads a message while its partition is dropped and
// written again, as a query meets a restore or a view load: the read finds
// the message or not, and never takes an index entry of one moment and a
// record of the next for corruption, which would fail the store.
func TestGetRacesDrop(t *testing.T) {
	s, _ := openMem(t, Options{})
	const p = 5
	var (
		stop atomic.Bool
		wg   sync.WaitGroup
		gerr error
	)
	wg.Go(func() {
		for !stop.Load() {
			if _, _, err := s.Get(p, testWAMID); err != nil {
				gerr = err
				return
			}
			if _, err := s.History(p, testWAMID); err != nil {
				gerr = err
				return
			}
		}
	})
	for i := 0; i < 1000 && s.Err() == nil; i++ {
		// testWAMID takes seq 0 or 1, the other message the other.
		evs := []schemas.StatusEvent{ev("sent", T), ev("sent", T, wamid(fmt.Sprint("wamid.other.", i)))}
		if i%2 == 1 {
			evs[0], evs[1] = evs[1], evs[0]
		}
		commit(t, s, p, 0, evs...)
		if err := s.DropPartition(p); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	if err := errors.Join(gerr, s.Err()); err != nil {
		t.Fatalf("a read racing DropPartition: %v", err)
	}
}

// closedStore writes testWAMID's read status into partition 0 of a new
// store, closes it, and opens its database directly, for a test to write
// what the store never would: the database and its file system.
func closedStore(t *testing.T) (*pebble.DB, vfs.FS) {
	t.Helper()
	s, fs := openMem(t, Options{})
	commit(t, s, 0, 0, ev("read", T))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := pebble.Open("db", &pebble.Options{FS: fs, Logger: pebbleLogger{Options{}.withDefaults().Logger}})
	if err != nil {
		t.Fatal(err)
	}
	return db, fs
}
