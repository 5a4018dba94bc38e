package collector

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"

	"github.com/flowcheck/flowcheck/flow"
	"github.com/flowcheck/flowcheck/pcapsrc"
	"github.com/prometheus/client_golang/prometheus"
)

// TestPick checks where a datagram goes: its exporter's home worker while
// that queue is short, else the least loaded queue.
func TestPick(t *testing.T) {
	a := netip.MustParseAddr("192.0.2.1")
	tests := []struct {
		name     string
		queued   []int // datagrams queued per worker, the home worker's first
		want     int   // index in queued
		spilling bool
	}{
		{"home worker idle", []int{0, 0, 0}, 0, false},
		{"home worker short of the threshold", []int{spillBacklog - 1, 0, 0}, 0, false},
		{"home worker backlogged: least loaded", []int{spillBacklog, 7, 3}, 2, true},
		{"every worker as busy: stays home", []int{spillBacklog, spillBacklog, spillBacklog}, 0, false},
		{"one worker", []int{spillBacklog + 10}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Component{queues: make([]chan *packet, len(tt.queued))}
			home := shard(a, len(tt.queued))
			for i, n := range tt.queued {
				w := (home + i) % len(tt.queued) // queued[0] is the home worker's
				c.queues[w] = make(chan *packet, 2*spillBacklog)
				for range n {
					c.queues[w] <- &packet{}
				}
			}
			q, spilled := c.pick(a)
			if want := c.queues[(home+tt.want)%len(tt.queued)]; q != want || spilled != tt.spilling {
				t.Errorf("picked queue with %d queued (spilled %v), want the one with %d (spilled %v)", len(q), spilled, tt.queued[tt.want], tt.spilling)
			}
		})
	}
}

// TestSpillOver floods two workers with one exporter's datagrams (the
// shared softflowd capture, looped, over real UDP) while its home worker
// is held: past spillBacklog its datagrams go to the other worker, and
// every datagram and record is accounted for, whichever worker decoded it.
func TestSpillOver(t *testing.T) {
	const loops = 4 // 155 datagrams, 4 856 records each
	cfg := DefaultConfiguration()
	cfg.Listeners = []ListenerConfiguration{{URL: "netflow://127.0.0.1:0", Sockets: 1, ReceiveBuffer: 4 << 20}}
	cfg.Workers = 2
	hold := make(chan struct{})
	var release sync.Once
	var mu sync.Mutex
	var records, calls int
	reg := prometheus.NewRegistry()
	c, err := New(cfg, Dependencies{Registerer: reg, Flows: func(b []flow.Record) {
		mu.Lock()
		calls++
		first := calls == 1
		records += len(b)
		mu.Unlock()
		if first {
			<-hold // the home worker, with the first records
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer stopCollector(t, c)
	defer release.Do(func() { close(hold) })
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(c.ListenAddrs()[0]))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	worker := func(i string) float64 { return metricValue(c.metrics.workerDatagrams.WithLabelValues(i)) }
	drops := func() (n float64) {
		for _, d := range c.metrics.drops {
			n += metricValue(d)
		}
		return n
	}
	// read is how many datagrams the reader has handed on or dropped.
	read := func() int {
		n := worker("0") + worker("1") + drops()
		for _, q := range c.queues {
			n += float64(len(q))
		}
		return int(n)
	}
	sent, blocked := 0, 0
	for range loops {
		r, err := pcapsrc.Open("../testdata/softflowd-v9.pcap")
		if err != nil {
			t.Fatal(err)
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
			if blocked == 0 {
				// One at a time until the home worker is held (the
				// capture's first datagram has templates only).
				waitFor(t, "datagram decoded", func() bool { return worker("0")+worker("1") == float64(sent) })
				mu.Lock()
				if calls > 0 {
					blocked = sent
				}
				mu.Unlock()
			} else if sent%8 == 0 { // pace, so that the socket buffer never overflows
				waitFor(t, "datagrams read", func() bool { return read() >= sent })
			}
		}
		r.Close()
	}
	waitFor(t, "datagrams read", func() bool { return read() >= sent })
	if got, want := metricValue(c.metrics.spilled), sent-blocked-spillBacklog; got != float64(want) {
		t.Errorf("%v datagrams spilled over, want %d (all but what the held home worker's queue took)", got, want)
	}
	release.Do(func() { close(hold) })
	waitFor(t, "all datagrams decoded", func() bool { return int(worker("0")+worker("1")+drops()) == sent })
	stopCollector(t, c)
	w0, w1 := worker("0"), worker("1")
	if w0 == 0 || w1 == 0 || drops() != 0 {
		t.Errorf("workers decoded %v and %v datagrams, %v dropped; want both > 0, none dropped", w0, w1, drops())
	}
	other := w1
	if shard(netip.MustParseAddr("127.0.0.1"), 2) == 1 {
		other = w0
	}
	if spilled := metricValue(c.metrics.spilled); spilled != other {
		t.Errorf("%v datagrams spilled over, the other worker decoded %v", spilled, other)
	}
	e := c.Exporters()
	mu.Lock()
	defer mu.Unlock()
	if len(e) != 1 || e[0].Packets != uint64(sent) || e[0].Flows != loops*4856 || records != loops*4856 || e[0].Errors != 0 {
		t.Errorf("exporters %+v, %d records; want one with %d datagrams, %d records, no errors", e, records, sent, loops*4856)
	}
}
