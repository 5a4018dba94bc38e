package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowcheck/flowcheck/clock"
	"github.com/flowcheck/flowcheck/flow"
	"github.com/netsampler/goflow2/v2/decoders/netflow"
	"github.com/prometheus/client_golang/prometheus"
)

// floodTemplates returns datagrams carrying n distinct templates (IDs from
// first on, 40 to a datagram) of NetFlow v9 (version 9) or IPFIX (10) in
// one observation domain: what anyone who can reach the port may send with
// an exporter's source address.
func floodTemplates(version uint16, domain uint32, first uint16, n int) [][]byte {
	const perDatagram = 40
	fields := []ie{{8, 0, 4}, {12, 0, 4}, {7, 0, 2}, {11, 0, 2}, {4, 0, 1}, {1, 0, 4}, {2, 0, 4}}
	sid := uint16(setV9Template)
	if version == 10 {
		sid = setIPFIXTemplate
	}
	var out [][]byte
	for i := 0; i < n; i += perDatagram {
		var body []byte
		for id := i; id < min(i+perDatagram, n); id++ {
			body = cat(body, be16(first+uint16(id)), be16(uint16(len(fields))), fieldSpecs(version, fields))
		}
		if version == 9 {
			out = append(out, v9Msg(domain, 1000, 1000, set(sid, body)))
		} else {
			out = append(out, ipfixMsg(domain, 1000, set(sid, body)))
		}
	}
	return out
}

// TestTemplateFloodUDP sends, over a real UDP socket on loopback, a burst
// of 2 000 templates (more than templates.max) from the exporter's own
// address, then the exporter's real export: every record of the export
// must decode, as many as without the flood. When the export began before
// the flood, the templates it had used or re-sent must have outlived the
// flood (it re-sends them all within its first 20 datagrams); when
// the flood's templates have expired, they must not count against the cap.
func TestTemplateFloodUDP(t *testing.T) {
	cases := []struct {
		name    string
		capture string
		version uint16
		domain  uint32 // of the flood
		before  int    // datagrams of the export sent before the flood
		wait    time.Duration
	}{
		{"v9", "softflowd-v9", 9, 0, 0, 0},
		{"ipfix", "softflowd-ipfix", 10, 0, 0, 0},
		{"v9 during the export", "softflowd-v9", 9, 0, 20, 0},
		{"ipfix during the export", "softflowd-ipfix", 10, 0, 20, 0},
		{"v9 into another domain during the export", "softflowd-v9", 9, 7, 20, 0},
		{"ipfix after the flood expired", "softflowd-ipfix", 10, 0, 0, 31 * time.Minute},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := "../testdata/" + tc.capture + ".pcap"
			want, _ := totalsOf(t, path)
			if want.records == 0 {
				t.Fatal("capture without records")
			}
			cfg := DefaultConfiguration()
			cfg.Listeners = []ListenerConfiguration{{URL: "auto://127.0.0.1:0", Sockets: 1, ReceiveBuffer: 4 << 20}}
			cfg.Workers = 1
			var records atomic.Int64
			clk := clock.NewManual(t0)
			c, err := New(cfg, Dependencies{Registerer: prometheus.NewRegistry(), Clock: clk,
				Flows: func(b []flow.Record) { records.Add(int64(len(b))) }})
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			defer stopCollector(t, c)
			conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(c.ListenAddrs()[0]))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			var export [][]byte
			for _, d := range loadCapture(t, path) {
				export = append(export, d.payload)
			}
			exporter := conn.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap()
			events := func(ev string) float64 {
				return metricValue(c.metrics.templateEvents.WithLabelValues(exporter.String(), ev))
			}
			sent := sendPaced(t, c, conn, exporter, 0, export[:tc.before])
			var held []TemplateInfo
			if tc.before > 0 {
				held = c.Exporters()[0].Templates
			}
			sent = sendPaced(t, c, conn, exporter, sent, floodTemplates(tc.version, tc.domain, 40000, 2000))
			evicted := events("evicted")
			if evicted < float64(2000-cfg.Templates.Max) {
				t.Errorf("%v templates evicted by the flood, want at least %d", evicted, 2000-cfg.Templates.Max)
			}
			if tc.before > 0 {
				after := c.Exporters()[0].Templates
				for _, h := range held {
					if !slices.ContainsFunc(after, func(a TemplateInfo) bool { return a.Domain == h.Domain && a.ID == h.ID }) {
						t.Errorf("template %d of domain %d, held before the flood, evicted by it", h.ID, h.Domain)
					}
				}
			}
			clk.Advance(tc.wait)
			sendPaced(t, c, conn, exporter, sent, export[tc.before:])
			stopCollector(t, c)
			t.Logf("%d of %d records decoded, %v templates evicted, %v expired", records.Load(), want.records, events("evicted"), events("expired"))
			if got := records.Load(); got != int64(want.records) {
				t.Errorf("%d records decoded with the flood, %d without it", got, want.records)
			}
			if tc.wait > 0 && events("evicted") != evicted {
				t.Errorf("%v templates evicted after the flood expired", events("evicted")-evicted)
			}
			if v := metricValue(c.metrics.decodeErrors.WithLabelValues(exporter.String(), "template_missing")); v != 0 {
				t.Errorf("%v data sets without their template", v)
			}
		})
	}
}

