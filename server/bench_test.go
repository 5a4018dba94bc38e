package server

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/flowcheck/flowcheck/aggregate"
	"github.com/flowcheck/flowcheck/clock"
	"github.com/flowcheck/flowcheck/flow"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// benchTable is a real host table of n hosts (n/2 flows, each between two
// new hosts), with the sizes of sets varying by host.
func benchTable(b *testing.B, n int) *aggregate.HostTable {
	b.Helper()
	cfg := aggregate.DefaultConfiguration()
	cfg.MaxHosts = 2 * n
	t0 := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	table, err := aggregate.New(cfg, aggregate.Dependencies{Registerer: prometheus.NewRegistry(), Clock: clock.NewManual(t0)})
	if err != nil {
		b.Fatal(err)
	}
	batch := make([]flow.Record, 0, 1024)
	for i := 0; i < n/2; i++ {
		src := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		dst := netip.AddrFrom4([4]byte{172, 16 + byte(i>>16), byte(i >> 8), byte(i)})
		batch = append(batch, flow.Record{SrcAddr: src, DstAddr: dst, SrcPort: 40000, DstPort: uint16(i % 1000), Proto: 6,
			Bytes: uint64(i%9973) * 100, Packets: 1, Start: t0, End: t0})
		if len(batch) == cap(batch) {
			table.Apply(batch)
			batch = batch[:0]
		}
	}
	table.Apply(batch)
	if table.Len() != n {
		b.Fatalf("%d hosts, want %d", table.Len(), n)
	}
	return table
}

// BenchmarkHostsPage is one page of /api/v1/hosts over 100 000 hosts: a
// walk of the whole table, the heap bounded by offset+limit
// (docs/performance.md, HTTP API).
func BenchmarkHostsPage(b *testing.B) {
	table := benchTable(b, 100_000)
	cfg := DefaultConfiguration()
	cfg.RequestTimeout = time.Minute
	srv, err := New(cfg, Dependencies{Gatherer: prometheus.NewRegistry(), Hosts: table, Alerts: fakeAlerts{}})
	if err != nil {
		b.Fatal(err)
	}
	h := srv.Handler()
	for _, q := range []string{"sort=bytes&limit=100", "sort=refused_ports&offset=9900&limit=100", "sort=bytes&q=10.0.0.0/16&limit=100", "sort=bytes&limit=1000"} {
		for _, encoding := range []string{"identity", "gzip"} {
			b.Run(q+"/"+encoding, func(b *testing.B) {
				b.ReportAllocs()
				var size int
				for b.Loop() {
					w := httptest.NewRecorder()
					r := httptest.NewRequest(http.MethodGet, "/api/v1/hosts?"+q, nil)
					r.Header.Set("Accept-Encoding", encoding)
					h.ServeHTTP(w, r)
					if w.Code != http.StatusOK {
						b.Fatal(w.Code, w.Body.String())
					}
					size = w.Body.Len()
				}
				b.ReportMetric(float64(size), "B/page")
			})
		}
	}
}

// BenchmarkOverviewSample is the sampler's one-second work on a registry
// the size of a collector's with 100 exporters: one Gather and the sums.
func BenchmarkOverviewSample(b *testing.B) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := newIngestMetrics(reg)
	for i := range 100 {
		e := netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}).String()
		m.flows.WithLabelValues(e).Add(1)
		m.dgrams.WithLabelValues(e, "netflow9").Add(1)
		for _, r := range []string{"truncated", "bad_version", "bad_length", "unknown_template", "bad_record"} {
			m.decodeErrs.WithLabelValues(e, r)
		}
	}
	srv, err := New(DefaultConfiguration(), Dependencies{Gatherer: reg, Hosts: fakeHosts{}, Alerts: fakeAlerts{}})
	if err != nil {
		b.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(time.Second)
		srv.takeSample(now)
	}
}
