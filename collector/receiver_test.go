package collector

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowcheck/flowcheck/flow"
	"github.com/flowcheck/flowcheck/pcapsrc"
	"github.com/prometheus/client_golang/prometheus"
)

// waitFor polls cond until it holds or a generous deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// stopCollector stops c within a generous deadline, failing the test if it
// does not.
func stopCollector(tb testing.TB, c *Component) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.Stop(ctx); err != nil {
		tb.Error(err)
	}
}

func TestReceiverLoopback(t *testing.T) {
	cfg := DefaultConfiguration()
	cfg.Listeners = []ListenerConfiguration{
		{URL: "auto://127.0.0.1:0", Sockets: 2, ReceiveBuffer: 4 << 20},
		{URL: "sflow://[::1]:0", Sockets: 1, ReceiveBuffer: 0},
	}
	cfg.Workers = 3
	var mu sync.Mutex
	var records int
	var bytes uint64
	c, err := New(cfg, Dependencies{Registerer: prometheus.NewRegistry(), Flows: func(b []flow.Record) {
		mu.Lock()
		defer mu.Unlock()
		for _, r := range b {
			records++
			bytes += r.Bytes
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if c.Ready() {
		t.Fatal("ready before Start")
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer stopCollector(t, c)
	if !c.Ready() {
		t.Fatal("not ready after Start")
	}
	addrs := c.ListenAddrs()
	if len(addrs) != 2 || addrs[0].Port() == 0 || !addrs[1].Addr().Is6() {
		t.Fatalf("listen addresses %v", addrs)
	}
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(addrs[0]))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r, err := pcapsrc.Open("../testdata/softflowd-v9.pcap")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	sent := 0
	packets := func() uint64 {
		for _, e := range c.Exporters() {
			return e.Packets
		}
		return 0
	}
	for {
		d, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Write(d.Payload); err != nil {
			t.Fatal(err)
		}
		sent++
		if sent%8 == 0 { // pace, so a small granted buffer never drops
			waitFor(t, "datagrams decoded", func() bool { return packets() == uint64(sent) })
		}
	}
	waitFor(t, "all datagrams decoded", func() bool { return packets() == uint64(sent) })
	stopCollector(t, c)
	if c.Ready() {
		t.Error("ready after Stop")
	}
	mu.Lock()
	defer mu.Unlock()
	if records != 4856 || bytes != 2302590 {
		t.Errorf("%d records, %d bytes; want 4856, 2302590", records, bytes)
	}
	if got := metricValue(c.metrics.rcvbuf.WithLabelValues("auto://127.0.0.1:0")); got <= 0 {
		t.Errorf("granted rcvbuf metric %v", got)
	}
}

func TestReceiverQueueOverflow(t *testing.T) {
	cfg := DefaultConfiguration()
	cfg.Listeners = []ListenerConfiguration{{URL: "netflow://127.0.0.1:0", Sockets: 1, ReceiveBuffer: 1 << 20}}
	cfg.Workers, cfg.QueueSize = 1, 1
	release := make(chan struct{})
	var once sync.Once
	var lost, received atomic.Int64
	c, err := New(cfg, Dependencies{Registerer: prometheus.NewRegistry(), Flows: func([]flow.Record) {
		<-release
	}, Lost: func(_ time.Time, l, r int) { lost.Add(int64(l)); received.Add(int64(r)) }})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer stopCollector(t, c)
	defer once.Do(func() { close(release) })
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(c.ListenAddrs()[0]))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	msg := v5Msg(10000, 1000, 0, v5Record("10.0.0.1", "10.0.0.2", 1, 2, 6, 2, 120, 9000, 9500))
	// The first datagram makes the sender a tracked exporter, and then
	// holds the worker (in the flow handler) while the others arrive.
	if _, err := conn.Write(msg); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "exporter tracked", func() bool { return len(c.Exporters()) == 1 })
	for range 10 {
		if _, err := conn.Write(msg); err != nil {
			t.Fatal(err)
		}
	}
	full := c.metrics.drops[dropQueueFull]
	// Every drop is of the one tracked exporter: the per-exporter counts
	// catch up with the total (each drop counts the total first).
	perExporter := c.metrics.exporterDrops.WithLabelValues("127.0.0.1", "queue_full")
	waitFor(t, "queue overflow counted by exporter", func() bool {
		total := metricValue(full)
		return total >= 8 && c.Exporters()[0].Drops.QueueFull == uint64(total) && metricValue(perExporter) == total
	})
	// Losses are reported once a second, by the first read after it: one
	// more datagram (dropped too, the queue still full) a second later.
	time.Sleep(1100 * time.Millisecond)
	if _, err := conn.Write(msg); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "loss reported", func() bool { return lost.Load() >= 9 })
	if got, want := lost.Load(), int64(metricValue(full)); got != want {
		t.Errorf("Lost told of %d datagrams, %d dropped", got, want)
	}
	if got := received.Load(); got < 1 || got > 2 {
		t.Errorf("Lost told of %d datagrams received, want the 1 or 2 the queue took", got)
	}
	once.Do(func() { close(release) })
}

// TestStopDeadline holds a worker in the flow handler: Stop returns its
// context's error when the context ends first, and nil once the worker is
// let go.
func TestStopDeadline(t *testing.T) {
	cfg := DefaultConfiguration()
	cfg.Listeners = []ListenerConfiguration{{URL: "auto://127.0.0.1:0", Sockets: 1}}
	cfg.Workers = 1
	entered, release := make(chan struct{}, 1), make(chan struct{})
	c := newTestComponent(t, cfg, func([]flow.Record) {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-release
	})
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(c.ListenAddrs()[0]))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write(v5Msg(10000, 1000, 0, v5Record("10.0.0.1", "10.0.0.2", 1, 2, 6, 2, 120, 9000, 9500))); err != nil {
		t.Fatal(err)
	}
	<-entered
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Stop(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Stop with a worker held and its context ended: %v", err)
	}
	close(release)
	stopCollector(t, c)
}

