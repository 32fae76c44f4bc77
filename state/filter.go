package state

import "math/bits"

// keyFilter is a bloom filter of the messages of a partition, by their
// wamidHash, for knownKeys, kept in epochs: the partition's new messages
// join the newest epoch until it holds as many as it was sized for, and
// then a new epoch begins. A message's index entry is keyed by the epoch
// its hash joined (keys.go), so a lookup reads the entries of only the
// epochs whose layer may hold it, newest first (epochScan), and a message
// no layer holds is not in the partition: a batch skips its lookup. A
// false positive only costs the lookup of one epoch's entry.
//
// Epochs keep the index's compactions small: new entries fall in the
// newest epoch's narrow range of keys, and the older epochs' tables are
// never rewritten again (docs/PERFORMANCE.md, "Index entries by epoch").
// The first epoch is sized by a hint (at most epochMinKeys), each later
// one for epochMinKeys messages, or an eighth of all the epochs before it
// once they are larger, so that the number of epochs grows only
// logarithmically past about a million messages: 7 for a partition of
// 833 thousand (10 million messages in 12 partitions), about 26 for 8
// million. A new message's lookup checks every layer, one cache miss
// each; a known one stops at the epoch whose entry holds it, usually the
// newest. Each full layer adds about 0.2% of false positives
// (Stats.KnownFalsePositives). The epochs' size balances those against
// the index's compactions, which rewrite the newest epoch's range: at 10
// million messages, epochs of 262,144 let 40% fewer through but wrote 20%
// more, and took 4-5% more CPU; epochs of 65,536 the reverse, and no less
// CPU (docs/PERFORMANCE.md; measured with 10 bits a key).
//
// Each layer is a blocked bloom filter: all of a key's probes fall in one
// 64-byte block, so a check costs one cache miss rather than one per
// probe. At 14 bits a key it gives about 0.2% false positives per full
// layer (filterFalsePositives; a standard bloom filter with 7 probes
// 0.15%, but a blocked one's keys crowd some blocks more than others); 10
// bits 1%, 12 bits 0.4%. A layer is sized for its epoch: the filter is no
// larger than its keys need (the growth by doubling it replaced could take
// twice that). The epochs' size was chosen with 10 bits a key, and
// measured again with 14: epochs of 65,536 then wrote 15% less and let
// 78% more through, for no less CPU (BenchmarkFoldStream at 10M).
//
// 14 bits rather than 10: a false positive is a Pebble lookup of an index
// entry that is not there, 10-20 µs of CPU in a store of 10 million
// messages that is being written and compacted, and new messages, a third
// of the events, check every layer. At 10M messages (BenchmarkFoldStream)
// 10 bits let through 3.2% of new messages, 14 bits 0.65%, and CPU
// profiles of the processor in the second half of a 10M drain put the
// lookups at 4.7-5.9% of its CPU with 10 bits and 1.6% with 14: 2-3% of
// a whole run's CPU saved. The filters take 40% more, 18 MB at 10 million
// messages rather than 13, from the Go heap's share of the processor's
// memory, and its collector took about a point more of the CPU
// (docs/PERFORMANCE.md, "Filters of 14 bits a key").
type keyFilter struct {
	layers []filterLayer // layers[e] is epoch e's
	min    int           // epochMinKeys, or less in tests
}

type filterLayer struct {
	blocks []filterBlock // none for an epoch that holds nothing
	room   int           // keys the layer can still take at filterFalsePositives
	keys   int           // keys the layer was sized for
}

// filterBlock is 512 bits: one cache line.
type filterBlock [8]uint64

const (
	filterBitsPerKey = 14
	// filterFalsePositives is the share of absent keys a full layer lets
	// through at filterBitsPerKey: 0.19% by the expected load of its
	// blocks (keys per block Poisson-distributed, 7 probes in 512 bits).
	filterFalsePositives = 0.002
	filterProbes         = 7       // each takes 9 bits of the probe hash
	epochFirstKeys       = 1 << 16 // the first epoch, without a size hint: 112 KiB
	epochMinKeys         = 1 << 17 // every later one holds at least this many: 224 KiB
	epochShare           = 8       // and at least this share of all the epochs before it
	// maxEpoch bounds the epochs: 8 million messages in a partition take
	// about 26, a billion about 67, so an index key of a larger epoch is
	// corrupt, and the filter never makes one.
	maxEpoch = 1 << 16
)

// newKeyFilter returns a filter whose first epoch is sized for about keys
// messages, at least 1024 (or minKeys, if less); epochs after it hold at
// least minKeys (epochMinKeys if 0).
func newKeyFilter(keys, minKeys int) *keyFilter {
	if minKeys <= 0 {
		minKeys = epochMinKeys
	}
	f := &keyFilter{min: minKeys}
	f.grow(max(keys, min(1024, minKeys)))
	return f
}

