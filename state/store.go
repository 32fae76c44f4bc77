package state

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Defaults of Options.
const (
	DefaultCacheSize    int64  = 64 << 20 // 64 MiB block cache
	DefaultMemTableSize uint64 = 32 << 20 // 32 MiB memtable
	DefaultHistoryLimit int    = 64       // history entries kept per message
)

// memTablesCharged is the number of memtables Pebble may hold at once (its
// MemTableStopWritesThreshold), all charged to the block cache.
const memTablesCharged = 2

// bloomBitsPerKey sizes the bloom filters of every level: about 1% false
// positives, so a point lookup of a message that is not in a table almost
// never reads (and decompresses) one of its data blocks.
const bloomBitsPerKey = 10

// blockSize is the size of sstable data blocks: 16 KiB rather than Pebble's
// 4 KiB. A point lookup reads one data block, plus the table's index and
// filter blocks, all through the block cache; with 4 KiB blocks of ~100-byte
// records the index blocks of 10 million messages outgrew the cache, and a
// lookup missed it 20 times (BenchmarkScale at 10M: 3.97M misses for 200k
// events; 1.47M with 16 KiB blocks, and 772 MiB on disk instead of 1016).
// At 200k messages the two measure the same (BenchmarkBatchApply).
const blockSize = 16 << 10

// targetFileSize is the size of the sstables Pebble writes, at every
// level: its default starts at 2 MiB in L0 and doubles with each level
// below. Message records are written in the order their messages first
// arrived (keys.go), so a compaction into a level merges the new records
// with the one table of older ones they overlap, the partition's last, and
// rewrites it: the smaller that table, the less it rewrites. Measured on
// the bench's workload folded straight into a store (30M events over 10M
// messages, 12 partitions), with tables split at each partition's kinds
// (splitKinds): 6.6 GB written by flushes and compactions with Pebble's
// sizes, 6.2 GB with 2 MiB at every level; 9.5 GB with format 1's keys.
const targetFileSize = 2 << 20

// levelMultiplier is how much larger each level's target size is than the
// one above it: 4 rather than Pebble's 10. Records and the newest epoch's
// index entries are rewritten only near each partition's tail (keys.go),
// and a table that a compaction can move down a level, rather than merge
// into it, is one that the tail has left behind. With 10, the level above
// the bottom held a tenth of the store, about one table for each
// partition's records and one for its index: any table moved down was its
// partition's tail, and the next flush's writes to that tail then
// overlapped it in the bottom level: of what reached the bottom level, 88%
// was merged into it and 12% moved. With 4 that level holds more than the
// tails and, at 10 million messages, another level is added above it: 31%
// of what reached the bottom level was moved, 25% of what reached the one
// above it. Measured with BenchmarkFoldStream at 10M messages, flushes and
// compactions wrote 101.4 bytes per event with 10, 93.0 with 6, 89.5 with 4
// and 88.0 with 3, for 3% more on disk (obsolete versions held in the
// larger upper levels); at 1M messages, where the store is too small for
// another level, 64.1 with either.
const levelMultiplier = 4

// valueSeparation is how Pebble keeps message records out of its
// compactions: a flush writes every value of at least MinimumSize bytes to
// a blob file, and only a reference to it (about 10 bytes) to the sstable,
// and compactions then move the references down the tree and leave the
// values where they are. A record (a message's state and history, 100-300
// bytes, of which the wamid alone is about 60) is above MinimumSize; an
// index entry (one or two uvarint seqs) and the next offset are below it,
// so they stay in the sstables that lookups search. Reading a record reads
// its blob file's block too, through the block cache. A Loader's tables
// hold their records (loader.go) until a compaction rewrites them.
//
// Measured with BenchmarkFoldStream at 10 million messages, two runs each,
// alternating: 3.43-3.55 µs of CPU an event without, 3.10-3.23 with. The
// flushes and compactions wrote 39.4-39.8 bytes an event to sstables and,
// in a later run, 17.4 to blob files (57 in all), against 90.0-90.1 to
// sstables without; the store took 903-912 MiB on disk against 802-812. A
// blob file keeps the old value of a record rewritten after its flush (by
// a late event) until the file is rewritten, once a fifth of it is such
// dead values (TargetGarbageRatio) and it is five minutes old; on this
// workload none reaches a fifth (rewrites allowed after a second wrote
// the same bytes, and the store took the same space). A compaction moves
// values again when its output would refer to more than
// MaxBlobReferenceDepth blob files of overlapping ranges.
func valueSeparation() pebble.ValueSeparationPolicy {
	return pebble.ValueSeparationPolicy{
		Enabled:               true,
		MinimumSize:           32,
		MaxBlobReferenceDepth: 10,
		RewriteMinimumAge:     5 * time.Minute,
		TargetGarbageRatio:    0.2,
	}
}

