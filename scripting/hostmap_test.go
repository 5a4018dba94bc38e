package scripting

import (
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
	if len(stale) != 1 || stale[0].key != c || m.get(c) != nil || m.get(b) == nil {
		t.Fatalf("removeStale: %v", stale)
	}
	// Shards spread a subnet.
	used := map[*hostShard]bool{}
	for i := 0; i < 256; i++ {
		used[m.shard(aggregate.HostKey{Addr: netip.AddrFrom4([4]byte{10, 0, 0, byte(i)})})] = true
	}
	if len(used) < hostShards/2 {
		t.Errorf("256 addresses of a /24 use %d of %d shards", len(used), hostShards)
	}
}
