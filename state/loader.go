package state

import (
	"bufio"
	"bytes"
	"cmp"
	"container/heap"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/objstorage/objstorageprovider"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Loader fills an empty partition with message states that come in no
// order and may repeat (a restore from the current topic), and writes them
// around Pebble's write path: it sorts them in runs, spills full runs to
// files, merges the runs into sorted sstables and ingests those in one
// atomic step. A restore through batches spent most of its CPU on that
// path: inserting hash-ordered keys into the memtable's skiplist (40% of
// the restore's own CPU in BenchmarkRestore's profile), then flushing and
// compacting what it had just inserted. Ingested tables go straight to the
// lowest level that holds nothing of theirs, which for a partition that
// never held a key (a new or lost store) is the bottom one: nothing is
// rewritten.
//
// A message given more than once is stored as the join of its states, as
// Batch.Restore would store it. Nothing is visible before Finish; a Loader
// closed (or a process killed) before Finish leaves the partition as it
// was, empty, and its spill files are removed then or at the next Open.
//
// A Loader belongs to one goroutine and is the partition's only writer
// until closed.
type Loader struct {
	s         *Store
	partition int32
	known     *knownKeys
	err       error // sticky
	dir       string
	runBytes  int

	// Sizes, constants but for the tests.
	chunkBytes int // loadChunkBytes
	tableBytes int // loadTableBytes
	mergeRuns  int // loadMergeRuns

	chunks [][]byte    // the current run's keys and values
	cur    int         // the chunk being filled
	used   int         // bytes in the chunks
	rec    []byte      // scratch record
	ents   []loadEntry // the current run's records, in arrival order
	sorted []loadEntry // sort's scratch
	counts []uint32    // sort's buckets
	runs   []string    // spilled runs, oldest first
	seq    int         // file names

	nextOffset    int64
	hasNextOffset bool
	loaded        int64

	m1, m2 Message // scratch for joins
	val    []byte  // scratch value
}

// loadEntry is one record of a Loader's current run: its sort key (the
// wamid's hash, big-endian, then the wamid) and value are
// chunks[chunk][off:off+klen] and the vlen bytes after. The hash is kept
// inline too, so sorting reads the chunks only to break the rare ties.
type loadEntry struct {
	hash       uint64
	chunk, off uint32
	klen, vlen uint32
	seq        uint32 // arrival order within the run
}

const (
	// loadDir holds the spill files of every Loader, under the store's
	// directory (ingestion links files, so they must be on the store's
	// file system). Open removes what a crash left.
	loadDir = "load.tmp"
	// DefaultLoadRunBytes is how many bytes of encoded records a Loader
	// sorts in memory before spilling them as a run. A 1M-message restore
	// over 12 partitions (about 13 MB of records a partition) then never
	// spills; a partition of 10M messages' worth spills about eight runs.
	DefaultLoadRunBytes = 16 << 20
	// loadTableBytes is the size at which a Loader starts a new sstable.
	loadTableBytes = 64 << 20
	// loadReadBuffer is the read buffer of each run while merging.
	loadReadBuffer = 64 << 10
	// loadChunkBytes is the size of the chunks a run's records are copied
	// into: one growing buffer spent a third of Add's time copying itself
	// as it doubled.
	loadChunkBytes = 1 << 20
	// loadMergeRuns is the most runs merged at once, each an open file and
	// a read buffer: more are first merged into fewer, oldest first.
	loadMergeRuns = 64
)

// NewLoader returns a Loader for a partition that holds no key. At Finish
// it gives the partition a filter of known messages sized for the messages
// it loaded; the partition's later batches then skip the lookups of
// messages it has not seen. The Loader sorts runs of about runBytes of
// records in memory (0 means Options.LoadRunBytes): callers that run many
// Loaders at once give each a share. It returns ErrNotEmpty if the
// partition holds any key, and ErrInvalidPartition for a negative one.
func (s *Store) NewLoader(partition int32, runBytes int) (*Loader, error) {
	if err := s.check(partition); err != nil {
		return nil, err
	}
	lo, hi := partitionBounds(partition)
	empty, err := s.noKeys(lo, hi)
	if err != nil {
		return nil, fmt.Errorf("state: loader: %w", err)
	}
	if !empty {
		return nil, fmt.Errorf("%w: partition %d", ErrNotEmpty, partition)
	}
	dir := filepath.Join(s.dir, loadDir, strconv.Itoa(int(partition)))
	if err := s.fs.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("state: loader: %w", err)
	}
	if err := s.fs.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("state: loader: %w", err)
	}
	known := s.knownKeys(partition, false)
	known.set(s.emptyFilter(0))      // until Finish: nothing to find
	s.seqCounter(partition).forget() // until Finish
	if runBytes <= 0 {
		runBytes = s.opts.LoadRunBytes
	}
	return &Loader{s: s, partition: partition, known: known, dir: dir, runBytes: min(runBytes, 1<<30),
		chunkBytes: loadChunkBytes, tableBytes: loadTableBytes, mergeRuns: loadMergeRuns}, nil
}

