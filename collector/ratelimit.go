package collector

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// logLimiter logs a message at most once per interval per key, and says
// how many were suppressed in between, so that a flood of bad packets
// cannot flood the log.
type logLimiter struct {
	logger   *slog.Logger
	interval time.Duration
	mu       sync.Mutex
	last     map[string]*limitEntry
}

type limitEntry struct {
	at         time.Time
	suppressed uint64
}

// maxLimiterKeys bounds the limiter's memory: keys are exporter × reason,
// both bounded, but a reset is cheaper than an LRU and only costs one extra
// log line per key.
const maxLimiterKeys = 4096

func newLogLimiter(logger *slog.Logger, interval time.Duration) *logLimiter {
	return &logLimiter{logger: logger, interval: interval, last: make(map[string]*limitEntry)}
}

// Warn logs msg with args at warning level unless key was logged less
// than interval ago.
func (l *logLimiter) Warn(now time.Time, key, msg string, args ...any) {
	l.log(slog.LevelWarn, now, key, msg, args...)
}

// Info is Warn at info level, for events that are normal but worth
// telling.
func (l *logLimiter) Info(now time.Time, key, msg string, args ...any) {
	l.log(slog.LevelInfo, now, key, msg, args...)
}

func (l *logLimiter) log(level slog.Level, now time.Time, key, msg string, args ...any) {
	l.mu.Lock()
	e, ok := l.last[key]
	if ok && now.Sub(e.at) < l.interval && now.Sub(e.at) >= 0 {
		e.suppressed++
		l.mu.Unlock()
		return
	}
	var suppressed uint64
	if ok {
		suppressed = e.suppressed
		e.at, e.suppressed = now, 0
	} else {
		if len(l.last) >= maxLimiterKeys {
			clear(l.last)
		}
		l.last[key] = &limitEntry{at: now}
	}
	l.mu.Unlock()
	if suppressed > 0 {
		args = append(args, "suppressed", suppressed)
	}
	l.logger.Log(context.Background(), level, msg, args...)
}
