package state

import "sync/atomic"

// recentSeqs remembers the seqs of the messages the store's batches
// committed last, so that a batch finds a known message's record without
// reading its index entry. Meta reports a message's statuses within
// seconds to minutes of each other, so most lookups are of messages
// written a moment ago; their index entries sit in the newest epoch,
// whose key range spans every level of the LSM, so reading one costs a
// bloom filter check per level it has reached, and more levels as the
// store grows (with 10 million messages, reading index entries was most
// of what a lookup cost beyond its cost with one million).
//
// It is a table of recentSlots words, shared by every partition, in
// buckets of recentWays: one word a message, its bucket and tag from the
// wamid hash mixed with the partition, its seq in the word's low bits. A
// bucket keeps the messages put in it last, first in first out, which
// suits messages that are looked up for a while after they are written and
// then no more. It is only a hint, never trusted: a caller reads the
// record at the seq it gives and takes it only if the record is of the
// wamid looked up; otherwise it reads the index as before. So an entry
// pushed out by others, a tag that matches by chance (about one in 2^21
// of the lookups of messages not in the table), two wamids with the same
// hash, or a partition emptied and refilled since (its seqs then name
// other messages, or none) cost one more read and change no answer.
// Batches put what they committed once Pebble has applied it, so the
// table never names a record a reader of the database could not see.
//
// Writers of different partitions put concurrently. A word is written and
// read whole (atomically), so a reader sees some message's hint or none;
// two puts racing in one bucket may lose one of them, which costs a read.
type recentSeqs struct {
	slots []atomic.Uint64
}

// recentSlots is the table's size, 1 MiB; recentWays the words of a
// bucket, one cache line. An entry stays until recentWays later puts land
// in its bucket: on average after about recentSlots puts. On the bench's
// stream (BenchmarkFoldStream), in which a message's statuses come within
// about 2,100 messages of its send and a late retry within 50,000, the
// table answers 97.5% of the lookups of stored messages at 1M messages
// and 97.8% at 10M (at 1M, 64 Ki words: 90%; 256 Ki: 98.7%; 64 Ki
// words in one-word buckets: 82.5%).
const (
	recentSlots = 1 << 17
	recentWays  = 8
)

// A word is tag<<recentSeqBits | seq+1; 0 is an empty slot. Seqs that do
// not fit are not kept (2^40 messages in one partition).
const (
	recentSeqBits = 40
	recentSeqMax  = 1<<recentSeqBits - 2
)

func newRecentSeqs() *recentSeqs {
	return &recentSeqs{slots: make([]atomic.Uint64, recentSlots)}
}

// bucket returns the ways of the bucket of (partition, wamid hash h) and
// the tag that names h there: the wamid hash is already uniform, the
// partition only has to move it.
func (r *recentSeqs) bucket(partition int32, h uint64) ([]atomic.Uint64, uint64) {
	k := h ^ (uint64(uint32(partition))+1)*0x9e3779b97f4a7c15
	i := k & (recentSlots/recentWays - 1) * recentWays
	return r.slots[i : i+recentWays : i+recentWays], k >> recentSeqBits
}

// put records that the message with hash h has its record at seq: in
// place if its bucket names it, else first, pushing out the bucket's
// oldest.
func (r *recentSeqs) put(partition int32, h, seq uint64) {
	if seq > recentSeqMax {
		return
	}
	ways, tag := r.bucket(partition, h)
	w := tag<<recentSeqBits | (seq + 1)
	for i := range ways {
		if old := ways[i].Load(); old>>recentSeqBits == tag {
			if old != w { // a message found by its hint is there already: the line stays clean
				ways[i].Store(w)
			}
			return
		}
	}
	for i := len(ways) - 1; i > 0; i-- {
		ways[i].Store(ways[i-1].Load())
	}
	ways[0].Store(w)
}

// get returns the seq last put for hash h in partition, if its bucket
// still holds it; see recentSeqs for why the answer is only a hint.
func (r *recentSeqs) get(partition int32, h uint64) (uint64, bool) {
	ways, tag := r.bucket(partition, h)
	for i := range ways {
		if w := ways[i].Load(); w != 0 && w>>recentSeqBits == tag {
			return w&(1<<recentSeqBits-1) - 1, true
		}
	}
	return 0, false
}