// Options configures a Store. The zero value is valid: every zero field gets
// its default.
type Options struct {
	// FS is the file system; nil means the operating system's (disk).
	// Tests use vfs.NewMem or vfs.NewCrashableMem.
	FS vfs.FS
	// CacheSize is the Pebble block cache size in bytes; 0 means
	// DefaultCacheSize (Pebble's own default of 8 MiB made point lookups
	// decompress blocks on most reads). Pebble charges memtables to its
	// cache, so the cache is created with 2*MemTableSize more: the store's
	// memory is about CacheSize + 2*MemTableSize.
	CacheSize int64
	// MemTableSize is the Pebble memtable size in bytes; 0 means
	// DefaultMemTableSize. Up to two memtables exist at a time (one
	// flushing); writes wait for a flush beyond that.
	MemTableSize uint64
	// HistoryLimit is how many events are kept per message in its
	// history; 0 means DefaultHistoryLimit, a negative value turns history
	// off (nothing more is recorded; what was is kept). The history is
	// stored in the message's record, so it is read with every state:
	// keep it small.
	HistoryLimit int
	// Logger receives Pebble's log lines; nil discards them.
	Logger *slog.Logger
	// Policy derives statuses (it decides Batch.Apply's Outcome); the zero
	// value is FailedWins.
	Policy Policy
	// MinFreeBytes is the free space the store keeps on its file system:
	// a running store fails (ErrFailed wrapping ErrDiskFull) within about a
	// second of going below it, before Pebble runs out of room, and Open
	// refuses (ErrDiskFull) below a quarter more (see diskGuard). 0 means
	// DefaultMinFreeBytes, as for every other field; a negative value turns
	// the check off.
	MinFreeBytes int64
	// LoadRunBytes is how many bytes of encoded records a Loader sorts in
	// memory before spilling them to a file; 0 means DefaultLoadRunBytes.
	// A Loader holds about 1.4 times this (its sort index is 64 bytes a
	// record, of about 150-byte records), plus up to a 1 MiB chunk.
	LoadRunBytes int
}

