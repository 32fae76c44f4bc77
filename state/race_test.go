//go:build race

package state

// raceEnabled reports whether the race detector is on: it changes what
// escapes to the heap, so allocation counts hold only without it.
const raceEnabled = true
