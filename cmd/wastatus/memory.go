package main

import (
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"

	"github.com/wastatus/wastatus/state"
)

// A processor's memory is four parts, and --memory-limit divides it
// between them. Measured at the peak of `wastatus bench --mode processor`
// (1M events over 300k messages, a real broker, these defaults), of 245
// MiB resident:
//
//   - Pebble's block cache (--cache-bytes, 32 MiB, full by then) and its
//     two memtables (--memtable-bytes, 32 MiB each): 98 MiB. Built
//     with cgo, Pebble allocates them with C malloc, outside the Go heap,
//     and one malloc arena (malloc_cgo.go) keeps the C heap at the cache's
//     size; built without cgo, they are Go memory.
//   - The Go heap: 104 MiB, of which about 70 live at most. The live part
//     is the partition workers' store batches and Pebble batches, kept
//     across transactions, and the records of the transaction being
//     folded and of the next fetch (the processor's fetch limits). The
//     rest is garbage the collector has not reclaimed yet. (Since the
//     batches keep only what their last transaction needed, the live heap
//     after a collection averaged 57-59 MB with 10 million messages,
//     where it was 81; that was with the known-messages filters at 13 MB.
//     They take 18 MB since they have 14 bits a message, so about 5 MB
//     more now.)
//   - The binary's mapped code and data: 31 MiB.
//   - Thread stacks and the rest: a few MiB.
//
// With GOGC=100 alone the Go heap grows to twice its live size before a
// collection, so its peak is twice what it needs. The Go runtime's soft
// memory limit (debug.SetMemoryLimit, as GOMEMLIMIT) is set to what the
// limit leaves for Go, and the collector runs more often as the heap nears
// it. It is soft: a live heap beyond it is never an out-of-memory error,
// only more collections (the runtime caps them at about half the CPU), so
// the limit must leave Go about twice its live heap: at 256 MiB Go gets
// 120 MiB, and the bench's processor collected 60 times instead of 17 for
// 5-13% more CPU per event (at 88 MiB it collected all the time and
// folded a third as many events per second). An explicit GOMEMLIMIT wins
// over the flag.
const (
	// defaultMemoryLimit is --memory-limit's default: issue 7's target
	// for a processor with 10 million messages in state. Pebble's cache
	// is full long before, and fetches and transactions do not grow with
	// the messages in state; the store's filter of known messages
	// (state's keyFilter: 31 MiB at 10 million when this default was
	// set, 13 MB once it was blocked and kept in epochs, 18 MB at 14
	// bits a message) does, and at 10 million the live heap then reached
	// the Go limit: peak RSS 275 MiB, a fifth of the CPU in collections.
	defaultMemoryLimit = 256 << 20
	// defaultCacheBytes is --cache-bytes' default. Half of the 64 MiB it
	// was: a processor's reads are mostly of messages it touched recently,
	// which the memtables and the OS's page cache hold too, and with 64 MiB
	// the Go heap's share of 256 MiB made the collector run all the time.
	// The bench measured the same events per second with both.
	defaultCacheBytes = 32 << 20
	// defaultMemTableBytes is --memtable-bytes' default: the store's own
	// (state.DefaultMemTableSize). Memtables of 16 MiB, with Go's limit
	// given the 32 MiB they free, kept the collections per million events
	// flat over a 10M-message drain (37 to 34, against 39 to 63), and took
	// as much CPU over six rounds each: the collector's saving went
	// elsewhere, likely to the block cache, which Pebble charges memtables
	// to and which then held 16 MiB less while one memtable was live
	// (docs/PERFORMANCE.md, "Memtables of 16 MiB"). The flag is for a
	// --memory-limit below 200 MiB, which with the default cache and two
	// of these would leave Go less than minGoMemory.
	defaultMemTableBytes = int64(state.DefaultMemTableSize)
	// minMemTableBytes is the least --memtable-bytes accepted, a bound
	// for typing mistakes: a 1 MiB memtable already fills about once a
	// transaction (4 and 8 MiB measured slower, processor/doc.go).
	minMemTableBytes = 1 << 20
	// memoryReserve is the part of the limit that is neither Pebble's nor
	// the Go runtime's: the mapped binary (31 MiB) and thread stacks,
	// with room for a larger binary.
	memoryReserve = 40 << 20
	// minGoMemory is the least Go memory limit accepted: below it the
	// collector would run all the time.
	minGoMemory = 64 << 20
)

// pebbleMemory is what the store allocates for its cache and memtables
// (state.Options: about CacheSize + 2*MemTableSize).
func pebbleMemory(cacheBytes, memTableBytes int64) int64 {
	return cacheBytes + 2*memTableBytes
}

// goMemoryLimit returns the Go runtime's soft memory limit for a process
// that should stay within total bytes, with a Pebble store of pebble bytes
// that lives in the Go heap or not. A total of zero or less means no
// limit: it returns -1.
func goMemoryLimit(total, pebble int64, pebbleInGoHeap bool) (int64, error) {
	if total <= 0 {
		return -1, nil
	}
	limit := total - memoryReserve
	if !pebbleInGoHeap {
		limit -= pebble
	}
	if limit < minGoMemory {
		return 0, fmt.Errorf("--memory-limit %d leaves %d bytes for Go after Pebble's %d (--cache-bytes and two of --memtable-bytes) and %d for the binary; Go needs at least %d: raise --memory-limit, or lower --cache-bytes or --memtable-bytes",
			total, limit, pebble, int64(memoryReserve), int64(minGoMemory))
	}
	return limit, nil
}

// applyMemoryLimit sets the Go runtime's soft memory limit for a process
// within total bytes whose store caches cacheBytes and has memtables of
// memTableBytes, unless GOMEMLIMIT is set.
func applyMemoryLimit(total, cacheBytes, memTableBytes int64, log *slog.Logger) error {
	inGo := !cgoBuild()
	pebble := pebbleMemory(cacheBytes, memTableBytes)
	limit, err := goMemoryLimit(total, pebble, inGo)
	if err != nil {
		return err
	}
	if env, ok := os.LookupEnv("GOMEMLIMIT"); ok {
		log.Info("go memory limit from GOMEMLIMIT", "gomemlimit", env)
		return nil
	}
	if limit < 0 {
		return nil
	}
	debug.SetMemoryLimit(limit)
	log.Info("memory limit", "total_bytes", total, "go_bytes", limit, "pebble_bytes", pebble, "pebble_in_go_heap", inGo, "malloc_arenas", mallocArenaLimit())
	return nil
}

// cgoBuild reports whether the binary was built with cgo, in which case
// Pebble allocates its cache and memtables with C malloc.
func cgoBuild() bool {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range info.Settings {
		if s.Key == "CGO_ENABLED" {
			return s.Value == "1"
		}
	}
	return false
}
