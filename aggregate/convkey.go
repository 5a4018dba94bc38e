package aggregate

import (
	"encoding/binary"

	"github.com/flowcheck/flowcheck/flow"
)

// convKey names a conversation independently of direction: endpoint a is the
// lower (address, port) pair, b the higher. Addresses are in their 16-byte
// form (IPv4 v4-mapped, never zoned). The key has no padding, so the maps
// hash and compare it as one 40-byte block.
type convKey struct {
	a, b  [16]byte
	ports uint32 // pa<<16 | pb
	vp    uint32 // vlan<<8 | proto, and the onlyA, onlyB and sampledKey marks
}

func (k *convKey) pa() uint16 { return uint16(k.ports >> 16) }

func (k *convKey) pb() uint16 { return uint16(k.ports) }

func (k *convKey) proto() uint8 { return uint8(k.vp) }

func (k *convKey) vlan() uint16 { return uint16(k.vp >> 8) }

// only tells whether the key's conversation names one endpoint only: 0
// (both), onlyA or onlyB.
func (k *convKey) only() uint32 { return k.vp & (onlyA | onlyB) }

// onlyA and onlyB mark, in convKey.vp, a conversation stitched from the
// copies of a cluster's records that name one of its hosts only (endpoint
// a or b: see flow.Record.Sides). The copies of the other host (another
// partition, maybe another worker) stitch the same conversation under the
// other mark, so that each host gets the verdict once; records decoded in
// this process (sides zero, or both) carry neither mark.
const (
	onlyA = 1 << 24
	onlyB = 1 << 25
)

// onlyTag is the mark of a copy naming endpoint a (a true) or b.
func onlyTag(a bool) uint32 {
	if a {
		return onlyA
	}
	return onlyB
}

// sampledKey marks, in convKey.vp, the key of a sampled service contact
// (see convKey.setSampled); 5-tuple keys never carry it (vp is vlan<<8|proto).
const sampledKey = 1 << 31

// sampled reports whether k is a sampled service contact's key.
func (k *convKey) sampled() bool { return k.vp&sampledKey != 0 }

// rate is the sampling rate of a sampled key, 1 for a 5-tuple key.
func (k *convKey) rate() uint32 {
	if !k.sampled() {
		return 1
	}
	return k.ports >> 16
}

// setSampled makes k the key of a sampled service contact: records of one
// TCP client to one server port, whatever the client's port, sampled
// 1-in-rate. Endpoint a is always the client, and the client's port field
// holds the rate (at most 65535), so that exporters sampling at different
// rates keep apart.
func (k *convKey) setSampled(client, server *[16]byte, sport uint16, vlan uint16, rate uint32) {
	k.a, k.b = *client, *server
	k.ports = min(rate, 1<<16-1)<<16 | uint32(sport)
	k.vp = sampledKey | uint32(vlan)<<8 | flow.ProtoTCP
}

// set makes k the key of the conversation between (src, sp) and (dst, dp),
// and tells whether src is endpoint a. Addresses are 16-byte forms of
// unmapped addresses (netip.Addr.As16). It writes k in place: a key built
// and returned by value was copied three times per record, each copy a
// load of stores not yet written back.
func (k *convKey) set(s *[16]byte, sp uint16, d *[16]byte, dp uint16, proto uint8, vlan uint16) (srcIsA bool) {
	// (s, sp) > (d, dp), the addresses compared as big-endian numbers:
	// two word compares instead of bytes.Compare's call.
	sh, sl := binary.BigEndian.Uint64(s[:8]), binary.BigEndian.Uint64(s[8:])
	dh, dl := binary.BigEndian.Uint64(d[:8]), binary.BigEndian.Uint64(d[8:])
	srcIsA = !(sh > dh || (sh == dh && (sl > dl || (sl == dl && sp > dp))))
	k.vp = uint32(vlan)<<8 | uint32(proto)
	if srcIsA {
		k.a, k.b, k.ports = *s, *d, uint32(sp)<<16|uint32(dp)
	} else {
		k.a, k.b, k.ports = *d, *s, uint32(dp)<<16|uint32(sp)
	}
	return srcIsA
}

// convKey4 is a convKey whose two addresses are IPv4.
type convKey4 struct {
	a, b      uint32
	ports, vp uint32
}

// v4Prefix is the first 12 bytes of a v4-mapped address.
var v4Prefix = [12]byte{10: 0xff, 11: 0xff}

// long returns the convKey of an IPv4 conversation's short key.
func (k convKey4) long() convKey {
	l := convKey{ports: k.ports, vp: k.vp}
	copy(l.a[:], v4Prefix[:])
	copy(l.b[:], v4Prefix[:])
	binary.BigEndian.PutUint32(l.a[12:], k.a)
	binary.BigEndian.PutUint32(l.b[12:], k.b)
	return l
}

// short returns the 16-byte form of an IPv4 conversation's key.
func (k *convKey) short() (convKey4, bool) {
	if [12]byte(k.a[:12]) != v4Prefix || [12]byte(k.b[:12]) != v4Prefix {
		return convKey4{}, false
	}
	return convKey4{binary.BigEndian.Uint32(k.a[12:]), binary.BigEndian.Uint32(k.b[12:]), k.ports, k.vp}, true
}

// hash4 hashes an IPv4 conversation's short key.
func hash4(k convKey4) uint64 {
	return mix64(uint64(k.a)<<32 | uint64(k.b) ^ mix64(uint64(k.ports)<<32|uint64(k.vp)))
}

// hash6 hashes a conversation's full key.
func hash6(k convKey) uint64 {
	x := mix64(uint64(k.ports)<<32 | uint64(k.vp))
	x = mix64(x ^ binary.LittleEndian.Uint64(k.a[:8]))
	x = mix64(x ^ binary.LittleEndian.Uint64(k.a[8:]))
	x = mix64(x ^ binary.LittleEndian.Uint64(k.b[:8]))
	return mix64(x ^ binary.LittleEndian.Uint64(k.b[8:]))
}

// hash is the hash of k that picks its tracker shard (low bits), its
// index slot and its tombstone bucket (high bits): hash4 of the short key
// for IPv4, hash6 otherwise.
func (k *convKey) hash() uint64 {
	if k4, ok := k.short(); ok {
		return hash4(k4)
	}
	return hash6(*k)
}
