package scripting

import (
	"encoding/binary"
	"sync"
	"sync/atomic"

	"github.com/flowcheck/flowcheck/aggregate"
)

// hostShards is the number of shards of the engine's host map. The workers
// of a tick resolve their hosts' entries themselves, in parallel: on 10^6
// hosts one map lookup per host, done before the tick in one goroutine, was
// about half a second of every tick.
const hostShards = 64

// hostMap is the engine's per-host state by key, sharded.
type hostMap struct {
	shards [hostShards]hostShard
	// tick is the tick in progress (0 between ticks) and expiredSeen counts
	// the hosts of that tick that HostExpired removed after a worker saw
	// them, so that the tick can tell whether the map still holds hosts
	// the table no longer has without walking it.
	tick        atomic.Uint64
	expiredSeen atomic.Int64
}

// hostShard is one shard of a hostMap.
type hostShard struct {
	mu    sync.Mutex
	hosts map[aggregate.HostKey]*hostEntry
}

// shard returns the shard of a key (Fibonacci hashing of the address and
// VLAN; only the shard index is needed, not a map hash).
func (m *hostMap) shard(k aggregate.HostKey) *hostShard {
	b := k.Addr.As16()
	x := binary.LittleEndian.Uint64(b[8:]) ^ binary.LittleEndian.Uint64(b[:8])*31 ^ uint64(k.VLAN)
	x *= 0x9E3779B97F4A7C15
	return &m.shards[x>>(64-6)]
}

// seen returns the entry of a key for tick, creating it, and marks it seen.
func (m *hostMap) seen(k aggregate.HostKey, tick uint64) *hostEntry {
	sh := m.shard(k)
	sh.mu.Lock()
	h := sh.hosts[k]
	if h == nil {
		if sh.hosts == nil {
			sh.hosts = map[aggregate.HostKey]*hostEntry{}
		}
		h = newHostEntry(k)
		sh.hosts[k] = h
	}
	h.seenTick = tick
	sh.mu.Unlock()
	return h
}

// get returns the entry of a key, nil when there is none.
func (m *hostMap) get(k aggregate.HostKey) *hostEntry {
	sh := m.shard(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.hosts[k]
}

// remove deletes and returns the entry of a key (nil when there is none).
func (m *hostMap) remove(k aggregate.HostKey) *hostEntry {
	sh := m.shard(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	h := sh.hosts[k]
	if h == nil {
		return nil
	}
	delete(sh.hosts, k)
	if t := m.tick.Load(); t != 0 && h.seenTick == t {
		m.expiredSeen.Add(1)
	}
	return h
}

// drop deletes h if it is still the entry of its key.
func (m *hostMap) drop(h *hostEntry) {
	sh := m.shard(h.key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.hosts[h.key] == h {
		delete(sh.hosts, h.key)
	}
}

// count is the number of entries.
func (m *hostMap) count() int {
	n := 0
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		n += len(sh.hosts)
		sh.mu.Unlock()
	}
	return n
}

// all appends every entry to dst.
func (m *hostMap) all(dst []*hostEntry) []*hostEntry {
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		for _, h := range sh.hosts {
			dst = append(dst, h)
		}
		sh.mu.Unlock()
	}
	return dst
}

// removeStale deletes the entries not seen at tick and appends them to dst.
func (m *hostMap) removeStale(tick uint64, dst []*hostEntry) []*hostEntry {
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		for k, h := range sh.hosts {
			if h.seenTick != tick {
				dst = append(dst, h)
				delete(sh.hosts, k)
			}
		}
		sh.mu.Unlock()
	}
	return dst
}