// withDefaults returns o with every zero field set to its default.
func (o Options) withDefaults() Options {
	if o.CacheSize == 0 {
		o.CacheSize = DefaultCacheSize
	}
	if o.MemTableSize == 0 {
		o.MemTableSize = DefaultMemTableSize
	}
	if o.HistoryLimit == 0 {
		o.HistoryLimit = DefaultHistoryLimit
	}
	if o.MinFreeBytes == 0 {
		o.MinFreeBytes = DefaultMinFreeBytes
	}
	if o.LoadRunBytes == 0 {
		o.LoadRunBytes = DefaultLoadRunBytes
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Validate reports an invalid option: a negative CacheSize, a MemTableSize of
// 4 GiB or more (Pebble's limit), or an unknown Policy.
func (o *Options) Validate() error {
	switch {
	case o.CacheSize < 0:
		return fmt.Errorf("state: options: negative CacheSize %d", o.CacheSize)
	case o.MemTableSize >= 4<<30:
		return fmt.Errorf("state: options: MemTableSize %d is not below 4 GiB", o.MemTableSize)
	case o.LoadRunBytes < 0 || o.LoadRunBytes >= 2<<30:
		return fmt.Errorf("state: options: LoadRunBytes %d is not in [0, 2 GiB)", o.LoadRunBytes)
	case !o.Policy.valid():
		return fmt.Errorf("state: options: %w: %s", ErrUnknownPolicy, o.Policy)
	}
	return nil
}

// Store is the durable state of every partition this process owns: one
// Pebble database. Its methods are safe for concurrent use; writes go
// through a Batch, one per partition at a time.
type Store struct {
	db   *pebble.DB
	opts Options
	dir  string
	fs   vfs.FS
	// health closes the disk-health checks the store wraps the operating
	// system's file system in (nil for an FS given in Options).
	health io.Closer
	closed atomic.Bool
	fault  fault      // the first storage failure; see Err
	disk   *diskGuard // fails the store before the disk is full

	// tableOpts writes sstables as the database would: a Loader's tables
	// must read like the store's own.
	tableOpts sstable.WriterOptions

	// hash is wamidHash; tests make wamids collide.
	hash func(wamid string) uint64
	// epochKeys is the least size of the filters' epochs (epochMinKeys if
	// 0); tests make it small.
	epochKeys int

	knownMu sync.Mutex
	known   map[int32]*knownKeys  // by partition, made at first use
	seqs    map[int32]*seqCounter // by partition, made at first use

	// recent holds the seqs of the messages batches committed last;
	// recentHits and recentMisses count the lookups of stored messages
	// it answered and those that read the index; falsePositives, the
	// lookups of new messages that the filters of known messages let
	// through (Stats).
	recent         *recentSeqs
	recentHits     atomic.Int64
	recentMisses   atomic.Int64
	falsePositives atomic.Int64
}

// Open opens (creating if needed) the store in dir. A new store gets the
// format version key; an existing one must have this version's, or an
// earlier one's, and is then emptied (see upgrade); ErrFormatVersion
// otherwise.
func Open(dir string, o Options) (*Store, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	o = o.withDefaults()

	fs := o.FS
	if fs == nil {
		fs = vfs.Default
	}
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("state: open %s: %w", dir, err)
	}
	disk := newDiskGuard(fs, dir, o.MinFreeBytes)
	checkable, err := disk.check(true)
	if errors.Is(err, ErrDiskFull) {
		return nil, err
	}
	if err != nil {
		o.Logger.Warn("state store cannot read its free space", "err", err)
	}

	// Pebble charges its memtables to the block cache (up to
	// memTablesCharged of them at a time): size the cache so that CacheSize
	// is left for blocks. Sized at CacheSize alone, the default 32 MiB
	// memtables would leave the 64 MiB cache no room for a single block.
	cache := pebble.NewCache(o.CacheSize + memTablesCharged*int64(o.MemTableSize))
	defer cache.Unref() // the DB holds its own reference
	s := &Store{opts: o, dir: dir, fs: fs, fault: fault{done: make(chan struct{})}, disk: disk, known: make(map[int32]*knownKeys), seqs: make(map[int32]*seqCounter), recent: newRecentSeqs(), hash: wamidHash}
	// Pebble wraps a nil FS in disk-health checks itself, but when its Open
	// fails (a store in use, say) it loses the wrapper, whose ticker
	// goroutine then runs on. So the store wraps the OS's file system and
	// closes the wrapper itself.
	pfs := o.FS
	if pfs == nil {
		pfs, s.health = vfs.WithDiskHealthChecks(vfs.Default, diskSlowThreshold, nil, s.diskSlow)
	}
	po := &pebble.Options{
		FS:           pfs,
		Cache:        cache,
		MemTableSize: o.MemTableSize,
		// Writes stall when this many memtables are waiting (the mutable one
		// included): the bound on what Pebble charges to the cache.
		MemTableStopWritesThreshold: memTablesCharged,
		Logger:                      storeLogger{pebbleLogger{o.Logger}, s},
		EventListener:               s.eventListener(),
		FormatMajorVersion:          pebble.FormatNewest,
	}
	po.Experimental.SpanPolicyFunc = splitKinds // tables end at each partition's kinds
	po.Experimental.LevelMultiplier = levelMultiplier
	po.Experimental.ValueSeparationPolicy = valueSeparation
	for i := range po.Levels {
		po.Levels[i].FilterPolicy = bloom.FilterPolicy(bloomBitsPerKey)
		po.Levels[i].BlockSize = blockSize
		po.TargetFileSizes[i] = targetFileSize
	}
	var db *pebble.DB
	err = s.guard(func() (err error) {
		db, err = pebble.Open(dir, po)
		return err
	})
	if err != nil {
		return nil, errors.Join(fmt.Errorf("state: open %s: %w", dir, err), s.closeHealth())
	}
	s.db = db
	// What Loaders left when the process died: never part of the store.
	// Only once Pebble holds the directory's lock, so that an Open refused
	// for a store in use leaves its Loaders' files alone.
	if err := fs.RemoveAll(filepath.Join(dir, loadDir)); err != nil {
		return nil, errors.Join(fmt.Errorf("state: open %s: %w", dir, err), db.Close(), s.closeHealth())
	}
	wo := po.Clone()
	wo.EnsureDefaults()
	s.tableOpts = wo.MakeWriterOptions(0, db.TableFormat())
	if err := s.checkFormat(); err != nil {
		return nil, errors.Join(err, db.Close(), s.closeHealth())
	}
	disk.start(s, checkable)
	return s, nil
}

// checkFormat checks the format version key, writing it into an empty
// database.
func (s *Store) checkFormat() error {
	val, closer, err := s.db.Get([]byte(formatKey))
	if err == nil {
		v, n := binary.Uvarint(val)
		valid := n == len(val)
		closer.Close()
		switch {
		case valid && v == formatVersion:
			return nil
		case valid && v >= formatVersion1 && v < formatVersion:
			return s.upgrade(v)
		}
		return fmt.Errorf("%w: found %x, want %d", ErrFormatVersion, val, formatVersion)
	}
	if !errors.Is(err, pebble.ErrNotFound) {
		return fmt.Errorf("state: read format version: %w", err)
	}
	it, err := s.db.NewIter(nil)
	if err != nil {
		return fmt.Errorf("state: check empty: %w", err)
	}
	nonEmpty := it.First()
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return fmt.Errorf("state: check empty: %w", err)
	}
	if nonEmpty {
		return fmt.Errorf("%w: keys but no format version key (not a wastatus state database)", ErrFormatVersion)
	}
	set := func() error {
		return s.db.Set([]byte(formatKey), binary.AppendUvarint(nil, formatVersion), pebble.Sync)
	}
	if err := s.write(set); err != nil {
		return fmt.Errorf("state: write format version: %w", err)
	}
	return nil
}

