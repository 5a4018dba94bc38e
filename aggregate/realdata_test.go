package aggregate

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowcheck/flowcheck/clock"
	"github.com/flowcheck/flowcheck/internal/capturetest"
)

// expectHost is a host's expected figures from the truth files.
type expectHost struct {
	addr             string
	noReply, refused ContactCounts
	// uni and refFlows are the one-sided and refused conversation counts
	// by role; the flow-based counts equal the truth's here (softflowd's
	// extra 5-tuple reuses only touch answered conversations).
	uni, refFlows UnidirectionalStats
	// httpSent and httpRcvd are the host's "HTTP" L7 bytes, when checked.
	httpSent, httpRcvd       uint64
	sent, rcvd               uint64
	packetsSent, packetsRcvd uint64
}

// Figures from scan-mix-truth.md (computed from the raw packets).
func scanMixTruth() []expectHost {
	h := []expectHost{
		// A: HTTP = its tcp/80 conversations with B (9,842 / 1,852,370 B)
		// plus its sweep probes to port 80 of C's 20 addresses (44 / 40 B).
		{addr: "10.99.0.10", noReply: ContactCounts{1, 3, 0}, refused: ContactCounts{21, 1001, 0},
			uni: UnidirectionalStats{EgressUDP: 6}, refFlows: UnidirectionalStats{EgressTCP: 1079},
			httpSent: 10722, httpRcvd: 1853170,
			sent: 61854, rcvd: 1898834, packetsSent: 1326, packetsRcvd: 1283},
		// B: HTTP = tcp/80 from A and C plus tcp/8080 from C.
		{addr: "10.99.0.20", noReply: ContactCounts{0, 0, 1}, refused: ContactCounts{0, 0, 2},
			uni: UnidirectionalStats{IngressUDP: 6}, refFlows: UnidirectionalStats{IngressTCP: 1998},
			httpSent: 1852370 + 13260 + 200516, httpRcvd: 9842 + 24164 + 3390,
			sent: 2148826, rcvd: 144484, packetsSent: 2537, packetsRcvd: 2866},
		{addr: "10.99.0.30", refused: ContactCounts{1, 999, 1},
			refFlows: UnidirectionalStats{EgressTCP: 999, IngressTCP: 4},
			sent:     88034, rcvd: 254332, packetsSent: 1665, packetsRcvd: 1360},
	}
	for i := 31; i <= 49; i++ {
		h = append(h, expectHost{addr: fmt.Sprintf("10.99.0.%d", i), refused: ContactCounts{0, 0, 1},
			refFlows: UnidirectionalStats{IngressTCP: 4},
			sent:     204, rcvd: 260, packetsSent: 5, packetsRcvd: 6})
	}
	return h
}

// Figures from filtered-scan.md.
func filteredTruth() []expectHost {
	return []expectHost{
		{addr: "10.98.0.66", noReply: ContactCounts{1, 531, 0}, uni: UnidirectionalStats{EgressTCP: 498, EgressUDP: 50},
			sent: 26169, rcvd: 132},
		{addr: "fd00:98::66", noReply: ContactCounts{1, 199, 0}, uni: UnidirectionalStats{EgressTCP: 199},
			sent: 12984, rcvd: 128},
		{addr: "10.98.0.20", noReply: ContactCounts{0, 0, 1}, uni: UnidirectionalStats{IngressTCP: 498, IngressUDP: 50},
			sent: 26540, rcvd: 33423},
		{addr: "fd00:98::20", noReply: ContactCounts{0, 0, 1}, uni: UnidirectionalStats{IngressTCP: 199},
			sent: 6784, rcvd: 14157},
		{addr: "10.98.0.10", sent: 7254, rcvd: 26408},
		{addr: "fd00:98::10", sent: 1173, rcvd: 6656},
	}
}

