package state

import (
	"errors"
	"fmt"
	"sync"

	"github.com/cockroachdb/pebble/v2"
)

// knownKeys is what a store knows of the messages of one partition: a
// bloom filter of the wamid hashes of every message the partition holds
// (the keys of its index entries), in the epochs that key those entries
// (filter.go), or nil when the store cannot vouch for that. A filter
// exists once the store has read the partition's index (at the
// partition's first use since Open, learnKeys) or emptied it
// (DropPartition, NewLoadBatch, NewLoader), and has seen every message
// written to it since: messages are only written by batches and Loaders,
// and both add every message they write (a batch, every one it does not
// find) to the filter before they can write it, and key its index entry by
// the epoch the filter added it to. A message the filter has never seen is
// then not in Pebble either, and a batch skips the point lookup of its
// index entry, which is most of the cost of folding the first event of a
// message (a seek down the memtable's skiplist and, past it, a bloom
// filter check per sstable); a known message's lookup reads the entries of
// the epochs whose layers may hold it, usually one. A false positive only
// costs the lookup of one epoch's entry.
//
// Format 1 keyed records by hash and wamid, and learning a partition's
// hashes meant reading every record: a processor restarted on its store
// had no filter and looked every message up. The index is 17 bytes a
// message.
type knownKeys struct {
	mu   sync.Mutex
	f    *keyFilter
	sets int // calls of set: a filter learnt meanwhile is stale
}

// epochScan yields, newest first, the epochs whose index entries may hold
// the message with wamidHash h: those whose layer of the partition's
// filter may hold it or, without a filter, every epoch from the newest in
// Pebble down (Store.epochs). It checks a layer only when asked for the next
// epoch, so the lookup of a recent message, found in the newest epoch,
// checks one layer; a new message's checks them all, one cache miss each.
type epochScan struct {
	k  *knownKeys
	f  *keyFilter // the filter scanned; nil: every epoch
	h  uint64
	g  uint64 // probeHash(h)
	at int    // the next layer or epoch to consider, counting down
}

// scan begins an epochScan of h, and returns it with the epoch a new
// message joins now (keyFilter.epoch); false without a filter.
func (k *knownKeys) scan(h uint64) (epochScan, uint32, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.f == nil {
		return epochScan{}, 0, false
	}
	return epochScan{k: k, f: k.f, h: h, g: probeHash(h), at: len(k.f.layers) - 1}, k.f.epoch(), true
}

// next returns the next epoch to read, false when there is none. A filter
// replaced since the scan began (the partition was emptied: only readers
// other than its writer see that) is scanned still: it holds what the
// reader's snapshot does.
func (sc *epochScan) next() (uint32, bool) {
	if sc.f == nil {
		if sc.at < 0 {
			return 0, false
		}
		sc.at--
		return uint32(sc.at + 1), true
	}
	sc.k.mu.Lock()
	defer sc.k.mu.Unlock()
	for ; sc.at >= 0; sc.at-- {
		if sc.f.layers[sc.at].has(sc.h, sc.g) {
			sc.at--
			return uint32(sc.at + 1), true
		}
	}
	return 0, false
}

// any reports whether the scan has an epoch to read, without advancing it.
func (sc epochScan) any() bool {
	_, ok := sc.next()
	return ok
}

// add records a message about to be written, and returns the epoch its
// index entry is keyed by; false without a filter.
func (k *knownKeys) add(h uint64) (uint32, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.f == nil {
		return 0, false
	}
	return k.f.add(h), true
}

// set replaces the filter: nil while the partition's contents are unknown,
// an empty one once it holds none.
func (k *knownKeys) set(f *keyFilter) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.f = f
	k.sets++
}

// emptyFilter returns a filter for a partition that holds nothing, its
// first epoch sized for about keys messages (0: no hint).
func (s *Store) emptyFilter(keys int) *keyFilter {
	return newKeyFilter(firstEpochKeys(keys, s.epochKeys), s.epochKeys)
}

// knownIfAny returns the partition's knownKeys, nil if it has none yet: a
// reader that is not the partition's writer must not make one without its
// filter, which the writer's first use would then not read.
func (s *Store) knownIfAny(partition int32) *knownKeys {
	s.knownMu.Lock()
	defer s.knownMu.Unlock()
	return s.known[partition]
}

// knownKeys returns the partition's knownKeys, made at its first use: with
// a filter of the messages the partition then holds if probe (learnKeys).
// DropPartition does not probe: a partition about to be dropped may hold
// a corrupt block, which the probe would read. The index is read outside
// the store's lock, so that one partition's first use (about 80 ms for a
// partition of 800k messages) does not hold up the others'; until it is
// read the knownKeys has no filter, which only costs lookups, and a filter
// set meanwhile (DropPartition, a Loader) wins over the one read.
func (s *Store) knownKeys(partition int32, probe bool) *knownKeys {
	s.knownMu.Lock()
	k := s.known[partition]
	made := k == nil
	if made {
		k = &knownKeys{}
		s.known[partition] = k
	}
	s.knownMu.Unlock()
	if !made || !probe {
		return k
	}
	f, err := s.learnKeys(partition)
	if err != nil {
		s.fail(fmt.Errorf("state: read the index of partition %d: %w", partition, err)) // an I/O error or corruption
		return k
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.sets == 0 {
		k.f = f
	}
	return k
}

// learnKeys returns a filter of every message the partition holds, read
// from the keys of its index entries (17 bytes a message, so about a second
// for ten million), in their epochs. A partition with records but no index
// entry is corrupt (ErrCorrupt). knownKeys fails the store on any error, as
// a failed read of a record does.
func (s *Store) learnKeys(partition int32) (*keyFilter, error) {
	lo, hi := kindBounds(partition, kindIndex)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, err
	}
	fb := newFilterBuilder(s.epochKeys)
	var bad error
	for valid := it.First(); valid; valid = it.Next() {
		e, h, ok := indexEntry(it.Key(), partition)
		if !ok || !fb.add(e, h) {
			bad = fmt.Errorf("%w: index key %x", ErrCorrupt, it.Key())
			break
		}
	}
	if err := errors.Join(bad, it.Error(), it.Close()); err != nil {
		return nil, err
	}
	if f := fb.filter(); f != nil {
		return f, nil
	}
	lo, hi = kindBounds(partition, kindRecord)
	none, err := s.noKeys(lo, hi)
	if err != nil {
		return nil, err
	}
	if !none {
		return nil, fmt.Errorf("%w: records but no index", ErrCorrupt)
	}
	return s.emptyFilter(0), nil
}

// noKeys reports whether the store holds no key in [lo, hi).
func (s *Store) noKeys(lo, hi []byte) (bool, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return false, err
	}
	some := it.First()
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return false, err
	}
	return !some, nil
}
