package aggregate

// hostIndex is one shard's map from host key to host. It is keyed by the
// key's 64-bit hash (hostHash), which the shard choice computes anyway: a
// lookup then probes 24-byte slots and compares one word, instead of
// hashing and comparing an 18-byte key, and the host itself (which the
// caller touches next) holds the key that confirms the match. Two keys with
// one hash cannot share a slot: the later one goes to coll, an ordinary
// map. For IPv4 on one VLAN hostHash is a bijection of the address, so
// coll only ever holds IPv6 hosts that collide (crafted, or 2^-64 bad luck),
// and the runtime's seeded hashing keeps those cheap too.
//
// It is not safe for concurrent use: the shard's lock guards it.
type hostIndex struct {
	byHash probeTable[uint64, *host]
	coll   map[hkey]*host
	// removed is each's scratch: the hosts to remove once the walk is done.
	removed []uint64
}

func newHostIndex() hostIndex {
	return hostIndex{
		byHash: newProbeTable[uint64, *host](func(hash uint64) uint64 { return hash }),
		coll:   make(map[hkey]*host),
	}
}

// find returns the host stored under hash, or nil. The caller checks its
// key (and asks get when it does not match, which also looks in coll).
func (x *hostIndex) find(hash uint64) *host {
	if p := x.byHash.find(hash, hash); p != nil {
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
	if x.byHash.find(hash, hash) != nil {
		x.coll[h.key] = h
		return
	}
	x.byHash.insert(hash, hash, h)
}

// each calls f on every host; f may not add hosts, and removes one by
// returning true.
func (x *hostIndex) each(f func(h *host) (remove bool)) {
	x.removed = x.removed[:0]
	x.byHash.each(func(hash uint64, h *host) {
		if f(h) {
			// Removing now would move slots under the walk.
			x.removed = append(x.removed, hash)
		}
	})
	for _, hash := range x.removed {
		x.byHash.remove(hash, hash)
	}
	for k, h := range x.coll {
		if f(h) {
			delete(x.coll, k)
		}
	}
}
