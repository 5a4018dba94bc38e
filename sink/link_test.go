package sink

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowcheck/flowcheck/clock"
)

// logRecorder is a slog.Handler that keeps each record's message and
// attributes, rendered as strings.
type logRecorder struct {
	mu      sync.Mutex
	records []logLine
}

type logLine struct {
	msg   string
	attrs map[string]string
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logRecorder) WithGroup(string) slog.Handler            { return l }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	line := logLine{msg: r.Message, attrs: map[string]string{}}
	r.Attrs(func(a slog.Attr) bool {
		line.attrs[a.Key] = a.Value.String()
		return true
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	l.records = append(l.records, line)
	return nil
}

// lines returns the records whose message is msg.
func (l *logRecorder) lines(msg string) []logLine {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []logLine
	for _, r := range l.records {
		if r.msg == msg {
			out = append(out, r)
		}
	}
	return out
}

const (
	connectedMsg   = "kafka connected"
	unreachableMsg = "kafka unreachable: alerts are spooled until it is back"
	backMsg        = "kafka back"
)

// TestKafkaLinkLog takes the Kafka sink through an outage of a real
// (kfake) broker, up or down at start: the log says when it is connected
// (at start, by metadata, before any alert), unreachable (once however
// many writes fail) and back, with the outage's length on the sink's
// clock and the alerts the outage spooled.
func TestKafkaLinkLog(t *testing.T) {
	cases := []struct {
		name        string
		upAtStart   bool
		recoveryMsg string
	}{
		{"broker up at start", true, backMsg},
		{"broker down at start", false, connectedMsg},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addr, port := freeAddr(t)
			var cluster interface{ Close() }
			if tc.upAtStart {
				cluster, _ = startCluster(t, port)
			}
			logs := &logRecorder{}
			clk := clock.NewManual(time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC))
			c, err := New(testConfig(t, addr), Dependencies{Registerer: prometheus.NewRegistry(), Logger: slog.New(logs), Clock: clk})
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Start(t.Context()); err != nil {
				t.Fatal(err)
			}
			defer stop(t, c)
			k := kafkaOf(c)
			spooled := func() float64 { return counter(c, k.m.spooled, "kafka", "flowcheck.alerts") }
			const n = 50
			if tc.upAtStart {
				waitFor(t, "connected line", func() bool { return len(logs.lines(connectedMsg)) == 1 })
				if got := logs.lines(connectedMsg)[0].attrs; got["via"] != "metadata" || got["down_for"] != "" {
					t.Fatalf("connected line %v, want via metadata and no down_for", got)
				}
				for i := range n {
					c.Publish(event(i))
				}
				waitFor(t, "delivery", func() bool { return counter(c, k.m.delivered, "kafka", "flowcheck.alerts") == n })
				cluster.Close()
			}
			before := spooled()
			for i := n; i < 2*n; i++ {
				c.Publish(event(i))
			}
			waitFor(t, "several failed writes", func() bool { return sum(k.m.errors) >= 3 })
			if got := logs.lines(unreachableMsg); len(got) != 1 || got[0].attrs["kind"] == "" || got[0].attrs["error"] == "" {
				t.Fatalf("unreachable lines %v, want one with kind and error", got)
			}
			if got := logs.lines(backMsg); len(got) != 0 {
				t.Fatalf("back lines %v during the outage", got)
			}

			clk.Advance(90 * time.Second)
			startCluster(t, port)
			waitFor(t, "recovery line", func() bool { return len(logs.lines(tc.recoveryMsg)) == 1 })
			got := logs.lines(tc.recoveryMsg)[0].attrs
			wantSpooled := strconv.Itoa(int(spooled() - before))
			if got["down_for"] != "1m30s" || got["spooled"] != wantSpooled || spooled()-before < n {
				t.Errorf("%s line %v, want down_for 1m30s and spooled %s (≥ %d)", tc.recoveryMsg, got, wantSpooled, n)
			}
			checkOrder(t, consume(t, addr, n, "flowcheck.alerts"), seq(n, 2*n))
			if got := len(logs.lines(unreachableMsg)); got != 1 {
				t.Errorf("%d unreachable lines, want 1", got)
			}
		})
	}
}
