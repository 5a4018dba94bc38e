package aggregate

import (
	"github.com/flowcheck/flowcheck/flow"
)

// host is the state of one host, its fields ordered by how often Apply
// touches them so that a record's update reads two cache lines; totals are
// summed from the L7 entries on snapshot, not written per record. It must
// fit the runtime's 192-byte size class, whose objects start on a cache
// line (TestHostSize; docs/performance.md, "Host table internals").
type host struct {
	lastSeen, firstSeen int64 // clock nanoseconds
	key                 hkey
	flags               hostFlags
	sent                bool // seen sending at least one packet
	l7                  []l7Entry
	// inline is the room of l7's first entries (a client of one protocol
	// and server of another): no second allocation, next to the rest.
	inline [inlineL7]l7Entry
	// noReply and refused are nil until the host's first one-sided or
	// refused conversation.
	noReply, refused *contactSets
	mac              MAC
}

// l7Entry is a host's traffic for one application, by interned name.
type l7Entry struct {
	id                       l7ID
	bytesSent, bytesRcvd     uint64
	packetsSent, packetsRcvd uint64
	flows                    uint64
}

// inlineL7 is how many L7 entries a host holds in its own allocation.
const inlineL7 = 2

// newHost returns a host whose l7 slice uses the inline room.
func newHost(key hkey, flags hostFlags, now int64) *host {
	h := &host{key: key, flags: flags, firstSeen: now, lastSeen: now}
	h.l7 = h.inline[:0:inlineL7]
	return h
}

// totals returns what the host sent and received, over its L7 entries.
func (h *host) totals() (bytesSent, bytesRcvd, packetsSent, packetsRcvd uint64) {
	for i := range h.l7 {
		e := &h.l7[i]
		bytesSent += e.bytesSent
		bytesRcvd += e.bytesRcvd
		packetsSent += e.packetsSent
		packetsRcvd += e.packetsRcvd
	}
	return
}

// addTraffic accounts a record for this host: out is what it sent, in what
// it received (both already scaled by sampling); flows is 1 when the record
// opens a conversation (see countsFlow), else 0.
func (h *host) addTraffic(outBytes, outPkts, inBytes, inPkts uint64, app l7ID, maxL7 int, flows uint64) {
	if outPkts > 0 {
		h.sent = true
	}
	h.l7Stat(app, maxL7).add(outBytes, outPkts, inBytes, inPkts, flows)
}

// add adds traffic to the entry: out sent, in received.
func (e *l7Entry) add(outBytes, outPkts, inBytes, inPkts, flows uint64) {
	e.bytesSent += outBytes
	e.packetsSent += outPkts
	e.bytesRcvd += inBytes
	e.packetsRcvd += inPkts
	e.flows += flows
}

// l7Stat returns the entry of an application, adding it (or "Other" once
// the host has maxL7 entries).
func (h *host) l7Stat(app l7ID, maxL7 int) *l7Entry {
	for i := range h.l7 {
		if h.l7[i].id == app {
			return &h.l7[i]
		}
	}
	if len(h.l7) >= maxL7 {
		app = l7OtherID
		for i := range h.l7 {
			if h.l7[i].id == app {
				return &h.l7[i]
			}
		}
		// Make room for "Other" by folding the last entry into it, so
		// the cap holds.
		last := &h.l7[len(h.l7)-1]
		last.id = l7OtherID
		return last
	}
	if len(h.l7) == cap(h.l7) {
		// Grow by one: most hosts speak a handful of protocols.
		l7 := make([]l7Entry, len(h.l7), len(h.l7)+1)
		copy(l7, h.l7)
		h.l7 = l7
	}
	h.l7 = append(h.l7, l7Entry{id: app})
	return &h.l7[len(h.l7)-1]
}

// commit applies a decided conversation to this host, in its role.
func (h *host) commit(d *decision, asClient bool, foldRefused bool, limit, maxL7 int) {
	if d.addFlow {
		h.l7Stat(d.app, maxL7).flows++
	}
	switch d.verdict {
	case verdictNone:
		return
	case verdictRefused:
		if h.refused == nil {
			h.refused = &contactSets{}
		}
		h.refused.commit(d, asClient, limit)
		if !foldRefused {
			return
		}
	}
	if h.noReply == nil {
		h.noReply = &contactSets{}
	}
	h.noReply.commit(d, asClient, limit)
}

// commit adds a decided conversation to the sets of this host's role. A
// sampled service contact adds its peer and port as any conversation (the
// sets hold what was seen), and counts as rate conversations (the
// estimate, as bytes and packets are scaled).
func (c *contactSets) commit(d *decision, asClient bool, limit int) {
	tcp := d.proto == flow.ProtoTCP
	n := uint64(d.rate)
	if d.rate > 1 {
		c.sampledRate = max(c.sampledRate, d.rate)
		c.sampledVerdicts++
	}
	if asClient {
		c.clientPeers = listPeer(c.clientPeers, d.server, c.peersAsClient.add(addrHash16(d.server), limit))
		c.serverPorts.add(uint64(d.sport), limit)
		if tcp {
			c.flows.EgressTCP += n
		} else {
			c.flows.EgressUDP += n
		}
		return
	}
	c.serverPeers = listPeer(c.serverPeers, d.client, c.peersAsServer.add(addrHash16(d.client), limit))
	if tcp {
		c.flows.IngressTCP += n
	} else {
		c.flows.IngressUDP += n
	}
}

// countsFlow tells whether a record counts as one flow in the L7 stats.
// ntopng's flows are bidirectional, so a conversation exported as two
// unidirectional records must count once: only the client's direction
// counts (the same roles as the reply tracker: SYN without ACK, else the
// higher port, else the lower address). A biflow record, and anything that
// is not TCP or UDP, counts once as it is.
func countsFlow(r *flow.Record) uint64 {
	if r.Biflow || (r.Proto != flow.ProtoTCP && r.Proto != flow.ProtoUDP) {
		return 1
	}
	if r.Proto == flow.ProtoTCP && synOnly(r.TCPFlags) {
		return 1
	}
	if r.SrcPort != r.DstPort {
		if r.SrcPort > r.DstPort {
			return 1
		}
		return 0
	}
	if r.SrcAddr.Compare(r.DstAddr) <= 0 {
		return 1
	}
	return 0
}
