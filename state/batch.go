package state

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"

	"github.com/wastatus/wastatus/schemas"
)

// Batch collects all the writes for one polled batch of one partition:
// states, history and the next offset, committed together in one synced
// Pebble batch. It caches every message it touches, so a message seen many
// times in a batch is read from Pebble once and written once.
//
// A Batch belongs to one goroutine: the partition's worker. At most one
// Batch per partition may be in use, since it reads Pebble directly and
// relies on being the partition's only writer. After Commit (or Reset) it is
// empty and may be reused for the partition's next polled batch; Close it
// when the partition is revoked.
type Batch struct {
	s         *Store
	partition int32
	err       error // sticky: invalid partition, failed commit, closed
	pb        *pebble.Batch
	pbOpts    []pebble.BatchOption
	retain    int // the largest buffer pb keeps between commits

	// recordBytes is the last commit's Pebble batch's bytes a record
	// (presize).
	recordBytes int

	// syncing is the Pebble batch of the last CommitNoSyncWait, applied
	// but its log sync not yet waited for (SyncWait); spare is a Pebble
	// batch whose sync was waited for, reset for the next commit. Two
	// Pebble batches alternate, since Pebble may hold one until its sync.
	syncing *pebble.Batch
	spare   *pebble.Batch

	known *knownKeys  // the partition's known messages (a filter of their hashes), if the store knows them
	seqs  *seqCounter // the partition's seqs of new messages

	msgs    map[string]*entry // by wamid
	order   []*entry          // first-touch order
	free    []*entry          // reset entries to reuse
	changed []*Message        // Changed's result, reused
	peak    int               // most messages held since msgs was made

	nextOffset    int64
	hasNextOffset bool

	key []byte // scratch key
	val []byte // scratch value

	// recentHits and recentMisses count, since the last commit, the
	// lookups of stored messages that the store's recentSeqs answered
	// and those that read the index; falsePositives, the lookups of
	// messages the filter of known messages may hold but the partition
	// does not (Store.Stats).
	recentHits, recentMisses, falsePositives int64

	index map[indexSlot][]byte // Commit's index entries of new messages, reused
	slots []indexSlot          // index's keys, to write in order
	dirty []*entry             // Commit's messages to write, in key order
}

// indexSlot names an index entry of the batch's partition.
type indexSlot struct {
	epoch uint32
	hash  uint64
}

// entry is one message cached in a Batch: its Message, kept when the
// entry is reused (Message.reset keeps its allocations), and the rest,
// which reuse empties in one assignment without copying the Message.
type entry struct {
	m Message
	entryState
}

// entryState is what an entry knows of its message beyond its state.
type entryState struct {
	hash    uint64 // the store's hash of the wamid (wamidHash)
	seq     uint64 // the record's seq, if stored
	stored  bool   // the message has a record in Pebble
	epoch   uint32 // a new message's epoch (keyFilter)
	idx     []byte // a new message's index entry as read: other messages with its hash and epoch
	hist    []byte // the record's history entries, then this batch's
	histN   int    // number of entries in hist
	dirty   bool   // the record must be written: state or history changed
	changed bool   // the state changed in this batch
}

// NewBatch returns an empty Batch for the partition. A negative partition
// makes every method of the Batch return ErrInvalidPartition.
func (s *Store) NewBatch(partition int32) *Batch { return s.newBatch(partition, retainBatchBytes) }

// loadRetainBytes is the largest Pebble batch buffer a load batch keeps
// between its commits. Pebble drops any buffer over 1 MiB on reset, and a
// load's store batch of 20,000 records is several: regrowing it by doubling
// for every commit was three quarters of the bytes a rebuild allocated.
const loadRetainBytes = 32 << 20

// retainBatchBytes is the largest Pebble batch buffer a Batch keeps
// between its commits, and retainHistoryBytes the largest history buffer
// an entry keeps for its next message. A processor runs a Batch on every
// partition it owns, and what they all keep between transactions is live
// heap: sized by the largest transaction each ever folded, it was a third
// of the processor's live heap with 10 million messages, and under the Go
// memory limit the collector then ran twice as often (see reset).
const (
	retainBatchBytes   = 256 << 10
	retainHistoryBytes = 1 << 10
	retainParticipants = 16 // a group message's, beyond which an entry's list is let go
)

