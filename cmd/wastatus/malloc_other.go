//go:build !cgo || !linux

package main

// mallocArenaLimit returns 0: without cgo Pebble's memory is Go memory, and
// off Linux there is no glibc whose arenas to limit (malloc_cgo.go).
func mallocArenaLimit() int { return 0 }