// Add adds m's state (typically FromView of a record of the current topic).
// The zero Message is a no-op. The Loader copies what it needs: m may be
// reused.
func (l *Loader) Add(m *Message) error {
	if err := l.check(); err != nil {
		return err
	}
	if m.wamid == "" {
		return nil
	}
	h := l.s.hash(m.wamid)
	l.rec = binary.BigEndian.AppendUint64(l.rec[:0], h) // the sort key
	l.rec = append(l.rec, m.wamid...)
	klen := len(l.rec)
	l.rec = appendRecord(l.rec, m, nil, 0, l.s.opts.HistoryLimit)
	c := l.chunk(len(l.rec))
	off := len(l.chunks[c])
	l.chunks[c] = append(l.chunks[c], l.rec...)
	l.used += len(l.rec)
	l.ents = append(l.ents, loadEntry{hash: h, chunk: uint32(c), off: uint32(off), klen: uint32(klen), vlen: uint32(len(l.rec) - klen), seq: uint32(len(l.ents))})
	l.loaded++
	if l.used >= l.runBytes {
		return l.spill()
	}
	return nil
}

// chunk returns the index of a chunk with room for n more bytes, the
// current one or the next (made, or reused from an earlier run).
func (l *Loader) chunk(n int) int {
	if len(l.chunks) > 0 {
		if c := l.chunks[l.cur]; cap(c)-len(c) >= n {
			return l.cur
		}
		l.cur++
	}
	if l.cur == len(l.chunks) {
		l.chunks = append(l.chunks, make([]byte, 0, max(n, l.chunkBytes)))
	} else if cap(l.chunks[l.cur]) < n {
		l.chunks[l.cur] = make([]byte, 0, n)
	}
	return l.cur
}

// SetNextOffset sets the partition's next input offset, written by Finish
// after the states.
func (l *Loader) SetNextOffset(off int64) {
	l.nextOffset, l.hasNextOffset = off, true
}

// Finish writes what was added into the partition and then the next offset,
// if set: the states in one ingestion, atomic and durable, and the offset
// in a synced write after them. A crash between the two leaves the states
// without an offset. The Loader is closed afterwards, whatever the result.
func (l *Loader) Finish(ctx context.Context) error {
	defer l.Close()
	if err := l.check(); err != nil {
		return err
	}
	if err := l.finish(ctx); err != nil {
		l.err = err
		return err
	}
	return nil
}

