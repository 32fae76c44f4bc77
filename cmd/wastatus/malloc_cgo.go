//go:build cgo && linux

package main

// #include <malloc.h>
// #include <stdlib.h>
//
// static int wastatus_malloc_arenas;
//
// // Runs when the binary is loaded, before the Go runtime starts a thread:
// // glibc fixes its arena limit once it has made more than eight arenas,
// // and every thread that starts another makes one, so a limit set later
// // (from main, say) leaves the arenas made until then in use.
// __attribute__((constructor)) static void wastatus_limit_malloc_arenas(void) {
// #ifdef M_ARENA_MAX
// 	if (getenv("MALLOC_ARENA_MAX") == NULL && mallopt(M_ARENA_MAX, 1) == 1) {
// 		wastatus_malloc_arenas = 1;
// 	}
// #endif
// }
//
// static int wastatus_malloc_arena_limit(void) { return wastatus_malloc_arenas; }
import "C"

// The binary limits glibc's malloc to one arena (M_ARENA_MAX), when it is
// loaded, unless MALLOC_ARENA_MAX is set. By default glibc keeps up to
// eight arenas per core, one more for each thread that found the others
// busy, and each holds on to the memory freed in it: Pebble's cache blocks
// are allocated and freed from many threads, and the arenas' slack grew
// larger than the cache itself. Measured with `wastatus bench` (1M events,
// a real broker, a 32 MiB cache): peak RSS 305 MiB with glibc's default,
// 294 with two arenas, 242 with one, whose C heap was then the cache's
// size; events per second did not change. Pebble mallocs only on cache
// misses and memtable rotations, so one arena's lock is not contended.
// Other C libraries (musl) have no such arenas and no M_ARENA_MAX.

// mallocArenaLimit returns the arena limit the binary set when it was
// loaded, or 0 if it set none.
func mallocArenaLimit() int { return int(C.wastatus_malloc_arena_limit()) }
