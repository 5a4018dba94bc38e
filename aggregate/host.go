package aggregate

import (
	"github.com/flowcheck/flowcheck/flow"
)

// host is the state of one host. The key (address, VLAN) lives in the map,
// the display name is looked up on snapshot (static names, DNS cache), and
// everything only scanners and their victims need hides behind the
// noReply and refused pointers: an idle host without contacts stays small.
type host struct {
	bytesSent, bytesRcvd     uint64
	packetsSent, packetsRcvd uint64
	firstSeen, lastSeen      int64 // clock nanoseconds
	l7                       []L7Stat
	// noReply and refused are nil until the host's first one-sided or
	// refused conversation.
	noReply, refused *contactSets
	mac              MAC
	flags            hostFlags
	sent             bool // seen sending at least one packet
}

// addTraffic accounts a record for this host: out is what it sent, in what
// it received (both already scaled by sampling); flows is 1 when the record
// opens a conversation (see countsFlow), else 0.
func (h *host) addTraffic(outBytes, outPkts, inBytes, inPkts uint64, app string, maxL7 int, flows uint64) {
	h.bytesSent += outBytes
	h.packetsSent += outPkts
	h.bytesRcvd += inBytes
	h.packetsRcvd += inPkts
	if outPkts > 0 {
		h.sent = true
	}
	st := h.l7Stat(app, maxL7)
	st.BytesSent += outBytes
	st.PacketsSent += outPkts
	st.BytesRcvd += inBytes
	st.PacketsRcvd += inPkts
	st.Flows += flows
}

// l7Stat returns the entry of an application, adding it (or "Other" once
// the host has maxL7 entries).
func (h *host) l7Stat(app string, maxL7 int) *L7Stat {
	for i := range h.l7 {
		if h.l7[i].Name == app {
			return &h.l7[i]
		}
	}
	if len(h.l7) >= maxL7 {
		app = l7Other
		for i := range h.l7 {
			if h.l7[i].Name == app {
				return &h.l7[i]
			}
		}
		// Make room for "Other" by folding the last entry into it, so
		// the cap holds.
		last := &h.l7[len(h.l7)-1]
		last.Name = l7Other
		return last
	}
	if len(h.l7) == cap(h.l7) {
		// Grow by one: most hosts speak a handful of protocols.
		l7 := make([]L7Stat, len(h.l7), len(h.l7)+1)
		copy(l7, h.l7)
		h.l7 = l7
	}
	h.l7 = append(h.l7, L7Stat{Name: app})
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
		c.peersAsClient.add(addrHash(d.server), limit)
		c.serverPorts.add(uint64(d.sport), limit)
		if tcp {
			c.flows.EgressTCP++
		} else {
			c.flows.EgressUDP++
		}
		return
	}
	c.peersAsServer.add(addrHash(d.client), limit)
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
