// Package ratelog is the pipeline's one rate-limited logger: at most one
// line per key per period, the next line telling how many were held back,
// so that a flood of bad input or a long outage cannot flood the log.
package ratelog

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/flowcheck/flowcheck/clock"
)

// Logger logs through an slog.Logger at most one line per key per period
// of its clock. It tells at most maxKeys keys apart; the lines of any
// others share one key, and say so. It is safe for concurrent use, and a
// line held back allocates nothing.
type Logger[K comparable] struct {
	logger  *slog.Logger
	clock   clock.Clock
	period  time.Duration
	maxKeys int
	// keyAttr, when set, names the key's attribute on each line.
	keyAttr string

	mu   sync.Mutex
	keys map[K]*entry
	// shared stands for the keys beyond maxKeys.
	shared entry
	// pruned is when keys was last cleared of keys silent for a period:
	// at most once a period, so that a flood of new keys does not scan
	// the map for each line.
	pruned time.Time
}

type entry struct {
	at         time.Time
	suppressed uint64
}

// New returns a Logger over logger that lets one line per key through
// per period of clk, and tells apart at most maxKeys keys (at least 1).
func New[K comparable](logger *slog.Logger, clk clock.Clock, period time.Duration, maxKeys int) *Logger[K] {
	return &Logger[K]{logger: logger, clock: clk, period: period, maxKeys: max(maxKeys, 1), keys: make(map[K]*entry)}
}

// KeyAs makes each line let through carry its key as attribute name, and
// returns l. For a key that is what the line is about (a sender address):
// passed in args, a value that is not a string or a number would be boxed,
// allocating for a line held back too.
func (l *Logger[K]) KeyAs(name string) *Logger[K] {
	l.keyAttr = name
	return l
}

// Log logs msg with args at level, with "suppressed" (lines held back
// since key's previous line) when some were, unless key was logged less
// than a period ago.
func (l *Logger[K]) Log(level slog.Level, key K, msg string, args ...any) {
	l.LogAt(l.clock.Now(), level, key, msg, args...)
}

// LogAt is Log at time now, for callers that read the clock once for a
// batch, or go by capture time.
func (l *Logger[K]) LogAt(now time.Time, level slog.Level, key K, msg string, args ...any) {
	l.mu.Lock()
	e, shared := l.find(key, now)
	if since := now.Sub(e.at); !e.at.IsZero() && since >= 0 && since < l.period {
		e.suppressed++
		l.mu.Unlock()
		return
	}
	suppressed := e.suppressed
	e.at, e.suppressed = now, 0
	l.mu.Unlock()
	if l.keyAttr != "" {
		args = append([]any{l.keyAttr, key}, args...)
	}
	if suppressed > 0 {
		args = append(args, "suppressed", suppressed)
	}
	if shared {
		args = append(args, "keys_told_apart", l.maxKeys)
	}
	l.logger.Log(context.Background(), level, msg, args...)
}

// find returns key's entry, made if there is room, else the shared one.
// l.mu is held.
func (l *Logger[K]) find(key K, now time.Time) (*entry, bool) {
	if e := l.keys[key]; e != nil {
		return e, false
	}
	if len(l.keys) >= l.maxKeys && now.Sub(l.pruned) >= l.period {
		l.pruned = now
		for k, e := range l.keys {
			if now.Sub(e.at) >= l.period {
				// Its untold lines are told with the shared key's.
				l.shared.suppressed += e.suppressed
				delete(l.keys, k)
			}
		}
	}
	if len(l.keys) >= l.maxKeys {
		return &l.shared, true
	}
	e := &entry{}
	l.keys[key] = e
	return e, false
}