// upgrade empties a store written in an earlier format (version from) and
// marks it with this one, in one synced write. The store is the processor's
// cache of the current topic: every partition then restores from it, as
// after a lost disk. What is local to the store, the history behind the
// timelines, is lost.
func (s *Store) upgrade(from uint64) error {
	s.opts.Logger.Warn("state store is in an earlier format: emptying it; partitions restore from the current topic, and their timelines start again",
		"found", from, "want", formatVersion)
	upgrade := func() error {
		b := s.db.NewBatch()
		lo, hi := partitionBounds(0)
		hi = binary.BigEndian.AppendUint32(hi[:0], 1<<31) // past the largest int32 partition
		err := errors.Join(b.DeleteRange(lo, hi, nil), b.Set([]byte(formatKey), binary.AppendUvarint(nil, formatVersion), nil))
		if err != nil {
			return errors.Join(err, b.Close())
		}
		if err := s.db.Apply(b, pebble.Sync); err != nil {
			return err // Pebble may still hold b
		}
		return b.Close()
	}
	if err := s.write(upgrade); err != nil {
		return fmt.Errorf("state: upgrade from format version %d: %w", from, err)
	}
	return nil
}

// Close closes the store. Batches must be closed first.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return ErrClosed
	}
	s.disk.close()
	if s.Err() != nil {
		return s.closeFailed()
	}
	if err := errors.Join(s.db.Close(), s.closeHealth()); err != nil {
		return fmt.Errorf("state: close: %w", err)
	}
	return nil
}

// diskSlowThreshold is how long a write or sync to the store's disk may
// take before the store warns of a slow disk: Pebble's own default.
const diskSlowThreshold = 5 * time.Second

// diskSlow reports a disk operation that has been running for
// diskSlowThreshold or more (Pebble's disk-health checks look every 2 s,
// so it repeats while the operation lasts).
func (s *Store) diskSlow(info vfs.DiskSlowInfo) {
	s.opts.Logger.Warn("state store disk slow", "path", info.Path, "op", info.OpType.String(), "write_bytes", info.WriteSize, "duration", info.Duration)
}

// closeHealth stops the disk-health checks the store started, if any.
func (s *Store) closeHealth() error {
	if s.health == nil {
		return nil
	}
	return s.health.Close()
}

// Policy returns the policy the store was opened with.
func (s *Store) Policy() Policy { return s.opts.Policy }

// check returns ErrClosed after Close, the store's failure (Err), and
// rejects a negative partition.
func (s *Store) check(partition int32) error {
	if s.closed.Load() {
		return ErrClosed
	}
	if err := s.Err(); err != nil {
		return err
	}
	return checkPartition(partition)
}

// Get returns the committed state of wamid in partition; false if there is
// none.
func (s *Store) Get(partition int32, wamid string) (Message, bool, error) {
	if err := s.check(partition); err != nil {
		return Message{}, false, err
	}
	var m Message
	r, err := s.findCommitted(partition, wamid, &m)
	if err != nil || !r.found {
		return Message{}, false, err
	}
	return m, true, nil
}

// findCommitted is find for a reader that is not the partition's writer
// (Get, History): on a snapshot, so that a DropPartition and a new load
// between the index read and the record read, which would make the index
// name a record that is gone or another message's, cannot pass for
// corruption. The epochs to read come from the partition's filter, read
// after the snapshot was taken, so that it holds every message the
// snapshot does (or the partition was emptied meanwhile, and the message
// is not found), or from the snapshot's index when there is no filter.
func (s *Store) findCommitted(partition int32, wamid string, m *Message) (lookup, error) {
	snap := s.db.NewSnapshot()
	defer snap.Close()
	h := s.hash(wamid)
	sc, _, err := s.epochs(snap, partition, s.knownIfAny(partition), h)
	if err != nil {
		return lookup{}, err
	}
	var key []byte
	return s.find(snap, partition, h, wamid, m, &key, &sc, nil, 0)
}

