package state

import "math/bits"

// keyFilter is a bloom filter of the messages of a partition, by their
// wamidHash, for knownKeys: a message it has never seen is not in the
// partition, and a batch skips its point lookup. A false positive only
// costs that lookup.
//
// It grows as a scalable bloom filter does: once the newest layer holds as
// many keys as it was sized for, a layer four times as large is added, so
// the false positive rate stays low whatever the size hint was, and a
// lookup checks few layers (five from 64 thousand to 10 million keys).
type keyFilter struct {
	layers []filterLayer
}

type filterLayer struct {
	bits []uint64
	mask uint64 // number of bits - 1 (a power of two)
	room int    // keys the layer can still take at about 1% false positives
}

// filterBitsPerKey and filterProbes give about 1% false positives.
const (
	filterBitsPerKey = 10
	filterProbes     = 7
	filterMinKeys    = 4096
)

// newKeyFilter returns a filter sized for about keys messages (10 bits
// each: 12.5 MB for 10 million).
func newKeyFilter(keys int) *keyFilter {
	f := &keyFilter{}
	f.grow(max(keys, filterMinKeys))
	return f
}

// grow adds a layer for about keys more messages.
func (f *keyFilter) grow(keys int) {
	size := uint64(1) << bits.Len64(uint64(keys)*filterBitsPerKey-1)
	f.layers = append(f.layers, filterLayer{
		bits: make([]uint64, size/64),
		mask: size - 1,
		room: int(size / filterBitsPerKey),
	})
}

// probe returns the i-th bit position of hash h in a layer (double hashing
// on the halves of the 64-bit wamid hash).
func (l *filterLayer) probe(h, i uint64) uint64 {
	return (h + i*(h>>32|1)) & l.mask
}

// add records a message by its wamidHash.
func (f *keyFilter) add(h uint64) {
	l := &f.layers[len(f.layers)-1]
	if l.room == 0 {
		f.grow(4 * len(l.bits) * 64 / filterBitsPerKey)
		l = &f.layers[len(f.layers)-1]
	}
	l.room--
	for i := range uint64(filterProbes) {
		b := l.probe(h, i)
		l.bits[b/64] |= 1 << (b % 64)
	}
}

// mayContain reports whether the message with wamidHash h may have been
// added; false means certainly not.
func (f *keyFilter) mayContain(h uint64) bool {
	for li := range f.layers {
		if f.layers[li].mayContain(h) {
			return true
		}
	}
	return false
}

func (l *filterLayer) mayContain(h uint64) bool {
	for i := range uint64(filterProbes) {
		b := l.probe(h, i)
		if l.bits[b/64]&(1<<(b%64)) == 0 {
			return false
		}
	}
	return true
}
