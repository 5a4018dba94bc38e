package collector

import (
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/flowcheck/flowcheck/flow"
	"github.com/prometheus/client_golang/prometheus"
)

var (
	exp1 = netip.MustParseAddrPort("192.0.2.10:40000")
	exp2 = netip.MustParseAddrPort("192.0.2.20:40000")
	t0   = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
)

// harness collects what a component emits. Every datagram it sends also
// goes through the reference decode path (differential_test.go), which
// must emit the same records and metrics.
type harness struct {
	t       *testing.T
	c       *Component
	reg     *prometheus.Registry
	records []flow.Record
	ref     *shadow
}

func newHarness(t *testing.T, mutate func(*Configuration)) *harness {
	t.Helper()
	h := &harness{t: t, reg: prometheus.NewRegistry()}
	cfg := DefaultConfiguration()
	if mutate != nil {
		mutate(&cfg)
	}
	h.ref = newShadow(t, cfg)
	c, err := New(cfg, Dependencies{Registerer: h.reg, Flows: func(b []flow.Record) { h.records = append(h.records, b...) }})
	if err != nil {
		t.Fatal(err)
	}
	h.c = c
	return h
}

func (h *harness) send(from netip.AddrPort, at time.Time, msgs ...[]byte) []flow.Record {
	h.records = nil
	for _, m := range msgs {
		h.c.HandleDatagram(from, m, at)
		h.ref.send(from, m, at)
	}
	h.ref.compare(h.t, "hand-built datagram", h.records, h.reg)
	return h.records
}

func (h *harness) errors(t *testing.T, exporter, reason string) float64 {
	t.Helper()
	return metricValue(h.c.metrics.decodeErrors.WithLabelValues(exporter, reason))
}

var v4Flow = []ie{{8, 0, 4}, {12, 0, 4}, {7, 0, 2}, {11, 0, 2}, {4, 0, 1}, {1, 0, 8}, {2, 0, 8}}

func v4FlowRecord(src, dst string, sport, dport uint16, octets, pkts uint64) []byte {
	return cat(ip(src), ip(dst), be16(sport), be16(dport), []byte{6}, be64(octets), be64(pkts))
}

