package scripting

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowcheck/flowcheck/aggregate"
	"github.com/flowcheck/flowcheck/clock"
	"github.com/flowcheck/flowcheck/flow"
)

// flowgenTable returns a real host table holding n hosts fed a stream shaped
// like cmd/flowgen's default one: half the hosts in 10/8 (local), half
// scattered over 20/8 (remote), one conversation per host as client with a
// random other host, 10 % of them one-sided (the client's no-reply sets and
// the server's grow by one), the mix http=30, tls=40, dns=20, ssh=5,
// bittorrent=5. Every pending conversation is decided before it returns.
func flowgenTable(tb testing.TB, n int) (*aggregate.HostTable, time.Time) {
	tb.Helper()
	clk := clock.NewManual(t0)
	cfg := aggregate.DefaultConfiguration()
	tbl, err := aggregate.New(cfg, aggregate.Dependencies{Registerer: prometheus.NewRegistry(), Clock: clk})
	if err != nil {
		tb.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	addr := func(i int) netip.Addr {
		if i < n/2 {
			v := uint32(i) + 1
			return netip.AddrFrom4([4]byte{10, byte(v >> 16), byte(v >> 8), byte(v)})
		}
		v := (uint32(i-n/2)*2654435761 + 0x5bd1e9) & 0xffffff
		return netip.AddrFrom4([4]byte{20, byte(v >> 16), byte(v >> 8), byte(v)})
	}
	batch := make([]flow.Record, 0, 256)
	apply := func(r flow.Record) {
		batch = append(batch, r)
		if len(batch) == cap(batch) {
			tbl.Apply(batch)
			batch = batch[:0]
		}
	}
	for i := range n {
		c, s := addr(i), addr((i+1+rng.IntN(n-1))%n)
		fwd := flow.Record{SrcAddr: c, DstAddr: s, SrcPort: uint16(32768 + rng.IntN(28000)), Proto: flow.ProtoTCP,
			TCPFlags: flow.TCPSyn | flow.TCPAck | flow.TCPFin, Packets: uint64(4 + rng.IntN(16)), Bytes: uint64(300 + rng.IntN(5000))}
		switch x := rng.IntN(100); {
		case x < 30:
			fwd.DstPort = 80
		case x < 70:
			fwd.DstPort = 443
		case x < 90:
			fwd.DstPort, fwd.Proto, fwd.TCPFlags = 53, flow.ProtoUDP, 0
		case x < 95:
			fwd.DstPort = 22
		default:
			fwd.SrcPort, fwd.DstPort = uint16(10000+rng.IntN(55000)), uint16(6881+rng.IntN(9))
		}
		if rng.IntN(10) == 0 {
			if fwd.Proto == flow.ProtoTCP {
				fwd.TCPFlags, fwd.Packets, fwd.Bytes = flow.TCPSyn, 1, 60
			}
			apply(fwd)
			continue
		}
		rev := fwd
		rev.SrcAddr, rev.DstAddr, rev.SrcPort, rev.DstPort = fwd.DstAddr, fwd.SrcAddr, fwd.DstPort, fwd.SrcPort
		rev.TCPFlags = fwd.TCPFlags
		rev.Packets, rev.Bytes = uint64(4+rng.IntN(40)), uint64(2000+rng.IntN(40000))
		apply(fwd)
		apply(rev)
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
	cases := append(append([]string{"none"}, sortedKeys(shipped.Checks)...), "shipped")
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
				e.Stop()
			}
		})
	}
	runtime.KeepAlive(tbl)
}
