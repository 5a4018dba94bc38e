package scripting

import (
	"context"
	"maps"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowcheck/flowcheck/aggregate"
	"github.com/flowcheck/flowcheck/clock"
	"github.com/flowcheck/flowcheck/cmd/flowgen/gen"
	"github.com/flowcheck/flowcheck/flow"
)

// flowgenTable returns a real host table holding n hosts fed cmd/flowgen's
// default stream: half the hosts in 10/8 (local), half scattered over 20/8
// (remote), one conversation per host as client with a random other host,
// 10 % of them one-sided (the client's no-reply sets and the server's grow
// by one), the mix http=30, tls=40, dns=20, ssh=5, bittorrent=5. Every
// pending conversation is decided before it returns.
func flowgenTable(tb testing.TB, n int) (*aggregate.HostTable, time.Time) {
	tb.Helper()
	clk := clock.NewManual(t0)
	cfg := aggregate.DefaultConfiguration()
	tbl, err := aggregate.New(cfg, aggregate.Dependencies{Registerer: prometheus.NewRegistry(), Clock: clk})
	if err != nil {
		tb.Fatal(err)
	}
	pc := gen.DefaultPopulationConfiguration()
	pc.Hosts = n
	p, err := gen.NewPopulation(pc)
	if err != nil {
		tb.Fatal(err)
	}
	batch := make([]flow.Record, 0, 256)
	for _, f := range p.Flows() {
		batch = append(batch, f.Record())
		if len(batch) == cap(batch) {
			tbl.Apply(batch)
			batch = batch[:0]
		}
	}
	tbl.Apply(batch)
	end := t0.Add(cfg.ReplyWindow + time.Second)
	clk.Set(end)
	tbl.Advance(end)
	if tbl.Len() != n {
		tb.Fatalf("%d hosts, want %d", tbl.Len(), n)
	}
	return tbl, end
}

// heapAlloc is the live heap after a collection.
func heapAlloc() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// BenchmarkStateMemory measures the heap the engine keeps per host (after
// GC, engine and VMs included) over 10^5 hosts of a real host table fed a
// flowgen-like stream: "none" with every check disabled (the engine's own
// per-host entry), each shipped check alone, and "shipped", the embedded
// default configuration. B/host-tick1 is after the first tick, B/host after
// four more (the scan checks' windows are full by then); both must stay
// flat from there on.
//
//	go test -run XXX -bench StateMemory -benchtime 1x ./scripting/
func BenchmarkStateMemory(b *testing.B) {
	const n = 100_000
	tbl, now := flowgenTable(b, n)
	shipped := DefaultConfiguration()
	cases := append(append([]string{"none"}, slices.Sorted(maps.Keys(shipped.Checks))...), "shipped")
	for _, only := range cases {
		b.Run(only, func(b *testing.B) {
			for range b.N {
				cfg := DefaultConfiguration()
				cfg.Dirs = []string{"../scripts"}
				cfg.CallTimeout = time.Second
				if only != "shipped" {
					for name, c := range cfg.Checks {
						c.Enabled = name == only
						cfg.Checks[name] = c
					}
				}
				before := heapAlloc()
				e, err := New(cfg, Dependencies{Registerer: prometheus.NewRegistry(), Clock: clock.NewManual(now),
					Hosts: tbl, Alerts: &capture{}})
				if err != nil {
					b.Fatal(err)
				}
				t := now
				for i := range 5 {
					t = t.Add(cfg.Interval)
					if st := e.Tick(context.Background(), t, false); st.Hosts != n || st.Errors != 0 {
						b.Fatalf("tick %d: %+v", i+1, st)
					}
					if i == 0 {
						b.ReportMetric(float64(heapAlloc()-before)/n, "B/host-tick1")
					}
				}
				b.ReportMetric(float64(heapAlloc()-before)/n, "B/host")
				e.Stop(context.Background())
			}
		})
	}
	runtime.KeepAlive(tbl)
}
