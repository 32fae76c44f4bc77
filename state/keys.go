package state

import (
	"encoding/binary"
	"fmt"

	"github.com/cespare/xxhash/v2"
)

// Key layout. Every key of a partition starts with the partition number (4
// bytes, big-endian), so DropPartition is one range delete of
// [partition, partition+1). A kind byte follows:
//
//	partition | 0x01                           next input offset (varint)
//	partition | 0x02 | xxhash64(wamid) | wamid   message record (state and history)
//
// The 8-byte big-endian xxhash of the wamid comes before the wamid because
// wamids share a long common prefix ("wamid.HBgL..."): with the hash first,
// keys of different messages differ within a few bytes after the kind, so
// comparisons in memtables, index blocks and seeks stop early, and messages
// spread evenly. The wamid itself keeps keys exact whatever the hash. The
// format version key sits outside every partition: its first byte, 0xff, is
// above any non-negative int32's.
const (
	kindOffset  byte = 0x01
	kindMessage byte = 0x02
)

// formatKey holds the on-disk format version; formatVersion is the version
// this code reads and writes. Bump it on any change to the key layout, the
// record envelope, or the history entry encoding.
const (
	formatKey     = "\xffwastatus.state.format"
	formatVersion = 1
)

// checkPartition rejects a negative partition.
func checkPartition(p int32) error {
	if p < 0 {
		return fmt.Errorf("%w: %d", ErrInvalidPartition, p)
	}
	return nil
}

// appendPartition appends the partition prefix.
func appendPartition(dst []byte, p int32) []byte {
	return binary.BigEndian.AppendUint32(dst, uint32(p))
}

// partitionBounds returns the range [lo, hi) holding every key of p.
func partitionBounds(p int32) (lo, hi []byte) {
	return appendPartition(nil, p), binary.BigEndian.AppendUint32(nil, uint32(p)+1)
}

// kindBounds returns the range [lo, hi) holding p's keys of one kind.
func kindBounds(p int32, kind byte) (lo, hi []byte) {
	return append(appendPartition(nil, p), kind), append(appendPartition(nil, p), kind+1)
}

// appendOffsetKey appends p's next-offset key.
func appendOffsetKey(dst []byte, p int32) []byte {
	return append(appendPartition(dst, p), kindOffset)
}

// wamidHash is the hash placed before the wamid in message and history keys.
func wamidHash(wamid string) uint64 { return xxhash.Sum64String(wamid) }

// appendMessageKey appends the key of wamid's record (h is wamidHash(wamid)).
func appendMessageKey(dst []byte, p int32, h uint64, wamid string) []byte {
	dst = append(appendPartition(dst, p), kindMessage)
	dst = binary.BigEndian.AppendUint64(dst, h)
	return append(dst, wamid...)
}
