package scripting

import (
	"sort"
	"sync"
	"time"

	"github.com/flowcheck/flowcheck/clock"
)

// logLimiter lets one log line per key through per period, and counts the
// lines it held back. Its map is bounded by the number of checks.
type logLimiter struct {
	clock  clock.Clock
	period time.Duration

	mu         sync.Mutex
	last       map[string]time.Time
	suppressed map[string]int
}

func newLogLimiter(c clock.Clock, period time.Duration) *logLimiter {
	return &logLimiter{clock: c, period: period, last: map[string]time.Time{}, suppressed: map[string]int{}}
}

// allow reports whether a line for key may be logged now, and how many were
// held back since the last one.
func (l *logLimiter) allow(key string) (bool, int) {
	now := l.clock.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if last, ok := l.last[key]; ok && now.Sub(last) < l.period {
		l.suppressed[key]++
		return false, 0
	}
	n := l.suppressed[key]
	l.last[key] = now
	delete(l.suppressed, key)
	return true, n
}

// sortedKeys returns a map's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