func (l *Loader) finish(ctx context.Context) error {
	var (
		tables []string
		seqs   uint64
		f      *keyFilter
	)
	if len(l.runs) == 0 {
		l.sort()
		src := &memRun{l: l}
		var err error
		if tables, seqs, f, err = l.writeTables(ctx, src); err != nil {
			return err
		}
	} else {
		if err := l.spill(); err != nil {
			return err
		}
		for len(l.runs) > l.mergeRuns {
			if err := l.mergeOldest(ctx); err != nil {
				return err
			}
		}
		m, err := l.openRuns(l.runs)
		if err != nil {
			return err
		}
		tables, seqs, f, err = l.writeTables(ctx, m)
		if cerr := m.close(); err == nil && cerr != nil {
			err = fmt.Errorf("state: loader: close runs: %w", cerr)
		}
		if err != nil {
			return err
		}
	}
	if len(tables) > 0 {
		l.known.set(f) // before the messages are in Pebble (see knownKeys)
		err := l.s.write(func() error { return l.s.db.Ingest(ctx, tables) })
		if err != nil {
			return fmt.Errorf("state: load partition %d: ingest: %w", l.partition, err)
		}
	}
	l.s.seqCounter(l.partition).set(seqs)
	if l.hasNextOffset {
		key := appendOffsetKey(nil, l.partition)
		val := binary.AppendVarint(nil, l.nextOffset)
		if err := l.s.write(func() error { return l.s.db.Set(key, val, pebble.Sync) }); err != nil {
			return fmt.Errorf("state: load partition %d: next offset: %w", l.partition, err)
		}
	}
	return nil
}

// Loaded returns the number of states added so far.
func (l *Loader) Loaded() int64 { return l.loaded }

// Close releases the Loader and removes its spill files, without writing
// what was not finished. It may be called more than once.
func (l *Loader) Close() {
	if l.err == ErrClosed {
		return
	}
	l.err = ErrClosed
	l.chunks, l.ents, l.sorted, l.counts = nil, nil, nil, nil
	_ = l.s.fs.RemoveAll(l.dir) // what remains, Open removes
}

// check returns the sticky error, or the store's.
func (l *Loader) check() error {
	if l.err != nil {
		return l.err
	}
	if l.s.closed.Load() {
		return ErrClosed
	}
	return l.s.Err()
}

// key and value return an entry's bytes in its chunk.
func (l *Loader) key(e *loadEntry) []byte {
	return l.chunks[e.chunk][e.off : e.off+e.klen]
}
func (l *Loader) value(e *loadEntry) []byte {
	return l.chunks[e.chunk][e.off+e.klen : e.off+e.klen+e.vlen]
}

// compare orders entries by key, and by arrival among equal keys.
func (l *Loader) compare(a, b loadEntry) int {
	if c := cmp.Compare(a.hash, b.hash); c != 0 {
		return c
	}
	if c := bytes.Compare(l.key(&a), l.key(&b)); c != 0 {
		return c
	}
	return cmp.Compare(a.seq, b.seq)
}

// sort orders the current run by compare. Sort keys start with their wamid's
// hash, which is uniform, so one counting pass on its top bits into about
// as many buckets as entries leaves buckets of one or two to sort: a
// comparison sort of the whole run was a sixth of a restore's own CPU.
func (l *Loader) sort() {
	n := len(l.ents)
	if n < 1<<10 {
		slices.SortFunc(l.ents, l.compare)
		return
	}
	width := min(bits.Len(uint(n)), 20)
	shift := 64 - width
	l.counts = slices.Grow(l.counts[:0], 1<<width+1)[:1<<width+1]
	clear(l.counts)
	for i := range l.ents {
		l.counts[l.ents[i].hash>>shift+1]++
	}
	for b := 1; b < len(l.counts); b++ {
		l.counts[b] += l.counts[b-1]
	}
	l.sorted = slices.Grow(l.sorted[:0], n)[:n]
	for i := range l.ents {
		b := l.ents[i].hash >> shift
		l.sorted[l.counts[b]] = l.ents[i]
		l.counts[b]++
	}
	// counts[b] is now the end of bucket b, and the start of bucket b+1.
	start := uint32(0)
	for _, end := range l.counts[:len(l.counts)-1] {
		if end-start > 1 {
			slices.SortFunc(l.sorted[start:end], l.compare)
		}
		start = end
	}
	l.ents, l.sorted = l.sorted, l.ents
}

