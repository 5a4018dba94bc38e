package aggregate

import (
	"slices"
	"strings"
	"sync"

	"github.com/flowcheck/flowcheck/flow"
)

// Application names, spelled as nDPI spells them.
const (
	l7Unknown = "Unknown"
	l7Other   = "Other"
)

// ndpiNames maps common nDPI protocol ids (nProbe L7_PROTO) to their names.
var ndpiNames = map[uint32]string{
	1: "FTP_CONTROL", 2: "POP3", 3: "SMTP", 4: "IMAP", 5: "DNS", 7: "HTTP",
	8: "MDNS", 9: "NTP", 10: "NetBIOS", 11: "NFS", 12: "SSDP", 13: "BGP",
	14: "SNMP", 16: "DHCP", 17: "Syslog", 18: "DHCPV6", 20: "PostgreSQL",
	21: "MySQL", 23: "POPS", 27: "Tor", 29: "IMAPS", 30: "IMAPS", 37: "BitTorrent",
	41: "SMBv1", 51: "IPsec", 77: "Telnet", 78: "STUN", 79: "IPsec", 81: "ICMP",
	82: "IGMP", 87: "RTP", 88: "RDP", 89: "VNC", 91: "TLS", 92: "SSH",
	102: "ICMPV6", 104: "RADIUS", 125: "Skype_Teams", 126: "Google", 127: "MS_RPCH",
	131: "HTTP_Proxy", 154: "LDAP", 156: "Spotify", 161: "OpenVPN", 175: "Ookla",
	188: "QUIC", 196: "DoH_DoT", 212: "Microsoft", 219: "Microsoft365", 239: "GoogleServices",
	242: "WhatsApp", 246: "Zoom", 276: "Azure", 292: "Teams",
}

// portNames guesses the application from a well-known server port.
// TCP and UDP entries are keyed proto<<16 | port.
var portNames = map[uint32]string{
	tcpPort(20): "FTP_DATA", tcpPort(21): "FTP_CONTROL", tcpPort(22): "SSH", tcpPort(23): "Telnet",
	tcpPort(25): "SMTP", tcpPort(587): "SMTP", tcpPort(465): "SMTPS",
	tcpPort(53): "DNS", udpPort(53): "DNS", udpPort(67): "DHCP", udpPort(68): "DHCP",
	tcpPort(80): "HTTP", tcpPort(8080): "HTTP", tcpPort(8000): "HTTP",
	tcpPort(110): "POP3", tcpPort(995): "POPS", tcpPort(143): "IMAP", tcpPort(993): "IMAPS",
	udpPort(123): "NTP", udpPort(137): "NetBIOS", udpPort(138): "NetBIOS", tcpPort(139): "NetBIOS",
	udpPort(161): "SNMP", udpPort(162): "SNMP", tcpPort(179): "BGP", tcpPort(389): "LDAP",
	tcpPort(443): "TLS", tcpPort(8443): "TLS", udpPort(443): "QUIC", tcpPort(445): "SMBv23",
	udpPort(514): "Syslog", udpPort(500): "IPsec", udpPort(4500): "IPsec",
	udpPort(1194): "OpenVPN", tcpPort(1433): "MsSQL-TDS", tcpPort(3306): "MySQL",
	tcpPort(5432): "PostgreSQL", tcpPort(3389): "RDP", udpPort(3478): "STUN",
	udpPort(1900): "SSDP", udpPort(5353): "MDNS", tcpPort(5900): "VNC", tcpPort(853): "DoH_DoT",
	udpPort(6881): "BitTorrent", tcpPort(6881): "BitTorrent", tcpPort(51413): "BitTorrent",
	udpPort(51413): "BitTorrent", udpPort(1812): "RADIUS", udpPort(1813): "RADIUS",
	udpPort(5060): "SIP", tcpPort(5060): "SIP", tcpPort(1883): "MQTT", tcpPort(6379): "Redis",
}

func tcpPort(p uint16) uint32 { return flow.ProtoTCP<<16 | uint32(p) }
func udpPort(p uint16) uint32 { return flow.ProtoUDP<<16 | uint32(p) }

// IE 95 applicationId classification engines whose selector is a port.
const (
	engineIANAL4 = 3
)

// l7ID is an application name interned in a table's l7Names: the hot path
// compares and stores two bytes instead of a string.
type l7ID uint16

// staticL7 is the read-only table of every name the package itself can
// produce (nDPI ids, well-known ports, ICMP, Unknown, Other), with the ids
// they map to; they are the first ids of every table's l7Names.
var staticL7 = buildStaticL7()

// Ids of the names the hot path uses directly.
const (
	l7UnknownID l7ID = iota
	l7OtherID
	l7ICMPID
	l7ICMPv6ID
	l7BitTorrentID
)