// newBatch returns a Batch whose Pebble batches keep buffers of up to
// retain bytes between commits.
func (s *Store) newBatch(partition int32, retain int) *Batch {
	b := &Batch{
		s:         s,
		partition: partition,
		err:       checkPartition(partition),
		msgs:      make(map[string]*entry),
		retain:    retain,
	}
	if b.err == nil {
		opts := []pebble.BatchOption{pebble.WithMaxRetainedSizeBytes(retain)}
		b.pb = s.db.NewBatch(opts...)
		b.pbOpts = opts
		b.known = s.knownKeys(partition, true)
		b.seqs = s.seqCounter(partition)
	}
	return b
}

// NewLoadBatch returns an empty Batch for filling a partition that holds
// nothing yet (just dropped, or never written): a restore or a rebuild. It
// is the partition's only writer until closed. It gives the partition an
// empty filter of known messages (see knownKeys; about 14 bits each), so
// that loading a message the partition has not seen skips the Pebble
// lookup: there is nothing to find. keys, the most messages the load may
// write, sizes the filter's first epoch, at most epochMinKeys: a small
// partition gets a small filter. Otherwise it is a Batch like any other,
// and so are the partition's later batches, which keep skipping the
// lookups of new messages.
//
// It returns ErrNotEmpty if the partition holds any key, and the errors of
// NewBatch.
func (s *Store) NewLoadBatch(partition int32, keys int) (*Batch, error) {
	b := s.newBatch(partition, loadRetainBytes)
	if err := b.check(); err != nil {
		return nil, err
	}
	lo, hi := partitionBounds(partition)
	empty, err := s.noKeys(lo, hi)
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("state: load batch: %w", err)
	}
	if !empty {
		b.Close()
		return nil, fmt.Errorf("%w: partition %d", ErrNotEmpty, partition)
	}
	b.known.set(s.emptyFilter(keys))
	return b, nil
}

// Partition returns the batch's partition.
func (b *Batch) Partition() int32 { return b.partition }

// check returns the sticky error, or ErrClosed after the store closed.
func (b *Batch) check() error {
	if b.err != nil {
		return b.err
	}
	if b.s.closed.Load() {
		return ErrClosed
	}
	return b.s.Err()
}

// Apply folds ev, read at offset in the batch's partition, into its
// message's state (read from the batch's cache, or Pebble the first time),
// records it in the message's history, and returns the Outcome and the
// message. The Message is the batch's: valid until Commit, Reset or Close,
// and not to be modified. Errors as for Message.Apply (nothing is then
// changed or recorded), or a Pebble read error.
//
// Apply does not allocate once the batch has warmed up on transactions of
// like size, except to read a message from Pebble (one string holds all
// its fields), to regrow what reset let go (a history over
// retainHistoryBytes, a large group's participants), and as Message.Apply
// does.
func (b *Batch) Apply(ev *schemas.StatusEvent, offset int64) (Outcome, *Message, error) {
	if err := b.check(); err != nil {
		return 0, nil, err
	}
	st, err := checkEvent(ev)
	if err != nil {
		return 0, nil, err
	}
	e, err := b.load(ev.WAMID)
	if err != nil {
		return 0, nil, err
	}
	out := e.m.apply(ev, st, b.s.opts.Policy)
	if out.Changed() {
		e.dirty, e.changed = true, true
	}
	if limit := b.s.opts.HistoryLimit; limit > 0 {
		e.hist, b.val = appendHistoryEntry(e.hist, b.val, offset, ev, st, out)
		e.histN++
		e.dirty = true
		if e.histN >= 2*limit { // a busy message: keep the batch's memory bounded
			kept := skipHistory(e.hist, e.histN-limit)
			e.hist = e.hist[:copy(e.hist, kept)]
			e.histN = limit
		}
	}
	return out, &e.m, nil
}

// Restore joins m (typically FromView of a record of the current topic) into
// the state of its message, marking it changed if that changed it. The
// zero Message is a no-op. Nothing is recorded in the history.
func (b *Batch) Restore(m *Message) error {
	if err := b.check(); err != nil {
		return err
	}
	if m.wamid == "" {
		return nil
	}
	e, err := b.load(m.wamid)
	if err != nil {
		return err
	}
	changed, err := e.m.join(m)
	if err != nil {
		return err
	}
	if changed {
		e.dirty, e.changed = true, true
	}
	return nil
}

