package aggregate

import (
	"encoding/binary"
	"net/netip"
)

// hkey is the host map's key: HostKey with the address in its 16-byte
// form (IPv4 v4-mapped). Unlike netip.Addr it holds no zone pointer, so
// the map hashes and compares it as one 18-byte block.
type hkey struct {
	addr [16]byte
	vlan uint16
}

// keyOf is the map key of a host key; a v4-mapped IPv6 address is the same
// host as its IPv4 address.
func keyOf(k HostKey) (h hkey) {
	h.set(k.Addr, k.VLAN)
	return h
}

// hostKey turns a map key back into the host key.
func (k hkey) hostKey() HostKey { return HostKey{addrOf16(k.addr), k.vlan} }

// hash spreads host keys over shards and index slots. The VLAN is
// spread by a multiplication before it meets the address: XORed in place
// it would cancel against address bits, so that 10.0.5.1 on VLAN 5 and
// 10.0.0.1 untagged would always collide. The key's upper half and the
// VLAN go through a mix of their own only when not both zero (mix64(0) is
// 0): the commonest key, an untagged IPv4 address, costs one mix.
func (k *hkey) hash() uint64 {
	hi := binary.LittleEndian.Uint64(k.addr[:8])
	lo := binary.LittleEndian.Uint64(k.addr[8:])
	x := hi ^ uint64(k.vlan)*0x9e3779b97f4a7c15
	if x != 0 {
		x = mix64(x)
	}
	return mix64(lo ^ x)
}

// set makes k the key of address a (v4-mapped when IPv4, as Unmap would
// have it) on vlan, in place and a word at a time: Apply hashes and
// compares the key right after, and a load that spans two stores (as a
// copied 18-byte key's do) waits for both to reach the cache.
func (k *hkey) set(a netip.Addr, vlan uint16) {
	if a.Is4() {
		// ::ffff:a.b.c.d, without As16's array: the compiler builds it
		// on the stack and copies it 16 bytes at a time.
		b := a.As4()
		binary.LittleEndian.PutUint64(k.addr[:8], 0)
		binary.LittleEndian.PutUint64(k.addr[8:], uint64(binary.LittleEndian.Uint32(b[:]))<<32|0xffff<<16)
	} else {
		k.addr = a.As16()
	}
	k.vlan = vlan
}

// addrOf16 turns a key's 16-byte address back into an address: v4-mapped
// forms are IPv4, since keys never hold a mapped IPv6 address.
func addrOf16(b [16]byte) netip.Addr { return netip.AddrFrom16(b).Unmap() }

// hostIndex is one shard's map from host key to host, keyed by the key's
// 64-bit hash (hkey.hash, which the shard choice computes anyway): slots
// hold the hash and the host, whose own key confirms the match. A key
// whose stored hash meets another's goes to coll, an ordinary map, so a
// crafted collision costs a map lookup, not a wrong host.
//
// It is not safe for concurrent use: the shard's lock guards it.
type hostIndex struct {
	byHash probeTable[struct{}, *host]
	coll   map[hkey]*host
	// removed is each's scratch: the hosts to remove once the walk is done.
	removed []uint64
}

func newHostIndex() hostIndex {
	return hostIndex{
		byHash: newProbeTable[struct{}, *host](),
		coll:   make(map[hkey]*host),
	}
}

// find returns the host stored under hash, or nil. The caller checks its
// key (and asks get when it does not match, which also looks in coll).
func (x *hostIndex) find(hash uint64) *host {
	if p := x.byHash.find(struct{}{}, hash); p != nil {
		return *p
	}
	return nil
}

// get returns the host of k (whose hash is hash), or nil.
func (x *hostIndex) get(k hkey, hash uint64) *host {
	if h := x.find(hash); h != nil && h.key == k {
		return h
	}
	if len(x.coll) == 0 {
		return nil
	}
	return x.coll[k]
}

// put adds a host that get did not find.
func (x *hostIndex) put(hash uint64, h *host) {
	if x.byHash.find(struct{}{}, hash) != nil {
		x.coll[h.key] = h
		return
	}
	x.byHash.insert(struct{}{}, hash, h)
}

// each calls f on every host; f may not add hosts, and removes one by
// returning true.
func (x *hostIndex) each(f func(h *host) (remove bool)) {
	x.removed = x.removed[:0]
	x.byHash.each(func(hash uint64, _ struct{}, h *host) {
		if f(h) {
			// Removing now would move slots under the walk.
			x.removed = append(x.removed, hash)
		}
	})
	for _, hash := range x.removed {
		x.byHash.remove(struct{}{}, hash)
	}
	for k, h := range x.coll {
		if f(h) {
			delete(x.coll, k)
		}
	}
}
