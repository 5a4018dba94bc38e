package scripting

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowcheck/flowcheck/aggregate"
	"github.com/flowcheck/flowcheck/clock"
	"github.com/flowcheck/flowcheck/internal/cputime"
)

// benchSource is fakeHosts with a fixed key list: the fake's AppendKeys
// sorts (for the tests' determinism), which on 10^6 hosts took a quarter of
// the tick being measured; the host table's does not.
type benchSource struct {
	*fakeHosts
	keys []aggregate.HostKey
}

func (b *benchSource) AppendKeys(dst []aggregate.HostKey) []aggregate.HostKey {
	return append(dst, b.keys...)
}

// benchHosts builds n hosts: all with traffic and two L7 protocols, one in
// ten with a few unanswered contacts.
func benchHosts(n int) *benchSource {
	f := &fakeHosts{m: make(map[aggregate.HostKey]*aggregate.HostSnapshot, n)}
	keys := make([]aggregate.HostKey, 0, n)
	for i := 0; i < n; i++ {
		k := aggregate.HostKey{Addr: netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})}
		s := &aggregate.HostSnapshot{Key: k, Name: k.Addr.String(), Local: i%2 == 0,
			BytesSent: uint64(1000 + i), BytesRcvd: uint64(50000 + i), PacketsSent: 10, PacketsRcvd: 50,
			L7: []aggregate.L7Stat{
				{Name: "TLS", BytesSent: uint64(900 + i), BytesRcvd: uint64(45000 + i), Flows: 4},
				{Name: "DNS", BytesSent: 100, BytesRcvd: 5000, Flows: 2},
			}}
		if i%10 == 0 {
			s.NoReply = aggregate.ContactCounts{PeersAsClient: 2, ServerPorts: 2}
			s.Unidirectional = aggregate.UnidirectionalStats{EgressTCP: 2}
		}
		f.m[k] = s
		keys = append(keys, k)
	}
	return &benchSource{fakeHosts: f, keys: keys}
}

func benchmarkTick(b *testing.B, workers, nHosts int) {
	hosts := benchHosts(nHosts)
	cfg := DefaultConfiguration()
	cfg.Dirs = []string{"../scripts"}
	cfg.Workers = workers
	cfg.CallTimeout = time.Second
	for _, name := range []string{"blacklisted_host", "dangerous_host"} {
		c := cfg.Checks[name]
		c.Enabled = false
		cfg.Checks[name] = c
	}
	e, err := New(cfg, Dependencies{Registerer: prometheus.NewRegistry(), Clock: clock.NewManual(t0),
		Hosts: hosts, Alerts: &capture{}})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Stop(context.Background())
	now := t0
	e.Tick(context.Background(), now, false) // create per-host state outside the measure
	b.ReportAllocs()
	cpu0 := cputime.Process()
	b.ResetTimer()
	calls := 0
	for i := 0; i < b.N; i++ {
		now = now.Add(30 * time.Second)
		st := e.Tick(context.Background(), now, false)
		calls += st.Calls
	}
	b.StopTimer()
	cpu := cputime.Process() - cpu0
	if calls != b.N*nHosts*5 {
		b.Fatalf("%d calls, want %d", calls, b.N*nHosts*5)
	}
	b.ReportMetric(float64(calls)/b.Elapsed().Seconds(), "calls/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(calls), "ns/call")
	// CPU time per call (process user+system time, GC included) does not
	// depend on what else the machine runs: 10^6 calls/s on 2 cores needs
	// at most 2000 cpu-ns/call.
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(calls), "cpu-ns/call")
}

// BenchmarkTick runs the five shipped checks that apply to every host
// (scan_detection, scan_victim, p2p_heavy, large_transfer,
// rx_only_contacted) on 10^5 hosts; one op is one tick.
func BenchmarkTick(b *testing.B) {
	for _, w := range []int{1, 2} {
		b.Run(fmt.Sprintf("workers=%d", w), func(b *testing.B) { benchmarkTick(b, w, 100_000) })
	}
}

// BenchmarkTickMillion is BenchmarkTick on 10^6 hosts and GOMAXPROCS
// workers: one op is a whole tick, which must fit in the 30 s interval. It
// needs about 2 GB and a minute, so it runs only with
// FLOWCHECK_BENCH_MILLION=1:
//
//	FLOWCHECK_BENCH_MILLION=1 go test -run XXX -bench TickMillion -benchtime 3x ./scripting/
func BenchmarkTickMillion(b *testing.B) {
	if os.Getenv("FLOWCHECK_BENCH_MILLION") == "" {
		b.Skip("set FLOWCHECK_BENCH_MILLION=1 to tick over 10^6 hosts")
	}
	benchmarkTick(b, 0, 1_000_000)
}

// BenchmarkL7 runs one check on 1000 hosts with five L7 protocols each and
// reports allocations per check call: "once" reads host.l7() once per call,
// "loop" the way a check written for ntopng reads six protocols
// ((host.l7() or {})[name] each), "name" the same six with the host.l7(name)
// extension. One op is one tick.
func BenchmarkL7(b *testing.B) {
	const nHosts = 1000
	scripts := []struct{ name, body string }{
		{"once", `local n = 0
			for _, s in pairs(host.l7() or {}) do n = n + s.bytes_sent end`},
		{"loop", `local n = 0
			for _, p in ipairs(protos) do
				local s = (host.l7() or {})[p]
				if s then n = n + s.bytes_sent end
			end`},
		{"name", `local n = 0
			for _, p in ipairs(protos) do
				local s = host.l7(p)
				if s then n = n + s.bytes_sent end
			end`},
	}
	for _, sc := range scripts {
		b.Run(sc.name, func(b *testing.B) {
			hosts := newFakeHosts()
			for i := range nHosts {
				s := aggregate.HostSnapshot{Key: aggregate.HostKey{Addr: netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})}}
				for j, p := range []string{"TLS", "DNS", "HTTP", "BitTorrent", "QUIC"} {
					s.L7 = append(s.L7, aggregate.L7Stat{Name: p, BytesSent: uint64(1000 * (i + j)), BytesRcvd: 5000, Flows: 3})
				}
				hosts.put(s)
			}
			h := newHarness(b, map[string]string{"c": `local protos = {"BitTorrent", "eDonkey", "Gnutella", "Soulseek", "DirectConnect", "Xunlei"}
				return { check = function(info)
				` + sc.body + `
				end }`}, hosts, func(c *Configuration) { c.Workers = 1 })
			h.tick()
			b.ReportAllocs()
			var m0, m1 runtime.MemStats
			runtime.ReadMemStats(&m0)
			b.ResetTimer()
			calls := 0
			for range b.N {
				calls += h.tick().Calls
			}
			b.StopTimer()
			runtime.ReadMemStats(&m1)
			b.ReportMetric(float64(m1.Mallocs-m0.Mallocs)/float64(calls), "allocs/call")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(calls), "ns/call")
		})
	}
}