// load returns the cached entry of wamid, reading it from Pebble first if
// needed.
func (b *Batch) load(wamid string) (*entry, error) {
	if e, ok := b.msgs[wamid]; ok {
		return e, nil
	}
	var e *entry
	if n := len(b.free); n > 0 {
		e, b.free = b.free[n-1], b.free[:n-1]
	} else {
		e = new(entry)
	}
	e.hash = b.s.hash(wamid)
	var r lookup
	sc, next, err := b.s.epochs(b.s.db, b.partition, b.known, e.hash)
	if err == nil {
		// A message that no epoch may hold is new: it has no seq to
		// find, and no index entry of its hash to add to. Otherwise the
		// seq its last commit left, if any, is read first, and the index
		// only if that is not the message's.
		e.idx = e.idx[:0]
		if sc.any() {
			r, err = b.s.findRecent(b.s.db, b.partition, e.hash, wamid, &e.m, &b.key)
			if r.found {
				b.recentHits++
			}
			if err == nil && !r.found {
				r, err = b.s.find(b.s.db, b.partition, e.hash, wamid, &e.m, &b.key, &sc, &e.idx, next)
				switch {
				case r.found:
					b.recentMisses++
				case err == nil && sc.f != nil:
					b.falsePositives++
				}
			}
		}
	}
	if err == nil {
		e.seq, e.stored = r.seq, r.found
		e.hist, e.histN = append(e.hist[:0], r.hist...), r.n
	}
	if err == nil && !e.stored {
		// Without a filter, a new message joins the newest epoch in
		// Pebble. With one, add returns next, whose entry for the hash
		// find read, if any, unless the filter was replaced under the
		// batch, which the partition's only writer must not allow: that
		// entry would then be written over.
		e.epoch = next
		if ep, ok := b.known.add(e.hash); ok && ep != next {
			err = fmt.Errorf("state: partition %d: its filter of known messages changed under its batch (epoch %d, want %d)", b.partition, ep, next)
		}
	}
	if err != nil {
		e.m.reset()
		e.entryState = entryState{hist: e.hist[:0], idx: e.idx[:0]}
		b.free = append(b.free, e)
		return nil, err
	}
	key := wamid
	if e.stored {
		key = e.m.wamid // a substring of the record: no reference to the caller's string
	}
	b.msgs[key] = e
	b.order = append(b.order, e)
	return e, nil
}

// Changed returns the messages whose state changed in this batch (by Apply
// or Restore), in first-touch order: the ones to emit. The slice and the
// Messages are the batch's: valid until the next Changed, Commit, Reset or
// Close, and not to be modified.
func (b *Batch) Changed() []*Message {
	b.changed = b.changed[:0]
	for _, e := range b.order {
		if e.changed {
			b.changed = append(b.changed, &e.m)
		}
	}
	return b.changed
}

// Len returns the number of messages the batch holds.
func (b *Batch) Len() int { return len(b.order) }

// SetNextOffset sets the partition's next input offset, written by Commit
// together with the states.
func (b *Batch) SetNextOffset(off int64) {
	b.nextOffset, b.hasNextOffset = off, true
}

// Commit writes the batch (every changed state, the history entries, and the
// next offset if set) in one synced Pebble batch, atomically, and leaves the
// batch empty for reuse. A batch with nothing to write commits nothing. If
// Commit fails the batch is unusable (every later call returns the error):
// Close it and rebuild the partition's state from what was committed.
func (b *Batch) Commit() error {
	if err := b.CommitNoSyncWait(); err != nil {
		return err
	}
	return b.SyncWait()
}