func TestHandBuilt(t *testing.T) {
	type check func(t *testing.T, h *harness, got []flow.Record)
	cases := []struct {
		name   string
		config func(*Configuration)
		msgs   [][]byte
		want   int // records
		check  check
	}{
		{
			name: "options template sampling 305+306",
			msgs: [][]byte{ipfixMsg(1, 1000,
				ipfixOptionsTemplateSet(300, []ie{{302, 0, 4}}, []ie{{305, 0, 4}, {306, 0, 4}}),
				templateSet(10, 400, append(v4Flow, ie{302, 0, 4})...),
				// Flow data before the options data in the same message:
				// the rate still applies.
				dataSet(400, cat(v4FlowRecord("10.0.0.1", "10.0.0.2", 1000, 80, 1500, 3), be32(7))),
				dataSet(300, cat(be32(7), be32(1), be32(99))),
			)},
			want: 1,
			check: func(t *testing.T, h *harness, got []flow.Record) {
				r := got[0]
				if r.SamplingRate != 100 || r.Bytes != 150000 || r.Packets != 300 {
					t.Errorf("rate %d bytes %d packets %d, want 100, 150000, 300", r.SamplingRate, r.Bytes, r.Packets)
				}
				info := h.c.Exporters()[0].SamplingRates
				if len(info) != 1 || info[0].SamplerID != 7 || info[0].Rate != 100 {
					t.Errorf("sampling registry %+v", info)
				}
			},
		},
		{
			name: "v9 options sampling 34 and unknown sampler",
			msgs: [][]byte{v9Msg(3, 10000, 1000,
				v9OptionsTemplateSet(256, []ie{{2, 0, 4}}, []ie{{48, 0, 1}, {34, 0, 4}}),
				dataSet(256, cat(be32(1), []byte{5}, be32(64))),
				templateSet(9, 300, append(v4Flow, ie{48, 0, 1})...),
				dataSet(300, cat(v4FlowRecord("10.0.0.1", "10.0.0.2", 1, 2, 100, 1), []byte{5}),
					cat(v4FlowRecord("10.0.0.1", "10.0.0.2", 1, 2, 100, 1), []byte{6})),
			)},
			want: 2,
			check: func(t *testing.T, h *harness, got []flow.Record) {
				if got[0].SamplingRate != 64 || got[0].Bytes != 6400 {
					t.Errorf("sampler 5: rate %d bytes %d", got[0].SamplingRate, got[0].Bytes)
				}
				if got[1].SamplingRate != 0 || got[1].Bytes != 100 {
					t.Errorf("sampler 6 (unknown): rate %d bytes %d", got[1].SamplingRate, got[1].Bytes)
				}
				if v := metricValue(h.c.metrics.samplingUnk.WithLabelValues("192.0.2.10")); v != 1 {
					t.Errorf("sampling_unknown %v, want 1", v)
				}
			},
		},
		{
			name: "IE 34 in data",
			msgs: [][]byte{v9Msg(0, 10000, 1000,
				templateSet(9, 300, append(v4Flow, ie{34, 0, 4})...),
				dataSet(300, cat(v4FlowRecord("10.0.0.1", "10.0.0.2", 1, 2, 100, 2), be32(512))),
			)},
			want: 1,
			check: func(t *testing.T, _ *harness, got []flow.Record) {
				if r := got[0]; r.SamplingRate != 512 || r.Bytes != 51200 || r.Packets != 1024 {
					t.Errorf("%+v", r)
				}
			},
		},
		{
			name: "config override beats IE 34",
			config: func(c *Configuration) {
				c.Sampling.Overrides = []SamplingOverride{{Prefix: "192.0.2.0/24", Override: 10}}
			},
			msgs: [][]byte{v9Msg(0, 10000, 1000,
				templateSet(9, 300, append(v4Flow, ie{34, 0, 4})...),
				dataSet(300, cat(v4FlowRecord("10.0.0.1", "10.0.0.2", 1, 2, 100, 2), be32(512))),
			)},
			want: 1,
			check: func(t *testing.T, _ *harness, got []flow.Record) {
				if r := got[0]; r.SamplingRate != 10 || r.Bytes != 1000 {
					t.Errorf("%+v", r)
				}
			},
		},
		{
			name: "biflow reverse fields",
			msgs: [][]byte{ipfixMsg(0, 1000,
				templateSet(10, 256, append(v4Flow, ie{6, 0, 1}, ie{1, penReverse, 8}, ie{2, penReverse, 8}, ie{6, penReverse, 1})...),
				dataSet(256, cat(v4FlowRecord("10.0.0.1", "10.0.0.2", 1234, 80, 600, 5), []byte{0x1b}, be64(9000), be64(7), []byte{0x12})),
			)},
			want: 1,
			check: func(t *testing.T, _ *harness, got []flow.Record) {
				r := got[0]
				if !r.Biflow || r.ReverseBytes != 9000 || r.ReversePackets != 7 || r.ReverseTCPFlags != 0x12 || r.TCPFlags != 0x1b {
					t.Errorf("%+v", r)
				}
			},
		},
		{
			name: "IEs 231/232 and 298/299",
			msgs: [][]byte{ipfixMsg(0, 1000,
				templateSet(10, 256, ie{8, 0, 4}, ie{12, 0, 4}, ie{231, 0, 4}, ie{232, 0, 4}, ie{298, 0, 4}, ie{299, 0, 4}),
				dataSet(256, cat(ip("10.0.0.1"), ip("10.0.0.2"), be32(100), be32(2000), be32(1), be32(3))),
			)},
			want: 1,
			check: func(t *testing.T, _ *harness, got []flow.Record) {
				r := got[0]
				if !r.Biflow || r.Bytes != 100 || r.Packets != 1 || r.ReverseBytes != 2000 || r.ReversePackets != 3 {
					t.Errorf("%+v", r)
				}
			},
		},
		{
			name: "ntop L7 fields IPFIX, variable length",
			msgs: [][]byte{ipfixMsg(0, 1000,
				templateSet(10, 256, append(v4Flow, ie{118, penNtop, 2}, ie{119, penNtop, 0xffff}, ie{78, penNtop, 1}, ie{79, penNtop, 1}, ie{10, 0, 4})...),
				dataSet(256,
					cat(v4FlowRecord("10.0.0.1", "10.0.0.2", 1, 443, 100, 1), be16(91), varLen([]byte("TLS.Google")), []byte{0x02, 0x12}, be32(7)),
					cat(v4FlowRecord("10.0.0.3", "10.0.0.2", 1, 80, 100, 1), be16(7), varLen([]byte(strings.Repeat("H", 300))), []byte{0x02, 0x12}, be32(8))),
			)},
			want: 2,
			check: func(t *testing.T, _ *harness, got []flow.Record) {
				r := got[0]
				if r.AppID != 91 || r.AppName != "TLS.Google" || r.ClientTCPFlags != 2 || r.ServerTCPFlags != 0x12 || r.InIf != 7 {
					t.Errorf("%+v", r)
				}
				r = got[1]
				if r.AppID != 7 || len(r.AppName) != 300 || r.InIf != 8 || r.SrcAddr != netip.MustParseAddr("10.0.0.3") {
					t.Errorf("3-byte length form: %+v", r)
				}
			},
		},
		{
			name: "ntop L7 fields v9 and IE 95",
			msgs: [][]byte{v9Msg(0, 1000, 1000,
				templateSet(9, 256, append(v4Flow, ie{57590, 0, 2}, ie{57591, 0, 16}, ie{95, 0, 4})...),
				dataSet(256, cat(v4FlowRecord("10.0.0.1", "10.0.0.2", 1, 443, 100, 1), be16(188),
					[]byte("QUIC\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"), []byte{13, 0, 0, 5})),
			)},
			want: 1,
			check: func(t *testing.T, _ *harness, got []flow.Record) {
				// IE 95 comes after L7_PROTO in the template, so it wins.
				if r := got[0]; r.AppID != 5 || r.AppName != "QUIC" {
					t.Errorf("%+v", r)
				}
			},
		},
		{
			name: "template withdrawal",
			msgs: [][]byte{
				ipfixMsg(0, 1000, templateSet(10, 256, v4Flow...), dataSet(256, v4FlowRecord("10.0.0.1", "10.0.0.2", 1, 2, 3, 4))),
				ipfixMsg(0, 1001, set(setIPFIXTemplate, cat(be16(256), be16(0)))),
				ipfixMsg(0, 1002, dataSet(256, v4FlowRecord("10.0.0.1", "10.0.0.2", 1, 2, 3, 4))),
			},
			want: 1,
			check: func(t *testing.T, h *harness, _ []flow.Record) {
				if n := len(h.c.Exporters()[0].Templates); n != 0 {
					t.Errorf("%d templates left", n)
				}
				if p := h.c.Exporters()[0].PendingBytes; p == 0 {
					t.Error("data after withdrawal not pending")
				}
			},
		},
		{
			// The compiled plan is kept for a resent template and
			// replaced for a redefined one.
			name: "template resent, then redefined",
			msgs: [][]byte{
				ipfixMsg(0, 1000, templateSet(10, 256, v4Flow...), dataSet(256, v4FlowRecord("10.0.0.1", "10.0.0.2", 1, 2, 3, 4))),
				ipfixMsg(0, 1001, templateSet(10, 256, v4Flow...), dataSet(256, v4FlowRecord("10.0.0.3", "10.0.0.4", 1, 2, 3, 4))),
				ipfixMsg(0, 1002, templateSet(10, 256, ie{12, 0, 4}, ie{8, 0, 4}, ie{2, 0, 4}),
					dataSet(256, cat(ip("10.0.0.5"), ip("10.0.0.6"), be32(9)))),
			},
			want: 3,
			check: func(t *testing.T, _ *harness, got []flow.Record) {
				if got[1].SrcAddr.String() != "10.0.0.3" || got[1].Bytes != 3 {
					t.Errorf("resent template: %+v", got[1])
				}
				if r := got[2]; r.SrcAddr.String() != "10.0.0.6" || r.DstAddr.String() != "10.0.0.5" || r.Packets != 9 || r.Bytes != 0 {
					t.Errorf("redefined template: %+v", r)
				}
			},
		},
		{
			name: "template after data",
			msgs: [][]byte{
				ipfixMsg(0, 1000, dataSet(256, v4FlowRecord("10.0.0.1", "10.0.0.2", 1, 2, 3, 4))),
				ipfixMsg(0, 1001, dataSet(256, v4FlowRecord("10.0.0.5", "10.0.0.2", 1, 2, 3, 4))),
				ipfixMsg(0, 1002, templateSet(10, 256, v4Flow...)),
			},
			want: 2,
			check: func(t *testing.T, h *harness, got []flow.Record) {
				if got[0].SrcAddr.String() != "10.0.0.1" || got[1].SrcAddr.String() != "10.0.0.5" {
					t.Errorf("order: %v %v", got[0].SrcAddr, got[1].SrcAddr)
				}
				if got[0].Start != time.Unix(1000, 0).UTC() {
					t.Errorf("pending set lost its export time: %v", got[0].Start)
				}
				if h.c.Exporters()[0].PendingBytes != 0 || h.errors(t, "192.0.2.10", "template_missing") != 0 {
					t.Error("pending not drained")
				}
			},
		},
		{
			name:   "template missing after pending TTL",
			config: func(c *Configuration) { c.Templates.PendingTTL = 0 },
			msgs: [][]byte{
				ipfixMsg(0, 1000, dataSet(256, v4FlowRecord("10.0.0.1", "10.0.0.2", 1, 2, 3, 4))),
				ipfixMsg(0, 1002, templateSet(10, 256, v4Flow...)),
			},
			want: 0,
			check: func(t *testing.T, h *harness, _ []flow.Record) {
				if v := h.errors(t, "192.0.2.10", "template_missing"); v != 1 {
					t.Errorf("template_missing %v", v)
				}
			},
		},
		{
			name: "one bad set does not cost the others",
			msgs: [][]byte{ipfixMsg(0, 1000,
				templateSet(10, 256, v4Flow...),
				set(5, []byte{1, 2, 3, 4}),
				set(2, []byte{1, 0, 0xff, 0xff}), // template claiming 65535 fields
				dataSet(256, v4FlowRecord("10.0.0.1", "10.0.0.2", 1, 2, 3, 4)),
			)},
			want: 1,
			check: func(t *testing.T, h *harness, _ []flow.Record) {
				if h.errors(t, "192.0.2.10", "bad_set_id") != 1 || h.errors(t, "192.0.2.10", "bad_template") != 1 {
					t.Error("bad sets not counted")
				}
			},
		},
		{
			name: "v9 sysUptime wrap",
			msgs: [][]byte{v9Msg(0, 1000, 1000,
				templateSet(9, 256, append(v4Flow, ie{22, 0, 4}, ie{21, 0, 4})...),
				dataSet(256, cat(v4FlowRecord("10.0.0.1", "10.0.0.2", 1, 2, 3, 4), be32(0xffffff00), be32(500))),
			)},
			want: 1,
			check: func(t *testing.T, _ *harness, got []flow.Record) {
				exp := time.Unix(1000, 0).UTC()
				if r := got[0]; !r.Start.Equal(exp.Add(-1256*time.Millisecond)) || !r.End.Equal(exp.Add(-500*time.Millisecond)) {
					t.Errorf("start %v end %v", r.Start, r.End)
				}
			},
		},
		{
			name: "IPFIX 21/22 with systemInitTime",
			msgs: [][]byte{ipfixMsg(0, 2000,
				ipfixOptionsTemplateSet(257, []ie{{149, 0, 4}}, []ie{{160, 0, 8}}),
				dataSet(257, cat(be32(0), be64(1_000_000))),
				templateSet(10, 256, append(v4Flow, ie{22, 0, 4}, ie{21, 0, 4})...),
				dataSet(256, cat(v4FlowRecord("10.0.0.1", "10.0.0.2", 1, 2, 3, 4), be32(5000), be32(6000))),
			)},
			want: 1,
			check: func(t *testing.T, _ *harness, got []flow.Record) {
				if r := got[0]; !r.Start.Equal(time.UnixMilli(1_005_000)) || !r.End.Equal(time.UnixMilli(1_006_000)) {
					t.Errorf("start %v end %v", r.Start, r.End)
				}
			},
		},
		{
			name: "IPv6, MACs, VLAN, ICMP type/code",
			msgs: [][]byte{ipfixMsg(0, 1000,
				templateSet(10, 256, ie{27, 0, 16}, ie{28, 0, 16}, ie{4, 0, 1}, ie{139, 0, 2}, ie{56, 0, 6}, ie{80, 0, 6}, ie{58, 0, 2}, ie{152, 0, 8}, ie{153, 0, 8}),
				dataSet(256, cat(ip("2001:db8::1"), ip("2001:db8::2"), []byte{58}, be16(0x8000),
					[]byte{1, 2, 3, 4, 5, 6}, []byte{6, 5, 4, 3, 2, 1}, be16(42), be64(999_000), be64(999_500))),
			)},
			want: 1,
			check: func(t *testing.T, _ *harness, got []flow.Record) {
				r := got[0]
				if r.SrcAddr.String() != "2001:db8::1" || r.DstPort != 0x8000 || r.SrcMAC != [6]byte{1, 2, 3, 4, 5, 6} ||
					r.DstMAC != [6]byte{6, 5, 4, 3, 2, 1} || r.VLAN != 42 || !r.Start.Equal(time.UnixMilli(999_000)) {
					t.Errorf("%+v", r)
				}
			},
		},
		{
			name: "v5 header sampling",
			msgs: [][]byte{v5Msg(10000, 1000, 0x4000|100, v5Record("10.0.0.1", "10.0.0.2", 1, 2, 6, 2, 120, 9000, 9500))},
			want: 1,
			check: func(t *testing.T, _ *harness, got []flow.Record) {
				r := got[0]
				if r.SamplingRate != 100 || r.Bytes != 12000 || r.Packets != 200 || !r.Start.Equal(time.Unix(999, 0)) {
					t.Errorf("%+v", r)
				}
			},
		},
		{
			name: "v5 lying count",
			msgs: [][]byte{v5Msg(0, 0, 0, v5Record("10.0.0.1", "10.0.0.2", 1, 2, 6, 2, 120, 0, 0))[:60]},
			want: 0,
			check: func(t *testing.T, h *harness, _ []flow.Record) {
				if h.errors(t, "192.0.2.10", "bad_length") != 1 {
					t.Error("not counted")
				}
			},
		},
		{
			name: "sFlow raw header",
			msgs: [][]byte{sflowMsg(sflowFlowSample(256, 1518, cat(
				[]byte{1, 2, 3, 4, 5, 6, 6, 5, 4, 3, 2, 1, 0x81, 0, 0, 10, 0x08, 0},
				[]byte{0x45, 0, 0x05, 0xdc, 0, 0, 0x40, 0, 64, 6, 0, 0}, ip("10.1.0.1"), ip("10.1.0.2"),
				be16(33000), be16(443), be32(0), be32(0), []byte{0x50, 0x18, 0, 0}, be32(0),
			)))},
			want: 1,
			check: func(t *testing.T, _ *harness, got []flow.Record) {
				r := got[0]
				if r.SamplingRate != 256 || r.Bytes != 1500*256 || r.Packets != 256 || r.DstPort != 443 ||
					r.TCPFlags != 0x18 || r.VLAN != 10 || r.InIf != 3 || r.SrcAddr.String() != "10.1.0.1" {
					t.Errorf("%+v", r)
				}
			},
		},
		{
			name:   "allow-list",
			config: func(c *Configuration) { c.Exporters.Allow = []string{"198.51.100.0/24"} },
			msgs:   [][]byte{v5Msg(10000, 1000, 0, v5Record("10.0.0.1", "10.0.0.2", 1, 2, 6, 2, 120, 9000, 9500))},
			want:   0,
			check: func(t *testing.T, h *harness, _ []flow.Record) {
				if len(h.c.Exporters()) != 0 || metricValue(h.c.metrics.drops[dropNotAllowed]) != 1 {
					t.Error("not dropped before decoding")
				}
			},
		},
		{
			name: "unknown version",
			msgs: [][]byte{{0, 7, 0, 0, 1, 2, 3}, {1}},
			want: 0,
			check: func(t *testing.T, h *harness, _ []flow.Record) {
				if h.errors(t, "192.0.2.10", "unknown_version") != 2 {
					t.Error("not counted")
				}
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.config)
			var got []flow.Record
			for i, m := range tc.msgs {
				got = append(got, h.send(exp1, t0.Add(time.Duration(i)*time.Second), m)...)
			}
			if len(got) != tc.want {
				t.Fatalf("%d records, want %d: %+v", len(got), tc.want, got)
			}
			if tc.check != nil {
				tc.check(t, h, got)
			}
		})
	}
}

