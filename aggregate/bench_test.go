package aggregate

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"testing"

	"github.com/flowcheck/flowcheck/cmd/flowgen/gen"
	"github.com/flowcheck/flowcheck/flow"
)

// benchRecords returns n records of request/reply pairs between 2,000
// clients and 200 servers, mixed TCP (answered, refused, unanswered) and UDP.
func benchRecords(n int, seed uint64) []flow.Record {
	rng := rand.New(rand.NewPCG(seed, 7))
	recs := make([]flow.Record, 0, n)
	for len(recs) < n {
		c := netip.AddrFrom4([4]byte{10, 1, byte(rng.IntN(8)), byte(rng.IntN(250))})
		s := netip.AddrFrom4([4]byte{192, 0, 2, byte(rng.IntN(200))})
		sp, dp := uint16(32768+rng.IntN(30000)), []uint16{80, 443, 53, 22, 8080, 25}[rng.IntN(6)]
		proto := uint8(flow.ProtoTCP)
		if dp == 53 {
			proto = flow.ProtoUDP
		}
		req := flow.Record{SrcAddr: c, DstAddr: s, SrcPort: sp, DstPort: dp, Proto: proto,
			TCPFlags: syn | flow.TCPAck | flow.TCPFin, Bytes: 1200, Packets: 10}
		rep := flow.Record{SrcAddr: s, DstAddr: c, SrcPort: dp, DstPort: sp, Proto: proto,
			TCPFlags: synAck | flow.TCPFin, Bytes: 40000, Packets: 30}
		switch rng.IntN(10) {
		case 0: // unanswered
			recs = append(recs, req)
			continue
		case 1: // refused
			req.TCPFlags, rep.TCPFlags = syn, rstAck
		}
		recs = append(recs, req, rep)
	}
	return recs[:n]
}

// BenchmarkApply measures records applied per second with one and two
// ingest workers; ns/op and allocs/op are per record.
func BenchmarkApply(b *testing.B) {
	const batchSize = 256
	for _, workers := range []int{1, 2} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			tbl, clk, _ := newTestTable(b, DefaultConfiguration(), Dependencies{})
			recs := make([][]flow.Record, workers)
			for w := range recs {
				recs[w] = benchRecords(1<<16, uint64(w))
			}
			b.ReportAllocs()
			b.ResetTimer()
			applyInWorkers(b, tbl.Apply, workers, batchSize, func(w int) ([]flow.Record, int) { return recs[w], 0 }, nil)
			clk.Advance(DefaultConfiguration().ReplyWindow)
			tbl.Advance(clk.Now())
		})
	}
}

// BenchmarkHostMemory measures heap bytes per host: an idle host with
// traffic of one protocol and no contact sets, and a host whose three
// no-reply sets hold exact_set_size members each (the most an exact set
// holds; past it the HyperLogLog sketch takes 16 KiB).
func BenchmarkHostMemory(b *testing.B) {
	const hosts = 20000
	cases := []struct {
		name  string
		hosts int
		fill  func(tbl *HostTable, i int)
	}{
		{"no-sets", hosts, func(tbl *HostTable, i int) {}},
		{"full-exact-sets", 200, func(tbl *HostTable, i int) {
			h := hostAddr(i)
			for j := range DefaultConfiguration().ExactSetSize {
				peer := netip.AddrFrom4([4]byte{203, byte(j >> 16), byte(j >> 8), byte(j)})
				d := decision{client: h.As16(), server: peer.As16(), sport: uint16(j), proto: flow.ProtoTCP, verdict: verdictOneSided}
				tbl.commit(&applyScratch{}, []decision{d})
				d = decision{client: peer.As16(), server: h.As16(), sport: 80, proto: flow.ProtoTCP, verdict: verdictOneSided}
				tbl.commit(&applyScratch{}, []decision{d})
			}
		}},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			for range b.N {
				cfg := DefaultConfiguration()
				tbl, _, _ := newTestTable(b, cfg, Dependencies{})
				// The remote peers of the filled sets are not hosts of
				// the table: only the measured hosts are.
				runtime.GC()
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				batch := make([]flow.Record, 0, 256)
				for i := range tc.hosts {
					// ICMP from the measured host to a single sink host:
					// traffic and one L7 entry, no conversation.
					batch = append(batch, flow.Record{SrcAddr: hostAddr(i), DstAddr: netip.MustParseAddr("10.255.255.1"),
						Proto: flow.ProtoICMP, Bytes: 84, Packets: 1})
					if len(batch) == cap(batch) {
						tbl.Apply(batch)
						batch = batch[:0]
					}
				}
				tbl.Apply(batch)
				for i := range tc.hosts {
					tc.fill(tbl, i)
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/float64(tc.hosts), "B/host")
				runtime.KeepAlive(tbl)
			}
		})
	}
}

func hostAddr(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
}

// flowgenRecords returns the record cycle of cmd/flowgen's default stream
// over hosts hosts (half in 10/8, half scattered over 20/8, one
// conversation per host, 10 % one-sided, the default L7 mix, each reply
// replyDelay records after its request), as the collector decodes it.
func flowgenRecords(tb testing.TB, hosts int, seed uint64, replyDelay int) []flow.Record {
	tb.Helper()
	c := gen.DefaultPopulationConfiguration()
	c.Hosts, c.Seed, c.ReplyDelay = hosts, seed, replyDelay
	p, err := gen.NewPopulation(c)
	if err != nil {
		tb.Fatal(err)
	}
	recs := make([]flow.Record, 0, p.Len())
	for _, f := range p.Flows() {
		recs = append(recs, f.Record())
	}
	return recs
}

