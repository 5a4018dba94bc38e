package collector

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowcheck/flowcheck/flow"
	"github.com/prometheus/client_golang/prometheus"
)

// loopbackCollector starts a collector with one single-socket listener on
// url and a handler that signals each batch's length on the returned
// channel, and returns a UDP client connected to the listener.
func loopbackCollector(tb testing.TB, url string) (*Component, *net.UDPConn, chan int) {
	tb.Helper()
	cfg := DefaultConfiguration()
	cfg.Listeners = []ListenerConfiguration{{URL: url, Sockets: 1, ReceiveBuffer: 4 << 20}}
	cfg.Workers = 1
	done := make(chan int, 1)
	c, err := New(cfg, Dependencies{Registerer: prometheus.NewRegistry(), Flows: func(b []flow.Record) { done <- len(b) }})
	if err != nil {
		tb.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { stopCollector(tb, c) })
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(c.ListenAddrs()[0]))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = conn.Close() })
	return c, conn, done
}

// ipfixTenFlows returns an IPFIX template datagram and a data datagram of
// ten flow records.
func ipfixTenFlows() (tmpl, data []byte) {
	var recs [][]byte
	for i := range 10 {
		recs = append(recs, v4FlowRecord("10.0.0.1", "10.0.0.2", uint16(1000+i), 443, 1500, 3))
	}
	return ipfixMsg(0, 1000, templateSet(10, 256, v4Flow...)), ipfixMsg(0, 1000, dataSet(256, recs...))
}

// TestReceivePathAllocations checks that a datagram's way from the socket
// through the worker queue and the decoder to the flow handler allocates
// nothing once the collector is warm (the count covers every goroutine,
// the sender's included).
func TestReceivePathAllocations(t *testing.T) {
	_, conn, done := loopbackCollector(t, "ipfix://127.0.0.1:0")
	tmpl, data := ipfixTenFlows()
	if _, err := conn.Write(tmpl); err != nil {
		t.Fatal(err)
	}
	roundTrip := func() {
		if _, err := conn.Write(data); err != nil {
			t.Fatal(err)
		}
		if n := <-done; n != 10 {
			t.Fatalf("%d records, want 10", n)
		}
	}
	for range 50 {
		roundTrip() // warm up: packets, batch slices, exporter state
	}
	allocs := testing.AllocsPerRun(500, roundTrip)
	t.Logf("%.3f allocations per datagram of 10 flows", allocs)
	// Zero is expected; the margin is for the runtime's own occasional
	// allocations (timers, netpoll) that AllocsPerRun also counts.
	if allocs >= 0.5 {
		t.Errorf("%.3f allocations per datagram on the receive path", allocs)
	}
}

// TestReceiverSenderAddress checks the sender addresses the batch reader
// decodes, over IPv4 and IPv6.
func TestReceiverSenderAddress(t *testing.T) {
	for _, url := range []string{"ipfix://127.0.0.1:0", "ipfix://[::1]:0"} {
		t.Run(url, func(t *testing.T) {
			c, conn, done := loopbackCollector(t, url)
			tmpl, data := ipfixTenFlows()
			for _, m := range [][]byte{tmpl, data} {
				if _, err := conn.Write(m); err != nil {
					t.Fatal(err)
				}
			}
			<-done
			want := conn.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap()
			ex := c.Exporters()
			if len(ex) != 1 || ex[0].Address != want || ex[0].Flows != 10 {
				t.Fatalf("exporters %+v, want one, %v, with 10 flows", ex, want)
			}
		})
	}
}

// BenchmarkReceiveLoopback measures the whole receive path over loopback
// UDP, one datagram of ten IPFIX flows at a time (so it measures latency
// through the path rather than throughput under load).
func BenchmarkReceiveLoopback(b *testing.B) {
	_, conn, done := loopbackCollector(b, "ipfix://127.0.0.1:0")
	tmpl, data := ipfixTenFlows()
	if _, err := conn.Write(tmpl); err != nil {
		b.Fatal(err)
	}
	var flows uint64
	reportPerFlow(b, &flows, func() {
		if _, err := conn.Write(data); err != nil {
			b.Fatal(err)
		}
		flows += uint64(<-done)
	})
}

// BenchmarkReceiveThroughput sends datagrams of 30 IPFIX flows over
// loopback as fast as one sender can, and reports what the collector
// decoded per second and what was lost (in the kernel's socket buffer or
// on a full worker queue). The sender shares the machine's CPUs.
func BenchmarkReceiveThroughput(b *testing.B) {
	cfg := DefaultConfiguration()
	cfg.Listeners = []ListenerConfiguration{{URL: "ipfix://127.0.0.1:0", Sockets: 1, ReceiveBuffer: 32 << 20}}
	var flows atomic.Uint64
	c, err := New(cfg, Dependencies{Registerer: prometheus.NewRegistry(), Flows: func(batch []flow.Record) { flows.Add(uint64(len(batch))) }})
	if err != nil {
		b.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer stopCollector(b, c)
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(c.ListenAddrs()[0]))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	var recs [][]byte
	for i := range 30 {
		recs = append(recs, v4FlowRecord("10.0.0.1", "10.0.1.2", uint16(1000+i), 443, 1500, 3))
	}
	tmpl, data := ipfixMsg(0, 1000, templateSet(10, 256, v4Flow...)), ipfixMsg(0, 1000, dataSet(256, recs...))
	if _, err := conn.Write(tmpl); err != nil {
		b.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond)
	flows.Store(0)
	b.ResetTimer()
	for b.Loop() {
		if _, err := conn.Write(data); err != nil {
			b.Fatal(err)
		}
	}
	// Wait until decoding stops making progress.
	for last := uint64(1<<64 - 1); ; {
		time.Sleep(20 * time.Millisecond)
		n := flows.Load()
		if n == last {
			break
		}
		last = n
	}
	b.StopTimer()
	got, sent := float64(flows.Load()), float64(b.N*30)
	b.ReportMetric(got/b.Elapsed().Seconds(), "flows/s")
	b.ReportMetric(100*(1-got/sent), "loss%")
	b.ReportMetric(100*30*metricValue(c.metrics.drops[dropQueueFull])/sent, "queue-loss%")
}
