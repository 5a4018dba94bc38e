//go:build !linux

package scripting

import "time"

// pinThread does nothing where threads have no readable CPU clock: the
// watchdog counts wall time instead.
func pinThread() int64 { return 0 }

func unpinThread() {}

// threadCPU is unavailable here.
func threadCPU(int64) (time.Duration, bool) { return 0, false }
