package aggregate

import "time"

// sweepInterval is how often (in clock time) Advance looks for idle hosts.
const sweepInterval = time.Second

// Advance decides the conversations whose reply window ended by now and,
// at most once per second of clock time, expires idle hosts. The pipeline
// calls it about every second live, after each datagram in replay, and with
// now + reply window + 1s at the end of a replay.
func (t *HostTable) Advance(now time.Time) {
	n := now.UnixNano()
	sc := t.scratch.Get().(*applyScratch)
	defer t.scratch.Put(sc)
	sc.decisions = sc.decisions[:0]
	for i := range t.trackers {
		tl := &t.trackers[i]
		tl.mu.Lock()
		sc.decisions = tl.t.expire(n, sc.decisions)
		tl.mu.Unlock()
	}
	t.commit(sc, sc.decisions)
	if n-t.lastSweep.Load() >= int64(sweepInterval) {
		t.sweep(n)
	}
}

// sweep removes the hosts idle for longer than their timeout and tells
// the expiry listener, outside the locks.
func (t *HostTable) sweep(now int64) {
	t.sweepMu.Lock()
	defer t.sweepMu.Unlock()
	if now-t.lastSweep.Load() < int64(sweepInterval) {
		return
	}
	t.lastSweep.Store(now)
	var expired []HostKey
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		sh.hosts.each(func(h *host) bool {
			idle := t.idleRemote
			if h.flags&flagLocal != 0 {
				idle = t.idleLocal
			}
			if now-h.lastSeen > idle {
				expired = append(expired, h.key.hostKey())
				return true
			}
			return false
		})
		sh.mu.Unlock()
	}
	if len(expired) == 0 {
		return
	}
	t.count.Add(-int64(len(expired)))
	t.metrics.hostsExpired.Add(float64(len(expired)))
	if t.expiry != nil {
		for _, k := range expired {
			t.expiry.HostExpired(k)
		}
	}
}

// Drop removes the hosts for which drop returns true, without telling the
// expiry listener, and returns their keys: a cluster worker forgets the
// hosts of the partitions it no longer owns, whose new owner carries on
// their state (and alerts). Conversations pending in the reply tracker
// stay; those decided later commit to nothing for the dropped hosts.
func (t *HostTable) Drop(drop func(HostKey) bool) []HostKey {
	var dropped []HostKey
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		sh.hosts.each(func(h *host) bool {
			if k := h.key.hostKey(); drop(k) {
				dropped = append(dropped, k)
				return true
			}
			return false
		})
		sh.mu.Unlock()
	}
	t.count.Add(-int64(len(dropped)))
	return dropped
}