// epochs returns the scan of the epochs whose index entries in r may hold
// the message with wamidHash h, and the epoch a new message joins now: from
// k's filter or, when there is none (k nil, or without a filter), every
// epoch from the newest of r's index entries down, which a new message
// then joins (0 if there is none).
func (s *Store) epochs(r pebble.Reader, partition int32, k *knownKeys, h uint64) (epochScan, uint32, error) {
	if k != nil {
		if sc, next, ok := k.scan(h); ok {
			return sc, next, nil
		}
	}
	lo, hi := kindBounds(partition, kindIndex)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return epochScan{}, 0, fmt.Errorf("state: index of partition %d: %w", partition, err)
	}
	var (
		newest uint32
		found  bool
		bad    error
	)
	if it.Last() {
		newest, _, found = indexEntry(it.Key(), partition)
		if !found || newest > maxEpoch {
			bad = fmt.Errorf("%w: index key %x", ErrCorrupt, it.Key())
		}
	}
	if err := errors.Join(bad, it.Error(), it.Close()); err != nil {
		s.fail(fmt.Errorf("state: index of partition %d: %w", partition, err))
		return epochScan{}, 0, s.Err()
	}
	if !found {
		return epochScan{at: -1}, 0, nil
	}
	return epochScan{at: int(newest)}, newest, nil
}

// lookup is what find found of a message.
type lookup struct {
	found bool
	seq   uint64 // the message's seq, if found
	hist  string // the record's history section
	n     int    // its entry count
}

// find reads the committed record of wamid (whose wamidHash is h) into the
// reset m from r: through the partition's index entries for h in the
// epochs sc yields, until one holds wamid's seq (reading the record of
// each seq an entry holds). r is the database itself only for the
// partition's writer (a Batch), under which nothing changes the partition;
// other readers pass a snapshot (findCommitted). key is scratch. If idx is not nil, it is set
// to the value of epoch idxEpoch's entry as read (empty if there is none,
// or if it was not read): what a new message of that hash and epoch adds
// its seq to.
func (s *Store) find(r pebble.Reader, partition int32, h uint64, wamid string, m *Message, key *[]byte, sc *epochScan, idx *[]byte, idxEpoch uint32) (lookup, error) {
	if idx != nil {
		*idx = (*idx)[:0]
	}
	for e, ok := sc.next(); ok; e, ok = sc.next() {
		*key = appendIndexKey((*key)[:0], partition, e, h)
		val, closer, err := r.Get(*key)
		if errors.Is(err, pebble.ErrNotFound) {
			continue
		}
		if err != nil {
			s.fail(fmt.Errorf("state: get %s: index: %w", wamid, err)) // an I/O error or corruption
			return lookup{}, s.Err()
		}
		var one [2]uint64
		seqs, err := appendIndexSeqs(one[:0], val)
		if idx != nil && e == idxEpoch {
			*idx = append(*idx, val...)
		}
		closer.Close()
		if err != nil {
			s.fail(fmt.Errorf("state: get %s: %w", wamid, err))
			return lookup{}, s.Err()
		}
		for _, seq := range seqs {
			*key = appendRecordKey((*key)[:0], partition, seq)
			hist, n, ok, err := getRecord(r, *key, wamid, m)
			if err == nil && !ok {
				err = fmt.Errorf("%w: index of %q holds seq %d, which has no record", ErrCorrupt, wamid, seq)
			}
			if err != nil {
				s.fail(fmt.Errorf("state: get %s: %w", wamid, err))
				return lookup{}, s.Err()
			}
			if m.wamid == wamid {
				return lookup{found: true, seq: seq, hist: hist, n: n}, nil
			}
			if s.hash(m.wamid) != h {
				err := fmt.Errorf("%w: index of %q holds seq %d, the record of %q", ErrCorrupt, wamid, seq, m.wamid)
				s.fail(fmt.Errorf("state: get %s: %w", wamid, err))
				return lookup{}, s.Err()
			}
			m.reset() // another message whose wamid has the same hash
		}
	}
	return lookup{}, nil
}

// findRecent looks wamid up at the seq that recent gives for its hash, if
// any: found if the record there is wamid's; m is left reset otherwise, for
// find (see recentSeqs).
func (s *Store) findRecent(r pebble.Reader, partition int32, h uint64, wamid string, m *Message, key *[]byte) (lookup, error) {
	seq, ok := s.recent.get(partition, h)
	if !ok {
		return lookup{}, nil
	}
	*key = appendRecordKey((*key)[:0], partition, seq)
	hist, n, ok, err := getRecord(r, *key, wamid, m)
	if err != nil {
		s.fail(fmt.Errorf("state: get %s: %w", wamid, err))
		return lookup{}, s.Err()
	}
	if !ok || m.wamid != wamid {
		m.reset()
		return lookup{}, nil
	}
	return lookup{found: true, seq: seq, hist: hist, n: n}, nil
}