// sendPaced sends datagrams from conn, waiting every few datagrams until
// the collector has decoded them all (so that a small socket buffer never
// drops), and returns how many datagrams the exporter has sent in all.
func sendPaced(t *testing.T, c *Component, conn *net.UDPConn, exporter netip.Addr, sent int, dgs [][]byte) int {
	t.Helper()
	packets := func() uint64 {
		for _, e := range c.Exporters() {
			if e.Address == exporter {
				return e.Packets
			}
		}
		return 0
	}
	for i, d := range dgs {
		if _, err := conn.Write(d); err != nil {
			t.Fatal(err)
		}
		sent++
		if i%8 == 7 || i == len(dgs)-1 {
			waitFor(t, "datagrams decoded", func() bool { return packets() == uint64(sent) })
		}
	}
	return sent
}

// checkRegistry fails t when an exporter's template registry is
// inconsistent: every template is on its domain's fresh or confirmed list and
// on the age list, once, with links both ways, and on nothing else.
func checkRegistry(t testing.TB, e *exporterState) {
	t.Helper()
	walk := func(l tmplList, k int, each func(*tmplEntry)) int {
		n := 0
		var prev *tmplEntry
		for x := l.front; x != nil; prev, x = x, x.links[k].next {
			if x.links[k].prev != prev {
				t.Fatalf("template %+v: broken back link", x.key)
			}
			each(x)
			n++
		}
		if l.back != prev {
			t.Fatal("list back is not its last template")
		}
		return n
	}
	total := 0
	if len(e.domains) != len(e.domainList) {
		t.Fatalf("%d domains, %d listed", len(e.domains), len(e.domainList))
	}
	for i, d := range e.domainList {
		if d.idx != i || e.domains[d.scope] != d {
			t.Fatalf("domain %+v misplaced", d.scope)
		}
		on := func(confirmed bool) func(*tmplEntry) {
			return func(x *tmplEntry) {
				if x.dom != d || x.confirmed != confirmed || e.templates[x.key] != x {
					t.Fatalf("template %+v on the wrong list", x.key)
				}
			}
		}
		n := walk(d.fresh, useLinks, on(false)) + walk(d.confirmed, useLinks, on(true))
		if n != d.n || n == 0 {
			t.Fatalf("domain %+v: %d templates listed, %d counted", d.scope, n, d.n)
		}
		total += n
	}
	aged := walk(e.age, ageLinks, func(x *tmplEntry) {
		if e.templates[x.key] != x {
			t.Fatalf("template %+v aged but not held", x.key)
		}
	})
	if total != len(e.templates) || aged != len(e.templates) {
		t.Fatalf("%d templates held, %d on domain lists, %d on the age list", len(e.templates), total, aged)
	}
	if len(e.templates) > e.c.config.Templates.Max {
		t.Fatalf("%d templates held, max %d", len(e.templates), e.c.config.Templates.Max)
	}
}

