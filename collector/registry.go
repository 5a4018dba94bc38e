package collector

import (
	"log/slog"
	"net/netip"
	"slices"
	"time"
)

// Exporters describes every tracked exporter, sorted by address.
func (c *Component) Exporters() []ExporterInfo {
	c.mu.RLock()
	list := make([]*exporterState, 0, len(c.exporters))
	for _, e := range c.exporters {
		list = append(list, e)
	}
	c.mu.RUnlock()
	out := make([]ExporterInfo, 0, len(list))
	for _, e := range list {
		out = append(out, e.info())
	}
	slices.SortFunc(out, func(a, b ExporterInfo) int { return a.Address.Compare(b.Address) })
	return out
}

func (c *Component) allowed(a netip.Addr) bool {
	if len(c.allow) == 0 {
		return true
	}
	for _, p := range c.allow {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// known returns the state of a tracked exporter, or nil.
func (c *Component) known(a netip.Addr) *exporterState {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.exporters[a]
}

// exporter returns the state of an exporter, creating it within the
// exporters.max cap (evicting a stale exporter at the cap if there is one),
// and the number of exporters tracked when it created it (0 when it did
// not); nil when the cap is reached.
func (c *Component) exporter(a netip.Addr, now time.Time) (*exporterState, int) {
	if e := c.known(a); e != nil {
		return e, 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.exporters[a]; e != nil {
		return e, 0
	}
	if len(c.exporters) >= c.config.Exporters.Max && !c.evictStale(now) {
		return nil, 0
	}
	label := a.String()
	e := &exporterState{
		c:           c,
		addr:        a,
		label:       label,
		m:           c.metrics.forExporter(label),
		defaultRate: c.config.Sampling.Default,
		templates:   make(map[tmplKey]*tmplEntry),
		domains:     make(map[tmplScope]*tmplDomain),
		sampling:    make(map[samplerKey]uint32),
		sysInit:     make(map[uint32]time.Time),
		// Seen now, before it is published: a sweep must not take
		// it for idle before its first datagram is decoded.
		lastSeen: now,
	}
	for _, o := range c.overrides {
		if o.prefix.Contains(a) {
			if o.defRate != 0 {
				e.defaultRate = o.defRate
			}
			e.overrideRate = o.override
			break
		}
	}
	c.exporters[a] = e
	c.metrics.exporters.Set(float64(len(c.exporters)))
	return e, len(c.exporters)
}

// admit returns the locked state of an exporter for the decode of one
// datagram, nil at the exporters.max cap. An exporter is evicted only while
// its lock is free, so one evicted between lookup and lock is looked up
// again (and created afresh).
func (c *Component) admit(a netip.Addr, now time.Time) *exporterState {
	for {
		e, created := c.exporter(a, now)
		if e == nil {
			return nil
		}
		if created > 0 {
			// Logged here, not under c.mu. Rate-limited per exporter:
			// spoofed senders are bounded by exporters.max.
			c.logs.LogAt(now, slog.LevelInfo, "new\x00"+e.label, "new exporter", "exporter", e.label, "exporters", created)
		}
		e.mu.Lock()
		if !e.evicted {
			return e
		}
		e.mu.Unlock()
	}
}

// evictStale makes room at the cap: it evicts the least recently seen
// exporter silent for longer than templates.lifetime, and tells whether it
// found one. c.mu is held.
func (c *Component) evictStale(now time.Time) bool {
	if now.Before(c.noStaleBefore) {
		return false
	}
	lifetime := c.config.Templates.Lifetime
	var oldest *exporterState
	var oldestSeen time.Time
	for _, e := range c.exporters {
		if !e.mu.TryLock() {
			continue // being decoded: seen just now
		}
		seen := e.lastSeen
		e.mu.Unlock()
		if oldest == nil || seen.Before(oldestSeen) {
			oldest, oldestSeen = e, seen
		}
	}
	if oldest == nil || now.Sub(oldestSeen) <= lifetime {
		if oldest != nil {
			c.noStaleBefore = oldestSeen.Add(lifetime)
		}
		return false
	}
	if !oldest.mu.TryLock() {
		return false
	}
	c.evict(oldest, "cap", now)
	oldest.mu.Unlock()
	return true
}

// maybeSweep runs the idle sweep when receive time has reached it; one
// datagram at a time wins the sweep.
func (c *Component) maybeSweep(now time.Time) {
	next := c.nextSweep.Load()
	if now.UnixNano() < next || !c.nextSweep.CompareAndSwap(next, now.Add(c.sweepEvery).UnixNano()) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.exporters {
		// An exporter's state belongs to the worker decoding it: one
		// whose lock is taken is busy, hence not idle.
		if !e.mu.TryLock() {
			continue
		}
		if now.Sub(e.lastSeen) > c.config.Exporters.IdleTimeout {
			c.evict(e, "idle", now)
		}
		e.mu.Unlock()
	}
}

// evict forgets an exporter with all its state and metric series. c.mu and
// e.mu are held.
func (c *Component) evict(e *exporterState, reason string, now time.Time) {
	delete(c.exporters, e.addr)
	e.evicted = true
	c.metrics.exporters.Set(float64(len(c.exporters)))
	c.metrics.evictions.WithLabelValues(reason).Inc()
	c.metrics.evictedPending.Add(float64(len(e.pending)))
	c.metrics.forget(e.label)
	c.logs.LogAt(now, slog.LevelInfo, "evict\x00"+e.label, "exporter forgotten", "exporter", e.label, "reason", reason,
		"last_seen", e.lastSeen, "templates", len(e.templates), "pending_sets", len(e.pending), "pending_bytes", e.pendingBytes)
}
