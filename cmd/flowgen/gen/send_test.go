package gen

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/netsampler/goflow2/v2/decoders/netflow"
)

// collector is a test UDP listener that keeps every datagram it receives.
type collector struct {
	conn *net.UDPConn
	wg   sync.WaitGroup
	mu   sync.Mutex
	got  []received
}

type received struct {
	from netip.AddrPort
	data []byte
}

func listen(t *testing.T) *collector {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	// Large enough that an unpaced burst of a few hundred datagrams fits
	// even if the reader is descheduled; the kernel caps it at rmem_max.
	_ = conn.SetReadBuffer(8 << 20)
	c := &collector{conn: conn}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		buf := make([]byte, 65536)
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			c.mu.Lock()
			c.got = append(c.got, received{from, append([]byte(nil), buf[:n]...)})
			c.mu.Unlock()
		}
	}()
	t.Cleanup(c.close)
	return c
}

func (c *collector) addr() netip.AddrPort { return c.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

// waitFor waits until n datagrams arrived or a generous deadline passed.
func (c *collector) waitFor(n int) []received {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		got := len(c.got)
		c.mu.Unlock()
		if got >= n {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]received(nil), c.got...)
}

func (c *collector) close() {
	_ = c.conn.Close()
	c.wg.Wait()
}

func TestSenderCountFromSeveralExporters(t *testing.T) {
	for _, tc := range []struct {
		version, batch int
		rate           float64
	}{
		{V5, 1, 200000},
		{V9, 1, 200000},
		{IPFIX, 1, 200000},
		{V9, 16, 2000000}, // 2000 records a burst: batches of 16 datagrams
		{IPFIX, 5, 2000000},
	} {
		version := tc.version
		col := listen(t)
		cfg := DefaultConfiguration()
		cfg.Target = col.addr()
		cfg.Version = version
		cfg.Duration = 0
		cfg.Count = 1003 // not a multiple of the datagram size
		cfg.Exporters = 3
		cfg.Batch = tc.batch
		cfg.Rate = tc.rate // paced, so the test listener keeps up
		s, err := NewSender(cfg)
		if err != nil {
			t.Fatal(err)
		}
		st, err := s.Run(context.Background())
		_ = s.Close()
		if err != nil {
			t.Fatal(err)
		}
		wantPackets := (cfg.Count + 24) / 25
		if st.Records != cfg.Count || st.Packets != wantPackets || st.SendErrors != 0 {
			t.Fatalf("v%d: stats %+v", version, st)
		}
		got := col.waitFor(int(wantPackets))
		if len(got) != int(wantPackets) {
			t.Fatalf("v%d: received %d datagrams, sent %d", version, len(got), wantPackets)
		}
		// Templates are per exporter, as in a real collector.
		templates := map[netip.Addr]netflow.NetFlowTemplateSystem{}
		perExporter := map[netip.Addr]int{}
		var records, bytes uint64
		for _, r := range got {
			from := r.from.Addr()
			if templates[from] == nil {
				templates[from] = netflow.CreateTemplateSystem()
			}
			h, recs := decode(t, templates[from], r.data)
			if want := uint32(from.As4()[3]) - 1; h.domain != want {
				t.Errorf("datagram from %s has domain %d, want %d", from, h.domain, want)
			}
			perExporter[from] += len(recs)
			records += uint64(len(recs))
			bytes += uint64(len(r.data))
		}
		if records != cfg.Count || bytes != st.Bytes {
			t.Errorf("v%d: decoded %d records in %d bytes, sent %d in %d", version, records, bytes, cfg.Count, st.Bytes)
		}
		for i := range cfg.Exporters {
			a := netip.AddrFrom4([4]byte{127, 0, 0, byte(2 + i)})
			if perExporter[a] == 0 {
				t.Errorf("v%d: nothing from exporter %s (%v)", version, a, perExporter)
			}
		}
		col.close()
	}
}

