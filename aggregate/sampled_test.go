package aggregate

import (
	"math"
	"net/netip"
	"testing"

	"github.com/flowcheck/flowcheck/flow"
)

func TestDecideSampled(t *testing.T) {
	const (
		ack = flow.TCPAck
		rst = flow.TCPRst
		psh = flow.TCPPsh
		fin = flow.TCPFin
	)
	none := sideState{}
	side := func(f uint8) sideState { return sideState{seen: true, flags: f} }
	cases := []struct {
		name     string
		cli, srv sideState
		want     verdict
	}{
		{"attempt alone", side(syn), none, verdictOneSided},
		{"retransmitted attempts alone", side(syn), none, verdictOneSided},
		{"client data alone: established", side(ack | psh), none, verdictNone},
		{"client RST alone", side(rst), none, verdictNone},
		{"client SYN and RST alone", side(syn | rst), none, verdictNone},
		{"attempt, RST-ACK back", side(syn), side(rstAck), verdictRefused},
		{"RST-ACK alone", none, side(rstAck), verdictRefused},
		{"bare RST alone", none, side(rst), verdictRefused},
		{"attempt, SYN-ACK back", side(syn), side(synAck), verdictNone},
		{"server data alone", none, side(ack | psh), verdictNone},
		{"server data then RST", none, side(ack | psh | rst), verdictNone},
		{"server FIN and RST", none, side(ack | fin | rst), verdictNone},
		{"client ACK, server RST (abort)", side(ack), side(rstAck), verdictNone},
		{"nothing", none, none, verdictNone},
	}
	for _, tc := range cases {
		if got := decideSampled(tc.cli, tc.srv); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// sampled returns r as exported at 1-in-n: counters scaled, rate set.
func sampled(r flow.Record, n uint32) flow.Record {
	r.SamplingRate = n
	r.Bytes *= uint64(n)
	r.Packets *= uint64(n)
	return r
}

// TestSampledContacts drives the sampled semantics record by record: a
// service contact gathers the flags of its window, whatever the client's
// port, and is decided when the window ends; each sampled verdict counts N
// conversations; the sets hold what was seen; UDP is no evidence.
func TestSampledContacts(t *testing.T) {
	tbl, clk, _ := newTestTable(t, DefaultConfiguration(), Dependencies{})
	const n = 10
	c, s, s2 := "10.0.0.1", "10.0.0.2", "10.0.0.3"
	tbl.Apply([]flow.Record{
		// Port 22: an attempt, then a RST from another client port: refused.
		sampled(rec(c, 40000, s, 22, flow.ProtoTCP, syn), n),
		sampled(rec(s, 22, c, 40001, flow.ProtoTCP, rstAck), n),
		// Port 23: an attempt and nothing: one-sided.
		sampled(rec(c, 40002, s, 23, flow.ProtoTCP, syn), n),
		// Port 80: an attempt, and the reply of another connection
		// arrives later in the window: answered.
		sampled(rec(c, 40003, s, 80, flow.ProtoTCP, syn), n),
		// Port 25 of s2: a RST only, no attempt seen: refused.
		sampled(rec(s2, 25, c, 40004, flow.ProtoTCP, rstAck), n),
		// UDP: no evidence either way.
		sampled(rec(c, 40005, s, 53, flow.ProtoUDP, 0), n),
		sampled(rec(c, 40006, s2, 161, flow.ProtoUDP, 0), n),
	})
	clk.Advance(10e9)
	tbl.Apply([]flow.Record{sampled(rec(s, 80, c, 40007, flow.ProtoTCP, flow.TCPAck|flow.TCPPsh), n)})
	if got := snap(t, tbl, key(c)); got.NoReply.PeersAsClient != 0 || got.Refused.PeersAsClient != 0 {
		t.Fatalf("decided before the window ended: %+v %+v", got.NoReply, got.Refused)
	}
	clk.Advance(DefaultConfiguration().ReplyWindow)
	tbl.Advance(clk.Now())
	got := snap(t, tbl, key(c))
	if want := (ContactCounts{PeersAsClient: 1, ServerPorts: 1}); got.NoReply != want {
		t.Errorf("no-reply %+v, want %+v", got.NoReply, want)
	}
	if want := (ContactCounts{PeersAsClient: 2, ServerPorts: 2}); got.Refused != want {
		t.Errorf("refused %+v, want %+v", got.Refused, want)
	}
	if got.Unidirectional != (UnidirectionalStats{EgressTCP: n}) || got.RefusedFlows != (UnidirectionalStats{EgressTCP: 2 * n}) {
		t.Errorf("conversations %+v %+v, want %d one-sided and %d refused", got.Unidirectional, got.RefusedFlows, n, 2*n)
	}
	if got.Sampling != (VerdictSampling{Rate: n, Verdicts: 3}) || got.Sampling.Exact() {
		t.Errorf("sampling %+v, want rate %d, 3 verdicts", got.Sampling, n)
	}
	if got := snap(t, tbl, key(s)); got.NoReply.PeersAsServer != 1 || got.Refused.PeersAsServer != 1 || got.Unidirectional.IngressUDP != 0 {
		t.Errorf("server: %+v %+v %+v", got.NoReply, got.Refused, got.Unidirectional)
	}
	// Bytes and packets stay scaled, as exported.
	if got.PacketsSent != 5*n || got.BytesSent != 5*40*n {
		t.Errorf("client sent %d packets %d bytes, want %d %d", got.PacketsSent, got.BytesSent, 5*n, 5*40*n)
	}
	// A rate of 1 is exact: the usual 5-tuple semantics.
	tbl.Apply([]flow.Record{sampled(rec("10.0.1.1", 40000, s, 22, flow.ProtoTCP, syn), 1)})
	clk.Advance(DefaultConfiguration().ReplyWindow + 1)
	tbl.Advance(clk.Now())
	if got := snap(t, tbl, key("10.0.1.1")); !got.Sampling.Exact() || got.Unidirectional.EgressTCP != 1 {
		t.Errorf("1-in-1: %+v %+v, want exact, 1 one-sided", got.Sampling, got.Unidirectional)
	}
}

// TestSampledExports replays scan-mix.pcap as pmacctd exported it with
// nfprobe (NetFlow v9) and sfprobe (sFlow v5) at sampling_rate 1, 10 and
// 100 (testdata/make-sampled.sh). At 1-in-1 every figure equals the truth;
// at 1-in-N the packet and byte counters, scaled by N, are within four
// standard deviations of the truth (packets: sqrt((N-1)P); bytes:
// sqrt((N-1)·1500·B), since no packet exceeds 1500 bytes), and the
// scanners' sampled evidence is there.
func TestSampledExports(t *testing.T) {
	cases := []struct {
		file string
		rate uint32
	}{
		{"pmacctd-nfprobe-v9-1.pcap", 1}, {"pmacctd-sfprobe-1.pcap", 1},
		{"pmacctd-nfprobe-v9-10.pcap", 10}, {"pmacctd-sfprobe-10.pcap", 10},
		{"pmacctd-nfprobe-v9-100.pcap", 100}, {"pmacctd-sfprobe-100.pcap", 100},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel()
			tbl, _ := replay(t, "../aggregate/testdata/"+tc.file, DefaultConfiguration())
			for _, want := range scanMixTruth()[:4] {
				var s HostSnapshot
				if !tbl.Snapshot(HostKey{Addr: netip.MustParseAddr(want.addr)}, &s) {
					if tc.rate == 1 {
						t.Errorf("%s: host missing", want.addr)
					}
					continue
				}
				if tc.rate == 1 {
					if s.NoReply != want.noReply || s.Refused != want.refused || s.Unidirectional != want.uni || s.RefusedFlows != want.refFlows {
						t.Errorf("%s: %+v %+v %+v %+v, want %+v %+v %+v %+v", want.addr, s.NoReply, s.Refused, s.Unidirectional, s.RefusedFlows,
							want.noReply, want.refused, want.uni, want.refFlows)
					}
					if s.BytesSent != want.sent || s.BytesRcvd != want.rcvd || s.PacketsSent != want.packetsSent || s.PacketsRcvd != want.packetsRcvd {
						t.Errorf("%s: traffic %d/%d B %d/%d packets, want the truth", want.addr, s.BytesSent, s.BytesRcvd, s.PacketsSent, s.PacketsRcvd)
					}
					if !s.Sampling.Exact() {
						t.Errorf("%s: sampling %+v, want exact", want.addr, s.Sampling)
					}
					continue
				}
				n := float64(tc.rate)
				within := func(what string, got, truth uint64, sd float64) {
					if math.Abs(float64(got)-float64(truth)) > 4*sd {
						t.Errorf("%s: %s %d, truth %d: more than 4 sd (%.0f) apart", want.addr, what, got, truth, sd)
					}
				}
				within("packets sent", s.PacketsSent, want.packetsSent, math.Sqrt((n-1)*float64(want.packetsSent)))
				within("packets received", s.PacketsRcvd, want.packetsRcvd, math.Sqrt((n-1)*float64(want.packetsRcvd)))
				within("bytes sent", s.BytesSent, want.sent, math.Sqrt((n-1)*1500*float64(want.sent)))
				within("bytes received", s.BytesRcvd, want.rcvd, math.Sqrt((n-1)*1500*float64(want.rcvd)))
			}
			for _, scanner := range []string{"10.99.0.10", "10.99.0.30"} {
				s := snap(t, tbl, key(scanner))
				if tc.rate == 1 {
					continue
				}
				// About 2·1000/N closed or silent ports show (the SYN or
				// the RST); at least 8.
				if ports := s.NoReply.ServerPorts + s.Refused.ServerPorts; s.Sampling.Rate != tc.rate || ports < 8 || s.Sampling.Exact() {
					t.Errorf("%s: %d sampled ports, sampling %+v", scanner, ports, s.Sampling)
				}
				// UDP is no evidence under sampling.
				if s.Unidirectional.EgressUDP != 0 {
					t.Errorf("%s: %d one-sided UDP conversations under sampling", scanner, s.Unidirectional.EgressUDP)
				}
			}
		})
	}
}

