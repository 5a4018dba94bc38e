package scripting

import (
	"sync"
	"sync/atomic"

	"github.com/flowcheck/flowcheck/aggregate"
)

// hostShards is the number of shards of the engine's host map, so that the
// workers of a tick resolve their hosts' entries in parallel
// (docs/performance.md, "Check engine internals").
const hostShards = 64

// hostMap is the engine's per-host state by key, sharded (64 shards: the
// top 6 bits of HostKey.Hash).
type hostMap struct {
	shards [hostShards]hostShard
	// tick is the tick in progress (0 between ticks) and expiredSeen counts
	// the hosts of that tick that HostExpired removed after a worker saw
	// them, so that the tick can tell whether the map still holds hosts
	// the table no longer has without walking it.
	tick        atomic.Uint64
	expiredSeen atomic.Int64
	// pending holds the entries of alerts resumed from the state file
	// whose host no tick has seen yet (see persist.go).
	pending pendingHosts
}

// hostShard is one shard of a hostMap: an open-addressing hash table of
// entries (linear probing, backward-shift deletion), whose key is the
// entry's own, so that the key is not stored twice (docs/performance.md).
type hostShard struct {
	mu sync.Mutex
	// slots has a power-of-two length (or is nil), at most 3/4 full.
	slots []*hostEntry
	n     int
}

// minShardSlots is the size of a shard's table when it gets its first host.
const minShardSlots = 16

// shard returns the shard of a key hash.
func (m *hostMap) shard(hash uint64) *hostShard {
	return &m.shards[hash>>(64-6)]
}

// find returns the index of k's entry, or of the empty slot where it would
// go, and whether it is there. The table must not be nil.
func (sh *hostShard) find(k aggregate.HostKey, hash uint64) (int, bool) {
	mask := uint64(len(sh.slots) - 1)
	for i := hash & mask; ; i = (i + 1) & mask {
		h := sh.slots[i]
		if h == nil {
			return int(i), false
		}
		if h.addr == k.Addr && h.vlan == k.VLAN {
			return int(i), true
		}
	}
}

// get returns k's entry, nil when there is none.
func (sh *hostShard) get(k aggregate.HostKey, hash uint64) *hostEntry {
	if sh.n == 0 {
		return nil
	}
	if i, ok := sh.find(k, hash); ok {
		return sh.slots[i]
	}
	return nil
}

// put adds h, whose key is not in the shard.
func (sh *hostShard) put(h *hostEntry, hash uint64) {
	if (sh.n+1)*4 > len(sh.slots)*3 {
		sh.resize(max(minShardSlots, 2*len(sh.slots)))
	}
	i, _ := sh.find(h.key(), hash)
	sh.slots[i] = h
	sh.n++
}

// del removes the entry of k, if any, and returns it.
func (sh *hostShard) del(k aggregate.HostKey, hash uint64) *hostEntry {
	if sh.n == 0 {
		return nil
	}
	i, ok := sh.find(k, hash)
	if !ok {
		return nil
	}
	h := sh.slots[i]
	sh.n--
	// Backward shift: move up every later entry of the run that the hole
	// would cut off from its home slot, so that lookups need no tombstone.
	mask := len(sh.slots) - 1
	for j := (i + 1) & mask; sh.slots[j] != nil; j = (j + 1) & mask {
		home := int(sh.slots[j].key().Hash()) & mask
		// The entry at j stays when its home lies cyclically in (i, j].
		if (j > i && home > i && home <= j) || (j < i && (home > i || home <= j)) {
			continue
		}
		sh.slots[i] = sh.slots[j]
		i = j
	}
	sh.slots[i] = nil
	if len(sh.slots) > minShardSlots && sh.n*8 < len(sh.slots) {
		sh.resize(len(sh.slots) / 2)
	}
	return h
}

// resize rehashes the shard into a table of n slots (a power of two that
// holds its entries).
func (sh *hostShard) resize(n int) {
	old := sh.slots
	sh.slots = make([]*hostEntry, n)
	mask := uint64(n - 1)
	for _, h := range old {
		if h == nil {
			continue
		}
		i := h.key().Hash() & mask
		for sh.slots[i] != nil {
			i = (i + 1) & mask
		}
		sh.slots[i] = h
	}
}

// seen returns the entry of a key for tick, creating it, and marks it seen.
func (m *hostMap) seen(k aggregate.HostKey, tick uint64) *hostEntry {
	hash := k.Hash()
	sh := m.shard(hash)
	sh.mu.Lock()
	h := sh.get(k, hash)
	if h == nil {
		// A host back after a restart takes its resumed alerts.
		if h = m.pending.take(k); h == nil {
			h = newHostEntry(k)
		}
		sh.put(h, hash)
	}
	h.seenTick = uint32(tick)
	sh.mu.Unlock()
	return h
}

// get returns the entry of a key, nil when there is none.
func (m *hostMap) get(k aggregate.HostKey) *hostEntry {
	hash := k.Hash()
	sh := m.shard(hash)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.get(k, hash)
}

// remove deletes and returns the entry of a key (nil when there is none).
func (m *hostMap) remove(k aggregate.HostKey) *hostEntry {
	hash := k.Hash()
	sh := m.shard(hash)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	h := sh.del(k, hash)
	if h == nil {
		return nil
	}
	if t := m.tick.Load(); t != 0 && h.seenTick == uint32(t) {
		m.expiredSeen.Add(1)
	}
	return h
}

// drop deletes h if it is still the entry of its key.
func (m *hostMap) drop(h *hostEntry) {
	k := h.key()
	hash := k.Hash()
	sh := m.shard(hash)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.get(k, hash) == h {
		sh.del(k, hash)
	}
}

// count is the number of entries.
func (m *hostMap) count() int {
	n := 0
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		n += sh.n
		sh.mu.Unlock()
	}
	return n
}

// all appends every entry to dst.
func (m *hostMap) all(dst []*hostEntry) []*hostEntry {
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		for _, h := range sh.slots {
			if h != nil {
				dst = append(dst, h)
			}
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
		start := len(dst)
		for _, h := range sh.slots {
			if h != nil && h.seenTick != uint32(tick) {
				dst = append(dst, h)
			}
		}
		for _, h := range dst[start:] {
			k := h.key()
			sh.del(k, k.Hash())
		}
		sh.mu.Unlock()
	}
	return dst
}
