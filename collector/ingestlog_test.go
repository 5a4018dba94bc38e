package collector

import (
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/flowcheck/flowcheck/clock"
	"github.com/flowcheck/flowcheck/flow"
	"github.com/prometheus/client_golang/prometheus"
)

// logged is one recorded log line: level, message and attributes.
type logged struct {
	level slog.Level
	msg   string
	attrs map[string]string
}

// take returns the lines recorded since the last take.
func (l *logRecorder) take() []logged {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []logged
	for _, r := range l.records {
		g := logged{level: r.Level, msg: r.Message, attrs: map[string]string{}}
		r.Attrs(func(a slog.Attr) bool {
			g.attrs[a.Key] = a.Value.String()
			return true
		})
		out = append(out, g)
	}
	l.records = nil
	return out
}

// TestFirstHourLogs sends an exporter's datagrams one at a time and checks
// the lines the collector logs for each: a new exporter, its templates
// (one line for a burst, at most one per interval, at info: an eviction
// has its own warning),
// its first records (once), and nothing for steady traffic.
func TestFirstHourLogs(t *testing.T) {
	logs := &logRecorder{}
	cfg := DefaultConfiguration()
	cfg.Templates.Max = 3
	c, err := New(cfg, Dependencies{Registerer: prometheus.NewRegistry(), Logger: slog.New(logs), Flows: func([]flow.Record) {}})
	if err != nil {
		t.Fatal(err)
	}
	data := ipfixMsg(0, 1000, dataSet(256, v4FlowRecord("10.0.0.1", "10.0.0.2", 1, 2, 3, 4)))
	type line struct {
		level slog.Level
		msg   string
		attrs map[string]string // a subset of the line's
	}
	for _, step := range []struct {
		name string
		at   time.Duration
		msg  []byte
		want []line
	}{
		{"templates of a new exporter", 0, ipfixMsg(0, 1000, templateSet(10, 256, v4Flow...), templateSet(10, 257, v4Flow...)), []line{
			{slog.LevelInfo, "new exporter", map[string]string{"exporter": "192.0.2.10", "exporters": "1"}},
			{slog.LevelInfo, "templates learned", map[string]string{"exporter": "192.0.2.10", "added": "2", "templates": "2"}},
		}},
		{"first records", time.Second, data, []line{
			{slog.LevelInfo, "first flow records decoded", map[string]string{"exporter": "192.0.2.10", "protocol": "ipfix", "records": "1"}},
		}},
		{"steady traffic", 2 * time.Second, data, nil},
		{"a withdrawal within the interval is held back", 3 * time.Second, ipfixMsg(0, 1000, set(setIPFIXTemplate, cat(be16(257), be16(0)))), nil},
		{"templates re-sent", 4 * time.Second, ipfixMsg(0, 1000, templateSet(10, 256, v4Flow...)), nil},
		{"told with the next events after the interval", logInterval + time.Second,
			ipfixMsg(0, 1000, templateSet(10, 300, v4Flow...), templateSet(10, 301, v4Flow...), templateSet(10, 302, v4Flow...)), []line{
				{slog.LevelWarn, "template cache full: least recently used template evicted to make room (a template flood, or collector.templates.max too low for this exporter)", nil},
				{slog.LevelInfo, "templates changed", map[string]string{"added": "3", "withdrawn": "1", "evicted": "1", "templates": "3"}},
			}},
		{"steady traffic again", logInterval + 2*time.Second, data, nil},
	} {
		c.HandleDatagram(exp1, step.msg, t0.Add(step.at))
		got := logs.take()
		if len(got) != len(step.want) {
			t.Errorf("%s: %d lines, want %d: %+v", step.name, len(got), len(step.want), got)
			continue
		}
		for i, w := range step.want {
			g := got[i]
			if g.level != w.level || g.msg != w.msg {
				t.Errorf("%s: line %d is %v %q, want %v %q", step.name, i, g.level, g.msg, w.level, w.msg)
			}
			for k, v := range w.attrs {
				if g.attrs[k] != v {
					t.Errorf("%s: %q: %s=%q, want %q (%v)", step.name, g.msg, k, g.attrs[k], v, g.attrs)
				}
			}
		}
	}
}