// TestTwoExportersSameTemplateID checks that templates are per exporter.
func TestTwoExportersSameTemplateID(t *testing.T) {
	h := newHarness(t, nil)
	h.send(exp1, t0, ipfixMsg(0, 1000, templateSet(10, 256, v4Flow...)))
	h.send(exp2, t0, ipfixMsg(0, 1000, templateSet(10, 256, ie{8, 0, 4}, ie{12, 0, 4}, ie{2, 0, 4})))
	a := h.send(exp1, t0, ipfixMsg(0, 1000, dataSet(256, v4FlowRecord("10.0.0.1", "10.0.0.2", 1, 2, 300, 3))))
	b := h.send(exp2, t0, ipfixMsg(0, 1000, dataSet(256, cat(ip("10.9.0.1"), ip("10.9.0.2"), be32(9)))))
	if len(a) != 1 || a[0].Bytes != 300 || a[0].Exporter != exp1.Addr() {
		t.Errorf("exporter 1: %+v", a)
	}
	if len(b) != 1 || b[0].Packets != 9 || b[0].Bytes != 0 || b[0].Exporter != exp2.Addr() {
		t.Errorf("exporter 2: %+v", b)
	}
	// Same exporter IP from another source port shares the templates.
	c := h.send(netip.AddrPortFrom(exp1.Addr(), 1), t0, ipfixMsg(0, 1000, dataSet(256, v4FlowRecord("10.0.0.1", "10.0.0.2", 1, 2, 300, 3))))
	if len(c) != 1 {
		t.Errorf("templates keyed by port: %+v", c)
	}
}

