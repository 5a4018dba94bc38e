package scripting

import (
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/flowcheck/flowcheck/aggregate"
)

// TestHostMapStale checks the accounting that lets a tick skip the walk for
// stale entries: a host expired during the tick after a worker saw it must
// not hide a host the table dropped silently.
func TestHostMapStale(t *testing.T) {
	var m hostMap
	a, b, c := key("10.0.0.1"), key("10.0.0.2"), key("fd00::3")
	for _, k := range []aggregate.HostKey{a, b, c} {
		m.seen(k, 1)
	}
	if n := m.count(); n != 3 {
		t.Fatalf("count %d, want 3", n)
	}
	// Tick 2 sees a and b; a then expires; c left the table silently.
	m.tick.Store(2)
	m.seen(a, 2)
	m.seen(b, 2)
	if m.remove(a) == nil || m.remove(a) != nil {
		t.Fatal("remove: want the entry once")
	}
	seen := int64(2)
	if !(int64(m.count()) > seen-m.expiredSeen.Load()) {
		t.Fatalf("count %d, seen %d, expired %d: stale c not detected", m.count(), seen, m.expiredSeen.Load())
	}
	stale := m.removeStale(2, nil)
	if len(stale) != 1 || stale[0].key() != c || m.get(c) != nil || m.get(b) == nil {
		t.Fatalf("removeStale: %v", stale)
	}
	// Shards spread a subnet.
	used := map[*hostShard]bool{}
	for i := 0; i < 256; i++ {
		used[m.shard(aggregate.HostKey{Addr: netip.AddrFrom4([4]byte{10, 0, 0, byte(i)})}.Hash())] = true
	}
	if len(used) < hostShards/2 {
		t.Errorf("256 addresses of a /24 use %d of %d shards", len(used), hostShards)
	}
}

// TestHostMapChurn checks the open-addressing shards against a Go map over
// random inserts, lookups and deletes (with IPv4, IPv6 and VLAN keys, and
// enough of them to grow and shrink the tables).
func TestHostMapChurn(t *testing.T) {
	var m hostMap
	want := map[aggregate.HostKey]*hostEntry{}
	rng := rand.New(rand.NewPCG(3, 4))
	keyOf := func(i int) aggregate.HostKey {
		switch i % 3 {
		case 0:
			return aggregate.HostKey{Addr: netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})}
		case 1:
			return aggregate.HostKey{Addr: netip.AddrFrom16([16]byte{0xfd, 15: byte(i), 14: byte(i >> 8), 13: byte(i >> 16)})}
		}
		return aggregate.HostKey{Addr: netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), VLAN: uint16(i)}
	}
	for round := range 3 {
		// Grow to 20 000 keys, then delete most of them.
		for range 20_000 {
			k := keyOf(rng.IntN(30_000))
			h := m.seen(k, 1)
			if w, ok := want[k]; ok && w != h {
				t.Fatalf("round %d: seen %v: another entry", round, k)
			}
			want[k] = h
		}
		for range 25_000 {
			k := keyOf(rng.IntN(30_000))
			got := m.remove(k)
			if got != want[k] {
				t.Fatalf("round %d: remove %v: %p, want %p", round, k, got, want[k])
			}
			delete(want, k)
		}
		if m.count() != len(want) {
			t.Fatalf("round %d: count %d, want %d", round, m.count(), len(want))
		}
		for k, h := range want {
			if m.get(k) != h {
				t.Fatalf("round %d: get %v: lost", round, k)
			}
		}
		if n := len(m.all(nil)); n != len(want) {
			t.Fatalf("round %d: all: %d entries, want %d", round, n, len(want))
		}
	}
}