// spill sorts the current run and writes it to a run file (writeRun), then
// empties it, keeping its memory.
func (l *Loader) spill() error {
	if len(l.ents) == 0 {
		return nil
	}
	l.sort()
	path, err := l.writeRun(&memRun{l: l})
	if err != nil {
		return err
	}
	l.runs = append(l.runs, path)
	for i := range l.chunks {
		l.chunks[i] = l.chunks[i][:0]
	}
	l.cur, l.used, l.ents = 0, 0, l.ents[:0]
	return nil
}

// writeRun writes src's records to a new run file, one record per key, each
// as uvarint key length, key, uvarint value length, value, and returns its
// path.
func (l *Loader) writeRun(src loadSource) (string, error) {
	path := l.path("run")
	f, err := l.s.fs.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return "", l.fail(fmt.Errorf("state: loader: %w", err))
	}
	w := bufio.NewWriterSize(f, loadReadBuffer)
	var scratch []byte
	for {
		k, v, ok, err := src.next(l)
		if err != nil {
			f.Close()
			return "", l.fail(err)
		}
		if !ok {
			break
		}
		scratch = binary.AppendUvarint(scratch[:0], uint64(len(k)))
		scratch = append(scratch, k...)
		scratch = binary.AppendUvarint(scratch, uint64(len(v)))
		scratch = append(scratch, v...)
		if _, err := w.Write(scratch); err != nil {
			f.Close()
			return "", l.fail(fmt.Errorf("state: loader: write run: %w", err))
		}
	}
	// Runs are scratch: a crash discards them, so they need no sync.
	if err := errors.Join(w.Flush(), f.Close()); err != nil {
		return "", l.fail(fmt.Errorf("state: loader: write run: %w", err))
	}
	return path, nil
}

// mergeOldest merges the oldest mergeRuns runs into one, which takes their
// place: it is older than every other run, so repeats still join in order.
func (l *Loader) mergeOldest(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return l.fail(err)
	}
	oldest := l.runs[:l.mergeRuns]
	m, err := l.openRuns(oldest)
	if err != nil {
		return err
	}
	path, err := l.writeRun(m)
	if cerr := m.close(); err == nil && cerr != nil {
		err = l.fail(fmt.Errorf("state: loader: close runs: %w", cerr))
	}
	if err != nil {
		return err
	}
	for _, p := range oldest {
		_ = l.s.fs.Remove(p) // scratch: Close removes what is left
	}
	l.runs = append([]string{path}, l.runs[l.mergeRuns:]...)
	return nil
}

// fail makes err sticky.
func (l *Loader) fail(err error) error {
	l.err = err
	return err
}

// path returns a new file path in the Loader's directory.
func (l *Loader) path(kind string) string {
	l.seq++
	ext := ".run"
	if kind == "table" {
		ext = ".sst"
	}
	return filepath.Join(l.dir, fmt.Sprintf("%06d%s", l.seq, ext))
}

// join returns the record of the join of the two records a and b of one
// message (a from earlier), in the Loader's scratch value.
func (l *Loader) join(a, b []byte) ([]byte, error) {
	l.m1.reset()
	l.m2.reset()
	if _, _, err := decodeRecord(string(a), &l.m1); err != nil {
		return nil, fmt.Errorf("state: loader: %w", err)
	}
	if _, _, err := decodeRecord(string(b), &l.m2); err != nil {
		return nil, fmt.Errorf("state: loader: %w", err)
	}
	if _, err := l.m1.join(&l.m2); err != nil {
		return nil, fmt.Errorf("state: loader: join %s: %w", l.m1.wamid, err)
	}
	l.val = appendRecord(l.val[:0], &l.m1, nil, 0, l.s.opts.HistoryLimit)
	return l.val, nil
}

