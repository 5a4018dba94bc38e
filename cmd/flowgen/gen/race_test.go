//go:build race

package gen

// raceEnabled: the race detector's instrumentation of raw syscalls
// allocates, so allocation counts are only meaningful without it.
const raceEnabled = true
