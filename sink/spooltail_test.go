package sink

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowcheck/flowcheck/sink/spool"
)

// heldSpool stands between the sink and the spool: each Append (or each
// Prepend, with prepends set) is counted and waits until release is
// closed, as on a disk that hangs.
type heldSpool struct {
	next     spoolWriter
	prepends bool     // hold the prepends rather than the appends
	entered  chan int // the size of the first held write
	release  chan struct{}
	calls    atomic.Int64
}

func (h *heldSpool) hold(n int) {
	h.calls.Add(1)
	select {
	case h.entered <- n:
	default:
	}
	<-h.release
}

func (h *heldSpool) Append(recs ...[]byte) (int, int, error) {
	if !h.prepends {
		h.hold(len(recs))
	}
	return h.next.Append(recs...)
}

func (h *heldSpool) Prepend(recs ...[]byte) (spool.Cursor, error) {
	if h.prepends {
		h.hold(len(recs))
	}
	return h.next.Prepend(recs...)
}

// newHeldSink builds a Kafka sink whose broker is down and whose spool
// writes go through a heldSpool, and starts it.
func newHeldSink(t *testing.T, prepends bool, tune func(*Configuration)) (*Component, *kafkaSink, *heldSpool, Configuration, int) {
	t.Helper()
	addr, port := freeAddr(t)
	cfg := testConfig(t, addr)
	cfg.Kafka.QueueSize = 1
	cfg.Kafka.Spool.Fsync = "always"
	cfg.Kafka.RetryBackoffMin = time.Hour // the drainer stays out of the way
	cfg.Kafka.RetryBackoffMax = time.Hour
	tune(&cfg)
	c, err := New(cfg, Dependencies{Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	k := kafkaOf(c)
	h := &heldSpool{next: k.writes, prepends: prepends, entered: make(chan int, 1), release: make(chan struct{})}
	k.writes = h
	if err := c.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	return c, k, h, cfg, port
}

// entered waits for the first held write and returns its size.
func (h *heldSpool) waitEntered(t *testing.T) int {
	t.Helper()
	select {
	case n := <-h.entered:
		return n
	case <-time.After(30 * time.Second):
		t.Fatal("no write reached the spool")
		return 0
	}
}

// outageSink starts a Kafka sink whose broker is down and whose tail
// writer appends through a heldSpool; it returns once the sink is spooling
// (the first alert failed and is in the spool) and the tail writer is
// blocked in an Append of alert 1.
func outageSink(t *testing.T, tune func(*Configuration)) (*Component, *kafkaSink, *heldSpool, Configuration, int) {
	t.Helper()
	c, k, h, cfg, port := newHeldSink(t, false, tune)
	c.Publish(event(0))
	waitFor(t, "spooling", func() bool { return k.spooling.Load() && k.spool.Len() == 1 })
	c.Publish(event(1))
	if n := h.waitEntered(t); n != 1 {
		t.Fatalf("first held append of %d alerts, want 1", n)
	}
	return c, k, h, cfg, port
}

// publishAll publishes events from..to-1 and fails if that does not return
// (a publisher waiting for the disk).
func publishAll(t *testing.T, c *Component, from, to int) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := from; i < to; i++ {
			c.Publish(event(i))
		}
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("Publish of events %d..%d blocked while the spool writer is", from, to-1)
	}
}

// TestKafkaPublishNoDiskIO: during an outage, Publish returns while the
// spool writer is blocked in the spool (a hung disk): the tick's workers
// never write or fsync. Released, the writer appends what accumulated in
// one call (one fsync under fsync: always), and the replay delivers every
// alert in order.
func TestKafkaPublishNoDiskIO(t *testing.T) {
	const intake = 64
	c, k, h, cfg, port := outageSink(t, func(cfg *Configuration) { cfg.Kafka.Spool.IntakeSize = intake })
	publishAll(t, c, 2, 2+intake)
	if got := k.spool.Len(); got != 1 {
		t.Fatalf("spool holds %d alerts while its writer is held, want 1", got)
	}
	if d := sum(k.m.dropped) + sum(k.m.spoolWaits); d != 0 {
		t.Fatalf("%v alerts dropped or waited", d)
	}
	close(h.release)
	waitFor(t, "alerts spooled", func() bool { return counter(c, k.m.spooled, "kafka", "flowcheck.alerts") == 2+intake })
	if got := h.calls.Load(); got != 2 {
		t.Fatalf("%d appends for %d alerts, want 2 (alert 1, then the %d that waited)", got, 1+intake, intake)
	}
	if got := k.spool.Len(); got != 2+intake {
		t.Fatalf("spool holds %d, want %d", got, 2+intake)
	}
	stop(t, c)

	addr := cfg.Kafka.Brokers[0]
	startCluster(t, port)
	cfg.Kafka.RetryBackoffMin, cfg.Kafka.RetryBackoffMax = 10*time.Millisecond, 100*time.Millisecond
	c = start(t, cfg)
	defer stop(t, c)
	checkOrder(t, consume(t, addr, 2+intake, "flowcheck.alerts"), seq(0, 2+intake))
}

