package aggregate

import (
	"bytes"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/flowcheck/flowcheck/flow"
)

// TestAddressForms checks that the 16-byte keys keep IPv4 and IPv6 apart,
// that a v4-mapped IPv6 record meets its IPv4 host (and conversation), and
// that IPv6 conversations are stitched like IPv4 ones.
func TestAddressForms(t *testing.T) {
	window := DefaultConfiguration().ReplyWindow
	cases := []struct {
		name               string
		recs               []flow.Record
		client, server     string
		wantClient, wantSv ContactCounts
	}{
		{"IPv6 one-way scan", scan("2001:db8::1", "2001:db8::2", 50), "2001:db8::1", "2001:db8::2",
			ContactCounts{PeersAsClient: 1, ServerPorts: 50}, ContactCounts{PeersAsServer: 1}},
		{"IPv6 answered", append(scan("2001:db8::1", "2001:db8::2", 50), replies("2001:db8::1", "2001:db8::2", 50, synAck)...),
			"2001:db8::1", "2001:db8::2", ContactCounts{}, ContactCounts{}},
		{"v4-mapped reply answers IPv4 request", append(scan("192.0.2.1", "192.0.2.2", 50), replies("::ffff:192.0.2.1", "::ffff:192.0.2.2", 50, synAck)...),
			"192.0.2.1", "192.0.2.2", ContactCounts{}, ContactCounts{}},
		{"v4-mapped scan counts on the IPv4 hosts", scan("::ffff:192.0.2.1", "::ffff:192.0.2.2", 50), "192.0.2.1", "192.0.2.2",
			ContactCounts{PeersAsClient: 1, ServerPorts: 50}, ContactCounts{PeersAsServer: 1}},
		{"IPv6 with ffff in bytes 10-11 is not IPv4", scan("1::ffff:c000:201", "192.0.2.2", 50), "1::ffff:c000:201", "192.0.2.2",
			ContactCounts{PeersAsClient: 1, ServerPorts: 50}, ContactCounts{PeersAsServer: 1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tbl, clk, _ := newTestTable(t, DefaultConfiguration(), Dependencies{})
			tbl.Apply(tc.recs)
			tbl.Advance(clk.Now().Add(window + time.Second))
			c, s := snap(t, tbl, key(tc.client)), snap(t, tbl, key(tc.server))
			if c.NoReply != tc.wantClient || s.NoReply != tc.wantSv {
				t.Fatalf("client %+v server %+v", c.NoReply, s.NoReply)
			}
			if c.Key.Addr.String() != tc.client || tbl.Len() != 2 {
				t.Fatalf("key %v, %d hosts", c.Key, tbl.Len())
			}
			keys := tbl.AppendKeys(nil)
			for _, k := range keys {
				if k.Addr.Is4In6() {
					t.Fatalf("AppendKeys returned a v4-mapped key %v", k)
				}
			}
			// A v4-mapped key names the same host as its IPv4 form.
			if a := netip.MustParseAddr(tc.client); a.Is4() {
				var m HostSnapshot
				if !tbl.Snapshot(HostKey{Addr: netip.AddrFrom16(a.As16())}, &m) || m.BytesSent != c.BytesSent {
					t.Fatal("v4-mapped key did not find the IPv4 host")
				}
			}
		})
	}
}

// TestHostIndexCollision forces two keys onto one hash: both stay
// reachable, and removing either leaves the other.
func TestHostIndexCollision(t *testing.T) {
	for _, removeFirst := range []bool{true, false} {
		x := newHostIndex()
		k1, k2 := keyOf(key("2001:db8::1")), keyOf(key("2001:db8::2"))
		const hash = 42
		h1, h2 := newHost(k1, 0, 0), newHost(k2, 0, 0)
		if x.get(k1, hash) != nil {
			t.Fatal("empty index found a host")
		}
		x.put(hash, h1)
		if x.get(k2, hash) != nil {
			t.Fatal("k2 found before it was added")
		}
		x.put(hash, h2)
		if x.get(k1, hash) != h1 || x.get(k2, hash) != h2 {
			t.Fatal("colliding hosts not both reachable")
		}
		gone, kept := h1, h2
		if !removeFirst {
			gone, kept = h2, h1
		}
		x.each(func(h *host) bool { return h == gone })
		if x.get(gone.key, hash) != nil || x.get(kept.key, hash) != kept {
			t.Fatalf("after removing %v: lookups wrong", gone.key.hostKey())
		}
		n := 0
		x.each(func(*host) bool { n++; return false })
		if n != 1 {
			t.Fatalf("%d hosts left, want 1", n)
		}
	}
}

