package collector

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowcheck/flowcheck/flow"
)

var exp3 = netip.MustParseAddrPort("192.0.2.30:40000")

// templateAndData is an IPFIX datagram that decodes to one record on its
// own, whatever state its exporter is in.
func templateAndData() []byte {
	return ipfixMsg(0, 1000, templateSet(10, 256, v4Flow...),
		dataSet(256, v4FlowRecord("10.0.0.1", "10.0.0.2", 1, 2, 300, 3)))
}

// TestExporterEviction checks idle eviction and eviction at the cap, on
// receive time (templates.lifetime is 30m and exporters.idle_timeout 1h
// unless a case says otherwise).
func TestExporterEviction(t *testing.T) {
	type send struct {
		from netip.AddrPort
		at   time.Duration // after t0
	}
	cases := []struct {
		name          string
		max           int
		sends         []send
		want          []netip.AddrPort // exporters tracked at the end
		idle, cap     float64          // evictions by reason
		exporterCapDr float64          // exporter_cap drops
	}{
		{
			name:  "idle exporter forgotten",
			max:   10,
			sends: []send{{exp1, 0}, {exp2, 61 * time.Minute}},
			want:  []netip.AddrPort{exp2},
			idle:  1,
		},
		{
			name:  "not idle yet",
			max:   10,
			sends: []send{{exp1, 0}, {exp2, 59 * time.Minute}},
			want:  []netip.AddrPort{exp1, exp2},
		},
		{
			name:  "heard again, idle clock restarts",
			max:   10,
			sends: []send{{exp1, 0}, {exp1, 40 * time.Minute}, {exp2, 90 * time.Minute}},
			want:  []netip.AddrPort{exp1, exp2},
		},
		{
			name:  "at the cap, an exporter silent beyond the template lifetime makes room",
			max:   1,
			sends: []send{{exp1, 0}, {exp2, 31 * time.Minute}},
			want:  []netip.AddrPort{exp2},
			cap:   1,
		},
		{
			name:          "at the cap, no stale exporter: refused",
			max:           1,
			sends:         []send{{exp1, 0}, {exp2, 29 * time.Minute}},
			want:          []netip.AddrPort{exp1},
			exporterCapDr: 1,
		},
		{
			name:          "refused, then accepted once the other is stale",
			max:           1,
			sends:         []send{{exp1, 0}, {exp2, 10 * time.Minute}, {exp2, 20 * time.Minute}, {exp2, 31 * time.Minute}},
			want:          []netip.AddrPort{exp2},
			cap:           1,
			exporterCapDr: 2,
		},
		{
			name:  "at the cap, the least recently seen goes",
			max:   2,
			sends: []send{{exp1, 0}, {exp2, 5 * time.Minute}, {exp3, 40 * time.Minute}},
			want:  []netip.AddrPort{exp2, exp3},
			cap:   1,
		},
		{
			name:  "idle sweep before the cap",
			max:   2,
			sends: []send{{exp1, 0}, {exp2, 0}, {exp3, 2 * time.Hour}},
			want:  []netip.AddrPort{exp3},
			idle:  2,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, func(c *Configuration) { c.Exporters.Max = tc.max })
			for _, s := range tc.sends {
				h.send(s.from, t0.Add(s.at), templateAndData())
			}
			var got []netip.AddrPort
			for _, in := range h.c.Exporters() {
				got = append(got, netip.AddrPortFrom(in.Address, 40000))
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("exporters %v, want %v", got, tc.want)
			}
			for reason, want := range map[string]float64{"idle": tc.idle, "cap": tc.cap} {
				if v := metricValue(h.c.metrics.evictions.WithLabelValues(reason)); v != want {
					t.Errorf("%s evictions %v, want %v", reason, v, want)
				}
			}
			if v := metricValue(h.c.metrics.drops[dropExporterCap]); v != tc.exporterCapDr {
				t.Errorf("exporter_cap drops %v, want %v", v, tc.exporterCapDr)
			}
			if v := metricValue(h.c.metrics.exporters); v != float64(len(tc.want)) {
				t.Errorf("exporters gauge %v", v)
			}
		})
	}
}

// TestEvictedExporterForgotten checks that a new exporter is accepted at
// the cap once an old one expired, that the old one's metric series are
// gone, and that it starts afresh (no templates) when it comes back.
func TestEvictedExporterForgotten(t *testing.T) {
	h := newHarness(t, func(c *Configuration) { c.Exporters.Max = 1 })
	if got := h.send(exp1, t0, templateAndData()); len(got) != 1 {
		t.Fatalf("exporter 1: %d records", len(got))
	}
	if got := h.send(exp2, t0.Add(time.Minute), templateAndData()); len(got) != 0 {
		t.Fatalf("exporter 2 admitted beyond the cap: %d records", len(got))
	}
	got := h.send(exp2, t0.Add(2*time.Hour), templateAndData())
	if len(got) != 1 || got[0].Exporter != exp2.Addr() {
		t.Fatalf("exporter 2 after exporter 1 expired: %+v", got)
	}
	if v := metricValue(h.c.metrics.evictions.WithLabelValues("idle")); v != 1 {
		t.Errorf("idle evictions %v", v)
	}
	if dump := metricDump(t, h.reg); strings.Contains(dump, "exporter=192.0.2.10") {
		t.Errorf("series of the evicted exporter remain:\n%s", dump)
	}
	// Back, with data only: its templates went with it. It replaces
	// exporter 2 only once exporter 2 is stale.
	data := ipfixMsg(0, 1000, dataSet(256, v4FlowRecord("10.0.0.1", "10.0.0.2", 1, 2, 300, 3)))
	if got := h.send(exp1, t0.Add(2*time.Hour+31*time.Minute), data); len(got) != 0 {
		t.Errorf("exporter 1 kept its templates: %+v", got)
	}
	infos := h.c.Exporters()
	if len(infos) != 1 || infos[0].Address != exp1.Addr() || len(infos[0].Templates) != 0 || infos[0].Packets != 1 || infos[0].PendingBytes == 0 {
		t.Errorf("exporter 1 back: %+v", infos)
	}
	// Evicted again with its data set still waiting: the set is counted.
	if v := metricValue(h.c.metrics.evictedPending); v != 0 {
		t.Errorf("evicted pending sets %v before the eviction", v)
	}
	h.send(exp2, t0.Add(5*time.Hour), templateAndData())
	if v := metricValue(h.c.metrics.evictedPending); v != 1 {
		t.Errorf("evicted pending sets %v, want 1", v)
	}
}

// TestEvictionConcurrentDecode runs idle sweeps while other exporters are
// being decoded (under -race): every datagram, self-contained, must yield
// its record even when its exporter is evicted around it.
func TestEvictionConcurrentDecode(t *testing.T) {
	var mu sync.Mutex
	records := 0
	c := newTestComponent(t, DefaultConfiguration(), func(b []flow.Record) {
		mu.Lock()
		records += len(b)
		mu.Unlock()
	})
	const goroutines, sends = 4, 200
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			from := netip.MustParseAddrPort(fmt.Sprintf("192.0.2.%d:2055", g+1))
			msg := templateAndData()
			for i := range sends {
				// Every goroutine's clock jumps by hours, so each
				// sweep finds the others idle.
				c.HandleDatagram(from, msg, t0.Add(time.Duration(i*goroutines+g)*time.Hour))
			}
		})
	}
	wg.Wait()
	if records != goroutines*sends {
		t.Errorf("%d records, want %d", records, goroutines*sends)
	}
	if v := metricValue(c.metrics.evictions.WithLabelValues("idle")); v == 0 {
		t.Error("no idle evictions")
	}
}
