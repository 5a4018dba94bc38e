package collector

import (
	"context"
	"log/slog"
	"net/netip"
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

// deniedLog logs the datagrams of senders outside exporters.allow: a line
// for a sender's first datagram in each interval, saying how many of its
// datagrams were left untold since its previous line. Sources are
// spoofable, so it tells at most maxDeniedSenders senders apart; the
// datagrams of any others are told together, in one line per interval.
type deniedLog struct {
	logger   *slog.Logger
	interval time.Duration
	mu       sync.Mutex
	senders  map[netip.Addr]*limitEntry
	// others counts the datagrams of senders beyond maxDeniedSenders.
	others limitEntry
	// pruned is when senders was last cleared of senders silent for an
	// interval: at most once an interval, so that a flood of new
	// senders does not scan the map for each datagram.
	pruned time.Time
}

// maxDeniedSenders bounds the senders told apart, and so the lines logged
// per interval.
const maxDeniedSenders = 64

func newDeniedLog(logger *slog.Logger, interval time.Duration) *deniedLog {
	return &deniedLog{logger: logger, interval: interval, senders: make(map[netip.Addr]*limitEntry)}
}

// due tells whether e, last logged at e.at, is to be logged now; if not,
// it counts one more datagram untold.
func (l *deniedLog) due(e *limitEntry, now time.Time) bool {
	if since := now.Sub(e.at); since >= 0 && since < l.interval {
		e.suppressed++
		return false
	}
	return true
}

// dropped records a datagram of sender dropped at now.
func (l *deniedLog) dropped(sender netip.Addr, now time.Time) {
	l.mu.Lock()
	e := l.senders[sender]
	if e == nil && len(l.senders) >= maxDeniedSenders && now.Sub(l.pruned) >= l.interval {
		l.pruned = now
		for a, s := range l.senders {
			if now.Sub(s.at) >= l.interval {
				// Its untold datagrams are told with the others'.
				l.others.suppressed += s.suppressed
				delete(l.senders, a)
			}
		}
	}
	switch {
	case e != nil:
		if !l.due(e, now) {
			l.mu.Unlock()
			return
		}
		untold := e.suppressed
		e.at, e.suppressed = now, 0
		l.mu.Unlock()
		l.log("datagram from a sender outside collector.exporters.allow dropped", untold, "sender", sender)
	case len(l.senders) < maxDeniedSenders:
		l.senders[sender] = &limitEntry{at: now}
		l.mu.Unlock()
		l.log("datagram from a sender outside collector.exporters.allow dropped", 0, "sender", sender)
	default:
		if !l.due(&l.others, now) {
			l.mu.Unlock()
			return
		}
		untold := l.others.suppressed
		l.others.at, l.others.suppressed = now, 0
		l.mu.Unlock()
		l.log("datagram from a sender outside collector.exporters.allow dropped (more senders than are logged one by one: their datagrams are told together)",
			untold, "sender", sender, "senders_told_apart", maxDeniedSenders)
	}
}

func (l *deniedLog) log(msg string, untold uint64, args ...any) {
	if untold > 0 {
		args = append(args, "suppressed", untold)
	}
	l.logger.Warn(msg, args...)
}