// TestTemplateEviction checks what a full template registry keeps: the
// new template always, expired templates never, and, to make room, a
// template of the domain holding the most, one not confirmed (neither used
// by data nor re-sent) before one confirmed, the least recently used
// first. Every step also runs through
// the reference path (goflow2's data set decoder reading the registry
// through GetTemplate), which must agree.
func TestTemplateEviction(t *testing.T) {
	rec := v4FlowRecord("10.0.0.1", "10.0.0.2", 1, 2, 3, 4)
	type step struct {
		at   time.Duration
		msgs [][]byte
		want int // records decoded from msgs
	}
	cases := []struct {
		name             string
		max              int
		steps            func(version uint16) []step
		evicted, expired float64
	}{
		{
			name: "expired templates do not count against the cap", max: 4,
			steps: func(v uint16) []step {
				return []step{
					{0, floodTemplates(v, 0, 256, 4), 0},
					{31 * time.Minute, [][]byte{msg(v, 0, templateSet(v, 300, v4Flow...), dataSet(300, rec))}, 1},
					{31 * time.Minute, [][]byte{msg(v, 0, dataSet(256, rec))}, 0},
				}
			},
			expired: 4,
		},
		{
			name: "not confirmed first, least recently used first", max: 3,
			steps: func(v uint16) []step {
				return []step{
					{0, [][]byte{msg(v, 0, templateSet(v, 256, v4Flow...), templateSet(v, 257, v4Flow...), templateSet(v, 258, v4Flow...))}, 0},
					{time.Second, [][]byte{msg(v, 0, templateSet(v, 257, v4Flow...))}, 0},
					{2 * time.Second, [][]byte{msg(v, 0, templateSet(v, 259, v4Flow...))}, 0},
					{3 * time.Second, [][]byte{msg(v, 0, dataSet(256, rec), dataSet(257, rec), dataSet(258, rec), dataSet(259, rec))}, 3},
				}
			},
			evicted: 1,
		},
		{
			name: "templates used by data outlive a flood", max: 4,
			steps: func(v uint16) []step {
				return []step{
					{0, [][]byte{msg(v, 0, templateSet(v, 256, v4Flow...), dataSet(256, rec))}, 1},
					{time.Second, floodTemplates(v, 0, 1000, 100), 0},
					{2 * time.Second, [][]byte{msg(v, 0, dataSet(256, rec), dataSet(1099, rec), dataSet(1000, rec))}, 2},
				}
			},
			evicted: 97,
		},
		{
			name: "re-sent templates outlive a flood", max: 4,
			steps: func(v uint16) []step {
				return []step{
					{0, [][]byte{msg(v, 0, templateSet(v, 256, v4Flow...))}, 0},
					{time.Second, [][]byte{msg(v, 0, templateSet(v, 256, v4Flow...))}, 0},
					{2 * time.Second, floodTemplates(v, 0, 1000, 100), 0},
					{3 * time.Second, [][]byte{msg(v, 0, dataSet(256, rec))}, 1},
				}
			},
			evicted: 97,
		},
		{
			name: "a flood into one domain keeps the others", max: 8,
			steps: func(v uint16) []step {
				return []step{
					{0, [][]byte{msg(v, 1, templateSet(v, 256, v4Flow...), templateSet(v, 257, v4Flow...))}, 0},
					{time.Second, floodTemplates(v, 2, 256, 200), 0},
					{2 * time.Second, [][]byte{msg(v, 1, dataSet(256, rec), dataSet(257, rec))}, 2},
					// A new domain's templates are accepted at once, and
					// still evict from the flooded domain.
					{3 * time.Second, [][]byte{msg(v, 3, templateSet(v, 256, v4Flow...), templateSet(v, 257, v4Flow...))}, 0},
					{4 * time.Second, [][]byte{msg(v, 3, dataSet(256, rec), dataSet(257, rec)), msg(v, 1, dataSet(256, rec), dataSet(257, rec))}, 4},
				}
			},
			evicted: 196,
		},
		{
			name: "a flood over many domains keeps confirmed templates", max: 8,
			steps: func(v uint16) []step {
				var flood [][]byte
				for dom := range uint32(100) {
					flood = append(flood, msg(v, 10+dom, templateSet(v, 256, v4Flow...)))
				}
				return []step{
					{0, [][]byte{msg(v, 0, templateSet(v, 256, v4Flow...), templateSet(v, 257, v4Flow...), dataSet(256, rec), dataSet(257, rec))}, 2},
					{time.Second, flood, 0},
					{2 * time.Second, [][]byte{msg(v, 0, dataSet(256, rec), dataSet(257, rec)), msg(v, 109, dataSet(256, rec))}, 3},
				}
			},
			evicted: 94,
		},
		{
			name: "a new template is accepted at once after a flood", max: 4,
			steps: func(v uint16) []step {
				return []step{
					{0, floodTemplates(v, 0, 1000, 2000), 0},
					{time.Second, [][]byte{msg(v, 0, templateSet(v, 256, v4Flow...), dataSet(256, rec))}, 1},
				}
			},
			evicted: 1997,
		},
	}
	for _, tc := range cases {
		for _, v := range []uint16{9, 10} {
			t.Run(fmt.Sprintf("%s/v%d", tc.name, v), func(t *testing.T) {
				h := newHarness(t, func(c *Configuration) {
					c.Templates.Max = tc.max
					c.Templates.PendingBytes = 0 // a missing template shows at once
				})
				for i, s := range tc.steps(v) {
					if got := h.send(exp1, t0.Add(s.at), s.msgs...); len(got) != s.want {
						t.Errorf("step %d: %d records, want %d", i, len(got), s.want)
					}
					checkRegistry(t, h.c.known(exp1.Addr()))
				}
				for ev, want := range map[string]float64{"evicted": tc.evicted, "expired": tc.expired} {
					if got := metricValue(h.c.metrics.templateEvents.WithLabelValues("192.0.2.10", ev)); got != want {
						t.Errorf("%s: %v, want %v", ev, got, want)
					}
				}
			})
		}
	}
}

