package state

import (
	"errors"
	"sync"

	"github.com/cockroachdb/pebble/v2"
)

// knownKeys is what a store knows of the message keys of one partition: a
// bloom filter of every message key the partition holds, or nil when the
// store cannot vouch for that. A filter exists when the store found the
// partition without messages (at the partition's first use since Open, or
// by DropPartition, NewLoadBatch or NewLoader) and has seen every message
// written to it since: messages are only written by batches and Loaders,
// and both add every message they write (a batch, every one it does not
// find) to the filter before they can write it. A message
// the filter has never seen is then not in Pebble either, and a batch skips
// the point lookup, which is most of the cost of folding the first event of
// a message (a seek down the memtable's skiplist and, past it, a bloom
// filter check per sstable). A false positive only costs that lookup.
//
// A partition that held messages when the store opened has no filter:
// learning its keys would mean reading it whole.
type knownKeys struct {
	mu sync.Mutex
	f  *keyFilter
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
}

// knownKeys returns the partition's knownKeys, made at its first use: with
// an empty filter if probe and the partition then holds no message.
// DropPartition does not probe: a partition about to be dropped may hold
// a corrupt block, which the probe would read.
func (s *Store) knownKeys(partition int32, probe bool) *knownKeys {
	s.knownMu.Lock()
	defer s.knownMu.Unlock()
	if k := s.known[partition]; k != nil {
		return k
	}
	k := &knownKeys{}
	if probe {
		if none, err := s.noMessages(partition); err == nil && none {
			k.f = newKeyFilter(0)
		}
	}
	s.known[partition] = k
	return k
}

// noMessages reports whether the partition holds no message: no index
// entry and no record.
func (s *Store) noMessages(partition int32) (bool, error) {
	lo, _ := kindBounds(partition, kindIndex)
	_, hi := kindBounds(partition, kindRecord)
	return s.noKeys(lo, hi)
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