// firstEpochKeys is the size of a partition's first epoch for a hint of
// keys messages (0 for none): a small partition gets a small filter, and a
// large one still gets epochs of epochMinKeys.
func firstEpochKeys(keys, minKeys int) int {
	if minKeys <= 0 {
		minKeys = epochMinKeys
	}
	if keys <= 0 {
		return min(epochFirstKeys, minKeys)
	}
	return min(keys, minKeys)
}

// grow begins an epoch sized for about keys messages (none: an empty
// epoch, which holds nothing and takes nothing).
func (f *keyFilter) grow(keys int) {
	l := filterLayer{room: keys, keys: keys}
	if keys > 0 {
		l.blocks = make([]filterBlock, (keys*filterBitsPerKey+511)/512)
	}
	f.layers = append(f.layers, l)
}

// nextEpochKeys returns the size of the epoch after the current ones.
func (f *keyFilter) nextEpochKeys() int {
	total := 0
	for i := range f.layers {
		total += f.layers[i].keys
	}
	return max(f.min, total/epochShare)
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

// block returns the layer's block for wamidHash h; the layer must have
// blocks.
func (l *filterLayer) block(h uint64) *filterBlock {
	i, _ := bits.Mul64(h, uint64(len(l.blocks)))
	return &l.blocks[i]
}

// has reports whether the layer may hold h, whose probeHash is g.
func (l *filterLayer) has(h, g uint64) bool {
	return len(l.blocks) > 0 && l.block(h).has(g)
}

// set adds h to the layer, whatever its room.
func (l *filterLayer) set(h uint64) {
	l.room--
	b, g := l.block(h), probeHash(h)
	for range filterProbes {
		b[g>>6&7] |= 1 << (g & 63)
		g >>= 9
	}
}

// epoch returns the epoch the next add joins.
func (f *keyFilter) epoch() uint32 {
	n := len(f.layers) - 1
	if f.layers[n].room <= 0 && n < maxEpoch {
		n++
	}
	return uint32(n)
}

// add records a message by its wamidHash in the newest epoch, beginning a
// new one if it is full (unless maxEpoch is reached: then the newest takes
// more), and returns the epoch.
func (f *keyFilter) add(h uint64) uint32 {
	if f.layers[len(f.layers)-1].room <= 0 && len(f.layers) <= maxEpoch {
		f.grow(f.nextEpochKeys())
	}
	n := len(f.layers) - 1
	f.layers[n].set(h)
	return uint32(n)
}

// addHere records a message in the newest epoch even past its size, and
// returns the epoch: a Loader writes all its messages' index entries in
// one epoch (its partition's first).
func (f *keyFilter) addHere(h uint64) uint32 {
	n := len(f.layers) - 1
	f.layers[n].set(h)
	return uint32(n)
}

// seal ends the newest epoch: the next add begins another.
func (f *keyFilter) seal() { f.layers[len(f.layers)-1].room = 0 }

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

// filterBuilder rebuilds a partition's filter from its index keys, which
// come in key order: epoch by epoch, in each by hash (learnKeys). Each
// epoch's layer is sized for the hashes it holds; the newest, which goes
// on taking new messages, for as many as the filter would give a new
// epoch, if that is more, unless it is the first: that may be a Loader's,
// sealed, whose tables are in the bottom level, so the partition's next
// message begins another.
type filterBuilder struct {
	f      *keyFilter
	epoch  uint32
	hashes []uint64 // the current epoch's
}

func newFilterBuilder(minKeys int) *filterBuilder {
	if minKeys <= 0 {
		minKeys = epochMinKeys
	}
	return &filterBuilder{f: &keyFilter{min: minKeys}}
}

// add adds an index entry's hash of epoch e, which is at least the last
// one's; false if e is above maxEpoch.
func (fb *filterBuilder) add(e uint32, h uint64) bool {
	if e > maxEpoch {
		return false
	}
	if e != fb.epoch {
		fb.close(len(fb.hashes))
		for uint32(len(fb.f.layers)) < e { // epochs whose every message was lost
			fb.f.grow(0)
		}
		fb.epoch = e
	}
	fb.hashes = append(fb.hashes, h)
	return true
}

// close makes the current epoch's layer, sized for keys.
func (fb *filterBuilder) close(keys int) {
	fb.f.grow(keys)
	l := &fb.f.layers[len(fb.f.layers)-1]
	for _, h := range fb.hashes {
		l.set(h)
	}
	fb.hashes = fb.hashes[:0]
}

// filter returns the filter; nil if no hash was added.
func (fb *filterBuilder) filter() *keyFilter {
	if len(fb.hashes) == 0 && len(fb.f.layers) == 0 {
		return nil
	}
	n := len(fb.hashes)
	if len(fb.f.layers) > 0 {
		n = max(n, fb.f.nextEpochKeys())
	}
	fb.close(n)
	return fb.f
}