// TestTemplateExpiry checks the template lifetime, on receive time.
func TestTemplateExpiry(t *testing.T) {
	h := newHarness(t, func(c *Configuration) { c.Templates.Lifetime = time.Minute })
	h.send(exp1, t0, ipfixMsg(0, 1000, templateSet(10, 256, v4Flow...)))
	if got := h.send(exp1, t0.Add(59*time.Second), ipfixMsg(0, 1000, dataSet(256, v4FlowRecord("10.0.0.1", "10.0.0.2", 1, 2, 3, 4)))); len(got) != 1 {
		t.Fatal("template expired early")
	}
	if got := h.send(exp1, t0.Add(2*time.Minute), ipfixMsg(0, 1000, dataSet(256, v4FlowRecord("10.0.0.1", "10.0.0.2", 1, 2, 3, 4)))); len(got) != 0 {
		t.Fatal("template did not expire")
	}
	if v := metricValue(h.c.metrics.templateEvents.WithLabelValues("192.0.2.10", "expired")); v != 1 {
		t.Errorf("expired events %v", v)
	}
}

// TestTemplateCap checks that templates per exporter are capped, that a
// new template is accepted at the cap in place of the least recently used
// one (counted), and that the exporter cap still holds.
func TestTemplateCap(t *testing.T) {
	h := newHarness(t, func(c *Configuration) { c.Templates.Max = 2; c.Exporters.Max = 1 })
	for id := uint16(256); id < 266; id++ {
		h.send(exp1, t0, ipfixMsg(0, 1000, templateSet(10, id, v4Flow...)))
	}
	if n := len(h.c.Exporters()[0].Templates); n != 2 {
		t.Errorf("%d templates, want 2", n)
	}
	if v := metricValue(h.c.metrics.templateEvents.WithLabelValues("192.0.2.10", "evicted")); v != 8 {
		t.Errorf("%v templates evicted, want 8", v)
	}
	for id, want := range map[uint16]int{256: 0, 263: 0, 264: 1, 265: 1} {
		if got := h.send(exp1, t0, ipfixMsg(0, 1000, dataSet(id, v4FlowRecord("10.0.0.1", "10.0.0.2", 1, 2, 3, 4)))); len(got) != want {
			t.Errorf("template %d: %d records, want %d", id, len(got), want)
		}
	}
	h.send(exp2, t0, ipfixMsg(0, 1000, templateSet(10, 256, v4Flow...)))
	if len(h.c.Exporters()) != 1 || metricValue(h.c.metrics.drops[dropExporterCap]) != 1 {
		t.Error("exporter cap not enforced")
	}
}