func TestStartBindError(t *testing.T) {
	cfg := DefaultConfiguration()
	cfg.Listeners = []ListenerConfiguration{
		{URL: "auto://127.0.0.1:0", Sockets: 1},
		{URL: "auto://192.0.2.1:2055", Sockets: 1}, // TEST-NET: not on this host
	}
	c := newTestComponent(t, cfg, func([]flow.Record) {})
	err := c.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "192.0.2.1:2055") {
		t.Fatalf("Start: %v", err)
	}
	if c.Ready() {
		t.Error("ready after a bind error")
	}
}

func TestWrongProtocolListener(t *testing.T) {
	c := newTestComponent(t, DefaultConfiguration(), func([]flow.Record) { t.Error("records from a refused protocol") })
	d := newDecoder(c)
	d.handle(exp1, v5Msg(10000, 1000, 0, v5Record("10.0.0.1", "10.0.0.2", 1, 2, 6, 2, 120, 9000, 9500)), t0, kindSFlow)
	d.handle(exp1, sflowMsg(), t0, kindIPFIX)
	if v := metricValue(c.metrics.drops[dropWrongProtocol]); v != 2 {
		t.Errorf("wrong_protocol %v", v)
	}
	// A refused protocol does not make a sender a tracked exporter.
	if n := len(c.Exporters()); n != 0 {
		t.Fatalf("%d exporters tracked", n)
	}
	// Once tracked (here by an empty, unknown-version datagram), its
	// drops are counted by exporter too.
	d.handle(exp1, []byte{0, 0, 0, 0}, t0, kindSFlow)
	d.handle(exp1, sflowMsg(), t0, kindIPFIX)
	info := c.Exporters()
	if len(info) != 1 || info[0].Drops != (ExporterDrops{WrongProtocol: 1}) {
		t.Errorf("exporter drops %+v", info)
	}
	if v := metricValue(c.metrics.exporterDrops.WithLabelValues("192.0.2.10", "wrong_protocol")); v != 1 {
		t.Errorf("exporter wrong_protocol series %v", v)
	}
	if v := metricValue(c.metrics.drops[dropWrongProtocol]); v != 3 {
		t.Errorf("wrong_protocol %v", v)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfiguration().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	cases := []struct {
		mutate func(*Configuration)
		want   string
	}{
		{func(c *Configuration) { c.Listeners[0].URL = "http://1.2.3.4:1" }, "listeners[0].url: "},
		{func(c *Configuration) { c.Listeners[0].URL = "netflow://host:1" }, "listeners[0].url: "},
		{func(c *Configuration) { c.Listeners[0].URL = "netflow://1.2.3.4:99999" }, "listeners[0].url: "},
		{func(c *Configuration) { c.Listeners[0].Sockets = 0 }, "listeners[0].sockets: "},
		{func(c *Configuration) { c.Listeners = nil }, "listeners: "},
		{func(c *Configuration) { c.Workers = 0 }, "workers: "},
		{func(c *Configuration) { c.QueueSize = 0 }, "queue_size: "},
		{func(c *Configuration) { c.ShedBacklog = 1.5 }, "shed_backlog: "},
		{func(c *Configuration) { c.ReadPause = -time.Millisecond }, "read_pause: "},
		{func(c *Configuration) { c.ReadPause = time.Second }, "read_pause: "},
		{func(c *Configuration) { c.Exporters.Allow = []string{"10.0.0.1"} }, "exporters.allow[0]: "},
		{func(c *Configuration) { c.Exporters.Max = 0 }, "exporters.max: "},
		{func(c *Configuration) { c.Exporters.IdleTimeout = 0 }, "exporters.idle_timeout: "},
		{func(c *Configuration) { c.Exporters.IdleTimeout = c.Templates.Lifetime - time.Second }, "exporters.idle_timeout: "},
		{func(c *Configuration) { c.Sampling.Overrides = []SamplingOverride{{Prefix: "x"}} }, "sampling.overrides[0].prefix: "},
		{func(c *Configuration) { c.Templates.Max = 0 }, "templates.max: "},
		{func(c *Configuration) { c.Templates.Lifetime = 0 }, "templates.lifetime: "},
		{func(c *Configuration) { c.Templates.PendingBytes = -1 }, "templates.pending_bytes: "},
	}
	for _, tc := range cases {
		cfg := DefaultConfiguration()
		tc.mutate(&cfg)
		err := cfg.Validate()
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("got %v, want prefix %q", err, tc.want)
		}
	}
}

