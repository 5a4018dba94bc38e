package scripting

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowcheck/flowcheck/aggregate"
	"github.com/flowcheck/flowcheck/alert"
	"github.com/flowcheck/flowcheck/clock"
	"github.com/flowcheck/flowcheck/flow"
	"github.com/flowcheck/flowcheck/internal/capturetest"
)

// ingestExport runs an export capture of testdata through the real ingest
// path into a host table with the default configuration (local_networks =
// the private ranges), as the pipeline does in a replay: pcapsrc reads each
// datagram, collector.HandleDatagram decodes it into HostTable.Apply, the
// clock follows the capture and Advance runs after each datagram; a last
// Advance goes past the reply window so that every pending conversation is
// decided. keep, when not nil, drops the records it returns false for
// before they reach the table. It returns the table and that last time.
func ingestExport(t testing.TB, file string, keep func(r *flow.Record) bool) (*aggregate.HostTable, time.Time) {
	t.Helper()
	path := "../testdata/" + file
	clk := clock.NewManual(capturetest.Start(t, path))
	cfg := aggregate.DefaultConfiguration()
	tbl, err := aggregate.New(cfg, aggregate.Dependencies{Registerer: prometheus.NewRegistry(), Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	capturetest.Feed(t, path, clk, func(batch []flow.Record) {
		if keep != nil {
			kept := batch[:0]
			for i := range batch {
				if keep(&batch[i]) {
					kept = append(kept, batch[i])
				}
			}
			batch = kept
		}
		tbl.Apply(batch)
	}, tbl.Advance)
	end := clk.Now().Add(cfg.ReplyWindow + time.Second)
	clk.Set(end)
	tbl.Advance(end)
	if tbl.Len() == 0 {
		t.Fatalf("%s: no host", file)
	}
	return tbl, end
}

// newRealEngine builds an engine over a real host table, on a manual clock
// at now. Only the script directory (and, for files, the checks) and the
// per-call budget differ from cfg: the budget is generous so that a loaded
// machine under -race never stops a call.
func newRealEngine(t testing.TB, cfg Configuration, files map[string]string, hosts HostSource, now time.Time) (*Engine, *capture, *clock.Manual) {
	t.Helper()
	cfg.Dirs = []string{"../scripts"}
	if files != nil {
		dir := t.TempDir()
		writeScripts(t, dir, files)
		cfg.Dirs = []string{dir}
		cfg.Checks = map[string]CheckConfiguration{}
	}
	cfg.CallTimeout = time.Second
	cfg.Instance = "realdata"
	pub := &capture{}
	clk := clock.NewManual(now)
	e, err := New(cfg, Dependencies{
		Logger:     slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Registerer: prometheus.NewRegistry(),
		Clock:      clk,
		Hosts:      hosts,
		Alerts:     pub,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Stop(context.Background()) })
	return e, pub, clk
}

// realProbeScript reports, inside a host and outside one (at module load),
// the result of each of the 23 host.* functions and of the refused
// extensions. host.l7() is reported as its number of protocols, its HTTP
// entry, and whole when it has at most three protocols (the scanners' tables
// list every probed port's protocol).
const realProbeScript = probePrelude + `
local function probe()
  local r = {}
  for _, n in ipairs(names) do r[#r+1] = n .. "=" .. flat(host[n]()) end
  local l7 = host.l7()
  local n = 0
  for _ in pairs(l7 or {}) do n = n + 1 end
  r[#r+1] = "l7.count=" .. n
  r[#r+1] = "l7.HTTP=" .. flat(l7 and l7.HTTP)
  r[#r+1] = "l7=" .. (n <= 3 and flat(l7) or "many")
  r[#r+1] = "l7(HTTP)=" .. flat(host.l7("HTTP"))
  r[#r+1] = "uni=" .. flat(host.getUnidirectionalTCPUDPFlowsStats())
  r[#r+1] = "refusedflows=" .. flat(host.getRefusedTCPFlowsStats())
  r[#r+1] = "skip=" .. tostring(host.skipVisitedHost(false))
  r[#r+1] = "trigger=" .. tostring(host.triggerAlert(5, "outside"))
  return r
end
local outside = probe()
outside[#outside+1] = "reset=" .. tostring(host.resetHostContacts())
local M = {}
function M.check(info)
  local inside = probe()
  inside[#inside+1] = "info=" .. flat({ip=info.ip, vlan=info.vlan, mac=info.mac, name=info.name, is_local=info.is_local})
  host.triggerAlert(7, "OUT|" .. table.concat(outside, "|") .. "|IN|" .. table.concat(inside, "|"))
end
return M
`

// probeWant is what realProbeScript must report for one real host (every
// listed host is a local unicast host that sent packets); the L7 fields left
// empty are not checked.
type probeWant struct {
	ip                string
	sent, rcvd        uint64
	noReply, refused  aggregate.ContactCounts
	uni, refusedFlows aggregate.UnidirectionalStats
	l7Count           int
	l7HTTP, l7        string
}

// flowsTable is how the probe prints a flows-stats table.
func flowsTable(u aggregate.UnidirectionalStats, egress, ingress uint64) string {
	return fmt.Sprintf("{as_client:{tcp:%d,udp:%d},as_server:{tcp:%d,udp:%d},num_egress:%d,num_ingress:%d}",
		u.EgressTCP, u.EgressUDP, u.IngressTCP, u.IngressUDP, egress, ingress)
}

func l7Entry(sent, rcvd, pktsSent, pktsRcvd, flows uint64) string {
	return fmt.Sprintf("{bytes_rcvd:%d,bytes_sent:%d,flows:%d,packets_rcvd:%d,packets_sent:%d}", rcvd, sent, flows, pktsRcvd, pktsSent)
}

// TestHostAPIRealHosts checks every host.* function, and the refused
// extensions, from Lua on hosts built by the real ingest and host table
// from softflowd's IPFIX exports of scan-mix.pcap and filtered-scan.pcap,
// against the truth tables of the testdata READMEs.
func TestHostAPIRealHosts(t *testing.T) {
	cc := func(peers, ports, asServer uint64) aggregate.ContactCounts {
		return aggregate.ContactCounts{PeersAsClient: peers, ServerPorts: ports, PeersAsServer: asServer}
	}
	type uni = aggregate.UnidirectionalStats
	cases := []struct {
		file  string
		hosts []probeWant
	}{
		{"softflowd-ipfix.pcap", []probeWant{
			// A: HTTP is its tcp/80 with B (9,842 / 1,852,370 B in the truth)
			// plus its sweep probes to port 80 of C's 20 addresses (44 / 40
			// B). Packets are as aggregate counts them; flows are
			// conversations, counted once from the client's record: 14 HTTP
			// connections, 1 scan probe of B:80 and 20 sweep probes.
			{ip: "10.99.0.10", sent: 61854, rcvd: 1898834,
				noReply: cc(1, 3, 0), refused: cc(21, 1001, 0),
				uni: uni{EgressUDP: 6}, refusedFlows: uni{EgressTCP: 1079},
				l7Count: 24, l7HTTP: l7Entry(10722, 1853170, 185, 178, 35)},
			// B: HTTP = tcp/80 from A and C plus tcp/8080 from C (truth
			// bytes); packets as aggregate counts them. Flows: the 316 tcp/80
			// conversations with B (14 from A, 300 SYN flood, 2 scan
			// probes) and C's 6 to 8080.
			{ip: "10.99.0.20", sent: 2148826, rcvd: 144484,
				noReply: cc(0, 0, 1), refused: cc(0, 0, 2),
				uni: uni{IngressUDP: 6}, refusedFlows: uni{IngressTCP: 1998},
				l7Count: 23, l7HTTP: l7Entry(1852370+13260+200516, 9842+24164+3390, 509, 822, 322)},
			{ip: "10.99.0.30", sent: 88034, rcvd: 254332,
				refused: cc(1, 999, 1), refusedFlows: uni{EgressTCP: 999, IngressTCP: 4}},
			{ip: "10.99.0.31", sent: 204, rcvd: 260,
				refused: cc(0, 0, 1), refusedFlows: uni{IngressTCP: 4}},
			{ip: "10.99.0.49", sent: 204, rcvd: 260,
				refused: cc(0, 0, 1), refusedFlows: uni{IngressTCP: 4}},
		}},
		{"softflowd-filtered-ipfix.pcap", []probeWant{
			{ip: "10.98.0.66", sent: 26169, rcvd: 132,
				noReply: cc(1, 531, 0), uni: uni{EgressTCP: 498, EgressUDP: 50}},
			{ip: "fd00:98::66", sent: 12984, rcvd: 128,
				noReply: cc(1, 199, 0), uni: uni{EgressTCP: 199}},
			{ip: "10.98.0.20", sent: 26540, rcvd: 33423,
				noReply: cc(0, 0, 1), uni: uni{IngressTCP: 498, IngressUDP: 50}},
			{ip: "fd00:98::20", sent: 6784, rcvd: 14157,
				noReply: cc(0, 0, 1), uni: uni{IngressTCP: 199}},
			// C: every figure of its tcp/443 and tcp/22 traffic is in the
			// truth (bytes and packets each way, and 2 SSH and 3 TLS connections).
			{ip: "10.98.0.10", sent: 7254, rcvd: 26408, l7Count: 2, l7HTTP: "nil",
				l7: "{SSH:" + l7Entry(2640, 6928, 12, 16, 2) + ",TLS:" + l7Entry(4614, 19480, 28, 28, 3) + "}"},
			{ip: "fd00:98::10", sent: 1173, rcvd: 6656, l7Count: 1, l7HTTP: "nil",
				l7: "{TLS:" + l7Entry(1173, 6656, 9, 9, 1) + "}"},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			tbl, end := ingestExport(t, tc.file, nil)
			e, pub, clk := newRealEngine(t, DefaultConfiguration(), map[string]string{"probe": realProbeScript}, tbl, end)
			if st := e.Tick(context.Background(), end, false); st.Errors != 0 || st.Hosts != tbl.Len() {
				t.Fatalf("tick: %+v, %d hosts in the table", st, tbl.Len())
			}
			byHost := map[string]alert.Event{}
			for _, ev := range pub.take() {
				byHost[ev.Host.IP] = ev
			}
			for _, w := range tc.hosts {
				ev, ok := byHost[w.ip]
				if !ok {
					t.Errorf("%s: no probe event", w.ip)
					continue
				}
				outside, inside := parseProbe(t, ev.Message)
				mac := "00:00:00:00:00:00" // softflowd exports no MAC address
				want := map[string]string{
					"ip": w.ip, "mac": mac, "name": w.ip, "vlan_id": "0",
					"is_local": "true", "is_unicast": "true", "is_multicast": "false", "is_broadcast": "false",
					"is_blacklisted": "false", "is_rx_only": "false",
					"bytes":                                     fmt.Sprint(w.sent + w.rcvd),
					"bytes_sent":                                fmt.Sprint(w.sent),
					"bytes_rcvd":                                fmt.Sprint(w.rcvd),
					"getNumContactedPeersAsClientTCPUDPNoTX":    fmt.Sprint(w.noReply.PeersAsClient),
					"getNumContactedTCPUDPServerPortsNoTX":      fmt.Sprint(w.noReply.ServerPorts),
					"getNumContactsFromPeersAsServerTCPUDPNoTX": fmt.Sprint(w.noReply.PeersAsServer),
					"uni":                                       flowsTable(w.uni, w.uni.Egress(), w.uni.Ingress()),
					"getNumContactedPeersAsClientTCPRefused":    fmt.Sprint(w.refused.PeersAsClient),
					"getNumContactedTCPServerPortsRefused":      fmt.Sprint(w.refused.ServerPorts),
					"getNumContactsFromPeersAsServerTCPRefused": fmt.Sprint(w.refused.PeersAsServer),
					"refusedflows":                              flowsTable(w.refusedFlows, w.refusedFlows.Egress(), w.refusedFlows.Ingress()),
					"score":                                     "0",
					"isFirstCheckRun":                           "true",
					"skip":                                      "nil",
					"trigger":                                   "nil",
					"info":                                      fmt.Sprintf("{ip:%s,is_local:true,mac:%s,name:%s,vlan:0}", w.ip, mac, w.ip),
				}
				if w.l7Count != 0 {
					want["l7.count"] = fmt.Sprint(w.l7Count)
				}
				if w.l7HTTP != "" {
					want["l7.HTTP"], want["l7(HTTP)"] = w.l7HTTP, w.l7HTTP
				}
				if w.l7 != "" {
					want["l7"] = w.l7
				}
				for fn, v := range want {
					if inside[fn] != v {
						t.Errorf("%s: %s() = %q, want %q", w.ip, fn, inside[fn], v)
					}
				}
				// Outside a host: nil, or false for the predicates.
				for fn, v := range outside {
					wantOut := "nil"
					switch {
					case strings.HasPrefix(fn, "is_") || fn == "isFirstCheckRun":
						wantOut = "false"
					case fn == "l7.count":
						wantOut = "0"
					}
					if v != wantOut {
						t.Errorf("outside a host: %s() = %q, want %q", fn, v, wantOut)
					}
				}
				if len(outside) != 30 {
					t.Errorf("outside a host: %d results, want 30: %v", len(outside), outside)
				}
				if ev.Value != 7 || ev.Score != 7 || ev.State != alert.Engaged {
					t.Errorf("%s: value/score/state = %d/%d/%s, want 7/7/engaged", w.ip, ev.Value, ev.Score, ev.State)
				}
			}

			// A second tick: the probe's own alert is engaged (score 7) and
			// it is no longer the first run; no new event for it.
			end = end.Add(e.Interval())
			clk.Set(end)
			if st := e.Tick(context.Background(), end, false); st.Errors != 0 {
				t.Fatalf("second tick: %+v", st)
			}
			if evs := pub.take(); len(evs) != 0 {
				t.Errorf("second tick: %d events, want none (alerts stay engaged)", len(evs))
			}
			for _, a := range e.Engaged() {
				if a.Host.IP != tc.hosts[0].ip {
					continue
				}
				_, inside := parseProbe(t, a.Message)
				if inside["score"] != "7" || inside["isFirstCheckRun"] != "false" {
					t.Errorf("second tick: score %s isFirstCheckRun %s, want 7 false", inside["score"], inside["isFirstCheckRun"])
				}
			}
		})
	}
}

// TestResetHostContactsRealTable checks that host.resetHostContacts() clears
// the real host table's sets and counters, and that a check running after
// it in the same tick sees zero.
func TestResetHostContactsRealTable(t *testing.T) {
	tbl, end := ingestExport(t, "softflowd-filtered-ipfix.pcap", nil)
	scanner := key("10.98.0.66")
	e, pub, _ := newRealEngine(t, DefaultConfiguration(), map[string]string{
		"a_reset": `return { check = function(info)
			if info.ip == "10.98.0.66" then host.resetHostContacts() end
		end }`,
		"b_read": `return { check = function(info)
			if info.ip ~= "10.98.0.66" and info.ip ~= "10.98.0.20" then return end
			local u = host.getUnidirectionalTCPUDPFlowsStats()
			host.triggerAlert(1, string.format("%d %d %d %d %d", host.getNumContactedPeersAsClientTCPUDPNoTX(),
				host.getNumContactedTCPUDPServerPortsNoTX(), host.getNumContactsFromPeersAsServerTCPUDPNoTX(),
				u.num_egress, u.num_ingress))
		end }`,
	}, tbl, end)
	if st := e.Tick(context.Background(), end, false); st.Errors != 0 {
		t.Fatalf("tick: %+v", st)
	}
	got := map[string]string{}
	for _, ev := range pub.take() {
		got[ev.Host.IP] = ev.Message
	}
	// The scanner was reset before b_read ran; the victim was not.
	if got["10.98.0.66"] != "0 0 0 0 0" || got["10.98.0.20"] != "0 0 1 0 548" {
		t.Errorf("after reset: %v", got)
	}
	var s aggregate.HostSnapshot
	if !tbl.Snapshot(scanner, &s) {
		t.Fatal("scanner gone")
	}
	if s.NoReply != (aggregate.ContactCounts{}) || s.Unidirectional != (aggregate.UnidirectionalStats{}) || s.BytesSent != 26169 {
		t.Errorf("scanner after reset: no-reply %+v one-sided %+v bytes %d", s.NoReply, s.Unidirectional, s.BytesSent)
	}
}

// TestShippedChecksRealExports runs the shipped checks with the default
// configuration (scripting's and aggregate's) over every export capture:
// one tick at the end must engage scan_detection on each scanner,
// scan_victim on each scanned host, and nothing on any other host (in
// particular the normal HTTP/TLS clients of filtered-scan).
func TestShippedChecksRealExports(t *testing.T) {
	scanMix := map[string][]string{
		"10.99.0.10": {"scan_detection"}, // A: SYN scan of B, sweep of C's addresses
		"10.99.0.30": {"scan_detection"}, // C: connect scan of B
		"10.99.0.20": {"scan_victim"},    // B
	}
	filtered := map[string][]string{
		"10.98.0.66":  {"scan_detection"},
		"fd00:98::66": {"scan_detection"},
		"10.98.0.20":  {"scan_victim"},
		"fd00:98::20": {"scan_victim"},
		"10.98.0.10":  nil, // normal client
		"fd00:98::10": nil, // normal client
	}
	cases := []struct {
		file string
		want map[string][]string
	}{
		{"softflowd-v5.pcap", scanMix},
		{"softflowd-v9.pcap", scanMix},
		{"softflowd-ipfix.pcap", scanMix},
		{"softflowd-ipfix-bidir.pcap", scanMix},
		{"softflowd-ipfix-absms.pcap", scanMix},
		{"pmacctd-v5.pcap", scanMix},
		{"pmacctd-v9.pcap", scanMix},
		{"pmacctd-ipfix.pcap", scanMix},
		{"softflowd-filtered-v9.pcap", filtered},
		{"softflowd-filtered-ipfix.pcap", filtered},
		{"softflowd-filtered-ipfix-bidir.pcap", filtered},
		{"pmacctd-filtered-ipfix.pcap", filtered},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel()
			tbl, end := ingestExport(t, tc.file, nil)
			e, pub, _ := newRealEngine(t, DefaultConfiguration(), nil, tbl, end)
			st := e.Tick(context.Background(), end, false)
			if st.Errors != 0 || st.Hosts != tbl.Len() {
				t.Fatalf("tick: %+v, %d hosts in the table", st, tbl.Len())
			}
			got := map[string][]string{}
			for _, ev := range pub.take() {
				got[ev.Host.IP] = append(got[ev.Host.IP], ev.Check)
				t.Logf("%s %s %s value=%d: %s", ev.Host.IP, ev.Check, ev.State, ev.Value, ev.Message)
				if ev.State != alert.Engaged {
					t.Errorf("%s %s: state %s, want engaged", ev.Host.IP, ev.Check, ev.State)
				}
			}
			for _, k := range tbl.AppendKeys(nil) {
				ip := k.Addr.String()
				g := got[ip]
				sort.Strings(g)
				if w := tc.want[ip]; strings.Join(g, ",") != strings.Join(w, ",") {
					t.Errorf("%s: engaged %v, want %v", ip, g, w)
				}
			}
			for ip := range tc.want {
				if !tbl.Snapshot(key(ip), new(aggregate.HostSnapshot)) {
					t.Errorf("%s: not in the host table", ip)
				}
			}
		})
	}
}