// getRecord reads the record at key into the reset m and returns its
// history section and entry count; false if there is none. A record that
// does not decode is an error (ErrCorrupt); one of another message than
// wamid is not (see find).
func getRecord(r pebble.Reader, key []byte, wamid string, m *Message) (hist string, n int, ok bool, err error) {
	val, closer, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return "", 0, false, nil
	}
	if err != nil {
		return "", 0, false, fmt.Errorf("record: %w", err)
	}
	hist, n, err = decodeRecord(string(val), m)
	closer.Close()
	if err != nil {
		return "", 0, false, fmt.Errorf("record of %s: %w", wamid, err)
	}
	return hist, n, true, nil
}

// History returns the committed history of wamid in partition: the last
// HistoryLimit events folded into it, oldest first (arrival order). It is
// empty for an unknown message. History is local to this store: a partition
// restored from the current topic starts with none.
func (s *Store) History(partition int32, wamid string) ([]HistoryEntry, error) {
	if err := s.check(partition); err != nil {
		return nil, err
	}
	var m Message
	r, err := s.findCommitted(partition, wamid, &m)
	if err != nil || !r.found {
		return nil, err
	}
	h, err := decodeHistory(r.hist, r.n, s.opts.HistoryLimit)
	if err != nil {
		return nil, fmt.Errorf("state: history %s: %w", wamid, err)
	}
	return h, nil
}

// NextOffset returns the partition's next input offset, as last committed by
// a Batch; false when the partition has no state.
func (s *Store) NextOffset(partition int32) (int64, bool, error) {
	if err := s.check(partition); err != nil {
		return 0, false, err
	}
	val, closer, err := s.db.Get(appendOffsetKey(nil, partition))
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		s.fail(fmt.Errorf("state: next offset of partition %d: %w", partition, err))
		return 0, false, s.Err()
	}
	d := decoder{s: string(val)}
	off := d.varint()
	err = d.end()
	closer.Close()
	if err != nil {
		s.fail(fmt.Errorf("state: next offset of partition %d: %w: %w", partition, ErrCorrupt, err))
		return 0, false, s.Err()
	}
	return off, true, nil
}

// DropPartition deletes everything stored for the partition (states,
// history, index, next offset) with one synced range delete, or with nothing when
// it holds no key: a range deletion in the LSM would keep a Loader's
// tables out of the bottom level until compactions dropped it. No Batch of
// the partition may be in use meanwhile; one created before must be Reset
// before it is used again.
func (s *Store) DropPartition(partition int32) error {
	if err := s.check(partition); err != nil {
		return err
	}
	known, seqs := s.knownKeys(partition, false), s.seqCounter(partition)
	known.set(nil) // until the partition is empty
	seqs.forget()
	lo, hi := partitionBounds(partition)
	if !s.holdsNothing(lo, hi) {
		if err := s.write(func() error { return s.db.DeleteRange(lo, hi, pebble.Sync) }); err != nil {
			return fmt.Errorf("state: drop partition %d: %w", partition, err)
		}
	}
	known.set(s.emptyFilter(0))
	seqs.set(0)
	return nil
}

// holdsNothing reports whether the store certainly holds no key in [lo,
// hi): no sstable's bounds overlap it (the manifest's metadata, no block is
// read) and the memtables hold none. A partition about to be dropped may
// hold a corrupt block, whose read would fail the store: it is never read
// here, and any doubt answers false.
func (s *Store) holdsNothing(lo, hi []byte) bool {
	levels, err := s.db.SSTables(pebble.WithKeyRangeFilter(lo, hi))
	if err != nil {
		return false
	}
	for _, tables := range levels {
		if len(tables) > 0 {
			return false
		}
	}
	empty, err := s.noKeys(lo, hi) // no table to open: the memtables only
	return err == nil && empty
}

// Scan calls fn with the committed state of every message of the partition,
// in seq order: the order in which the messages were first written, by
// arrival for a partition the processor folded, by wamid hash for one a
// Loader restored (stable, not meaningful). fn may keep the Message. The
// first error fn returns stops the scan and is returned as is.
func (s *Store) Scan(partition int32, fn func(*Message) error) error {
	if err := s.check(partition); err != nil {
		return err
	}
	lo, hi := kindBounds(partition, kindRecord)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return fmt.Errorf("state: scan partition %d: %w", partition, err)
	}
	for valid := it.First(); valid; valid = it.Next() {
		m := new(Message)
		_, _, err := decodeRecord(string(it.Value()), m)
		if _, ok := recordSeq(it.Key(), partition); err == nil && !ok {
			err = fmt.Errorf("%w: not a record key", ErrCorrupt)
		}
		if err != nil {
			return errors.Join(fmt.Errorf("state: scan partition %d: key %x: %w", partition, it.Key(), err), it.Close())
		}
		if err := fn(m); err != nil {
			if cerr := it.Close(); cerr != nil {
				return errors.Join(err, cerr)
			}
			return err
		}
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return fmt.Errorf("state: scan partition %d: %w", partition, err)
	}
	return nil
}