// fixedHosts stands for the host table in the summary line.
type fixedHosts int

func (h fixedHosts) Len() int { return int(h) }

// TestSummaryLine checks the summary line's figures over an interval of
// the clock: rates, drops by reason, decode errors, hosts, and a hint when
// nothing was ever received.
func TestSummaryLine(t *testing.T) {
	logs := &logRecorder{}
	clk := clock.NewManual(t0)
	cfg := DefaultConfiguration()
	cfg.Exporters.Allow = []string{"192.0.2.0/24"}
	c, err := New(cfg, Dependencies{Registerer: prometheus.NewRegistry(), Logger: slog.New(logs), Clock: clk,
		Flows: func([]flow.Record) {}, Hosts: fixedHosts(42)})
	if err != nil {
		t.Fatal(err)
	}
	var s summaryState
	c.takeSummary(&s, clk.Now())
	clk.Advance(10 * time.Second)
	c.logSummary(&s, clk.Now())
	got := logs.take()
	if len(got) != 1 || got[0].msg != "ingest summary" || got[0].level != slog.LevelInfo ||
		got[0].attrs["datagrams_per_s"] != "0" || !strings.Contains(got[0].attrs["hint"], "no flow export received") {
		t.Fatalf("summary with nothing received: %+v", got)
	}

	for i := range 20 {
		c.HandleDatagram(exp1, v5Msg(10000, 1000, 0,
			v5Record("10.0.0.1", "10.0.0.2", 1, 2, 6, 2, 120, 9000, 9500),
			v5Record("10.0.0.3", "10.0.0.4", 1, 2, 6, 2, 120, 9000, 9500)), clk.Now().Add(time.Duration(i)))
	}
	c.HandleDatagram(exp1, []byte{0, 5, 0, 9}, clk.Now()) // v5, truncated
	c.HandleDatagram(netip.MustParseAddrPort("198.51.100.1:2055"), v5Msg(10000, 1000, 0), clk.Now())
	clk.Advance(10 * time.Second)
	c.logSummary(&s, clk.Now())
	got = logs.take()
	var sum *logged
	for i := range got {
		if got[i].msg == "ingest summary" {
			sum = &got[i]
		}
	}
	if sum == nil {
		t.Fatalf("no summary line: %+v", got)
	}
	for k, v := range map[string]string{"datagrams_per_s": "2.1", "records_per_s": "4", "exporters": "1", "hosts": "42",
		"drops": "1", "drops_not_allowed": "1", "decode_errors": "1"} {
		if sum.attrs[k] != v {
			t.Errorf("summary %s=%q, want %q (%v)", k, sum.attrs[k], v, sum.attrs)
		}
	}
	if _, ok := sum.attrs["hint"]; ok {
		t.Error("hint that nothing was received, with datagrams received")
	}
}

// TestSummaryLoop runs a collector with a short summary period: it logs
// the line until Stop.
func TestSummaryLoop(t *testing.T) {
	logs := &logRecorder{}
	cfg := DefaultConfiguration()
	cfg.Listeners = []ListenerConfiguration{{URL: "auto://127.0.0.1:0", Sockets: 1}}
	c, err := New(cfg, Dependencies{Registerer: prometheus.NewRegistry(), Logger: slog.New(logs), Flows: func([]flow.Record) {}})
	if err != nil {
		t.Fatal(err)
	}
	c.summaryEvery = 5 * time.Millisecond
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "two summary lines", func() bool { return len(logs.lines("ingest summary")) >= 2 })
	stopCollector(t, c)
	n := len(logs.lines("ingest summary"))
	time.Sleep(20 * time.Millisecond)
	if m := len(logs.lines("ingest summary")); m != n {
		t.Errorf("%d summary lines after Stop", m-n)
	}
}
