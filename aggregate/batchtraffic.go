package aggregate

import "math/bits"

// batchTraffic sums one batch's traffic by host and application before
// the shared host table is touched, so that Apply looks each host up and
// locks its shard's line once per batch instead of once per record: a
// batch of a few hundred records usually names a few dozen hosts. The sums
// give the host what the records one by one would have: hosts keep their
// first appearance's order, each host its applications' (so L7 entries
// are added, and folded into "Other" at the cap, in the records' order),
// and the last MAC a record gave.
type batchTraffic struct {
	slots []int32 // open addressing over hosts by key hash: index+1, 0 empty
	hosts []hostSum
	apps  []appSum
}

// hostSum is one host's share of a batch.
type hostSum struct {
	key         hkey
	hash        uint64
	mac         MAC   // the last non-zero MAC of its records, or zero
	records     int   // ops summed, for hosts_refused_total
	first, last int32 // its applications: a list through appSum.next
}

// appSum is one host's traffic for one application within a batch: an L7
// entry of its own, added to the host's (host.addTraffic).
type appSum struct {
	l7Entry
	next int32 // the host's next application, -1 at the end
}

// reset empties the sums for a batch of at most ops host updates.
func (b *batchTraffic) reset(ops int) {
	n := 1 << bits.Len(uint(max(2*ops, 16)-1)) // a power of 2 >= 2*ops: probes stay short
	if cap(b.slots) < n {
		b.slots = make([]int32, n)
	} else {
		b.slots = b.slots[:n]
		clear(b.slots)
	}
	b.hosts, b.apps = b.hosts[:0], b.apps[:0]
}

// add sums one record's traffic for the host of key (hash: key.hash()),
// seen from that host: out is what it sent.
func (b *batchTraffic) add(key *hkey, hash uint64, outBytes, outPackets, inBytes, inPackets uint64, app l7ID, flows uint64, mac MAC) {
	h := b.host(key, hash)
	h.records++
	if mac != (MAC{}) {
		h.mac = mac
	}
	b.app(h, app).add(outBytes, outPackets, inBytes, inPackets, flows)
}

// host returns key's sum, adding it.
func (b *batchTraffic) host(key *hkey, hash uint64) *hostSum {
	mask := uint64(len(b.slots) - 1)
	// The top bits: the low ones pick the shard, the same for many hosts.
	for i := hash >> 32 & mask; ; i = (i + 1) & mask {
		s := b.slots[i]
		if s == 0 {
			b.hosts = append(b.hosts, hostSum{key: *key, hash: hash, first: -1, last: -1})
			b.slots[i] = int32(len(b.hosts))
			return &b.hosts[len(b.hosts)-1]
		}
		if h := &b.hosts[s-1]; h.hash == hash && h.key == *key {
			return h
		}
	}
}

// app returns h's sum for app, adding it at the end of h's list.
func (b *batchTraffic) app(h *hostSum, app l7ID) *appSum {
	for i := h.first; i >= 0; i = b.apps[i].next {
		if b.apps[i].id == app {
			return &b.apps[i]
		}
	}
	b.apps = append(b.apps, appSum{l7Entry: l7Entry{id: app}, next: -1})
	i := int32(len(b.apps) - 1)
	if h.last >= 0 {
		b.apps[h.last].next = i
	} else {
		h.first = i
	}
	h.last = i
	return &b.apps[i]
}

// applyTo adds sum s to its host h.
func (b *batchTraffic) applyTo(h *host, s *hostSum, maxL7 int) {
	if s.mac != (MAC{}) {
		h.mac = s.mac
	}
	for i := s.first; i >= 0; i = b.apps[i].next {
		a := &b.apps[i]
		h.addTraffic(a.bytesSent, a.packetsSent, a.bytesRcvd, a.packetsRcvd, a.id, maxL7, a.flows)
	}
}
