package aggregate

import (
	"github.com/flowcheck/flowcheck/flow"
)

// host is the state of one host. Its key (address, VLAN) confirms a
// lookup by hash (hostIndex), the display name is looked up on snapshot (static names, DNS cache), and
// everything only scanners and their victims need hides behind the
// noReply and refused pointers: an idle host without contacts stays small.
type host struct {
	key hkey
	// mac, flags and sent share key's last word of padding.
	mac                      MAC
	flags                    hostFlags
	sent                     bool // seen sending at least one packet
	bytesSent, bytesRcvd     uint64
	packetsSent, packetsRcvd uint64
	firstSeen, lastSeen      int64 // clock nanoseconds
	l7                       []l7Entry
	// noReply and refused are nil until the host's first one-sided or
	// refused conversation.
	noReply, refused *contactSets
}

// l7Entry is a host's traffic for one application, by interned name.
type l7Entry struct {
	id                       l7ID
	bytesSent, bytesRcvd     uint64
	packetsSent, packetsRcvd uint64
	flows                    uint64
}

// inlineL7 is how many L7 entries a new host has room for in its own
// allocation (a client of one protocol and server of another): no second
// allocation, and the entries sit next to the counters in memory.
const inlineL7 = 2

// hostAlloc is a host and its first L7 entries, allocated together.
type hostAlloc struct {
	h  host
	l7 [inlineL7]l7Entry
}

// newHost returns a host whose l7 slice uses the inline room.
func newHost(key hkey, flags hostFlags, now int64) *host {
	a := &hostAlloc{h: host{key: key, flags: flags, firstSeen: now, lastSeen: now}}
	a.h.l7 = a.l7[:0:inlineL7]
	return &a.h
}

// addTraffic accounts a record for this host: out is what it sent, in what
// it received (both already scaled by sampling); flows is 1 when the record
// opens a conversation (see countsFlow), else 0.
func (h *host) addTraffic(outBytes, outPkts, inBytes, inPkts uint64, app l7ID, maxL7 int, flows uint64) {
	h.bytesSent += outBytes
	h.packetsSent += outPkts
	h.bytesRcvd += inBytes
	h.packetsRcvd += inPkts
	if outPkts > 0 {
		h.sent = true
	}
	st := h.l7Stat(app, maxL7)
	st.bytesSent += outBytes
	st.packetsSent += outPkts
	st.bytesRcvd += inBytes
	st.packetsRcvd += inPkts
	st.flows += flows
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
func (h *host) commit(d *decision, asClient bool, foldRefused bool, limit int) {
	if d.verdict == verdictRefused {
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

func (c *contactSets) commit(d *decision, asClient bool, limit int) {
	tcp := d.proto == flow.ProtoTCP
	if asClient {
		c.peersAsClient.add(addrHash16(d.server), limit)
		c.serverPorts.add(uint64(d.sport), limit)
		if tcp {
			c.flows.EgressTCP++
		} else {
			c.flows.EgressUDP++
		}
		return
	}
	c.peersAsServer.add(addrHash16(d.client), limit)
	if tcp {
		c.flows.IngressTCP++
	} else {
		c.flows.IngressUDP++
	}
}

// countsFlow tells whether a record counts as one flow in the L7 stats.
// ntopng's flows are bidirectional, so a conversation exported as two
// unidirectional records must count once: only the client's direction
// counts (the same roles as the NoReplyTracker: SYN without ACK, else the
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
