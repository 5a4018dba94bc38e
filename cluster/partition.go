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
	a := addr.As16()
	var v [2]byte
	binary.BigEndian.PutUint16(v[:], vlan)
	h := uint64(fnvOffset64)
	for _, b := range a {
		h ^= uint64(b)
		h *= fnvPrime64
	}
	for _, b := range v {
		h ^= uint64(b)
		h *= fnvPrime64
	}
	return int(h % uint64(n))
}
