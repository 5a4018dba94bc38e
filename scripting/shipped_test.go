package scripting

import (
	"sort"
	"strings"
	"testing"

	"github.com/flowcheck/flowcheck/aggregate"
)

// shippedCase is one host as the host table would show it after one tick of
// traffic, and the shipped checks that must engage on it.
type shippedCase struct {
	name string
	snap aggregate.HostSnapshot
	want []string
}

func shippedCases() []shippedCase {
	cc := func(peers, ports, asServer uint64) aggregate.ContactCounts {
		return aggregate.ContactCounts{PeersAsClient: peers, ServerPorts: ports, PeersAsServer: asServer}
	}
	return []shippedCase{
		// scan-mix.pcap (scan-mix-truth.md): A scans B's closed ports
		// (RST) and sweeps 20 addresses on 5 ports; C scans B; B is scanned.
		{"scan-mix A", aggregate.HostSnapshot{Key: key("10.99.0.10"), Local: true,
			NoReply: cc(1, 3, 0), Refused: cc(21, 1001, 0),
			Unidirectional: aggregate.UnidirectionalStats{EgressUDP: 6}, RefusedFlows: aggregate.UnidirectionalStats{EgressTCP: 1079}},
			[]string{"scan_detection"}},
		{"scan-mix B", aggregate.HostSnapshot{Key: key("10.99.0.20"), Local: true,
			NoReply: cc(0, 0, 1), Refused: cc(0, 0, 2),
			Unidirectional: aggregate.UnidirectionalStats{IngressUDP: 6}, RefusedFlows: aggregate.UnidirectionalStats{IngressTCP: 1998}},
			[]string{"scan_victim"}},
		{"scan-mix C", aggregate.HostSnapshot{Key: key("10.99.0.30"), Local: true,
			Refused: cc(1, 999, 1), RefusedFlows: aggregate.UnidirectionalStats{EgressTCP: 999, IngressTCP: 4}},
			[]string{"scan_detection"}},
		{"scan-mix sweep target", aggregate.HostSnapshot{Key: key("10.99.0.31"), Local: true,
			Refused: cc(0, 0, 1), RefusedFlows: aggregate.UnidirectionalStats{IngressTCP: 4}}, nil},
		// filtered-scan.pcap (filtered-scan.md): the victim drops silently.
		{"filtered S v4", aggregate.HostSnapshot{Key: key("10.98.0.66"), Local: true,
			NoReply: cc(1, 531, 0), Unidirectional: aggregate.UnidirectionalStats{EgressTCP: 498, EgressUDP: 50}},
			[]string{"scan_detection"}},
		{"filtered S v6", aggregate.HostSnapshot{Key: key("fd00:98::66"), Local: true,
			NoReply: cc(1, 199, 0), Unidirectional: aggregate.UnidirectionalStats{EgressTCP: 199}},
			[]string{"scan_detection"}},
		{"filtered V v4", aggregate.HostSnapshot{Key: key("10.98.0.20"), Local: true,
			NoReply: cc(0, 0, 1), Unidirectional: aggregate.UnidirectionalStats{IngressTCP: 498, IngressUDP: 50}},
			[]string{"scan_victim"}},
		{"filtered V v6", aggregate.HostSnapshot{Key: key("fd00:98::20"), Local: true,
			NoReply: cc(0, 0, 1), Unidirectional: aggregate.UnidirectionalStats{IngressTCP: 199}},
			[]string{"scan_victim"}},
		{"filtered C (HTTP client)", aggregate.HostSnapshot{Key: key("10.98.0.10"), Local: true,
			BytesSent: 7254, BytesRcvd: 26408, L7: []aggregate.L7Stat{{Name: "TLS", BytesSent: 4614, BytesRcvd: 19480, Flows: 3}}}, nil},
		// Worm-style sweeps of a few dozen addresses on 445/139.
		{"sweep, targets drop", aggregate.HostSnapshot{Key: key("10.1.0.1"), Local: true,
			NoReply: cc(30, 2, 0), Unidirectional: aggregate.UnidirectionalStats{EgressTCP: 60}},
			[]string{"scan_detection"}},
		{"sweep, targets RST", aggregate.HostSnapshot{Key: key("10.1.0.2"), Local: true,
			Refused: cc(24, 2, 0), RefusedFlows: aggregate.UnidirectionalStats{EgressTCP: 48}},
			[]string{"scan_detection"}},
		{"sweep, mixed", aggregate.HostSnapshot{Key: key("10.1.0.3"), Local: true,
			NoReply: cc(12, 5, 0), Refused: cc(12, 5, 0),
			Unidirectional: aggregate.UnidirectionalStats{EgressTCP: 30}, RefusedFlows: aggregate.UnidirectionalStats{EgressTCP: 30}},
			[]string{"scan_detection"}},
		{"vertical, mixed drop and RST", aggregate.HostSnapshot{Key: key("10.1.0.4"), Local: true,
			NoReply: cc(1, 150, 0), Refused: cc(1, 150, 0),
			Unidirectional: aggregate.UnidirectionalStats{EgressTCP: 150}, RefusedFlows: aggregate.UnidirectionalStats{EgressTCP: 150}},
			[]string{"scan_detection"}},
		// Normal clients and servers: no scan alert.
		{"browser", aggregate.HostSnapshot{Key: key("10.2.0.1"), Local: true, BytesSent: 2e6, BytesRcvd: 80e6,
			NoReply: cc(3, 2, 0), Refused: cc(1, 1, 0), Unidirectional: aggregate.UnidirectionalStats{EgressTCP: 4, EgressUDP: 1},
			L7: []aggregate.L7Stat{{Name: "TLS", BytesSent: 2e6, BytesRcvd: 80e6, Flows: 300}, {Name: "DNS", BytesSent: 9000, BytesRcvd: 30000, Flows: 120}}}, nil},
		{"big download", aggregate.HostSnapshot{Key: key("10.2.0.2"), Local: true, BytesSent: 20e6, BytesRcvd: 900e6,
			L7: []aggregate.L7Stat{{Name: "HTTP", BytesSent: 20e6, BytesRcvd: 900e6, Flows: 2}}}, nil},
		{"P2P client", aggregate.HostSnapshot{Key: key("10.2.0.3"), Local: true, BytesSent: 30e6, BytesRcvd: 60e6,
			NoReply: cc(70, 66, 3), Refused: cc(12, 12, 0),
			Unidirectional: aggregate.UnidirectionalStats{EgressTCP: 20, EgressUDP: 90, IngressUDP: 3},
			L7:             []aggregate.L7Stat{{Name: "BitTorrent", BytesSent: 30e6, BytesRcvd: 60e6, Flows: 400}}}, nil},
		{"DNS resolver", aggregate.HostSnapshot{Key: key("10.2.0.4"), Local: true, BytesSent: 3e6, BytesRcvd: 9e6,
			NoReply: cc(40, 1, 2), Unidirectional: aggregate.UnidirectionalStats{EgressUDP: 55, IngressUDP: 2},
			L7: []aggregate.L7Stat{{Name: "DNS", BytesSent: 3e6, BytesRcvd: 9e6, Flows: 20000}}}, nil},
		{"web server", aggregate.HostSnapshot{Key: key("10.2.0.5"), Local: true, BytesSent: 500e6, BytesRcvd: 20e6,
			NoReply: cc(0, 0, 3), Refused: cc(0, 0, 2),
			Unidirectional: aggregate.UnidirectionalStats{IngressTCP: 3}, RefusedFlows: aggregate.UnidirectionalStats{IngressTCP: 4}}, nil},
		// The traffic checks.
		{"heavy BitTorrent", aggregate.HostSnapshot{Key: key("10.3.0.1"), Local: true, BytesSent: 100e6, BytesRcvd: 200e6,
			L7: []aggregate.L7Stat{{Name: "BitTorrent", BytesSent: 100e6, BytesRcvd: 100e6, Flows: 50}}},
			[]string{"p2p_heavy"}},
		{"large transfer", aggregate.HostSnapshot{Key: key("10.3.0.2"), Local: true, BytesSent: 1.5e9, BytesRcvd: 1e6},
			[]string{"large_transfer"}},
		{"blacklisted", aggregate.HostSnapshot{Key: key("198.51.100.7"), Blacklisted: true, BytesSent: 1000},
			[]string{"blacklisted_host"}},
		{"rx-only contacted", aggregate.HostSnapshot{Key: key("10.3.0.3"), Local: true, RxOnly: true, BytesRcvd: 4000,
			NoReply: cc(0, 0, 20), Unidirectional: aggregate.UnidirectionalStats{IngressTCP: 25}},
			[]string{"rx_only_contacted", "scan_victim"}},
		{"rx-only, few peers", aggregate.HostSnapshot{Key: key("10.3.0.4"), Local: true, RxOnly: true, BytesRcvd: 400,
			NoReply: cc(0, 0, 2), Unidirectional: aggregate.UnidirectionalStats{IngressTCP: 2}}, nil},
	}
}

