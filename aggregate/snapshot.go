package aggregate

import (
	"fmt"
	"net/netip"
	"strconv"
	"time"
)

// HostKey identifies a host: its address and VLAN.
type HostKey struct {
	Addr netip.Addr
	VLAN uint16
}

// Hash returns a 64-bit hash of the key, spread over all its bits (a
// v4-mapped address hashes as its IPv4 form), for tables keyed by host
// outside this package: the host table's own.
func (k HostKey) Hash() uint64 {
	h := keyOf(k)
	return h.hash()
}

// String returns "ip", or "ip@vlan" on a tagged VLAN.
func (k HostKey) String() string {
	if k.VLAN == 0 {
		return k.Addr.String()
	}
	return k.Addr.String() + "@" + strconv.Itoa(int(k.VLAN))
}

// MAC is a hardware address; the zero value means unknown.
type MAC [6]byte

// String formats the address as "aa:bb:cc:dd:ee:ff".
func (m MAC) String() string {
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5])
}

// ContactCounts are the sizes of a host's three contact sets for one kind of
// unanswered conversation (no reply, or refused).
type ContactCounts struct {
	// PeersAsClient counts distinct servers this host contacted as a client.
	PeersAsClient uint64
	// ServerPorts counts distinct server ports this host contacted as a client.
	ServerPorts uint64
	// PeersAsServer counts distinct clients that contacted this host as a server.
	PeersAsServer uint64
}

// UnidirectionalStats counts committed one-sided conversations by role and
// protocol. Egress: this host was the client and got no reply; ingress: this
// host was the server and never answered.
type UnidirectionalStats struct {
	EgressTCP, EgressUDP   uint64
	IngressTCP, IngressUDP uint64
}

// Egress is the number of one-sided conversations as client (ntopng's num_egress).
func (u UnidirectionalStats) Egress() uint64 { return u.EgressTCP + u.EgressUDP }

// Ingress is the number of one-sided conversations as server (ntopng's num_ingress).
func (u UnidirectionalStats) Ingress() uint64 { return u.IngressTCP + u.IngressUDP }

// L7Stat is a host's traffic for one application protocol.
type L7Stat struct {
	Name                     string
	BytesSent, BytesRcvd     uint64
	PacketsSent, PacketsRcvd uint64
	Flows                    uint64
}

// HostSnapshot is a consistent copy of one host's state, taken while updates
// continue. It is what the Lua host.* API and the HTTP API read.
type HostSnapshot struct {
	Key  HostKey
	MAC  MAC
	Name string

	Local, Multicast, Broadcast, Blacklisted, RxOnly bool

	BytesSent, BytesRcvd     uint64
	PacketsSent, PacketsRcvd uint64
	FirstSeen, LastSeen      time.Time

	// L7 holds one entry per application protocol seen; empty when none.
	L7 []L7Stat

	NoReply        ContactCounts
	Refused        ContactCounts
	Unidirectional UnidirectionalStats
	// RefusedFlows counts refused conversations by role, like Unidirectional.
	RefusedFlows UnidirectionalStats
	// Sampling tells how the figures of NoReply, Refused, Unidirectional
	// and RefusedFlows were obtained: exactly, or estimated from sampled
	// records.
	Sampling VerdictSampling
}

// VerdictSampling tells whether a host's one-sided and refused figures
// rest on sampled records (see the package doc, "Under sampling").
type VerdictSampling struct {
	// Rate is the largest 1-in-N rate of the sampled records behind them;
	// 0 when every verdict came from unsampled records (exact).
	Rate uint32
	// Verdicts is the number of sampled service contacts committed: the
	// evidence the estimates rest on (each counts Rate conversations).
	Verdicts uint64
}

// Exact reports whether no figure rests on sampled records.
func (v VerdictSampling) Exact() bool { return v.Verdicts == 0 }

// Unicast reports whether the address is neither multicast nor broadcast.
func (s *HostSnapshot) Unicast() bool { return !s.Multicast && !s.Broadcast }

// ListedMembers is how many members of each contact set Contacts lists.
const ListedMembers = 100

// ContactSet is one contact set with its first members, for the HTTP API.
type ContactSet struct {
	// Count is the number of distinct members, estimated once the set has
	// turned into a sketch (Exact false).
	Count uint64
	Exact bool
	// Ports are the first ListedMembers ports of a port set, ascending,
	// while it is exact (none once sketched). Peers are the first
	// ListedMembers peers committed to a peer set, in that order (kept
	// after it turned into a sketch).
	Ports []uint16
	Peers []netip.Addr
}

// ContactSets are the three sets of one kind of unanswered conversation.
type ContactSets struct {
	PeersAsClient, ServerPorts, PeersAsServer ContactSet
}

// HostContacts are a host's contact sets with their members.
type HostContacts struct {
	NoReply, Refused ContactSets
}