// replay feeds an export capture through the real ingest path into a fresh
// table, as the pipeline does: pcapsrc reads each export datagram,
// collector.HandleDatagram decodes it synchronously into Apply, the clock
// follows the capture, Advance runs after each datagram, and a final
// Advance goes past the reply window. It returns the table and the number
// of flow records ingest delivered.
func replay(t testing.TB, file string, cfg Configuration) (*HostTable, int) {
	t.Helper()
	path := "../testdata/" + file
	clk := clock.NewManual(capturetest.Start(t, path))
	tbl, err := New(cfg, Dependencies{Registerer: prometheus.NewRegistry(), Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	records := capturetest.Feed(t, path, clk, tbl.Apply, tbl.Advance)
	tbl.Advance(clk.Now().Add(cfg.ReplyWindow + time.Second))
	return tbl, records
}

func TestRealExports(t *testing.T) {
	cases := []struct {
		file  string
		truth func() []expectHost
		// records is the number of flow records in the export (the
		// testdata READMEs, from tshark): biflow files count conversations.
		records int
	}{
		{"softflowd-v5.pcap", scanMixTruth, 4856},
		{"softflowd-v9.pcap", scanMixTruth, 4856},
		{"softflowd-ipfix.pcap", scanMixTruth, 4856},
		{"softflowd-ipfix-bidir.pcap", scanMixTruth, 2434},
		{"softflowd-ipfix-absms.pcap", scanMixTruth, 4856},
		{"pmacctd-v5.pcap", scanMixTruth, 4856},
		{"pmacctd-v9.pcap", scanMixTruth, 4856},
		{"pmacctd-ipfix.pcap", scanMixTruth, 4856},
		{"softflowd-filtered-v9.pcap", filteredTruth, 769},
		{"softflowd-filtered-ipfix.pcap", filteredTruth, 769},
		{"softflowd-filtered-ipfix-bidir.pcap", filteredTruth, 758},
		{"pmacctd-filtered-ipfix.pcap", filteredTruth, 769},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel()
			tbl, records := replay(t, tc.file, DefaultConfiguration())
			if records != tc.records {
				t.Errorf("ingest delivered %d records, want %d", records, tc.records)
			}
			var s HostSnapshot
			for _, want := range tc.truth() {
				key := HostKey{Addr: netip.MustParseAddr(want.addr)}
				if !tbl.Snapshot(key, &s) {
					t.Errorf("%s: host missing", want.addr)
					continue
				}
				if s.NoReply != want.noReply {
					t.Errorf("%s: no-reply %+v, want %+v", want.addr, s.NoReply, want.noReply)
				}
				if s.Refused != want.refused {
					t.Errorf("%s: refused %+v, want %+v", want.addr, s.Refused, want.refused)
				}
				if s.Unidirectional != want.uni || s.RefusedFlows != want.refFlows {
					t.Errorf("%s: one-sided flows %+v refused flows %+v, want %+v %+v", want.addr, s.Unidirectional, s.RefusedFlows, want.uni, want.refFlows)
				}
				if want.httpSent != 0 {
					var http L7Stat
					for _, l := range s.L7 {
						if l.Name == "HTTP" {
							http = l
						}
					}
					if http.BytesSent != want.httpSent || http.BytesRcvd != want.httpRcvd {
						t.Errorf("%s: HTTP bytes %d/%d, want %d/%d", want.addr, http.BytesSent, http.BytesRcvd, want.httpSent, want.httpRcvd)
					}
				}
				if s.BytesSent != want.sent || s.BytesRcvd != want.rcvd {
					t.Errorf("%s: bytes sent/rcvd %d/%d, want %d/%d", want.addr, s.BytesSent, s.BytesRcvd, want.sent, want.rcvd)
				}
				if want.packetsSent != 0 && (s.PacketsSent != want.packetsSent || s.PacketsRcvd != want.packetsRcvd) {
					t.Errorf("%s: packets sent/rcvd %d/%d, want %d/%d", want.addr, s.PacketsSent, s.PacketsRcvd, want.packetsSent, want.packetsRcvd)
				}
				if !s.Local || !s.Unicast() || s.RxOnly {
					t.Errorf("%s: flags local=%v unicast=%v rxonly=%v", want.addr, s.Local, s.Unicast(), s.RxOnly)
				}
			}
		})
	}
}