// BenchmarkApplyFlowgen applies a flowgen-like stream over 100 000 hosts
// with one and two workers, on a table that already holds every host, in
// batches of 25 records (one NetFlow v9 datagram, as a worker without a
// backlog hands them over) and of 512 (a worker with a backlog); ns/op and
// allocs/op are per record.
//
// With conversations=repeat the stream cycles through the same 100 000
// conversations, whose tombstones the reply tracker keeps: after the first
// cycle every record finds its conversation decided. With
// conversations=fresh each worker moves every conversation's client port
// on at the end of each cycle, so every conversation is new, as in real
// traffic: the tracker is full (max_pending) and pops its oldest entry to
// make room for each one (the pass over the worker's records that moves
// the ports is timed too, ~1 %). With conversations=fresh-apart each reply
// comes 5 000 records after its request, as from a router's flow cache
// (flowgen --reply-delay 5000), so every conversation waits in the tracker
// for its reply. With conversations=fresh-apart-lossy a quarter of that
// stream's datagrams are lost, as past the collector's ceiling: the
// conversations whose reply went with them are evicted undecided and
// committed one-sided, as when the collector does not tell the table of
// its loss. With conversations=fresh-apart-lossy-told it does, and they
// are withheld instead (withhold_after_ingest_loss). With
// conversations=none-traffic-only the default stream goes through
// ApplyTrafficOnly, the path of a worker shedding the stitching.
func BenchmarkApplyFlowgen(b *testing.B) {
	recs := flowgenRecords(b, 100_000, 1, 0)
	apart := flowgenRecords(b, 100_000, 1, 5000)
	// A collector past its ceiling drops whole datagrams: every fourth
	// run of 25 records (one v9 datagram) is lost, replies included.
	var lossy []flow.Record
	for off := 0; off < len(apart); off += 25 {
		if off/25%4 != 3 {
			lossy = append(lossy, apart[off:min(off+25, len(apart))]...)
		}
	}
	for _, tc := range []struct {
		conversations     string
		recs              []flow.Record
		fresh, told, shed bool
	}{{"repeat", recs, false, false, false}, {"fresh", recs, true, false, false}, {"fresh-apart", apart, true, false, false},
		{"fresh-apart-lossy", lossy, true, false, false}, {"fresh-apart-lossy-told", lossy, true, true, false},
		{"none-traffic-only", recs, false, false, true}} {
		for _, batchSize := range []int{25, 512} {
			for _, workers := range []int{1, 2} {
				b.Run(fmt.Sprintf("conversations=%s/batch=%d/workers=%d", tc.conversations, batchSize, workers), func(b *testing.B) {
					benchApplyFlowgen(b, tc.recs, batchSize, workers, tc.fresh, tc.told, tc.shed)
				})
			}
		}
	}
}

func benchApplyFlowgen(b *testing.B, recs []flow.Record, batchSize, workers int, fresh, lossTold, trafficOnly bool) {
	cfg := DefaultConfiguration()
	tbl, clk, _ := newTestTable(b, cfg, Dependencies{})
	if lossTold {
		// The clock stands still: every reply window covers this loss.
		tbl.IngestLost(clk.Now(), 1, 0)
	}
	own := make([][]flow.Record, workers)
	for w := range own {
		own[w] = recs
		if fresh {
			own[w] = slices.Clone(recs)
		}
	}
	// Warm up: every host in the table, and with fresh conversations a
	// full tracker (its steady state under load: max_pending is reached in
	// about a second at 1 M records/s, long before the reply window ends).
	cycles := 1
	if fresh {
		cycles = 2*cfg.MaxPending/len(recs) + 1
	}
	for c := range cycles {
		w := c % workers
		for off := 0; off < len(recs); off += batchSize {
			tbl.Apply(own[w][off:min(off+batchSize, len(recs))])
		}
		if fresh {
			nextClientPorts(own[w], w)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	// Each worker starts at its own place in the cycle.
	cycle := func(w int) ([]flow.Record, int) {
		return own[w], (w * len(recs) / workers) / batchSize * batchSize
	}
	var wrapped func(w int)
	if fresh {
		wrapped = func(w int) { nextClientPorts(own[w], w) }
	}
	apply := tbl.Apply
	if trafficOnly {
		apply = tbl.ApplyTrafficOnly
	}
	applyInWorkers(b, apply, workers, batchSize, cycle, wrapped)
}

// applyInWorkers applies b.N records on workers goroutines: worker w
// cycles through the records cycle(w) returns, from the offset it returns,
// batchSize at a time, calling wrapped(w) (when not nil) each time it
// reaches the end of its records. It then stops the timer and reports
// records/s.
func applyInWorkers(b *testing.B, apply flow.Handler, workers, batchSize int, cycle func(w int) ([]flow.Record, int), wrapped func(w int)) {
	var wg sync.WaitGroup
	per := b.N / workers
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			recs, start := cycle(w)
			for done := 0; done < per; {
				off := (start + done) % len(recs)
				n := min(batchSize, per-done, len(recs)-off)
				apply(recs[off : off+n])
				done += n
				if wrapped != nil && off+n == len(recs) {
					wrapped(w)
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// nextClientPorts moves each record's higher port (the client's, in both
// records of a conversation) on by workers' worth of steps, worker w's
// conversations staying apart from the other's.
func nextClientPorts(recs []flow.Record, w int) {
	for i := range recs {
		r := &recs[i]
		p := &r.SrcPort
		if r.DstPort > r.SrcPort {
			p = &r.DstPort
		}
		*p = 32768 + (*p-32768+uint16(2+w))%32000
	}
}