// CommitNoSyncWait writes the batch as Commit does, but returns once Pebble
// has applied it, without waiting for its log sync: what it wrote is
// visible at once to reads and to the batch's next fold, and one sync
// serves whatever committed meanwhile. SyncWait waits for the sync; the
// batch's next commit and Close wait for it first. A crash before the sync
// loses this commit (and any later one) whole, offset and states together,
// as if the crash had come before it. A failed sync fails the store (Err),
// as a failed synced commit does.
func (b *Batch) CommitNoSyncWait() error {
	if err := b.check(); err != nil {
		return err
	}
	if err := b.SyncWait(); err != nil {
		return err
	}
	records, err := b.writeMessages()
	if err != nil {
		b.err = err
		return err
	}
	if b.hasNextOffset {
		b.key = appendOffsetKey(b.key[:0], b.partition)
		b.val = binary.AppendVarint(b.val[:0], b.nextOffset)
		if err := b.pb.Set(b.key, b.val, nil); err != nil {
			b.err = fmt.Errorf("state: batch: %w", err)
			return b.err
		}
	}
	if !b.pb.Empty() {
		pb := b.pb
		if records > 0 {
			b.recordBytes = pb.Len() / records
		}
		b.pb = nil // Pebble holds it until its sync, or for ever if it failed (see Store.write)
		if err := b.s.write(func() error { return b.s.db.ApplyNoSyncWait(pb, pebble.Sync) }); err != nil {
			b.err = fmt.Errorf("state: commit partition %d: %w", b.partition, err)
			return b.err
		}
		b.syncing = pb
		if b.pb, b.spare = b.spare, nil; b.pb == nil {
			b.pb = b.s.db.NewBatch(b.pbOpts...)
		}
	}
	b.remember()
	b.reset()
	return nil
}

// remember gives the store's recentSeqs the seq of every message the
// batch holds a record of, now that Pebble has applied the commit, and
// the store the batch's counts of lookups it did and did not answer.
func (b *Batch) remember() {
	for _, e := range b.order {
		if e.stored || e.dirty {
			b.s.recent.put(b.partition, e.hash, e.seq)
		}
	}
	if b.recentHits > 0 || b.recentMisses > 0 || b.falsePositives > 0 {
		b.s.recentHits.Add(b.recentHits)
		b.s.recentMisses.Add(b.recentMisses)
		b.s.falsePositives.Add(b.falsePositives)
		b.recentHits, b.recentMisses, b.falsePositives = 0, 0, 0
	}
}

// presize gives the commit of records an empty Pebble batch of about the
// size they will take, by the last commit's bytes a record, when that is
// more than the batch keeps between commits: Pebble grows a batch from 1
// KiB by doubling, so a commit of 400 KiB allocated about twice that and
// copied itself ten times (the largest source of garbage in the store, a
// sixth of the bytes the processor allocated).
func (b *Batch) presize(records int) {
	need := records * b.recordBytes
	need += need / 8
	if need > b.retain && need < maxPresizeBytes && b.pb.Empty() && cap(b.pb.Repr()) < need {
		b.pb.Close()
		b.pb = b.s.db.NewBatchWithSize(need, b.pbOpts...)
	}
}

// maxPresizeBytes bounds presize: a larger batch grows as Pebble grows it.
const maxPresizeBytes = 256 << 20

// writeMessages adds the records of the changed messages to the Pebble
// batch (presized for them), and the index entries of the new ones, with
// new seqs, and returns the number of records. It adds them in key order,
// index entries first: Pebble inserts a batch's keys into its memtable's
// skiplist one after the other, starting each search from where the last
// one ended when that still brackets the key, so keys in order are found
// in a few steps rather than from the top of the list.
func (b *Batch) writeMessages() (int, error) {
	b.dirty = b.dirty[:0]
	added := 0
	for _, e := range b.order {
		if e.dirty {
			b.dirty = append(b.dirty, e)
			if !e.stored {
				added++
			}
		}
	}
	defer clear(b.dirty)
	b.presize(len(b.dirty))
	if added > 0 {
		seq, err := b.seqs.take(b.s, b.partition, added)
		if err != nil {
			return 0, fmt.Errorf("state: commit partition %d: %w", b.partition, err)
		}
		if b.index == nil {
			b.index = make(map[indexSlot][]byte)
		}
		for _, e := range b.dirty {
			if e.stored {
				continue
			}
			e.seq = seq
			seq++
			// Messages of one hash and epoch, stored or new in this
			// batch, share an entry (see keys.go).
			slot := indexSlot{e.epoch, e.hash}
			idx, ok := b.index[slot]
			if !ok {
				idx = e.idx
				b.slots = append(b.slots, slot)
			}
			b.index[slot] = binary.AppendUvarint(idx, e.seq)
		}
		slices.SortFunc(b.slots, func(x, y indexSlot) int {
			return cmp.Or(cmp.Compare(x.epoch, y.epoch), cmp.Compare(x.hash, y.hash))
		})
		for _, slot := range b.slots {
			b.key = appendIndexKey(b.key[:0], b.partition, slot.epoch, slot.hash)
			if err := b.pb.Set(b.key, b.index[slot], nil); err != nil {
				return 0, fmt.Errorf("state: batch: %w", err)
			}
		}
		b.slots = b.slots[:0]
		clear(b.index)
	}
	slices.SortFunc(b.dirty, func(x, y *entry) int { return cmp.Compare(x.seq, y.seq) })
	for _, e := range b.dirty {
		b.key = appendRecordKey(b.key[:0], b.partition, e.seq)
		b.val = appendRecord(b.val[:0], &e.m, e.hist, e.histN, b.s.opts.HistoryLimit)
		if err := b.pb.Set(b.key, b.val, nil); err != nil {
			return 0, fmt.Errorf("state: batch: %w", err)
		}
	}
	return len(b.dirty), nil
}

