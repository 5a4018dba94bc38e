package aggregate

// hostIndex is one shard's map from host key to host. It is keyed by the
// key's 64-bit hash (hostHash), which the shard choice computes anyway: a
// lookup then probes 16-byte slots and compares one word, instead of
// hashing and comparing an 18-byte key, and the host itself (which the
// caller touches next) holds the key that confirms the match. Two keys with
// one hash cannot share a slot: the later one goes to coll, an ordinary
// map. For IPv4 on one VLAN hostHash is a bijection of the address, so
// coll only ever holds IPv6 hosts that collide (crafted, or 2^-64 bad luck),
// and the runtime's seeded hashing keeps those cheap too.
//
// It is not safe for concurrent use: the shard's lock guards it.
type hostIndex struct {
	byHash map[uint64]*host
	coll   map[hkey]*host
}

func newHostIndex() hostIndex {
	return hostIndex{byHash: make(map[uint64]*host), coll: make(map[hkey]*host)}
}

// get returns the host of k (whose hash is hash), or nil.
func (x *hostIndex) get(k hkey, hash uint64) *host {
	if h := x.byHash[hash]; h != nil && h.key == k {
		return h
	}
	if len(x.coll) == 0 {
		return nil
	}
	return x.coll[k]
}

// put adds a host that get did not find.
func (x *hostIndex) put(hash uint64, h *host) {
	if x.byHash[hash] != nil {
		x.coll[h.key] = h
		return
	}
	x.byHash[hash] = h
}

// each calls f on every host; f may not add hosts, and removes one by
// returning true.
func (x *hostIndex) each(f func(h *host) (remove bool)) {
	for hash, h := range x.byHash {
		if f(h) {
			delete(x.byHash, hash)
		}
	}
	for k, h := range x.coll {
		if f(h) {
			delete(x.coll, k)
		}
	}
}
