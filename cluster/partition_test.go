package cluster

import (
	"hash/fnv"
	"math/rand/v2"
	"net/netip"
	"testing"
)

// TestPartitionOfVectors pins the partition function: these values were
// computed with hash/fnv's New64a over the same 18 bytes, an implementation
// independent of PartitionOf's. A change here moves hosts between
// partitions across versions of a running cluster: never edit a vector.
func TestPartitionOfVectors(t *testing.T) {
	for _, v := range []struct {
		addr string
		vlan uint16
		n    int
		want int
	}{
		{"192.0.2.1", 0, 32, 6},        // 0x578330fa8d4a3d66
		{"192.0.2.1", 10, 32, 24},      // 0x578336fa8d4a4798
		{"10.0.0.1", 0, 32, 14},        // 0x88cd78db78ef4d8e
		{"10.0.0.2", 0, 32, 3},         // 0x8023fddb74074ee3
		{"2001:db8::1", 0, 32, 20},     // 0x53a9bc1704803b34
		{"::ffff:192.0.2.1", 0, 32, 6}, // an IPv4-mapped address is its IPv4 address
		{"198.51.100.7", 4095, 7, 6},   // 0xbcc29057ecc4f75b
		{"0.0.0.0", 0, 1, 0},           // 0x2f56ddd8c9490a73
		{"fe80::1", 1, 1000, 603},      // 0xba211b553860b85b
		{"203.0.113.200", 0, 3, 0},     // 0x8c2b395a71551959
	} {
		if got := PartitionOf(netip.MustParseAddr(v.addr), v.vlan, v.n); got != v.want {
			t.Errorf("PartitionOf(%s, %d, %d) = %d, want %d", v.addr, v.vlan, v.n, got, v.want)
		}
	}
}

// TestPartitionOfMatchesFNV holds PartitionOf (whose IPv4 path starts from
// a precomputed state) to hash/fnv over the 18 bytes, on random hosts.
func TestPartitionOfMatchesFNV(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 10000 {
		var a [16]byte
		for j := range a {
			a[j] = byte(rng.Uint32())
		}
		addr := netip.AddrFrom16(a)
		if i%2 == 0 {
			addr = netip.AddrFrom4([4]byte(a[:4]))
		}
		vlan, n := uint16(rng.Uint32()), 1+rng.IntN(300)
		h := fnv.New64a()
		b := addr.As16()
		h.Write(b[:])
		h.Write([]byte{byte(vlan >> 8), byte(vlan)})
		if got, want := PartitionOf(addr, vlan, n), int(h.Sum64()%uint64(n)); got != want {
			t.Fatalf("PartitionOf(%s, %d, %d) = %d, hash/fnv says %d", addr, vlan, n, got, want)
		}
	}
}

// TestPartitionOfSpread checks that consecutive addresses spread over the
// partitions: none gets more than twice its share.
func TestPartitionOfSpread(t *testing.T) {
	const n, hosts = 32, 32 * 1000
	var counts [n]int
	a := netip.MustParseAddr("10.0.0.0")
	for range hosts {
		counts[PartitionOf(a, 0, n)]++
		a = a.Next()
	}
	for p, c := range counts {
		if c > 2*hosts/n || c < hosts/n/2 {
			t.Errorf("partition %d holds %d hosts of %d", p, c, hosts)
		}
	}
}

func BenchmarkPartitionOf(b *testing.B) {
	for _, addr := range []string{"192.0.2.1", "2001:db8::1"} {
		b.Run(addr, func(b *testing.B) {
			a := netip.MustParseAddr(addr)
			for b.Loop() {
				_ = PartitionOf(a, 10, 32)
			}
		})
	}
}
