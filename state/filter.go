package state

import "math/bits"

// keyFilter is a bloom filter of the messages of a partition, by their
// wamidHash, for knownKeys: a message it has never seen is not in the
// partition, and a batch skips its point lookup. A false positive only
// costs that lookup.
//
// It grows as a scalable bloom filter does: once the newest layer holds as
// many keys as it was sized for, a layer twice as large is added, so the
// filter is never more than about twice the size its keys need (a growth
// factor of four, tried first, held 31 MB for 10 million messages in 12
// partitions instead of 15). A lookup checks every layer: five for a
// partition of a million keys grown from the default 64 thousand. Each
// full layer adds about 1% of false positives (3-4% at a million keys,
// 6-7% at ten million), which only cost the lookup a false positive costs;
// sizing later layers with more bits a key would hold the rate down for
// about half as much memory again.
//
// Each layer is a blocked bloom filter: all of a key's probes fall in one
// 64-byte block, so a lookup costs one cache miss per layer rather than
// one per probe. At 10 bits a key it gives about 1% false positives per
// full layer.
type keyFilter struct {
	layers []filterLayer
}

type filterLayer struct {
	blocks []filterBlock
	room   int // keys the layer can still take at about 1% false positives
	keys   int // keys the layer was sized for
}

// filterBlock is 512 bits: one cache line.
type filterBlock [8]uint64

const (
	filterBitsPerKey = 10
	filterProbes     = 7       // each takes 9 bits of the probe hash
	filterMinKeys    = 1 << 16 // without a size hint: 80 KiB
	filterGrowth     = 2
)

// newKeyFilter returns a filter sized for about keys messages (10 bits
// each: 12.5 MB for 10 million), or filterMinKeys if keys is 0.
func newKeyFilter(keys int) *keyFilter {
	if keys <= 0 {
		keys = filterMinKeys
	}
	f := &keyFilter{}
	f.grow(max(keys, 1024))
	return f
}

// grow adds a layer for about keys more messages.
func (f *keyFilter) grow(keys int) {
	n := (keys*filterBitsPerKey + 511) / 512
	f.layers = append(f.layers, filterLayer{blocks: make([]filterBlock, n), room: keys, keys: keys})
}

// bytes returns the filter's size.
func (f *keyFilter) bytes() int {
	n := 0
	for i := range f.layers {
		n += len(f.layers[i].blocks) * 64
	}
	return n
}

// probeHash derives the in-block probe positions from a wamidHash, whose
// high bits choose the block: a splitmix64 finalizer, so the two are
// independent.
func probeHash(h uint64) uint64 {
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	return h ^ h>>31
}

// block returns the layer's block for wamidHash h.
func (l *filterLayer) block(h uint64) *filterBlock {
	i, _ := bits.Mul64(h, uint64(len(l.blocks)))
	return &l.blocks[i]
}

// add records a message by its wamidHash.
func (f *keyFilter) add(h uint64) {
	l := &f.layers[len(f.layers)-1]
	if l.room == 0 {
		f.grow(filterGrowth * l.keys)
		l = &f.layers[len(f.layers)-1]
	}
	l.room--
	b, g := l.block(h), probeHash(h)
	for range filterProbes {
		b[g>>6&7] |= 1 << (g & 63)
		g >>= 9
	}
}

// mayContain reports whether the message with wamidHash h may have been
// added; false means certainly not.
func (f *keyFilter) mayContain(h uint64) bool {
	g := probeHash(h)
	for li := range f.layers {
		if f.layers[li].block(h).has(g) {
			return true
		}
	}
	return false
}

// has reports whether every probe of g is set in the block.
func (b *filterBlock) has(g uint64) bool {
	for range filterProbes {
		if b[g>>6&7]&(1<<(g&63)) == 0 {
			return false
		}
		g >>= 9
	}
	return true
}