// TestWorkerBatchesBacklog shows a worker with a backlog handing the records
// of several datagrams to the host table in one call, and an idle one
// flushing at once, in order.
// backlog returns a full, closed worker queue of n v5 datagrams of 30
// records each, their source ports rising across the queue.
func backlog(n int) chan *packet {
	q := make(chan *packet, n)
	for i := range n {
		var recs [][]byte
		for j := range 30 {
			recs = append(recs, v5Record("10.0.0.1", "10.0.0.2", uint16(1000+i*30+j), 80, 6, 1, 60, 9000, 9500))
		}
		q <- &packet{from: exp1, received: t0, kind: kindAuto, buf: v5Msg(10000, 1000, 0, recs...)}
	}
	close(q)
	return q
}

func TestWorkerBatchesBacklog(t *testing.T) {
	tests := []struct {
		name      string
		datagrams int
		wantCalls int
	}{
		{"one datagram flushes at once", 1, 1},
		{"backlog of 40 datagrams of 30 records", 40, 3}, // 512-record flushes: 18+18+4 datagrams
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls, records int
			var last uint16
			c := newTestComponent(t, DefaultConfiguration(), func(b []flow.Record) {
				calls++
				for _, r := range b {
					records++
					if r.SrcPort < last {
						t.Fatalf("records out of order: port %d after %d", r.SrcPort, last)
					}
					last = r.SrcPort
				}
			})
			c.workers.Add(1)
			c.work(0, backlog(tt.datagrams))
			if records != 30*tt.datagrams || calls != tt.wantCalls {
				t.Errorf("%d records in %d calls, want %d in %d", records, calls, 30*tt.datagrams, tt.wantCalls)
			}
		})
	}
}

// TestWorkerSheds checks that a backlogged worker hands its records to the
// cheaper path until its backlog is back under half the threshold, keeping
// their order, and counts them.
func TestWorkerSheds(t *testing.T) {
	tests := []struct {
		name            string
		datagrams       int // of 30 records, all queued at the start
		shedBacklog     float64
		noShedHandler   bool
		wantFlows, shed int // records
	}{
		// 40 datagrams, shedding past 20 queued: the first 512-record
		// batch (18 datagrams) leaves 22 queued and is shed; the next
		// leaves 4, under 15, and the rest is not.
		{"sheds past the threshold", 40, 0.5, false, 660, 540},
		// 100 datagrams, shedding past 70 until under 52: the batches
		// leave 82 (shed), 64 (still shed: above 52), 46, 28, 10 and 0.
		{"keeps shedding down to three quarters of the threshold", 100, 0.7, false, 1920, 1080},
		{"a high threshold never sheds", 40, 0.9, false, 1200, 0},
		{"disabled", 40, 0, false, 1200, 0},
		{"no cheaper path", 40, 0.5, true, 1200, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfiguration()
			cfg.ShedBacklog = tt.shedBacklog
			var flows, shed int
			var last uint16
			inOrder := func(b []flow.Record) {
				for _, r := range b {
					if r.SrcPort < last {
						t.Fatalf("records out of order: port %d after %d", r.SrcPort, last)
					}
					last = r.SrcPort
				}
			}
			c := newTestComponent(t, cfg, func(b []flow.Record) { inOrder(b); flows += len(b) })
			if !tt.noShedHandler {
				c.deps.Shed = func(b []flow.Record) { inOrder(b); shed += len(b) }
			}
			c.workers.Add(1)
			c.work(0, backlog(tt.datagrams))
			if flows != tt.wantFlows || shed != tt.shed {
				t.Errorf("%d records to Flows, %d shed; want %d, %d", flows, shed, tt.wantFlows, tt.shed)
			}
			if got := metricValue(c.metrics.shedRecords); got != float64(tt.shed) {
				t.Errorf("shed_records_total %v, want %d", got, tt.shed)
			}
		})
	}
}

func TestLossWindow(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	var w lossWindow
	for i, step := range []struct {
		at             time.Duration
		lost, received int
		wantOK         bool
		wantL, wantR   int
	}{
		{0, 2, 10, false, 0, 0},
		{500 * time.Millisecond, 1, 5, false, 0, 0},
		{time.Second, 0, 5, true, 3, 20}, // the window closes with its losses
		{1500 * time.Millisecond, 0, 7, false, 0, 0},
		{2 * time.Second, 0, 1, false, 0, 0}, // closes without loss: nothing to tell
		{3 * time.Second, 4, 0, true, 4, 0},
	} {
		l, r, ok := w.add(t0.Add(step.at), step.lost, step.received)
		if ok != step.wantOK || l != step.wantL || r != step.wantR {
			t.Errorf("step %d: add = %d, %d, %v; want %d, %d, %v", i, l, r, ok, step.wantL, step.wantR, step.wantOK)
		}
	}
}