func TestSenderPacesToRate(t *testing.T) {
	col := listen(t)
	cfg := DefaultConfiguration()
	cfg.Target = col.addr()
	cfg.Rate = 20000
	cfg.Duration = 300 * time.Millisecond
	s, err := NewSender(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	st, err := s.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// Counts, not speed: a slow machine may send less, but pacing must
	// never let it send more than the schedule plus one burst.
	limit := cfg.Rate*st.Elapsed.Seconds() + float64(2*cfg.RecordsPerPacket)
	if float64(st.Records) > limit {
		t.Errorf("sent %d records in %v at rate %.0f (limit %.0f)", st.Records, st.Elapsed, cfg.Rate, limit)
	}
	if st.Records == 0 {
		t.Error("sent nothing")
	}
}

func TestSenderStopsOnCancel(t *testing.T) {
	col := listen(t)
	cfg := DefaultConfiguration()
	cfg.Target = col.addr()
	cfg.Rate = 1000
	cfg.Duration = time.Hour
	s, err := NewSender(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { _, err := s.Run(ctx); done <- err }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run ignored cancellation")
	}
}

func TestSenderRefusesRemote(t *testing.T) {
	cfg := DefaultConfiguration()
	cfg.Target = netip.MustParseAddrPort("192.0.2.1:2055")
	if _, err := NewSender(cfg); err == nil {
		t.Fatal("remote target accepted without allow_remote")
	}
}

func TestExporterAddr(t *testing.T) {
	for _, tc := range []struct {
		target string
		i      int
		want   string
	}{
		{"127.0.0.1", 0, "127.0.0.2"},
		{"127.0.0.1", 7, "127.0.0.9"},
		{"192.0.2.1", 3, "0.0.0.0"},
		{"::1", 0, "::"},
	} {
		if got := ExporterAddr(netip.MustParseAddr(tc.target), tc.i); got.String() != tc.want {
			t.Errorf("ExporterAddr(%s, %d) = %s, want %s", tc.target, tc.i, got, tc.want)
		}
	}
}

func TestSendLoopAllocatesNothing(t *testing.T) {
	for _, n := range []int{1, 8} {
		col := listen(t)
		cfg := DefaultConfiguration()
		cfg.Target = col.addr()
		cfg.Batch = n
		s, err := NewSender(cfg)
		if err != nil {
			t.Fatal(err)
		}
		flows := make([]Flow, cfg.RecordsPerPacket)
		bufs := make([][]byte, n)
		for i := range bufs {
			bufs[i] = make([]byte, 0, maxDatagram)
		}
		pos := 0
		allocs := testing.AllocsPerRun(100, func() {
			for i := range bufs {
				pos = s.pop.Fill(flows, pos)
				bufs[i] = s.encs[0].Append(bufs[i][:0], flows, time.Now())
			}
			if m, err := s.writers[0].write(bufs); err != nil || m == 0 {
				t.Fatalf("write: %d, %v", m, err)
			}
		})
		if allocs != 0 && !(raceEnabled && n > 1) {
			t.Errorf("batch %d: %.1f allocations per batch sent", n, allocs)
		}
		_ = s.Close()
		col.close()
	}
}

func BenchmarkSendLoopback(b *testing.B) {
	for _, n := range []int{1, 16} {
		b.Run(fmt.Sprintf("batch%d", n), func(b *testing.B) { benchmarkSend(b, n) })
	}
}

func benchmarkSend(b *testing.B, batch int) {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	go func() {
		buf := make([]byte, 65536)
		for {
			if _, _, err := conn.ReadFromUDPAddrPort(buf); err != nil {
				return
			}
		}
	}()
	cfg := DefaultConfiguration()
	cfg.Target = conn.LocalAddr().(*net.UDPAddr).AddrPort()
	cfg.Duration = 0
	cfg.Count = uint64(b.N) * uint64(cfg.RecordsPerPacket)
	cfg.Batch = batch
	s, err := NewSender(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	b.ReportAllocs()
	b.ResetTimer()
	st, err := s.Run(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(st.Rate(), "records/s")
}