// loadSource yields records in key order, one per key.
type loadSource interface {
	next(l *Loader) (key, value []byte, ok bool, err error)
}

// writeTables writes src's records, one a message, into sstables of about
// loadTableBytes each, and returns their paths, the number of messages and
// the partition's filter of them. Messages get seqs in src's order, the
// order of their hashes, and the records and index entries come out in key
// order together. The tables do not overlap, as Ingest needs. Every index
// entry is of the filter's first epoch, sized for every message added (a
// message added more than once takes room it does not use) and sealed, so
// that the partition's new messages begin another epoch rather than fall
// among the loaded ones in the bottom level.
func (l *Loader) writeTables(ctx context.Context, src loadSource) ([]string, uint64, *keyFilter, error) {
	var (
		paths   []string
		records = tableSink{l: l, paths: &paths}
		index   = tableSink{l: l, paths: &paths}
		f       = newKeyFilter(int(min(l.loaded, math.MaxInt32)), l.s.epochKeys)
		epoch   = f.epoch()
		seq     uint64
		hash    uint64
		seqs    []byte // the index entry of hash
		key     []byte
		abort   = func(err error) ([]string, uint64, *keyFilter, error) {
			records.abort()
			index.abort()
			return nil, 0, nil, l.fail(err)
		}
		addIndex = func() error {
			if len(seqs) == 0 {
				return nil
			}
			f.addHere(hash)
			key = appendIndexKey(key[:0], l.partition, epoch, hash)
			return index.set(key, seqs)
		}
	)
	for n := 0; ; n++ {
		if n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return abort(err)
			}
		}
		k, v, ok, err := src.next(l)
		if err != nil {
			return abort(err)
		}
		if !ok {
			break
		}
		if h := binary.BigEndian.Uint64(k); h != hash || len(seqs) == 0 {
			if err := addIndex(); err != nil {
				return abort(err)
			}
			hash, seqs = h, seqs[:0]
		}
		seqs = binary.AppendUvarint(seqs, seq)
		key = appendRecordKey(key[:0], l.partition, seq)
		if err := records.set(key, v); err != nil {
			return abort(err)
		}
		seq++
	}
	if err := errors.Join(addIndex(), records.close(), index.close()); err != nil {
		return abort(err)
	}
	f.seal()
	return paths, seq, f, nil
}

// tableSink writes keys in order into sstables of about loadTableBytes.
type tableSink struct {
	l     *Loader
	w     *sstable.Writer
	paths *[]string
}

func (t *tableSink) set(k, v []byte) error {
	if t.w == nil {
		path := t.l.path("table")
		f, err := t.l.s.fs.Create(path, vfs.WriteCategoryUnspecified)
		if err != nil {
			return fmt.Errorf("state: loader: %w", err)
		}
		t.w = sstable.NewWriter(objstorageprovider.NewFileWritable(f), t.l.s.tableOpts)
		*t.paths = append(*t.paths, path)
	}
	if err := t.w.Set(k, v); err != nil {
		return fmt.Errorf("state: loader: write table: %w", err)
	}
	if t.w.Raw().EstimatedSize() >= uint64(t.l.tableBytes) {
		return t.close()
	}
	return nil
}

// close finishes the current table, syncing it, as Ingest requires.
func (t *tableSink) close() error {
	if t.w == nil {
		return nil
	}
	err := t.w.Close()
	if t.w = nil; err != nil {
		return fmt.Errorf("state: loader: write table: %w", err)
	}
	return nil
}

func (t *tableSink) abort() {
	if t.w != nil {
		_ = t.w.Close()
		t.w = nil
	}
}

// memRun yields the sorted current run, joining repeats.
type memRun struct {
	l *Loader
	i int
}

