//go:build !race

package gen

// raceEnabled: see race_test.go.
const raceEnabled = false