// Stats is a snapshot of the store's Pebble metrics, for a metrics
// exporter.
type Stats struct {
	BlockCacheSize   int64  // bytes in the block cache
	BlockCacheHits   int64  // block cache hits since Open
	BlockCacheMisses int64  // block cache misses since Open
	FilterHits       int64  // point lookups a bloom filter answered without reading a block
	FilterMisses     int64  // bloom filter checks that could not avoid the read
	MemTableSize     uint64 // bytes allocated to memtables
	MemTableCount    int64  // memtables (including the mutable one)
	DiskSpaceUsage   uint64 // bytes on disk (tables, WAL, manifests)
	ReadAmp          int    // sublevels and levels a read may visit
	Flushes          int64  // memtable flushes since Open
	Compactions      int64  // compactions since Open
	DiskFreeBytes    int64  // free space of the store's file system; -1 if unknown
	RecentHits       int64  // lookups of stored messages answered by the seqs of recent commits
	RecentMisses     int64  // lookups of stored messages that read the index
	// KnownFalsePositives counts the lookups by batches of messages that
	// a partition's filter of known messages may hold but the partition
	// does not: each a Pebble lookup of an index entry that is not there.
	// They grow with the filter's epochs, about 0.2% of new messages a
	// full one.
	KnownFalsePositives int64
}

// Stats returns a snapshot of the store's metrics.
func (s *Store) Stats() Stats {
	if s.closed.Load() {
		return Stats{}
	}
	m := s.db.Metrics()
	return Stats{
		BlockCacheSize:      m.BlockCache.Size,
		BlockCacheHits:      m.BlockCache.Hits,
		BlockCacheMisses:    m.BlockCache.Misses,
		FilterHits:          m.Filter.Hits,
		FilterMisses:        m.Filter.Misses,
		MemTableSize:        m.MemTable.Size,
		MemTableCount:       m.MemTable.Count,
		DiskSpaceUsage:      m.DiskSpaceUsage(),
		ReadAmp:             m.ReadAmp(),
		Flushes:             m.Flush.Count,
		Compactions:         m.Compact.Count,
		DiskFreeBytes:       s.disk.read(),
		RecentHits:          s.recentHits.Load(),
		RecentMisses:        s.recentMisses.Load(),
		KnownFalsePositives: s.falsePositives.Load(),
	}
}

// pebbleLogger hands Pebble's log lines to slog.
type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) log(level slog.Level, format string, args ...any) {
	if p.l.Enabled(context.Background(), level) {
		p.l.Log(context.Background(), level, "pebble", "detail", fmt.Sprintf(format, args...))
	}
}

// Infof logs at Info.
func (p pebbleLogger) Infof(format string, args ...any) { p.log(slog.LevelInfo, format, args...) }

// Errorf logs at Error.
func (p pebbleLogger) Errorf(format string, args ...any) { p.log(slog.LevelError, format, args...) }

// Fatalf logs at Error and panics: a library must not exit the process.
func (p pebbleLogger) Fatalf(format string, args ...any) {
	p.log(slog.LevelError, format, args...)
	panic(fmt.Sprintf("state: pebble fatal: "+format, args...))
}

// storeLogger is a store's pebbleLogger: it hands Pebble's fatal errors to
// the store.
type storeLogger struct {
	pebbleLogger
	s *Store
}

// Fatalf fails the store and panics with a fatalError. Pebble calls it on
// errors it cannot continue from: a commit whose log write or sync failed
// ("pebble: fatal commit error": a full disk, an I/O error), a MANIFEST
// that cannot be written, an invariant violation. It must not return, since
// Pebble carries on after it as if the operation had succeeded (a failed
// commit would report success), and a library must not exit the process
// (Pebble's default). The store's own calls into Pebble (guard) recover the
// panic into an error; Pebble's background goroutines do not, so a fatal
// error there, rarer (a MANIFEST write), crashes the process with the
// message, which is still a clear stop and loses nothing synced.
func (p storeLogger) Fatalf(format string, args ...any) {
	err := &fatalError{msg: fmt.Sprintf(format, args...)}
	for _, a := range args {
		if e, ok := a.(error); ok {
			err.cause = e // keep the OS error (syscall.ENOSPC) for errors.Is
			break
		}
	}
	p.s.fail(err)
	panic(err)
}

// closeWait bounds how long Close waits for Pebble to close a failed store:
// Pebble keeps retrying a flush that a full disk failed, and a writer stalled
// behind it holds Close up until space returns.
const closeWait = 5 * time.Second

// fault is a store's first storage failure. Once set, every method of the
// store and its batches returns it instead of touching Pebble, so nothing is
// read from a store that may hold writes Pebble could not make durable
// (Pebble applies a batch to its memtable before its log sync fails) and
// nothing more is written.
type fault struct {
	once    sync.Once
	err     atomic.Pointer[error]
	done    chan struct{}  // closed once err is set
	writing sync.WaitGroup // writes in flight, given up on or not
}

