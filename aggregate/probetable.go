package aggregate

import "math/bits"

// probeTable is an open-addressing hash table with linear probing, for the
// two indexes Apply reads once or twice per record (hosts by hash,
// conversations by key). Against a runtime map a lookup usually reads one
// cache line instead of two or three (control word, then slot), and it is
// short, inlined and branch-predictable, so that the lookups of a batch,
// done in a pass of their own, overlap their cache misses. The runtime
// maps were two fifths of Apply's time.
//
// The caller hashes: it has the hash at hand already (the shard choice)
// or computes a cheaper one than the runtime's; hash, given to newProbeTable,
// is used only to move slots (growth, removal). Removal shifts the rest of
// a probe run back (no tombstones), and the table shrinks when it is less
// than 1/8 full, so memory comes back after a burst. It is not safe for
// concurrent use.
type probeTable[K comparable, V any] struct {
	slots []probeSlot[K, V] // a power of 2 long
	shift uint8             // a hash's home slot is hash >> shift
	n     int               // used slots
	hash  func(K) uint64
}

type probeSlot[K comparable, V any] struct {
	k    K
	v    V
	used bool
}

// minProbeSlots is the smallest table.
const minProbeSlots = 64

func newProbeTable[K comparable, V any](hash func(K) uint64) probeTable[K, V] {
	t := probeTable[K, V]{hash: hash}
	t.resize(minProbeSlots)
	return t
}

// home is the first slot to probe for hash. It takes the high bits: the
// low ones chose the shard and are the same for every key in a shard.
func (t *probeTable[K, V]) home(hash uint64) uint64 { return hash >> t.shift }

// find returns k's value, or nil. The pointer is valid until the next
// insert or remove.
func (t *probeTable[K, V]) find(k K, hash uint64) *V {
	mask := uint64(len(t.slots) - 1)
	for i := t.home(hash); ; i = (i + 1) & mask {
		s := &t.slots[i]
		if !s.used {
			return nil
		}
		if s.k == k {
			return &s.v
		}
	}
}

// touch reads hash's home slot, so that a later find of it hits the cache;
// the result only feeds a sink that keeps the load.
func (t *probeTable[K, V]) touch(hash uint64) bool { return t.slots[t.home(hash)].used }

// insert adds k, which find did not find.
func (t *probeTable[K, V]) insert(k K, hash uint64, v V) {
	// Grow at 3/4 full: linear probing's runs stay short below that.
	if 4*(t.n+1) > 3*len(t.slots) {
		t.resize(2 * len(t.slots))
	}
	t.place(probeSlot[K, V]{k, v, true}, hash)
	t.n++
}

// place puts s in the first free slot from hash's home.
func (t *probeTable[K, V]) place(s probeSlot[K, V], hash uint64) {
	mask := uint64(len(t.slots) - 1)
	i := t.home(hash)
	for t.slots[i].used {
		i = (i + 1) & mask
	}
	t.slots[i] = s
}

// remove deletes k and returns its value, if it was there. The slots of
// the rest of its probe run move back, so that no lookup meets a hole
// before its key.
func (t *probeTable[K, V]) remove(k K, hash uint64) (v V, ok bool) {
	mask := uint64(len(t.slots) - 1)
	i := t.home(hash)
	for ; t.slots[i].k != k || !t.slots[i].used; i = (i + 1) & mask {
		if !t.slots[i].used {
			return v, false
		}
	}
	v = t.slots[i].v
	for j := (i + 1) & mask; t.slots[j].used; j = (j + 1) & mask {
		// Slot j may fill the hole at i when i lies on its probe path,
		// from its home to j (cyclically).
		if (j-t.home(t.hash(t.slots[j].k)))&mask >= (j-i)&mask {
			t.slots[i] = t.slots[j]
			i = j
		}
	}
	t.slots[i] = probeSlot[K, V]{}
	t.n--
	if len(t.slots) > minProbeSlots && 8*t.n < len(t.slots) {
		t.resize(max(minProbeSlots, 1<<bits.Len(uint(2*t.n))))
	}
	return v, true
}

// resize moves every slot to a table of n slots (a power of 2 above t.n).
func (t *probeTable[K, V]) resize(n int) {
	old := t.slots
	t.slots = make([]probeSlot[K, V], n)
	t.shift = uint8(64 - bits.TrailingZeros(uint(n)))
	for _, s := range old {
		if s.used {
			t.place(s, t.hash(s.k))
		}
	}
}

// len returns the number of keys.
func (t *probeTable[K, V]) len() int { return t.n }

// each calls f on every key and value, in table order; f must not insert
// or remove.
func (t *probeTable[K, V]) each(f func(k K, v V)) {
	for i := range t.slots {
		if s := &t.slots[i]; s.used {
			f(s.k, s.v)
		}
	}
}
