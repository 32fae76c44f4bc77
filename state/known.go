package state

import (
	"errors"
	"fmt"
	"sync"

	"github.com/cockroachdb/pebble/v2"
)

// knownKeys is what a store knows of the messages of one partition: a
// bloom filter of the wamid hashes of every message the partition holds
// (the keys of its index entries), or nil when the store cannot vouch for
// that. A filter exists once the store has read the partition's index (at
// the partition's first use since Open, learnKeys) or emptied it
// (DropPartition, NewLoadBatch, NewLoader), and has seen every message
// written to it since: messages are only written by batches and Loaders,
// and both add every message they write (a batch, every one it does not
// find) to the filter before they can write it. A message the filter has
// never seen is then not in Pebble either, and a batch skips the point
// lookup of its index entry, which is most of the cost of folding the first
// event of a message (a seek down the memtable's skiplist and, past it, a
// bloom filter check per sstable). A false positive only costs that lookup.
//
// Format 1 keyed records by hash and wamid, and learning a partition's
// hashes meant reading every record: a processor restarted on its store
// had no filter and looked every message up. The index is 13 bytes a
// message.
type knownKeys struct {
	mu   sync.Mutex
	f    *keyFilter
	sets int // calls of set: a filter learnt meanwhile is stale
}

// mayHold reports whether the partition may hold the message with
// wamidHash h; false means certainly not.
func (k *knownKeys) mayHold(h uint64) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.f == nil || k.f.mayContain(h)
}

// add records a message about to be written.
func (k *knownKeys) add(h uint64) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.f != nil {
		k.f.add(h)
	}
}

// set replaces the filter: nil while the partition's contents are unknown,
// an empty one sized for about keys messages once it holds none.
func (k *knownKeys) set(f *keyFilter) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.f = f
	k.sets++
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
// from the keys of its index entries: 13 bytes a message, so about a
// second for ten million. A partition with records but no index entry is
// corrupt (ErrCorrupt). knownKeys fails the store on any error, as a
// failed read of a record does.
func (s *Store) learnKeys(partition int32) (*keyFilter, error) {
	lo, hi := kindBounds(partition, kindIndex)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, err
	}
	f, n := newKeyFilter(0), 0
	var bad error
	for valid := it.First(); valid && bad == nil; valid = it.Next() {
		h, ok := indexHash(it.Key(), partition)
		if !ok {
			bad = fmt.Errorf("%w: index key %x", ErrCorrupt, it.Key())
		}
		f.add(h)
		n++
	}
	if err := errors.Join(bad, it.Error(), it.Close()); err != nil {
		return nil, err
	}
	if n == 0 {
		lo, hi := kindBounds(partition, kindRecord)
		none, err := s.noKeys(lo, hi)
		if err != nil {
			return nil, err
		}
		if !none {
			return nil, fmt.Errorf("%w: records but no index", ErrCorrupt)
		}
	}
	return f, nil
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