// TestShippedChecksRealSweep keeps only the horizontal sweep of scan-mix
// (A → 10.99.0.30–.49 on ports 22, 23, 80, 443, 3389; 22 open, the others
// answer RST) by dropping every record that involves B: the default
// scan_detection must call it a horizontal sweep (20 refused peers on 4
// ports) within one tick, and nothing else may alert.
func TestShippedChecksRealSweep(t *testing.T) {
	b := key("10.99.0.20").Addr
	for _, file := range []string{
		"softflowd-v5.pcap", "softflowd-v9.pcap", "softflowd-ipfix.pcap", "softflowd-ipfix-bidir.pcap",
		"softflowd-ipfix-absms.pcap", "pmacctd-v5.pcap", "pmacctd-v9.pcap", "pmacctd-ipfix.pcap",
	} {
		t.Run(file, func(t *testing.T) {
			t.Parallel()
			tbl, end := ingestExport(t, file, func(r *flow.Record) bool { return r.SrcAddr != b && r.DstAddr != b })
			e, pub, _ := newRealEngine(t, DefaultConfiguration(), nil, tbl, end)
			if st := e.Tick(context.Background(), end, false); st.Errors != 0 || st.Hosts != 20+1 {
				t.Fatalf("tick: %+v, want 21 hosts", st)
			}
			evs := pub.take()
			if len(evs) != 1 || evs[0].Host.IP != "10.99.0.10" || evs[0].Check != "scan_detection" ||
				!strings.HasPrefix(evs[0].Message, "horizontal sweep: 4 ports, 0 no-reply + 20 refused peers") {
				for _, ev := range evs {
					t.Logf("%s %s: %s", ev.Host.IP, ev.Check, ev.Message)
				}
				t.Fatalf("%d events, want only A's scan_detection as a horizontal sweep of 20 peers on 4 ports", len(evs))
			}
		})
	}
}
