//go:build race

package collector

// raceEnabled tells whether the race detector is on: it allocates where
// the code does not.
const raceEnabled = true