func (r *memRun) next(l *Loader) ([]byte, []byte, bool, error) {
	if r.i >= len(l.ents) {
		return nil, nil, false, nil
	}
	e := &l.ents[r.i]
	r.i++
	k, v := l.key(e), l.value(e)
	for r.i < len(l.ents) && l.ents[r.i].hash == e.hash && bytes.Equal(l.key(&l.ents[r.i]), k) {
		joined, err := l.join(v, l.value(&l.ents[r.i]))
		if err != nil {
			return nil, nil, false, err
		}
		v = slices.Clone(joined) // l.val is reused by the next join
		r.i++
	}
	return k, v, true, nil
}

// runReader reads one spilled run.
type runReader struct {
	f        vfs.File
	r        *bufio.Reader
	run      int // index: older runs first
	key, val []byte
}

// read reads the run's next record, returning false at its end.
func (rr *runReader) read() (bool, error) {
	kl, err := binary.ReadUvarint(rr.r)
	if err == io.EOF {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("state: loader: read run: %w", err)
	}
	rr.key = slices.Grow(rr.key[:0], int(kl))[:kl]
	if _, err := io.ReadFull(rr.r, rr.key); err != nil {
		return false, fmt.Errorf("state: loader: read run: %w", err)
	}
	vl, err := binary.ReadUvarint(rr.r)
	if err != nil {
		return false, fmt.Errorf("state: loader: read run: %w", err)
	}
	rr.val = slices.Grow(rr.val[:0], int(vl))[:vl]
	if _, err := io.ReadFull(rr.r, rr.val); err != nil {
		return false, fmt.Errorf("state: loader: read run: %w", err)
	}
	return true, nil
}

// merger merges the spilled runs: a heap of their readers by current key,
// older runs first among equal keys.
type merger struct {
	h        runHeap
	all      []*runReader
	key, val []byte
}

type runHeap []*runReader

func (h runHeap) Len() int { return len(h) }
func (h runHeap) Less(i, j int) bool {
	if c := bytes.Compare(h[i].key, h[j].key); c != 0 {
		return c < 0
	}
	return h[i].run < h[j].run
}
func (h runHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *runHeap) Push(x any)   { *h = append(*h, x.(*runReader)) }
func (h *runHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// openRuns opens runs (oldest first) for merging.
func (l *Loader) openRuns(runs []string) (*merger, error) {
	m := &merger{}
	for i, path := range runs {
		f, err := l.s.fs.Open(path)
		if err != nil {
			return nil, errors.Join(l.fail(fmt.Errorf("state: loader: %w", err)), m.close())
		}
		rr := &runReader{f: f, r: bufio.NewReaderSize(f, loadReadBuffer), run: i}
		m.all = append(m.all, rr)
		ok, err := rr.read()
		if err != nil {
			return nil, errors.Join(l.fail(err), m.close())
		}
		if ok {
			m.h = append(m.h, rr)
		}
	}
	heap.Init(&m.h)
	return m, nil
}

// next yields the smallest key of all runs, its records joined.
func (m *merger) next(l *Loader) ([]byte, []byte, bool, error) {
	if len(m.h) == 0 {
		return nil, nil, false, nil
	}
	first := true
	for len(m.h) > 0 && (first || bytes.Equal(m.h[0].key, m.key)) {
		rr := m.h[0]
		if first {
			m.key = append(m.key[:0], rr.key...)
			m.val = append(m.val[:0], rr.val...)
			first = false
		} else {
			joined, err := l.join(m.val, rr.val)
			if err != nil {
				return nil, nil, false, err
			}
			m.val = append(m.val[:0], joined...)
		}
		ok, err := rr.read()
		if err != nil {
			return nil, nil, false, err
		}
		if ok {
			heap.Fix(&m.h, 0)
		} else {
			heap.Pop(&m.h)
		}
	}
	return m.key, m.val, true, nil
}

// close closes every run's file.
func (m *merger) close() error {
	var err error
	for _, rr := range m.all {
		err = errors.Join(err, rr.f.Close())
	}
	return err
}
