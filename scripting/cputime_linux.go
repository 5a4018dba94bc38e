//go:build linux

package scripting

import (
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// pinThread locks the calling goroutine (a tick worker) to its OS thread and
// returns the thread's id, whose CPU clock the watchdog reads; unpin undoes
// it.
func pinThread() int64 {
	runtime.LockOSThread()
	return int64(unix.Gettid())
}

func unpinThread() { runtime.UnlockOSThread() }

// threadCPU is the CPU time thread tid has used; false when it cannot be
// read (the watchdog then counts wall time). The clock id is what
// pthread_getcpuclockid returns on Linux: MAKE_THREAD_CPUCLOCK(tid,
// CPUCLOCK_SCHED).
func threadCPU(tid int64) (time.Duration, bool) {
	if tid <= 0 {
		return 0, false
	}
	id := int32(^uint32(tid)<<3) | 6
	var ts unix.Timespec
	if err := unix.ClockGettime(id, &ts); err != nil {
		return 0, false
	}
	return time.Duration(ts.Nano()), true
}
