package scripting

import (
	"sync"
	"sync/atomic"

	"github.com/flowcheck/flowcheck/aggregate"
	"github.com/flowcheck/flowcheck/alert"
)

// quietTicks is how many ticks a host handed over from another engine
// (Quiet) is checked without new alerts or releases: the shipped checks
// count growth over window_ticks = 2 runs, and until a host has that many
// runs here their base is zero, so its whole rebuilt history would look
// like growth.
const quietTicks = 2

// quietHosts are the hosts Quiet named, with the ticks they stay quiet.
type quietHosts struct {
	n  atomic.Int64 // len(m), read without the lock: mostly 0
	mu sync.Mutex
	m  map[aggregate.HostKey]int
}

// has tells whether k is quiet.
func (q *quietHosts) has(k aggregate.HostKey) bool {
	if q.n.Load() == 0 {
		return false
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.m[k] > 0
}

// tick counts a tick down for every quiet host.
func (q *quietHosts) tick() {
	if q.n.Load() == 0 {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	for k, n := range q.m {
		if n <= 1 {
			delete(q.m, k)
		} else {
			q.m[k] = n - 1
		}
	}
	q.n.Store(int64(len(q.m)))
}

// Quiet makes the next quietTicks ticks on the hosts keys warm-up runs:
// their checks run and keep their host_info.state, but a check that
// triggers engages no new alert (an adopted one is updated) and one that
// does not releases nothing. A cluster worker calls it for the hosts of a
// partition it has just rebuilt: their counters hold the whole rebuilt
// window, which a check's first runs would take for fresh growth, and
// re-alert a condition the previous owner had already seen end.
func (e *Engine) Quiet(keys []aggregate.HostKey) {
	if len(keys) == 0 {
		return
	}
	q := &e.quiet
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.m == nil {
		q.m = make(map[aggregate.HostKey]int, len(keys))
	}
	for _, k := range keys {
		q.m[k] = quietTicks
	}
	q.n.Store(int64(len(q.m)))
}

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