func TestShippedChecks(t *testing.T) {
	cases := shippedCases()
	hosts := newFakeHosts()
	for _, c := range cases {
		hosts.put(c.snap)
	}
	h := newHarness(t, nil, hosts, nil)
	if st := h.tick(); st.Errors != 0 {
		t.Fatalf("tick: %+v", st)
	}
	got := map[string][]string{}
	for _, ev := range h.pub.take() {
		got[ev.Host.IP] = append(got[ev.Host.IP], ev.Check)
		if ev.Check == "scan_detection" {
			t.Logf("%s: %s", ev.Host.IP, ev.Message)
		}
	}
	for _, c := range cases {
		g := got[c.snap.Key.Addr.String()]
		sort.Strings(g)
		if strings.Join(g, ",") != strings.Join(c.want, ",") {
			t.Errorf("%s: engaged %v, want %v", c.name, g, c.want)
		}
	}
}

func TestShippedChecksOverTicks(t *testing.T) {
	scanner := key("10.98.0.66")
	bad := key("198.51.100.7")
	hosts := newFakeHosts(
		aggregate.HostSnapshot{Key: scanner, Local: true, BytesSent: 26169,
			NoReply: aggregate.ContactCounts{PeersAsClient: 1, ServerPorts: 531}, Unidirectional: aggregate.UnidirectionalStats{EgressTCP: 498, EgressUDP: 50}},
		aggregate.HostSnapshot{Key: bad, Blacklisted: true, BytesSent: 1000,
			Refused: aggregate.ContactCounts{PeersAsClient: 1, ServerPorts: 300}, RefusedFlows: aggregate.UnidirectionalStats{EgressTCP: 300}},
	)
	h := newHarness(t, nil, hosts, nil)
	type step struct {
		change func()
		want   map[string]int // check → engaged value; absent = not engaged
	}
	steps := []step{
		// Tick 1: the scan and the blacklisted host engage; dangerous_host
		// runs before scan_detection, so it sees 90 only.
		{nil, map[string]int{"10.98.0.66/scan_detection": 80, "198.51.100.7/scan_detection": 80, "198.51.100.7/blacklisted_host": 90}},
		// Tick 2: still within the two-tick window; the blacklisted host is
		// active, and its score from other checks is 170.
		{func() { hosts.update(bad, func(s *aggregate.HostSnapshot) { s.BytesSent += 10 }) },
			map[string]int{"10.98.0.66/scan_detection": 80, "198.51.100.7/scan_detection": 80, "198.51.100.7/blacklisted_host": 90, "198.51.100.7/dangerous_host": 60}},
		// Tick 3: no new ports, the blacklisted host is idle: all released
		// (blacklisted_host runs before dangerous_host, which then sees 80).
		{nil, map[string]int{}},
		// Tick 4: the scanner scans 200 more ports: engaged again.
		{func() {
			hosts.update(scanner, func(s *aggregate.HostSnapshot) { s.NoReply.ServerPorts += 200; s.Unidirectional.EgressTCP += 200 })
		}, map[string]int{"10.98.0.66/scan_detection": 80}},
	}
	for i, s := range steps {
		if s.change != nil {
			s.change()
		}
		h.tick()
		got := map[string]int{}
		for _, ev := range h.e.Engaged() {
			got[ev.Host.IP+"/"+ev.Check] = ev.Value
		}
		if len(got) != len(s.want) {
			t.Errorf("tick %d: engaged %v, want %v", i+1, got, s.want)
			continue
		}
		for k, v := range s.want {
			if got[k] != v {
				t.Errorf("tick %d: engaged %v, want %v", i+1, got, s.want)
				break
			}
		}
	}
}