// SyncWait waits for the log sync of the last CommitNoSyncWait, if it was
// not waited for yet, and returns its error: the store's failure if the
// sync failed (the store then refuses everything, since Pebble applied the
// batch that its log lost).
func (b *Batch) SyncWait() error {
	if b.err != nil || b.syncing == nil {
		return b.err
	}
	pb := b.syncing
	b.syncing = nil
	err := b.s.write(func() error {
		if err := pb.SyncWait(); err != nil {
			b.s.fail(fmt.Errorf("pebble: log sync of a commit: %w", err))
			return b.s.Err()
		}
		return nil
	})
	if err != nil {
		// Failed, or given up on: Pebble may still hold pb, so it is
		// neither reused nor closed.
		b.err = fmt.Errorf("state: commit partition %d: %w", b.partition, err)
		return b.err
	}
	pb.Reset()
	b.spare = pb
	return nil
}

// Reset discards everything not committed (after an aborted transaction,
// or a DropPartition) and leaves the batch empty for reuse.
func (b *Batch) Reset() {
	if b.err != nil {
		return
	}
	b.reset()
}

// reset empties the batch, keeping the allocations its next use is likely
// to need: as many entries as it just held (one larger transaction's extra
// entries are let go by the next smaller one; a batch that held none keeps
// what it had), their history buffers up to retainHistoryBytes and
// participant lists up to retainParticipants, and a Pebble batch up to its
// retention size.
func (b *Batch) reset() {
	b.pb.Reset()
	keep := len(b.order)
	if keep == 0 { // it held nothing: nothing to learn from
		keep = len(b.free)
	}
	if len(b.free) > keep {
		clear(b.free[keep:])
		b.free = b.free[:keep]
	}
	for _, e := range b.order {
		if len(b.free) == keep {
			break
		}
		e.m.reset()
		if cap(e.m.parts) > retainParticipants {
			e.m.parts = nil
		}
		hist := e.hist[:0]
		if cap(hist) > retainHistoryBytes {
			hist = nil
		}
		e.entryState = entryState{hist: hist, idx: e.idx[:0]}
		b.free = append(b.free, e)
	}
	// The map and slices keep the size of the largest batch since they
	// were made; after a much smaller one they are made again.
	b.peak = max(b.peak, keep)
	if b.peak > 4*max(keep, minShrink) {
		b.msgs = make(map[string]*entry, keep)
		b.order, b.changed, b.index, b.slots, b.dirty = nil, nil, nil, nil, nil
		b.peak = keep
	} else {
		clear(b.order)
		b.order = b.order[:0]
		clear(b.msgs)
		clear(b.changed)
		b.changed = b.changed[:0]
	}
	b.hasNextOffset = false
}

// minShrink is the size of batch below which reset does not remake the
// batch's map and slices.
const minShrink = 256

// Close releases the batch without committing what it holds, once the log
// sync of its last CommitNoSyncWait is done. It may be called more than
// once.
func (b *Batch) Close() {
	_ = b.SyncWait() // a failure is the store's (Err) already
	for _, pb := range []*pebble.Batch{b.pb, b.spare} {
		if pb != nil {
			_ = pb.Close() // only fails when already closed
		}
	}
	b.pb, b.spare = nil, nil
	b.err = ErrClosed
	b.msgs, b.order, b.free, b.changed = nil, nil, nil, nil
}
