package scripting

import (
	"github.com/flowcheck/flowcheck/aggregate"
	"github.com/flowcheck/flowcheck/alert"
)

// Adopt takes over engaged alerts that another engine raised (a cluster
// worker taking over the hosts of a partition, from the partition's last
// checkpoint): as alerts resumed from the state file, they wait for their
// host, keep their id, first-seen and value, and are released by this
// engine (with their id) when the check stops triggering or the host does
// not come back within the host expiry. An alert of a host this engine
// already evaluates, or a repeat, is skipped; it returns how many were
// taken. Events that are not engaged are ignored.
func (e *Engine) Adopt(evs []alert.Event) int {
	e.runMu.Lock()
	defer e.runMu.Unlock()
	now := e.now()
	n := 0
	for _, ev := range evs {
		if ev.State != alert.Engaged {
			continue
		}
		if e.restore(savedAlert{ID: ev.ID, Check: ev.Check, Host: ev.Host, Value: ev.Value,
			Message: ev.Message, FirstSeen: ev.FirstSeen, LastSeen: ev.LastSeen}, now) {
			n++
		}
	}
	e.metrics.adopted.Add(float64(n))
	if n > 0 {
		e.store.dirty.Store(true)
	}
	return n
}

// Forget drops the state of hosts handed to another engine (a cluster
// worker's revoked partitions) without releasing their alerts: the new
// owner adopts them and releases them when they end.
func (e *Engine) Forget(keys []aggregate.HostKey) {
	for _, k := range keys {
		h := e.hosts.remove(k)
		if h == nil {
			h = e.hosts.pending.take(k)
		}
		if h != nil {
			h.mu.Lock()
			h.dead = true
			e.uncount(h)
			h.mu.Unlock()
		}
	}
	if len(keys) > 0 {
		e.store.dirty.Store(true)
	}
}
