package scripting

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowcheck/flowcheck/aggregate"
	"github.com/flowcheck/flowcheck/alert"
	"github.com/flowcheck/flowcheck/sink"
	"github.com/flowcheck/flowcheck/sink/spool"
)

// TestSinkBackPressure runs a tick that raises more alerts than the real
// sinks' queues hold while nothing drains them (a stalled stdout, Kafka
// down): the tick still ends, and every alert is accounted for by the sink,
// queued, spooled or dropped and counted.
func TestSinkBackPressure(t *testing.T) {
	const hosts, queue = 50, 4
	cases := []struct {
		name  string
		cfg   func(c *sink.Configuration, dir string)
		drops int // counted by the sink, reason queue_full
	}{
		{"stdout queue full", func(c *sink.Configuration, _ string) {
			c.Stdout.Enabled, c.Stdout.QueueSize = sink.SwitchTrue, queue
		}, hosts - queue},
		{"kafka down, spooling with fsync always", func(c *sink.Configuration, dir string) {
			c.Stdout.Enabled = sink.SwitchFalse
			c.Kafka.Brokers = []string{"127.0.0.1:1"}
			c.Kafka.QueueSize = queue
			c.Kafka.Spool.Dir, c.Kafka.Spool.Fsync = dir, spool.FsyncAlways
		}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := sink.DefaultConfiguration()
			tc.cfg(&cfg, t.TempDir())
			reg := prometheus.NewRegistry()
			// Never started: nothing drains the queues, as when the
			// output is stuck or the brokers are unreachable.
			sinks, err := sink.New(cfg, sink.Dependencies{
				Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil)), Registerer: reg, Stdout: blockedWriter{},
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = sinks.Stop(ctx)
			})
			var snaps []aggregate.HostSnapshot
			for i := range hosts {
				snaps = append(snaps, trafficHost(fmt.Sprintf("10.0.1.%d", i)))
			}
			h := newHarness(t, map[string]string{"t": bytesScript}, newFakeHosts(snaps...), nil)
			h.e.deps.Alerts = sinks

			done := make(chan TickStats, 1)
			go func() { done <- h.tick() }()
			var st TickStats
			select {
			case st = <-done:
			case <-time.After(time.Minute): // a blocked tick never ends
				t.Fatal("the tick is blocked by the sink")
			}
			if st.Hosts != hosts || st.Errors != 0 {
				t.Fatalf("tick %+v", st)
			}
			if got := counterValue(h.e.metrics.events.WithLabelValues("t", string(alert.Engaged))); got != hosts {
				t.Errorf("events published %v, want %d", got, hosts)
			}
			produced := sumCounter(t, reg, "flowcheck_sink_alerts_produced_total", "")
			dropped := sumCounter(t, reg, "flowcheck_sink_alerts_dropped_total", "queue_full")
			if int(produced)+int(dropped) != hosts || int(dropped) != tc.drops {
				t.Errorf("sink: %v produced, %v dropped (queue_full), want %d and %d", produced, dropped, hosts-tc.drops, tc.drops)
			}
		})
	}
}

// blockedWriter is an output that never completes a write.
type blockedWriter struct{}

func (blockedWriter) Write([]byte) (int, error) { select {} }

// sumCounter sums the series of a counter family, those with the label
// reason when reason is not empty.
func sumCounter(t *testing.T, g prometheus.Gatherer, name, reason string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && reason != "" && l.GetValue() != reason {
					continue series
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

// reentrant is a publisher that reads the engine back for every event
// (Score takes the host's lock): published under that lock, it deadlocks.
type reentrant struct {
	e   *Engine
	pub *capture
}

func (r *reentrant) Publish(ev alert.Event) {
	addr, _ := netip.ParseAddr(ev.Host.IP)
	r.e.Score(aggregate.HostKey{Addr: addr, VLAN: ev.Host.VLAN})
	r.pub.Publish(ev)
}

// TestPublishOutsideHostLock drives every path that publishes an event and
// checks that none holds the host's lock meanwhile.
func TestPublishOutsideHostLock(t *testing.T) {
	cases := []struct {
		name string
		end  func(h *harness)
	}{
		{"cleared at a tick", func(h *harness) {
			h.hosts.update(key("10.0.0.1"), func(s *aggregate.HostSnapshot) { s.BytesSent = 0 })
			h.tick()
		}},
		{"host expired", func(h *harness) { h.e.HostExpired(key("10.0.0.1")) }},
		{"host missing at a tick", func(h *harness) {
			h.hosts.remove(key("10.0.0.1"))
			h.tick()
		}},
		{"stop", func(h *harness) { _ = h.e.Stop(context.Background()) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, map[string]string{"t": bytesScript}, newFakeHosts(trafficHost("10.0.0.1")), nil)
			h.e.deps.Alerts = &reentrant{e: h.e, pub: h.pub}
			done := make(chan struct{})
			go func() {
				defer close(done)
				h.tick()
				tc.end(h)
			}()
			select {
			case <-done:
			case <-time.After(time.Minute):
				t.Fatal("deadlock: an event was published with the host's lock held")
			}
			if evs := h.pub.take(); len(evs) != 2 || evs[0].State != alert.Engaged || evs[1].State != alert.Released {
				t.Errorf("events %+v, want engaged then released", evs)
			}
		})
	}
}