// fail records err as the store's failure, if it is the first.
func (s *Store) fail(err error) {
	s.fault.once.Do(func() {
		err = fmt.Errorf("%w: %w", ErrFailed, err)
		s.fault.err.Store(&err)
		close(s.fault.done)
		s.opts.Logger.Error("state store failed", "err", err)
	})
}

// Err returns the store's failure, wrapping ErrFailed, or nil while it is
// healthy. A store fails for good when Pebble reports that it cannot go on:
// a commit's log write or sync failed (Pebble's fatal commit error), a
// flush or compaction failed (a full disk: Pebble retries them for ever and
// stalls writes meanwhile), or a block's checksum did not match; and when a
// stored value does not decode (ErrCorrupt). Close it, free space or drop the
// store's directory, and open it again: the processor resumes or restores
// from Kafka.
func (s *Store) Err() error {
	if e := s.fault.err.Load(); e != nil {
		return *e
	}
	return nil
}

// eventListener fails the store on Pebble's background errors and on
// corruption. (Pebble's default for corruption is Logger.Fatalf, which would
// panic in the reader's goroutine.)
func (s *Store) eventListener() *pebble.EventListener {
	return &pebble.EventListener{
		BackgroundError: func(err error) { s.fail(fmt.Errorf("background: %w", err)) },
		DataCorruption: func(info pebble.DataCorruptionInfo) {
			s.fail(fmt.Errorf("%w: %s: %w", ErrCorrupt, info.Path, info.Details))
		},
	}
}

// fatalError is Pebble's fatal error (pebbleLogger.Fatalf), thrown as a
// panic and caught by guard.
type fatalError struct {
	msg   string
	cause error // the first error among Fatalf's arguments
}

func (e *fatalError) Error() string { return "pebble fatal: " + e.msg }
func (e *fatalError) Unwrap() error { return e.cause }

// guard calls fn, turning a Pebble fatal error (a fatalError panic) into the
// store's failure. Other panics go on.
func (s *Store) guard(fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(*fatalError); !ok {
				panic(r)
			}
			err = s.Err()
		}
	}()
	return fn()
}

// write runs a Pebble write (a commit) under guard, and gives up on it when
// the store fails meanwhile: a flush that a full disk failed stalls Pebble's
// writers until space returns, and the caller must hear of the failure
// rather than wait. A write given up on may still complete later; it was
// not reported, and the store accepts nothing more.
func (s *Store) write(fn func() error) error {
	if err := s.Err(); err != nil {
		return err
	}
	done := make(chan error, 1)
	s.fault.writing.Go(func() { done <- s.guard(fn) })
	select {
	case err := <-done:
		return err
	case <-s.fault.done:
		select {
		case err := <-done: // finished after all: a commit is durable or not
			return err
		default:
			return s.Err()
		}
	}
}

// closeFailed closes a failed store as far as Pebble lets it within
// closeWait. Pebble must not close under a write it still runs (one given
// up on), so Close waits for those first.
func (s *Store) closeFailed() error {
	done := make(chan error, 1)
	go func() {
		s.fault.writing.Wait()
		done <- errors.Join(s.guard(s.db.Close), s.closeHealth())
	}()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("state: close: %w", err)
		}
		return nil
	case <-time.After(closeWait):
		return fmt.Errorf("state: close: Pebble did not close within %s (%w); exit the process", closeWait, s.Err())
	}
}

// splitKinds is Pebble's span policy function: it changes no policy, but
// makes every sstable Pebble writes (by flushes and compactions) end where
// a partition's keys of one kind end, and its index entries of one epoch.
// A table then holds one partition's index entries of one epoch, whose
// hashes are spread over all its range, or one partition's records, which
// are in arrival order, never both: a new table of recent records overlaps
// only the last table of its partition's records one level down, and a
// new table of index entries only the tables of the newest epoch, not
// every table that a range from one partition's records through the next
// partition's index, or through older epochs, would cover.
func splitKinds(start []byte) (pebble.SpanPolicy, []byte, error) {
	if len(start) < 5 || start[0]&0x80 != 0 {
		return pebble.SpanPolicy{}, nil, nil
	}
	if start[4] == kindIndex && len(start) >= 9 {
		if e := binary.BigEndian.Uint32(start[5:9]); e != math.MaxUint32 {
			end := binary.BigEndian.AppendUint32(append([]byte(nil), start[:5]...), e+1)
			return pebble.SpanPolicy{}, end, nil
		}
	}
	end := append([]byte(nil), start[:5]...)
	end[4]++
	return pebble.SpanPolicy{}, end, nil
}