type staticL7Table struct {
	names []string
	ids   map[string]l7ID
	ndpi  map[uint32]l7ID // nDPI id -> name id
	// ports names the well-known ports of TCP (ports[0]) and UDP
	// (ports[1]), l7UnknownID where a port names nothing: two array reads
	// per record instead of two map lookups (portApp).
	ports [2][]l7ID
}

// portApp returns the application a TCP or UDP server port names.
func (t *staticL7Table) portApp(proto uint8, port uint16) (l7ID, bool) {
	var ports []l7ID
	switch proto {
	case flow.ProtoTCP:
		ports = t.ports[0]
	case flow.ProtoUDP:
		ports = t.ports[1]
	default:
		return 0, false
	}
	id := ports[port]
	return id, id != l7UnknownID
}

func buildStaticL7() *staticL7Table {
	t := &staticL7Table{
		names: []string{l7Unknown, l7Other, "ICMP", "ICMPV6", "BitTorrent"},
		ids:   make(map[string]l7ID),
		ndpi:  make(map[uint32]l7ID, len(ndpiNames)),
		ports: [2][]l7ID{make([]l7ID, 1<<16), make([]l7ID, 1<<16)},
	}
	var more []string
	for _, n := range ndpiNames {
		more = append(more, n)
	}
	for _, n := range portNames {
		more = append(more, n)
	}
	slices.Sort(more)
	for _, n := range append(slices.Clone(t.names), more...) {
		if _, ok := t.ids[n]; !ok {
			t.ids[n] = l7ID(len(t.ids))
		}
	}
	t.names = make([]string, len(t.ids))
	for n, id := range t.ids {
		t.names[id] = n
	}
	for k, n := range ndpiNames {
		t.ndpi[k] = t.ids[n]
	}
	for k, n := range portNames {
		proto := 0
		if k>>16 == flow.ProtoUDP {
			proto = 1
		}
		t.ports[proto][uint16(k)] = t.ids[n]
	}
	return t
}

// maxL7Names bounds the distinct application names a table interns
// (static names included); names from exporters past it count as "Other".
// nDPI knows about 400 protocols, nProbe's "master.app" names a few
// thousand combinations at most.
const maxL7Names = 8192

// l7Names interns application names into small ids, per table. The static
// names need no lock; names from exporters (nProbe's L7_PROTO_NAME) are
// looked up in a sync.Map, read-mostly, and added under mu.
type l7Names struct {
	ids sync.Map // string -> l7ID, exporter names only

	mu       sync.Mutex
	dynamic  []string // name of id len(staticL7.names)+i
	overflow func()   // counts names refused at maxL7Names
}

// intern returns the id of an exporter-supplied name.
func (n *l7Names) intern(name string) l7ID {
	if id, ok := staticL7.ids[name]; ok {
		return id
	}
	if id, ok := n.ids.Load(name); ok {
		return id.(l7ID)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if id, ok := n.ids.Load(name); ok {
		return id.(l7ID)
	}
	if len(staticL7.names)+len(n.dynamic) >= maxL7Names {
		n.overflow()
		return l7OtherID
	}
	id := l7ID(len(staticL7.names) + len(n.dynamic))
	n.dynamic = append(n.dynamic, strings.Clone(name))
	n.ids.Store(n.dynamic[len(n.dynamic)-1], id)
	return id
}

// name returns the name of an id returned by intern or appOf.
func (n *l7Names) name(id l7ID) string {
	if int(id) < len(staticL7.names) {
		return staticL7.names[id]
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.dynamic[int(id)-len(staticL7.names)]
}

// appOf returns the application of a record: nProbe's L7_PROTO_NAME,
// else the application id (nDPI id, or IE 95 with a port selector), else a
// guess from the well-known server port, else "Unknown".
func (n *l7Names) appOf(r *flow.Record) l7ID {
	if r.AppName != "" {
		return n.intern(r.AppName)
	}
	if r.AppID != 0 {
		if engine := r.AppID >> 24; engine != 0 {
			// IE 95: the top byte is the classification engine.
			if engine == engineIANAL4 {
				port := uint16(r.AppID)
				if id, ok := staticL7.portApp(r.Proto, port); ok {
					return id
				}
			}
		} else if id, ok := staticL7.ndpi[r.AppID]; ok {
			return id
		}
	}
	switch r.Proto {
	case flow.ProtoICMP:
		return l7ICMPID
	case flow.ProtoICMPv6:
		return l7ICMPv6ID
	case flow.ProtoTCP, flow.ProtoUDP:
		// The lower port is the likelier server; try it first.
		lo, hi := r.SrcPort, r.DstPort
		if hi < lo {
			lo, hi = hi, lo
		}
		if id, ok := staticL7.portApp(r.Proto, lo); ok {
			return id
		}
		if id, ok := staticL7.portApp(r.Proto, hi); ok {
			return id
		}
		if (lo >= 6881 && lo <= 6889) || (hi >= 6881 && hi <= 6889) {
			return l7BitTorrentID
		}
	}
	return l7UnknownID
}