// TestL7FlowsLoneUDP: a lone UDP datagram is a conversation (the reply
// tracker makes its sender the client), so it counts one L7 flow on both
// hosts whatever the ports; an answered one counts once.
func TestL7FlowsLoneUDP(t *testing.T) {
	flows := func(s HostSnapshot) (n uint64) {
		for _, l := range s.L7 {
			n += l.Flows
		}
		return n
	}
	tbl, clk, _ := newTestTable(t, DefaultConfiguration(), Dependencies{})
	tbl.Apply([]flow.Record{
		rec("10.0.0.1", 40000, "10.0.0.2", 50000, flow.ProtoUDP, 0), // lone, to a higher port
		rec("10.0.0.1", 40000, "10.0.0.2", 30000, flow.ProtoUDP, 0), // lone, to a lower port
		rec("10.0.0.1", 5000, "10.0.0.3", 5000, flow.ProtoUDP, 0),   // lone, equal ports, lower address
		rec("10.0.0.4", 5000, "10.0.0.1", 5000, flow.ProtoUDP, 0),   // lone, equal ports, higher address
		// Answered: one flow, the higher port's.
		rec("10.0.0.1", 40000, "10.0.0.5", 50000, flow.ProtoUDP, 0),
		rec("10.0.0.5", 50000, "10.0.0.1", 40000, flow.ProtoUDP, 0),
	})
	clk.Advance(DefaultConfiguration().ReplyWindow + 1)
	tbl.Advance(clk.Now())
	for ip, want := range map[string]uint64{"10.0.0.1": 5, "10.0.0.2": 2, "10.0.0.3": 1, "10.0.0.4": 1, "10.0.0.5": 1} {
		if got := flows(snap(t, tbl, key(ip))); got != want {
			t.Errorf("%s: %d L7 flows, want %d", ip, got, want)
		}
	}

	// filtered-scan's UDP scan goes from port 40989 to 50 ports, three of
	// them above it (49152-49154): the scanner's L7 flows are its 551
	// conversations (500 scan SYNs, 1 more SYN, 50 UDP probes).
	for _, file := range []string{"softflowd-filtered-v9.pcap", "softflowd-filtered-ipfix.pcap", "pmacctd-filtered-ipfix.pcap"} {
		tbl, _ := replay(t, file, DefaultConfiguration())
		if got := flows(snap(t, tbl, key("10.98.0.66"))); got != 551 {
			t.Errorf("%s: scanner has %d L7 flows, want its 551 conversations", file, got)
		}
	}
}
