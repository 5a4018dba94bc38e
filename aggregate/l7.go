package aggregate

import "github.com/flowcheck/flowcheck/flow"

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

// appName returns the application of a record: nProbe's L7_PROTO_NAME,
// else the application id (nDPI id, or IE 95 with a port selector), else a
// guess from the well-known server port, else "Unknown".
func appName(r *flow.Record) string {
	if r.AppName != "" {
		return r.AppName
	}
	if r.AppID != 0 {
		if engine := r.AppID >> 24; engine != 0 {
			// IE 95: the top byte is the classification engine.
			if engine == engineIANAL4 {
				port := uint16(r.AppID)
				if n, ok := portNames[uint32(r.Proto)<<16|uint32(port)]; ok {
					return n
				}
			}
		} else if n, ok := ndpiNames[r.AppID]; ok {
			return n
		}
	}
	switch r.Proto {
	case flow.ProtoICMP:
		return "ICMP"
	case flow.ProtoICMPv6:
		return "ICMPV6"
	case flow.ProtoTCP, flow.ProtoUDP:
		// The lower port is the likelier server; try it first.
		lo, hi := r.SrcPort, r.DstPort
		if hi < lo {
			lo, hi = hi, lo
		}
		if n, ok := portNames[uint32(r.Proto)<<16|uint32(lo)]; ok {
			return n
		}
		if n, ok := portNames[uint32(r.Proto)<<16|uint32(hi)]; ok {
			return n
		}
		if r.Proto == flow.ProtoUDP || r.Proto == flow.ProtoTCP {
			if (lo >= 6881 && lo <= 6889) || (hi >= 6881 && hi <= 6889) {
				return "BitTorrent"
			}
		}
	}
	return l7Unknown
}