// TestKafkaSpoolSlow: with the spool writer held and its intake full, a
// publisher waits intake_wait, then the alert is dropped and counted
// (spool_slow), the next ones at once, and the sink is not ready; once the
// writer appends again, alerts are spooled and the sink is ready.
func TestKafkaSpoolSlow(t *testing.T) {
	const intake = 4
	c, k, h, _, _ := outageSink(t, func(cfg *Configuration) {
		cfg.Kafka.Spool.IntakeSize = intake
		cfg.Kafka.Spool.IntakeWait = 20 * time.Millisecond
	})
	defer stop(t, c)
	publishAll(t, c, 2, 2+intake) // fills the intake
	publishAll(t, c, 2+intake, 5+intake)
	if got := counter(c, k.m.dropped, "kafka", "flowcheck.alerts", "spool_slow"); got != 3 {
		t.Fatalf("spool_slow drops = %v, want 3", got)
	}
	if got := counter(c, k.m.spoolWaits, "kafka"); got != 1 {
		t.Fatalf("waits = %v, want 1 (the first drop; the next ones drop at once)", got)
	}
	if !k.stalled.Load() || c.Ready() {
		t.Fatalf("stalled = %v, ready = %v after drops", k.stalled.Load(), c.Ready())
	}
	close(h.release)
	waitFor(t, "intake spooled, ready", func() bool {
		return counter(c, k.m.spooled, "kafka", "flowcheck.alerts") == 2+intake && !k.stalled.Load() && c.Ready()
	})
	publishAll(t, c, 5+intake, 6+intake)
	waitFor(t, "next alert spooled", func() bool { return counter(c, k.m.spooled, "kafka", "flowcheck.alerts") == 3+intake })
	produced := counter(c, k.m.produced, "kafka", "flowcheck.alerts")
	spooled := counter(c, k.m.spooled, "kafka", "flowcheck.alerts")
	if dropped := sum(k.m.dropped); produced != 6+intake || spooled+dropped != produced {
		t.Fatalf("produced %v, spooled %v, dropped %v", produced, spooled, dropped)
	}
}

// TestKafkaStopWritesIntake: Stop while a publisher waits for room in the
// intake lets it in, and writes the whole intake to the spool.
func TestKafkaStopWritesIntake(t *testing.T) {
	const intake = 4
	c, k, h, _, _ := outageSink(t, func(cfg *Configuration) { cfg.Kafka.Spool.IntakeSize = intake })
	publishAll(t, c, 2, 2+intake)
	waiting := make(chan struct{})
	go func() {
		defer close(waiting)
		c.Publish(event(2 + intake))
	}()
	// Alert 1 in the held append, the intake full, one waiting.
	waitFor(t, "a waiting publisher", func() bool { return k.unwritten.Load() == 2+intake })
	stopped := make(chan error)
	go func() { stopped <- c.Stop(t.Context()) }()
	close(h.release)
	<-waiting
	if err := <-stopped; err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if got := k.spool.Len(); got != 3+intake {
		t.Fatalf("spool holds %d after Stop, want %d", got, 3+intake)
	}
	if d := sum(k.m.dropped); d != 0 {
		t.Fatalf("%v alerts dropped", d)
	}
}

// TestKafkaPublishDuringPrepend: while the drainer writes a failed batch at
// the spool's front (held, as on a disk that hangs), Publish returns and
// the alerts published meanwhile reach the spool's tail; the replay then
// delivers every host's alerts in order, the failed batch's first.
func TestKafkaPublishDuringPrepend(t *testing.T) {
	const n = 100
	c, k, h, cfg, port := newHeldSink(t, true, func(*Configuration) {})
	c.Publish(event(0))
	if got := h.waitEntered(t); got != 1 {
		t.Fatalf("held prepend of %d alerts, want 1", got)
	}
	publishAll(t, c, 1, n)
	waitFor(t, "tail written", func() bool { return counter(c, k.m.spooled, "kafka", "flowcheck.alerts") == n-1 })
	close(h.release)
	waitFor(t, "front written", func() bool { return counter(c, k.m.spooled, "kafka", "flowcheck.alerts") == n })
	stop(t, c)

	addr := cfg.Kafka.Brokers[0]
	startCluster(t, port)
	cfg.Kafka.RetryBackoffMin, cfg.Kafka.RetryBackoffMax = 10*time.Millisecond, 100*time.Millisecond
	c = start(t, cfg)
	defer stop(t, c)
	// Alert 0 is host 0's first: checkOrder fails if it comes after 5.
	checkOrder(t, consume(t, addr, n, "flowcheck.alerts"), seq(0, n))
}