// msg is a NetFlow v9 (version 9) or IPFIX (10) message.
func msg(version uint16, domain uint32, sets ...[]byte) []byte {
	if version == 9 {
		return v9Msg(domain, 1000, 1000, sets...)
	}
	return ipfixMsg(domain, 1000, sets...)
}

// TestTemplateSystemAfterEviction checks goflow2's view of the registry
// (the NetFlowTemplateSystem methods) after evictions: an evicted template
// is gone from every method, a kept one is found.
func TestTemplateSystemAfterEviction(t *testing.T) {
	h := newHarness(t, func(c *Configuration) { c.Templates.Max = 3 })
	h.send(exp1, t0, floodTemplates(10, 0, 256, 10)...)
	e := h.c.known(exp1.Addr())
	if _, err := e.GetTemplate(10, 0, 256); !errors.Is(err, netflow.ErrorTemplateNotFound) {
		t.Errorf("evicted template found: %v", err)
	}
	if _, err := e.RemoveTemplate(10, 0, 256); !errors.Is(err, netflow.ErrorTemplateNotFound) {
		t.Errorf("evicted template removed: %v", err)
	}
	if _, err := e.GetTemplate(10, 0, 265); err != nil {
		t.Errorf("newest template: %v", err)
	}
	all := e.GetTemplates()
	if len(all) != 3 {
		t.Errorf("goflow2 sees %d templates, want 3", len(all))
	}
	for _, id := range []uint64{263, 264, 265} {
		if all[10<<48|id] == nil {
			t.Errorf("template %d not listed", id)
		}
	}
	if _, err := e.RemoveTemplate(10, 0, 265); err != nil {
		t.Error(err)
	}
	checkRegistry(t, e)
	if n := len(e.templates); n != 2 {
		t.Errorf("%d templates after a removal, want 2", n)
	}
}

// TestTemplateEvictionLogged checks that evictions are logged once per
// interval per exporter, the next line telling how many went untold.
func TestTemplateEvictionLogged(t *testing.T) {
	cfg := DefaultConfiguration()
	cfg.Templates.Max = 4
	logs := &logRecorder{}
	c, err := New(cfg, Dependencies{Registerer: prometheus.NewRegistry(), Logger: slog.New(logs), Flows: func([]flow.Record) {}})
	if err != nil {
		t.Fatal(err)
	}
	const evictedMsg = "template cache full"
	steps := []struct {
		at         time.Duration
		first      uint16
		lines      int
		suppressed string // of the last line
	}{
		{0, 1000, 1, ""},              // 96 evicted: one line
		{time.Second, 2000, 1, ""},    // 100 more, untold
		{logInterval, 3000, 2, "195"}, // the next interval: a line for the first eviction
	}
	for i, s := range steps {
		for _, d := range floodTemplates(10, 0, s.first, 100) {
			c.HandleDatagram(exp1, d, t0.Add(s.at))
		}
		got := logs.lines(evictedMsg)
		if len(got) != s.lines || got[len(got)-1]["suppressed"] != s.suppressed || got[len(got)-1]["exporter"] != "192.0.2.10" {
			t.Errorf("step %d: %v, want %d lines, the last with %q suppressed", i, got, s.lines, s.suppressed)
		}
	}
	if v := metricValue(c.metrics.templateEvents.WithLabelValues("192.0.2.10", "evicted")); v != 296 {
		t.Errorf("%v evictions counted, want 296", v)
	}
}

// BenchmarkTemplateFlood measures the decode of a continuous flood of new
// templates from one exporter at templates.max (40 templates a datagram,
// template IDs cycling through 256-65 535), per template.
func BenchmarkTemplateFlood(b *testing.B) {
	c := newTestComponent(b, DefaultConfiguration(), func([]flow.Record) {})
	d := newDecoder(c)
	var flood [][]byte
	for _, v := range []uint16{9, 10} {
		flood = append(flood, floodTemplates(v, 0, 256, 1<<16-256)...)
	}
	for _, dg := range flood {
		d.handle(exp1, dg, t0, kindAuto) // fill the registry
	}
	b.ResetTimer()
	n := 0
	for b.Loop() {
		d.handle(exp1, flood[n%len(flood)], t0, kindAuto)
		n++
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(40*n), "ns/template")
}
