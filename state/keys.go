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
//	partition | 0x01                            next input offset (varint)
//	partition | 0x03 | epoch | xxhash64(wamid)  index: the seqs of the messages with that hash (uvarints)
//	partition | 0x04 | seq                      message record (state and history; it holds the wamid)
//
// A message's seq (8 bytes, big-endian) is its partition's count of
// messages when it was first written: message records are in the order
// their messages first arrived, and a message's later statuses, which come
// within minutes of its first but for a few late retries, rewrite a narrow
// range of recent keys. Pebble's compactions then move the bulk of the
// records down the tree without rewriting it, however many messages are
// stored. With records keyed by the wamid's hash, as in format 1, every
// flush overlapped the whole key space, and at 10 million messages each
// record was rewritten about twelve times (docs/PERFORMANCE.md).
//
// The index finds a wamid's seq. Its entries are written once per message
// and are small (17-byte keys, one uvarint). Their hashes are in random
// order, so an index keyed by the hash alone, as in format 2, was
// rewritten about ten times by compactions at 10 million messages: half of
// all they wrote. So the hash follows an epoch (4 bytes, big-endian): the
// epoch of the partition's filter of known messages that the message
// joined when it was first written (filter.go). New entries then fall in
// the newest epoch's narrow range, as new records do, and a lookup reads
// the entries of just the epochs whose filter layer may hold the wamid.
// Within that range they still come in random order, and compactions
// rewrite it until the epoch is full. Writing an epoch's entries once,
// sorted, when it is sealed (pending entries by seq until then, a table in
// memory to find them) was tried: compactions took 29% less CPU at 10
// million messages, and the table's 8.4 MiB of live heap and the seals
// cost the processor as much (docs/PERFORMANCE.md, "The open epoch's
// index written once").
//
// Within an epoch the key is the hash alone: wamids with one hash share an
// entry holding all their seqs, and the records' wamids tell them apart
// (ten million messages over 12 partitions hold such a pair about once in
// four million stores). The hash, not the wamid, keys the entry because
// wamids share a long common prefix ("wamid.HBgL..."): index keys of
// different messages differ within a few bytes, so comparisons stop early.
//
// The format version key sits outside every partition: its first byte, 0xff,
// is above any non-negative int32's.
const (
	kindOffset byte = 0x01
	kindIndex  byte = 0x03
	kindRecord byte = 0x04
)

// formatKey holds the on-disk format version; formatVersion is the version
// this code reads and writes. Bump it on any change to the key layout, the
// record envelope, or the history entry encoding. A store of an earlier
// version, formatVersion1 and up, is emptied at Open (see Store.upgrade).
const (
	formatKey      = "\xffwastatus.state.format"
	formatVersion  = 3
	formatVersion1 = 1 // message records keyed by wamid hash and wamid
	formatVersion2 = 2 // index entries keyed by wamid hash alone
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

// wamidHash is the hash that keys a message's index entry.
func wamidHash(wamid string) uint64 { return xxhash.Sum64String(wamid) }

// appendIndexKey appends the key of the index entry of epoch e's messages
// with wamidHash h.
func appendIndexKey(dst []byte, p int32, e uint32, h uint64) []byte {
	dst = append(appendPartition(dst, p), kindIndex)
	dst = binary.BigEndian.AppendUint32(dst, e)
	return binary.BigEndian.AppendUint64(dst, h)
}

// indexKeyLen is the length of an index key.
const indexKeyLen = 17

// appendRecordKey appends the key of the record of the message with seq.
func appendRecordKey(dst []byte, p int32, seq uint64) []byte {
	dst = append(appendPartition(dst, p), kindRecord)
	return binary.BigEndian.AppendUint64(dst, seq)
}

// recordSeq returns the seq of a record key of p, false if key is not one.
func recordSeq(key []byte, p int32) (uint64, bool) {
	if len(key) != 13 || binary.BigEndian.Uint32(key) != uint32(p) || key[4] != kindRecord {
		return 0, false
	}
	return binary.BigEndian.Uint64(key[5:]), true
}

// indexEntry returns the epoch and hash of an index key of p, false if key
// is not one.
func indexEntry(key []byte, p int32) (e uint32, h uint64, ok bool) {
	if len(key) != indexKeyLen || binary.BigEndian.Uint32(key) != uint32(p) || key[4] != kindIndex {
		return 0, 0, false
	}
	return binary.BigEndian.Uint32(key[5:]), binary.BigEndian.Uint64(key[9:]), true
}

// appendIndexSeqs appends the seqs of an index entry's value (one or more
// uvarints) to dst.
func appendIndexSeqs(dst []uint64, val []byte) ([]uint64, error) {
	if len(val) == 0 {
		return dst, fmt.Errorf("%w: empty index entry", ErrCorrupt)
	}
	for len(val) > 0 {
		seq, n := binary.Uvarint(val)
		if n <= 0 {
			return dst, fmt.Errorf("%w: index entry %x", ErrCorrupt, val)
		}
		dst, val = append(dst, seq), val[n:]
	}
	return dst, nil
}
