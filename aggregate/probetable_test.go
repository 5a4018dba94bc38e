package aggregate

import (
	"math/rand/v2"
	"testing"
)

// TestProbeTableAgainstMap runs random inserts, lookups and removals on a
// probeTable and on a runtime map, and requires the same answers. The hash
// functions range from good to degenerate (every key in a few slots, so
// that probe runs wrap around the table and removals shift long runs, and
// many keys share a hash, which removeHash must tell apart).
func TestProbeTableAgainstMap(t *testing.T) {
	for _, tc := range []struct {
		name string
		hash func(uint32) uint64
		keys int
	}{
		{"mixed", func(k uint32) uint64 { return mix64(uint64(k)) }, 5000},
		{"identity", func(k uint32) uint64 { return uint64(k) }, 5000},
		{"four homes", func(k uint32) uint64 { return uint64(k%4) << 62 }, 300},
		{"one home at the end", func(uint32) uint64 { return ^uint64(0) }, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, 2))
			pt := newProbeTable[uint32, int]()
			ref := map[uint32]int{}
			for step := range 40 * tc.keys {
				k := uint32(rng.IntN(tc.keys))
				switch op := rng.IntN(11); {
				case op == 10: // remove by hash: one key of that hash
					hk, v, ok := pt.removeHash(tc.hash(k))
					rv, rok := ref[hk]
					if ok && (!rok || rv != v || stored(tc.hash(hk)) != stored(tc.hash(k))) {
						t.Fatalf("step %d: removeHash(hash of %d) = %d, %d; want a key of that hash", step, k, hk, v)
					}
					if !ok {
						for rk := range ref {
							if stored(tc.hash(rk)) == stored(tc.hash(k)) {
								t.Fatalf("step %d: removeHash(hash of %d) found nothing; %d has that hash", step, k, rk)
							}
						}
					}
					if ok {
						delete(ref, hk)
					}
				case op < 4: // insert if absent
					if _, ok := ref[k]; !ok {
						pt.insert(k, tc.hash(k), step)
						ref[k] = step
					}
				case op < 7: // remove
					v, ok := pt.remove(k, tc.hash(k))
					rv, rok := ref[k]
					if ok != rok || v != rv {
						t.Fatalf("step %d: remove(%d) = %d, %v; want %d, %v", step, k, v, ok, rv, rok)
					}
					delete(ref, k)
				default: // find and update
					p := pt.find(k, tc.hash(k))
					rv, rok := ref[k]
					if (p != nil) != rok || (p != nil && *p != rv) {
						t.Fatalf("step %d: find(%d) = %v; want %d, %v", step, k, p, rv, rok)
					}
					if p != nil {
						*p, ref[k] = step, step
					}
				}
				if pt.len() != len(ref) {
					t.Fatalf("step %d: len %d, want %d", step, pt.len(), len(ref))
				}
			}
			seen := 0
			pt.each(func(hash uint64, k uint32, v int) {
				seen++
				if hash != stored(tc.hash(k)) {
					t.Fatalf("each: %d stored with hash %x, want %x", k, hash, stored(tc.hash(k)))
				}
				if ref[k] != v {
					t.Fatalf("each: %d = %d, want %d", k, v, ref[k])
				}
			})
			if seen != len(ref) {
				t.Fatalf("each saw %d keys, want %d", seen, len(ref))
			}
		})
	}
}

// TestProbeTableGrowsAndShrinks checks the load bounds: at most 3/4 full,
// and back to a small table once emptied.
func TestProbeTableGrowsAndShrinks(t *testing.T) {
	hash := func(k uint64) uint64 { return mix64(k) }
	pt := newProbeTable[uint64, struct{}]()
	const n = 100_000
	for k := range uint64(n) {
		pt.insert(k, hash(k), struct{}{})
		if 4*pt.len() > 3*len(pt.slots) {
			t.Fatalf("%d keys in %d slots", pt.len(), len(pt.slots))
		}
	}
	if len(pt.slots) > 4*n {
		t.Fatalf("%d slots for %d keys", len(pt.slots), n)
	}
	for k := range uint64(n) {
		if _, ok := pt.remove(k, hash(k)); !ok {
			t.Fatalf("key %d lost", k)
		}
	}
	if pt.len() != 0 || len(pt.slots) != minProbeSlots {
		t.Fatalf("emptied: %d keys, %d slots; want 0, %d", pt.len(), len(pt.slots), minProbeSlots)
	}
}
