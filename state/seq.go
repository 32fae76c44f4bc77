package state

import (
	"errors"
	"fmt"
	"sync"

	"github.com/cockroachdb/pebble/v2"
)

// seqCounter hands out the seqs of a partition's new messages (see the key
// layout in keys.go): one more than the last record's, read from Pebble the
// first time the partition needs a seq (and again after forget), so it
// needs no key of its own and never hands out the seq of a record Pebble
// holds. A crash can make it go back only past records the crash lost with
// it. A commit that fails or is never made leaves a gap, which costs
// nothing.
type seqCounter struct {
	mu    sync.Mutex
	next  uint64
	known bool // next is the partition's
}

// seqCounter returns the partition's seqCounter, made at its first use.
func (s *Store) seqCounter(partition int32) *seqCounter {
	s.knownMu.Lock()
	defer s.knownMu.Unlock()
	c := s.seqs[partition]
	if c == nil {
		c = &seqCounter{}
		s.seqs[partition] = c
	}
	return c
}

// take returns the first of n new seqs of the partition.
func (c *seqCounter) take(s *Store, partition int32, n int) (uint64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.known {
		next, err := s.nextSeq(partition)
		if err != nil {
			return 0, err
		}
		c.next, c.known = next, true
	}
	first := c.next
	c.next += uint64(n)
	return first, nil
}

// set makes next the partition's next seq; forget makes the counter read
// it from Pebble again.
func (c *seqCounter) set(next uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.next, c.known = next, true
}

func (c *seqCounter) forget() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.known = false
}

// nextSeq returns one more than the seq of the partition's last record, or
// 0 if it has none.
func (s *Store) nextSeq(partition int32) (uint64, error) {
	lo, hi := kindBounds(partition, kindRecord)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return 0, fmt.Errorf("state: last record of partition %d: %w", partition, err)
	}
	var (
		next uint64
		bad  error
	)
	if it.Last() {
		seq, ok := recordSeq(it.Key(), partition)
		if ok {
			next = seq + 1
		} else {
			bad = fmt.Errorf("%w: record key %x", ErrCorrupt, it.Key())
		}
	}
	if err := errors.Join(bad, it.Error(), it.Close()); err != nil {
		s.fail(fmt.Errorf("state: last record of partition %d: %w", partition, err))
		return 0, s.Err()
	}
	return next, nil
}
