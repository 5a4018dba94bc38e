package aggregate

import (
	"encoding/binary"
	"net/netip"
	"slices"

	"github.com/axiomhq/hyperloglog"
)

// distinctSet counts distinct members: exactly up to a limit, then with a
// HyperLogLog sketch of precision 14 (16384 registers, 0.81 % standard
// error). Members are 64-bit values: a port as itself, an address through
// addrHash16 (a collision needs two addresses among the same host's ~10^3
// members to share 64 bits, which "exact" tolerates).
//
// The exact members live in a sorted slice, 8 bytes a member: a map would
// cost three times that.
//
// The zero value is an empty set. It is not safe for concurrent use: the
// host's shard lock guards it.
type distinctSet struct {
	exact  []uint64
	sketch *hyperloglog.Sketch
}

// add inserts v; limit is the exact-set size. It reports whether v joined
// the exact members (false: already one, or counted by the sketch).
func (s *distinctSet) add(v uint64, limit int) bool {
	if s.sketch != nil {
		s.sketch.InsertHash(mix64(v))
		return false
	}
	i, found := slices.BinarySearch(s.exact, v)
	if found {
		return false
	}
	if len(s.exact) < limit {
		if len(s.exact) == cap(s.exact) {
			// Grow by half: sets are mostly tiny, and a full exact set
			// should not carry a doubling's slack.
			grown := make([]uint64, len(s.exact), min(limit, max(2, len(s.exact)*3/2)))
			copy(grown, s.exact)
			s.exact = grown
		}
		s.exact = slices.Insert(s.exact, i, v)
		return true
	}
	sk := hyperloglog.New14()
	for _, m := range s.exact {
		sk.InsertHash(mix64(m))
	}
	sk.InsertHash(mix64(v))
	s.sketch, s.exact = sk, nil
	return false
}

// set describes the set for the HTTP API, without its members.
func (s *distinctSet) set() ContactSet {
	return ContactSet{Count: s.count(), Exact: s.exactly(), Peers: []netip.Addr{}, Ports: []uint16{}}
}

// count returns the number of distinct members (an estimate once sketched).
func (s *distinctSet) count() uint64 {
	if s.sketch != nil {
		return s.sketch.Estimate()
	}
	return uint64(len(s.exact))
}

// exactly reports whether count is exact.
func (s *distinctSet) exactly() bool { return s.sketch == nil }

// mix64 is the splitmix64 finalizer: a bijection that spreads the bits of a
// port number or address hash evenly, as HyperLogLog needs.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// addrHash16 folds an address (IPv4 and IPv6 kept apart) into 64 bits,
// from its 16-byte form, where IPv4 is v4-mapped (host and conversation
// keys hold unmapped addresses that way).
func addrHash16(b [16]byte) uint64 {
	hi := binary.BigEndian.Uint64(b[:8])
	lo := binary.BigEndian.Uint64(b[8:])
	if hi == 0 && lo>>32 == 0xffff {
		hi ^= 0x4444_4444_4444_4444
	}
	return mix64(hi) ^ mix64(lo+0x9e3779b97f4a7c15)
}

// contactSets are the three sets and the role counters of one kind of
// unanswered conversation (one-sided, or refused).
type contactSets struct {
	peersAsClient distinctSet // servers this host contacted as client
	serverPorts   distinctSet // server ports this host contacted as client
	peersAsServer distinctSet // clients that contacted this host as server
	flows         UnidirectionalStats
	// clientPeers and serverPeers are the first ListedMembers peers of
	// peersAsClient and peersAsServer, by address (the sets hold hashes),
	// for the HTTP API: 16 bytes a peer.
	clientPeers, serverPeers [][16]byte
	// sampledRate is the largest sampling rate of the sampled verdicts
	// committed here, sampledVerdicts their number (0: all exact).
	sampledRate     uint32
	sampledVerdicts uint64
}

// sampling tells how c's figures were obtained.
func (c *contactSets) sampling() VerdictSampling {
	if c == nil {
		return VerdictSampling{}
	}
	return VerdictSampling{Rate: c.sampledRate, Verdicts: c.sampledVerdicts}
}

func (c *contactSets) counts() ContactCounts {
	if c == nil {
		return ContactCounts{}
	}
	return ContactCounts{
		PeersAsClient: c.peersAsClient.count(),
		ServerPorts:   c.serverPorts.count(),
		PeersAsServer: c.peersAsServer.count(),
	}
}

// sets describes the three sets with their first members.
func (c *contactSets) sets() ContactSets {
	if c == nil {
		return ContactSets{PeersAsClient: emptySet(), ServerPorts: emptySet(), PeersAsServer: emptySet()}
	}
	cs := ContactSets{PeersAsClient: c.peersAsClient.set(), ServerPorts: c.serverPorts.set(), PeersAsServer: c.peersAsServer.set()}
	cs.PeersAsClient.Peers = peersOf(c.clientPeers)
	cs.PeersAsServer.Peers = peersOf(c.serverPeers)
	cs.ServerPorts.Ports = make([]uint16, 0, min(len(c.serverPorts.exact), ListedMembers))
	for _, p := range c.serverPorts.exact[:min(len(c.serverPorts.exact), ListedMembers)] {
		cs.ServerPorts.Ports = append(cs.ServerPorts.Ports, uint16(p))
	}
	return cs
}

func emptySet() ContactSet { return ContactSet{Exact: true, Peers: []netip.Addr{}, Ports: []uint16{}} }

func peersOf(list [][16]byte) []netip.Addr {
	out := make([]netip.Addr, len(list))
	for i, b := range list {
		out[i] = addrOf16(b)
	}
	return out
}

// listPeer adds a peer that just joined its set's exact members to list.
func listPeer(list [][16]byte, peer [16]byte, joined bool) [][16]byte {
	if joined && len(list) < ListedMembers {
		list = append(list, peer)
	}
	return list
}

func (c *contactSets) stats() UnidirectionalStats {
	if c == nil {
		return UnidirectionalStats{}
	}
	return c.flows
}
