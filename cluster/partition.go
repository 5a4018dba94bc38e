package cluster

import (
	"encoding/binary"
	"net/netip"
)

// FNV-1a 64-bit parameters.
const (
	fnvOffset64 = 14695981039346656037
	fnvPrime64  = 1099511628211
)

// PartitionOf is the partition of the flows topic that holds the state of
// the host (addr, vlan) when the topic has n partitions: FNV-1a 64-bit over
// the 16 bytes of the address (an IPv4 address as IPv4-mapped IPv6)
// followed by the VLAN as 2 bytes big-endian, modulo n. It is part of the
// wire format: ingest nodes and check workers of different versions must
// agree on it, so it never changes (partition_test.go holds fixed vectors).
// n must be > 0.
func PartitionOf(addr netip.Addr, vlan uint16, n int) int {
	var h uint64
	if addr.Is4() {
		// The IPv4-mapped prefix is the same 12 bytes for every IPv4
		// address: its hash state is computed once.
		a := addr.As4()
		h = fnv1a(ipv4MappedState, a[:])
	} else {
		a := addr.As16()
		h = fnv1a(fnvOffset64, a[:])
	}
	var v [2]byte
	binary.BigEndian.PutUint16(v[:], vlan)
	return int(fnv1a(h, v[:]) % uint64(n))
}

// ipv4MappedState is the FNV-1a state after ::ffff:, the first 12 bytes
// of an IPv4-mapped address.
var ipv4MappedState = fnv1a(fnvOffset64, []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff})

// fnv1a continues an FNV-1a 64-bit hash from state h over b.
func fnv1a(h uint64, b []byte) uint64 {
	for _, c := range b {
		h ^= uint64(c)
		h *= fnvPrime64
	}
	return h
}
