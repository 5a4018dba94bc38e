package collector

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowcheck/flowcheck/clock"
	"github.com/flowcheck/flowcheck/flow"
	"github.com/prometheus/client_golang/prometheus"
)

// logRecorder is a slog.Handler that keeps what is logged.
type logRecorder struct {
	mu      sync.Mutex
	records []slog.Record
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logRecorder) WithGroup(string) slog.Handler            { return l }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.records = append(l.records, r.Clone())
	return nil
}

// lines returns the attributes of each record whose message starts with
// prefix, rendered as strings.
func (l *logRecorder) lines(prefix string) []map[string]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]string
	for _, r := range l.records {
		if !strings.HasPrefix(r.Message, prefix) {
			continue
		}
		attrs := map[string]string{}
		r.Attrs(func(a slog.Attr) bool {
			attrs[a.Key] = a.Value.String()
			return true
		})
		out = append(out, attrs)
	}
	return out
}

const deniedMsg = "datagram from a sender outside collector.exporters.allow dropped"

// TestNotAllowedLoggedUDP sends datagrams over loopback UDP from two
// senders outside exporters.allow: each gets one log line per interval of
// the collector's clock, the next one telling how many datagrams went
// untold, and every datagram is counted.
func TestNotAllowedLoggedUDP(t *testing.T) {
	cfg := DefaultConfiguration()
	cfg.Listeners = []ListenerConfiguration{{URL: "auto://127.0.0.1:0", Sockets: 1, ReceiveBuffer: 1 << 20}}
	cfg.Workers = 1
	cfg.Exporters.Allow = []string{"192.0.2.0/24"}
	logs := &logRecorder{}
	clk := clock.NewManual(t0)
	c, err := New(cfg, Dependencies{Registerer: prometheus.NewRegistry(), Logger: slog.New(logs), Clock: clk,
		Flows: func([]flow.Record) { t.Error("records from a sender outside the allow-list") }})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer stopCollector(t, c)
	var conns []*net.UDPConn
	for _, src := range []string{"127.0.0.1", "127.0.0.2"} {
		conn, err := net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(src), 0)),
			net.UDPAddrFromAddrPort(c.ListenAddrs()[0]))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conns = append(conns, conn)
	}
	tmpl, data := ipfixTenFlows()
	sent := 0
	send := func(conn *net.UDPConn, n int) {
		for range n {
			if _, err := conn.Write(tmpl); err != nil {
				t.Fatal(err)
			}
			sent++
			waitFor(t, "datagram dropped", func() bool { return metricValue(c.metrics.drops[dropNotAllowed]) == float64(sent) })
		}
	}
	send(conns[0], 5)
	send(conns[1], 2)
	clk.Advance(5 * time.Second)
	send(conns[0], 3)
	if got := logs.lines(deniedMsg); len(got) != 2 || got[0]["sender"] != "127.0.0.1" || got[1]["sender"] != "127.0.0.2" ||
		got[0]["suppressed"] != "" {
		t.Fatalf("within an interval: %v, want one line per sender", got)
	}
	clk.Advance(6 * time.Second)
	if _, err := conns[0].Write(data); err != nil {
		t.Fatal(err)
	}
	sent++
	waitFor(t, "datagram dropped", func() bool { return metricValue(c.metrics.drops[dropNotAllowed]) == float64(sent) })
	got := logs.lines(deniedMsg)
	if len(got) != 3 || got[2]["sender"] != "127.0.0.1" || got[2]["suppressed"] != "7" {
		t.Fatalf("after an interval: %v, want a third line for 127.0.0.1 with 7 suppressed", got)
	}
	if len(c.Exporters()) != 0 {
		t.Error("a sender outside the allow-list is tracked")
	}
}

// TestNotAllowedLogBounded floods HandleDatagram from many senders outside
// the allow-list: the senders told apart, and so the lines per interval,
// are bounded, the others' datagrams told together.
func TestNotAllowedLogBounded(t *testing.T) {
	cases := []struct {
		name    string
		senders int
		lines   int // in the first interval
	}{
		{"few senders", 3, 3},
		{"at the bound", maxDeniedSenders, maxDeniedSenders},
		{"many senders", 10 * maxDeniedSenders, maxDeniedSenders + 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfiguration()
			cfg.Exporters.Allow = []string{"192.0.2.0/24"}
			logs := &logRecorder{}
			c, err := New(cfg, Dependencies{Registerer: prometheus.NewRegistry(), Logger: slog.New(logs),
				Flows: func([]flow.Record) {}})
			if err != nil {
				t.Fatal(err)
			}
			tmpl, _ := ipfixTenFlows()
			flood := func(at time.Time) {
				for i := range tc.senders {
					for range 3 {
						c.HandleDatagram(netip.MustParseAddrPort(fmt.Sprintf("198.51.%d.%d:9", i/256, i%256)), tmpl, at)
					}
				}
			}
			flood(t0)
			if got := len(logs.lines(deniedMsg)); got != tc.lines {
				t.Errorf("%d lines in the first interval, want %d", got, tc.lines)
			}
			flood(t0.Add(time.Second))
			if got := len(logs.lines(deniedMsg)); got != tc.lines {
				t.Errorf("%d lines after a second flood in the same interval, want %d", got, tc.lines)
			}
			flood(t0.Add(logInterval + time.Second))
			if got := len(logs.lines(deniedMsg)); got != 2*tc.lines {
				t.Errorf("%d lines after the next interval, want %d", got, 2*tc.lines)
			}
			if v := metricValue(c.metrics.drops[dropNotAllowed]); v != float64(9*tc.senders) {
				t.Errorf("%v datagrams counted, want %d", v, 9*tc.senders)
			}
		})
	}
}