// TestL7NamesBounded checks that exporter-supplied names are interned up
// to maxL7Names, then counted as Other, and that names come back intact.
func TestL7NamesBounded(t *testing.T) {
	overflows := 0
	n := l7Names{overflow: func() { overflows++ }}
	first := n.intern("TLS.Google")
	if n.intern("TLS.Google") != first || n.name(first) != "TLS.Google" {
		t.Fatal("interning is not stable")
	}
	if id := n.intern("HTTP"); id != staticL7.ids["HTTP"] {
		t.Fatal("a static name got a dynamic id")
	}
	for i := 0; len(staticL7.names)+len(n.dynamic) < maxL7Names; i++ {
		n.intern("app" + string(rune('a'+i%26)) + netip.AddrFrom4([4]byte{byte(i >> 16), byte(i >> 8), byte(i), 0}).String())
	}
	if id := n.intern("one.too.many"); id != l7OtherID || overflows != 1 {
		t.Fatalf("past the bound: id %d (%q), %d overflows", id, n.name(id), overflows)
	}
	if n.intern("TLS.Google") != first {
		t.Fatal("a known name changed id at the bound")
	}
}

// TestConvKeyShortLong checks that an IPv4 conversation's short key gives
// back its key (the reply tracker's FIFO keeps only hashes, and decides a
// popped conversation from the index's short key), and that only keys of
// two IPv4 endpoints have a short form.
func TestConvKeyShortLong(t *testing.T) {
	for _, tc := range []struct {
		a, b  string
		short bool
	}{
		{"192.0.2.1", "198.51.100.7", true},
		{"0.0.0.0", "255.255.255.255", true},
		{"192.0.2.1", "2001:db8::1", false},
		{"1::ffff:c000:201", "192.0.2.2", false},
	} {
		var k convKey
		a, b := netip.MustParseAddr(tc.a).As16(), netip.MustParseAddr(tc.b).As16()
		k.set(&a, 40000, &b, 443, flow.ProtoTCP, 7)
		k4, ok := k.short()
		if ok != tc.short {
			t.Fatalf("%s-%s: short form %v, want %v", tc.a, tc.b, ok, tc.short)
		}
		if ok && k4.long() != k {
			t.Fatalf("%s-%s: long(short(k)) = %+v, want %+v", tc.a, tc.b, k4.long(), k)
		}
	}
}

// TestConvKeyOrder checks convKey.set's orientation against
// bytes.Compare of the addresses, then the ports, on addresses that differ
// in one byte anywhere (high word, low word, or not at all), and that both
// directions of a conversation get one key.
func TestConvKeyOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for range 20000 {
		var s, d [16]byte
		for i := range s {
			s[i] = byte(rng.IntN(3))
		}
		d = s
		if i := rng.IntN(17); i < 16 {
			d[i] = byte(rng.IntN(3))
		}
		sp, dp := uint16(rng.IntN(3)), uint16(rng.IntN(3))
		// A used key: set must write every field.
		k, back := convKey{vp: sampledKey, ports: 7}, convKey{a: [16]byte{9}}
		srcIsA := k.set(&s, sp, &d, dp, flow.ProtoUDP, 0)
		c := bytes.Compare(s[:], d[:])
		if want := c < 0 || (c == 0 && sp <= dp); srcIsA != want {
			t.Fatalf("set(%x:%d, %x:%d): srcIsA %v, want %v", s, sp, d, dp, srcIsA, want)
		}
		if back.set(&d, dp, &s, sp, flow.ProtoUDP, 0); back != k {
			t.Fatalf("the two directions of %x:%d-%x:%d have different keys", s, sp, d, dp)
		}
	}
}

func TestHostHash(t *testing.T) {
	h := func(addr string, vlan uint16) uint64 {
		return HostKey{Addr: netip.MustParseAddr(addr), VLAN: vlan}.Hash()
	}
	for _, tc := range []struct {
		name string
		a, b uint64
		same bool
	}{
		{"v4-mapped is the IPv4 host", h("10.0.0.1", 0), h("::ffff:10.0.0.1", 0), true},
		{"VLAN does not cancel address bits", h("10.0.5.1", 5), h("10.0.0.1", 0), false},
		{"VLAN does not cancel address bits, both tagged", h("10.0.0.1", 1), h("10.0.1.1", 0), false},
		{"VLAN matters", h("10.0.0.1", 0), h("10.0.0.1", 1), false},
		{"IPv6 upper half matters", h("2001:db8::1", 0), h("2001:db9::1", 0), false},
		{"IPv6 and VLAN", h("2001:db8::1", 7), h("2001:db8::1", 0), false},
	} {
		if (tc.a == tc.b) != tc.same {
			t.Errorf("%s: %#x vs %#x", tc.name, tc.a, tc.b)
		}
	}
	// Every shard of 16 gets its share of a /16 on four VLANs, within 5 %.
	var shards [16]int
	for v := range uint16(4) {
		for i := range 1 << 16 {
			a := netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)})
			shards[HostKey{Addr: a, VLAN: v}.Hash()&15]++
		}
	}
	for s, n := range shards {
		if want := 4 << 16 / 16; n < want*95/100 || n > want*105/100 {
			t.Errorf("shard %d holds %d keys, want about %d", s, n, want)
		}
	}
}
