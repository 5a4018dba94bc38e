package aggregate

import (
	"math/bits"
	"unsafe"

	"github.com/flowcheck/flowcheck/internal/prefetch"
)

// probeTable is an open-addressing hash table with linear probing, for the
// indexes Apply reads per record (hosts by hash, conversations by key):
// a lookup reads one cache line where a runtime map reads two or three
// (docs/performance.md, "Host table internals").
//
// The caller hashes (the shard choice already did). Each slot keeps its
// key's hash, stored with the lowest bit set so that 0 marks a free slot:
// a probe compares one word first, growth moves slots without rehashing,
// and the reply tracker's FIFO finds a slot by its hash alone. Removal
// shifts the probe run back (no tombstones); the table shrinks below 1/8
// full. It is not safe for concurrent use.
type probeTable[K comparable, V any] struct {
	slots []probeSlot[K, V] // a power of 2 long
	shift uint8             // a hash's home slot is hash >> shift
	n     int               // used slots
}

type probeSlot[K comparable, V any] struct {
	hash uint64 // stored(hash of k); 0: free
	k    K
	v    V
}

// stored is the form of a hash kept in a slot: never 0, same home.
func stored(hash uint64) uint64 { return hash | 1 }

// minProbeSlots is the smallest table.
const minProbeSlots = 64

func newProbeTable[K comparable, V any]() probeTable[K, V] {
	var t probeTable[K, V]
	t.resize(minProbeSlots)
	return t
}

// home is the first slot to probe for hash. It takes the high bits: the
// low ones chose the shard and are the same for every key in a shard.
func (t *probeTable[K, V]) home(hash uint64) uint64 { return hash >> t.shift }

// find returns k's value, or nil. The pointer is valid until the next
// insert or remove. It is the hot path, kept small enough to inline.
func (t *probeTable[K, V]) find(k K, hash uint64) *V {
	h := stored(hash)
	mask := uint64(len(t.slots) - 1)
	for i := t.home(h); ; i = (i + 1) & mask {
		s := &t.slots[i]
		if s.hash == 0 {
			return nil
		}
		if s.hash == h && s.k == k {
			return &s.v
		}
	}
}

// indexOf returns the slot of key *k, whose hash is hash, or with k nil
// the first slot of hash's probe run that holds a key of that hash; -1
// when there is none.
func (t *probeTable[K, V]) indexOf(hash uint64, k *K) int {
	h := stored(hash)
	mask := uint64(len(t.slots) - 1)
	for i := t.home(h); t.slots[i].hash != 0; i = (i + 1) & mask {
		if s := &t.slots[i]; s.hash == h && (k == nil || s.k == *k) {
			return int(i)
		}
	}
	return -1
}

// prefetch asks for hash's home slot, so that a later find of it hits the
// cache.
func (t *probeTable[K, V]) prefetch(hash uint64) {
	prefetch.Line(unsafe.Pointer(&t.slots[t.home(stored(hash))]))
}

// insert adds k, which find did not find.
func (t *probeTable[K, V]) insert(k K, hash uint64, v V) {
	// Grow at 3/4 full: linear probing's runs stay short below that.
	if 4*(t.n+1) > 3*len(t.slots) {
		t.resize(2 * len(t.slots))
	}
	t.place(probeSlot[K, V]{stored(hash), k, v})
	t.n++
}

// place puts s in the first free slot from its home.
func (t *probeTable[K, V]) place(s probeSlot[K, V]) {
	mask := uint64(len(t.slots) - 1)
	i := t.home(s.hash)
	for t.slots[i].hash != 0 {
		i = (i + 1) & mask
	}
	t.slots[i] = s
}

// remove deletes k and returns its value, if it was there.
func (t *probeTable[K, V]) remove(k K, hash uint64) (v V, ok bool) {
	i := t.indexOf(hash, &k)
	if i < 0 {
		return v, false
	}
	_, v = t.removeAt(uint64(i))
	return v, true
}

// removeHash deletes the first key of the probe run of hash whose hash it
// is, and returns that key and its value, if there was one. Keys are
// distinct but 64-bit hashes may meet: then it removes one of them.
func (t *probeTable[K, V]) removeHash(hash uint64) (k K, v V, ok bool) {
	i := t.indexOf(hash, nil)
	if i < 0 {
		return k, v, false
	}
	k, v = t.removeAt(uint64(i))
	return k, v, true
}

// removeAt empties slot i and returns what it held. The slots of the rest
// of its probe run move back, so that no lookup meets a hole before its
// key.
func (t *probeTable[K, V]) removeAt(i uint64) (K, V) {
	mask := uint64(len(t.slots) - 1)
	k, v := t.slots[i].k, t.slots[i].v
	for j := (i + 1) & mask; t.slots[j].hash != 0; j = (j + 1) & mask {
		// Slot j may fill the hole at i when i lies on its probe path,
		// from its home to j (cyclically).
		if (j-t.home(t.slots[j].hash))&mask >= (j-i)&mask {
			t.slots[i] = t.slots[j]
			i = j
		}
	}
	t.slots[i] = probeSlot[K, V]{}
	t.n--
	if len(t.slots) > minProbeSlots && 8*t.n < len(t.slots) {
		t.resize(max(minProbeSlots, 1<<bits.Len(uint(2*t.n))))
	}
	return k, v
}

// resize moves every slot to a table of n slots (a power of 2 above t.n).
func (t *probeTable[K, V]) resize(n int) {
	old := t.slots
	t.slots = make([]probeSlot[K, V], n)
	t.shift = uint8(64 - bits.TrailingZeros(uint(n)))
	for _, s := range old {
		if s.hash != 0 {
			t.place(s)
		}
	}
}

// len returns the number of keys.
func (t *probeTable[K, V]) len() int { return t.n }

// each calls f on every key, its stored hash and its value, in table
// order; f must not insert or remove.
func (t *probeTable[K, V]) each(f func(hash uint64, k K, v V)) {
	for i := range t.slots {
		if s := &t.slots[i]; s.hash != 0 {
			f(s.hash, s.k, s.v)
		}
	}
}
