package aggregate

import (
	"net/netip"
	"time"
)

// AppendKeys appends the key of every host to dst.
func (t *HostTable) AppendKeys(dst []HostKey) []HostKey {
	for i := range t.shards {
		dst = t.AppendShardKeys(i, dst)
	}
	return dst
}

// Shards is the number of shards AppendShardKeys reads.
func (t *HostTable) Shards() int { return len(t.shards) }

// AppendShardKeys appends the key of every host of one shard (0 to
// Shards()-1) to dst, so that a reader walking the table shard by shard
// holds one shard's keys at a time.
func (t *HostTable) AppendShardKeys(i int, dst []HostKey) []HostKey {
	sh := &t.shards[i]
	sh.mu.Lock()
	sh.hosts.each(func(h *host) bool {
		dst = append(dst, h.key.hostKey())
		return false
	})
	sh.mu.Unlock()
	return dst
}

// Snapshot copies the state of one host into dst, reusing dst.L7's
// capacity. It returns false if the host is unknown.
func (t *HostTable) Snapshot(key HostKey, dst *HostSnapshot) bool {
	if !t.SnapshotCounters(key, dst) {
		return false
	}
	dst.Name = t.nameOf(key.Addr.Unmap())
	return true
}

// SnapshotCounters is Snapshot without the display name (Name is left
// empty), for a walk that shows few of the hosts it reads: formatting the
// name is a snapshot's one allocation.
func (t *HostTable) SnapshotCounters(key HostKey, dst *HostSnapshot) bool {
	k := keyOf(key)
	hash := k.hash()
	sh := &t.shards[hash&t.mask]
	l7 := dst.L7[:0]
	sh.mu.Lock()
	h := sh.hosts.get(k, hash)
	if h == nil {
		sh.mu.Unlock()
		return false
	}
	bytesSent, bytesRcvd, packetsSent, packetsRcvd := h.totals()
	*dst = HostSnapshot{
		Key:         key,
		MAC:         h.mac,
		Local:       h.flags&flagLocal != 0,
		Multicast:   h.flags&flagMulticast != 0,
		Broadcast:   h.flags&flagBroadcast != 0,
		Blacklisted: h.flags&flagBlacklisted != 0,
		RxOnly:      !h.sent,
		BytesSent:   bytesSent,
		BytesRcvd:   bytesRcvd,
		PacketsSent: packetsSent,
		PacketsRcvd: packetsRcvd,
		FirstSeen:   time.Unix(0, h.firstSeen).UTC(),
		LastSeen:    time.Unix(0, h.lastSeen).UTC(),
	}
	for _, e := range h.l7 {
		l7 = append(l7, L7Stat{Name: t.l7.name(e.id), BytesSent: e.bytesSent, BytesRcvd: e.bytesRcvd,
			PacketsSent: e.packetsSent, PacketsRcvd: e.packetsRcvd, Flows: e.flows})
	}
	dst.L7 = l7
	dst.NoReply, dst.Unidirectional = h.noReply.counts(), h.noReply.stats()
	dst.Refused, dst.RefusedFlows = h.refused.counts(), h.refused.stats()
	nr, ref := h.noReply.sampling(), h.refused.sampling()
	if t.foldRefused {
		ref.Verdicts = 0 // already among the no-reply sets' own
	}
	dst.Sampling = VerdictSampling{Rate: max(nr.Rate, ref.Rate), Verdicts: nr.Verdicts + ref.Verdicts}
	sh.mu.Unlock()
	return true
}

// nameOf is a host's display name: static name, else a cached reverse DNS
// answer, else the address.
func (t *HostTable) nameOf(a netip.Addr) string {
	if n, ok := t.nc.Load().names[a]; ok {
		return n
	}
	if t.rdns != nil {
		if n, ok := t.rdns.cached(a); ok && n != "" {
			return n
		}
	}
	return a.String()
}

// ResetContacts clears a host's no-reply and refused contact sets and its
// unidirectional and refused counters (host.resetHostContacts()).
func (t *HostTable) ResetContacts(key HostKey) {
	k := keyOf(key)
	hash := k.hash()
	sh := &t.shards[hash&t.mask]
	sh.mu.Lock()
	if h := sh.hosts.get(k, hash); h != nil {
		h.noReply, h.refused = nil, nil
	}
	sh.mu.Unlock()
}

// Len returns the number of hosts.
func (t *HostTable) Len() int { return int(t.count.Load()) }

// pendingLen is the number of conversations in the tracker.
func (t *HostTable) pendingLen() int {
	n := 0
	for i := range t.trackers {
		tl := &t.trackers[i]
		tl.mu.Lock()
		n += tl.t.len()
		tl.mu.Unlock()
	}
	return n
}

// Contacts copies a host's contact sets with their first members
// (ListedMembers of each); false when the host is unknown.
func (t *HostTable) Contacts(key HostKey) (HostContacts, bool) {
	k := keyOf(key)
	hash := k.hash()
	sh := &t.shards[hash&t.mask]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	h := sh.hosts.get(k, hash)
	if h == nil {
		return HostContacts{}, false
	}
	return HostContacts{NoReply: h.noReply.sets(), Refused: h.refused.sets()}, true
}