// TestZeroFieldTemplate proves that templates which make goflow2 v2.2.6
// loop forever (no fields, or only zero-length fields) are refused: the
// data sets that follow them decode to nothing, promptly, without memory
// growth. The deadline is a hang detector, not a speed assertion.
func TestZeroFieldTemplate(t *testing.T) {
	data := dataSet(256, make([]byte, 64))
	cases := []struct {
		name   string
		msg    []byte
		reason string
	}{
		{"ipfix zero-length fields", ipfixMsg(0, 1000, templateSet(10, 256, ie{8, 0, 0}, ie{12, 0, 0}), data), "template_zero_length_field"},
		{"v9 zero fields", v9Msg(0, 0, 1000, templateSet(9, 256), data), "template_no_fields"},
		{"v9 zero-length field", v9Msg(0, 0, 1000, templateSet(9, 256, ie{1, 0, 0}), data), "template_zero_length_field"},
		{"ipfix options zero-length", ipfixMsg(0, 1000, ipfixOptionsTemplateSet(256, []ie{{149, 0, 0}}, []ie{{34, 0, 0}}), data), "template_zero_length_field"},
		{"v9 options no fields", v9Msg(0, 0, 1000, v9OptionsTemplateSet(256, nil, nil), data), "template_no_fields"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, nil)
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			done := make(chan []flow.Record, 1)
			go func() {
				var got []flow.Record
				for range 100 {
					got = append(got, h.send(exp1, t0, tc.msg)...)
				}
				done <- got
			}()
			select {
			case got := <-done:
				if len(got) != 0 {
					t.Errorf("%d records from a refused template", len(got))
				}
			case <-time.After(30 * time.Second):
				t.Fatal("decoding a zero-field template hangs")
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			if grow := int64(after.HeapAlloc) - int64(before.HeapAlloc); grow > 16<<20 {
				t.Errorf("heap grew by %d bytes", grow)
			}
			if v := h.errors(t, "192.0.2.10", tc.reason); v != 100 {
				t.Errorf("%s counted %v times, want 100", tc.reason, v)
			}
			if n := len(h.c.Exporters()[0].Templates); n != 0 {
				t.Errorf("%d templates stored", n)
			}
		})
	}
}
