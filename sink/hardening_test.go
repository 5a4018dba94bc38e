package sink

import (
	"encoding/binary"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// findSpooled returns the segment file and offset of the spooled alert with
// id ev-NNNNN (i), walking the version-2 frames of every segment.
func findSpooled(t *testing.T, dir string, i int) (string, int64, int) {
	t.Helper()
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	for _, path := range segs {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for off := 8; off+12 <= len(b); {
			n := int(binary.BigEndian.Uint32(b[off+4 : off+8]))
			r, err := decodeRecord(b[off+12 : off+12+n])
			if err != nil {
				t.Fatalf("%s at %d: %v", path, off, err)
			}
			var id int
			if err := parseID(r.value, &id); err != nil {
				t.Fatal(err)
			}
			if id == i {
				return path, int64(off), n
			}
			off += 12 + n
		}
	}
	t.Fatalf("alert %d not in the spool", i)
	return "", 0, 0
}

// TestKafkaSpoolCorruptMiddle flips one byte in the middle of alert 500 of
// a 2 513-alert spool segment: the next start delivers the 2 512 others (read
// back over the Kafka protocol), counts one alert dropped as spool_corrupt
// and logs the file and offset.
func TestKafkaSpoolCorruptMiddle(t *testing.T) {
	const n, bad = 2513, 500
	addr, port := freeAddr(t)
	cfg := testConfig(t, addr)
	cfg.Kafka.Spool.SegmentBytes = 4 << 20 // one segment
	c := start(t, cfg)
	for i := range n {
		c.Publish(event(i))
	}
	stop(t, c)
	path, off, size := findSpooled(t, cfg.Kafka.Spool.Dir, bad)
	b, _ := os.ReadFile(path)
	b[off+12+int64(size)/2] ^= 0x04
	if err := os.WriteFile(path, b, 0o640); err != nil {
		t.Fatal(err)
	}

	startCluster(t, port)
	var logs syncBuffer
	c, err := New(cfg, Dependencies{
		Registerer: prometheus.NewRegistry(),
		Logger:     slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer stop(t, c)
	k := kafkaOf(c)
	if got := counter(c, k.m.dropped, "kafka", "", "spool_corrupt"); got != 1 {
		t.Fatalf("spool_corrupt drops = %v, want 1", got)
	}
	want := append(seq(0, bad), seq(bad+1, n)...)
	recs := consume(t, addr, n-1, "flowcheck.alerts")
	checkOrder(t, recs, want)
	for _, r := range recs {
		var i int
		if err := parseID(r.Value, &i); err != nil || i == bad {
			t.Fatalf("alert %d delivered (%v)", i, err)
		}
	}
	waitFor(t, "spool drained", func() bool { return k.spool.Len() == 0 })
	line := ""
	for l := range strings.Lines(logs.String()) {
		if strings.Contains(l, "corrupt spool record") {
			line = l
		}
	}
	if !strings.Contains(line, "file="+path) || !strings.Contains(line, "offset="+strconv.FormatInt(off, 10)) || !strings.Contains(line, "alerts=1") {
		t.Fatalf("log line %q does not name %s offset %d", line, path, off)
	}
}

// TestKafkaReadyAfterSpoolError breaks the spool directory while the
// broker is down: the sink is not ready; once the broker is back and
// alerts are delivered, it is ready again although the spool is still
// broken.
func TestKafkaReadyAfterSpoolError(t *testing.T) {
	addr, port := freeAddr(t)
	cfg := testConfig(t, addr)
	c := start(t, cfg)
	defer stop(t, c)
	k := kafkaOf(c)
	// A file where the directory was: no segment can be created.
	if err := os.RemoveAll(cfg.Kafka.Spool.Dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg.Kafka.Spool.Dir, nil, 0o640); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		c.Publish(event(i))
	}
	waitFor(t, "spool error", func() bool { return counter(c, k.m.dropped, "kafka", "flowcheck.alerts", "spool_error") > 0 })
	if c.Ready() {
		t.Fatal("ready although alerts could neither be delivered nor spooled")
	}
	startCluster(t, port)
	waitFor(t, "ready again", func() bool {
		c.Publish(event(10))
		time.Sleep(20 * time.Millisecond)
		return c.Ready()
	})
	if counter(c, k.m.delivered, "kafka", "flowcheck.alerts") == 0 {
		t.Fatal("ready without delivery")
	}
}

// hungBroker accepts TCP connections and never answers.
func hungBroker(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

// copyDir copies the files of a spool as a SIGKILL would leave them: what
// was written, without Close.
func copyDir(t *testing.T, from, to string) {
	t.Helper()
	if err := os.MkdirAll(to, 0o750); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(from)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o640); err != nil {
			t.Fatal(err)
		}
	}
}

// swallowingBroker is a kfake cluster that answers metadata but swallows
// every produce request (no answer, connection kept).
func swallowingBroker(t *testing.T) string {
	cluster, addr := startCluster(t, 0)
	cluster.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		cluster.KeepControl()
		return nil, nil, true
	})
	return addr
}

// TestKafkaHungBrokerSpools: with a broker that hangs (write timeout of a
// minute), alerts reach the spool about spool_after after they were
// published, not when the write gives up; a crash then (the spool files
// copied without Close) loses none of them.
func TestKafkaHungBrokerSpools(t *testing.T) {
	for _, tc := range []struct {
		name   string
		broker func(*testing.T) string
	}{
		{"silent listener", hungBroker},
		{"kfake swallowing produce", swallowingBroker},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t, tc.broker(t))
			cfg.Kafka.WriteTimeout = time.Minute
			cfg.Kafka.SpoolAfter = 200 * time.Millisecond
			cfg.ShutdownGrace = 200 * time.Millisecond
			c := start(t, cfg)
			defer stop(t, c)
			k := kafkaOf(c)
			const n = 300
			begin := time.Now()
			for i := range n / 2 {
				c.Publish(event(i))
			}
			waitFor(t, "first alerts spooled", func() bool { return k.spool.Len() == n/2 })
			took := time.Since(begin)
			t.Logf("hung broker: %d alerts in the spool %v after publication (spool_after %v, write_timeout %v)",
				n/2, took.Round(time.Millisecond), cfg.Kafka.SpoolAfter, cfg.Kafka.WriteTimeout)
			// 20× spool_after: slack for a loaded machine; without the
			// bound, the alerts wait for the write to fail (5 s for
			// the dial handshake, minutes for a swallowed produce).
			if bound := 20 * cfg.Kafka.SpoolAfter; took > bound {
				t.Fatalf("alerts spooled %v after publication, bound %v", took, bound)
			}
			// Spooling now: the next ones go to disk at once, through
			// the spool writer.
			for i := n / 2; i < n; i++ {
				c.Publish(event(i))
			}
			waitFor(t, "all alerts spooled", func() bool { return k.spool.Len() == n })
			crashed := filepath.Join(t.TempDir(), "crashed")
			copyDir(t, cfg.Kafka.Spool.Dir, crashed)

			addr, port := freeAddr(t)
			startCluster(t, port)
			cfg2 := testConfig(t, addr)
			cfg2.Kafka.Spool.Dir = crashed
			c2 := start(t, cfg2)
			defer stop(t, c2)
			checkOrder(t, consume(t, addr, n, "flowcheck.alerts"), seq(0, n))
		})
	}
}

// TestKafkaSlowBrokerDeliversOnce: a write that outlasts spool_after but
// succeeds leaves no copy behind in the spool (no duplicate).
func TestKafkaSlowBrokerDeliversOnce(t *testing.T) {
	cluster, addr := startCluster(t, 0)
	cfg := testConfig(t, addr)
	cfg.Kafka.SpoolAfter = 50 * time.Millisecond
	c := start(t, cfg)
	defer stop(t, c)
	k := kafkaOf(c)
	// Hold the first produce request for a while, then let it through.
	var slept atomic.Bool
	release := make(chan struct{})
	cluster.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		if !slept.Swap(true) {
			cluster.SleepControl(func() { <-release })
		}
		return nil, nil, false
	})
	for i := range 20 {
		c.Publish(event(i))
	}
	waitFor(t, "batch spilled", func() bool { return counter(c, k.m.spooled, "kafka", "flowcheck.alerts") > 0 })
	close(release)
	waitFor(t, "delivered", func() bool {
		return counter(c, k.m.delivered, "kafka", "flowcheck.alerts") >= 20 && k.spool.Len() == 0
	})
	recs := consume(t, addr, 20, "flowcheck.alerts")
	checkOrder(t, recs, seq(0, 20))
	time.Sleep(100 * time.Millisecond)
	if got := counter(c, k.m.delivered, "kafka", "flowcheck.alerts"); got != 20 {
		t.Fatalf("delivered %v, want 20 (a spilled batch sent twice)", got)
	}
}

// TestHungBrokerCrashWindow publishes at a steady rate to a broker that
// hangs, and samples what is in memory only (published, not yet in the
// spool): its count and the age of its oldest alert are what a SIGKILL
// would lose. FLOWCHECK_SINK_MEASURE=1 runs it for 30 s with the shipped
// defaults (write_timeout 10s, spool_after 1s) instead of 2 s with a 200 ms
// spool_after.
func TestHungBrokerCrashWindow(t *testing.T) {
	for _, tc := range []struct {
		name   string
		broker func(*testing.T) string
	}{
		{"silent listener", hungBroker},
		{"kfake swallowing produce", swallowingBroker},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t, tc.broker(t))
			cfg.ShutdownGrace = 200 * time.Millisecond
			run := 2 * time.Second
			cfg.Kafka.WriteTimeout = time.Minute
			cfg.Kafka.SpoolAfter = 200 * time.Millisecond
			if os.Getenv("FLOWCHECK_SINK_MEASURE") != "" {
				def := DefaultConfiguration().Kafka
				cfg.Kafka.WriteTimeout, cfg.Kafka.SpoolAfter = def.WriteTimeout, def.SpoolAfter
				run = 30 * time.Second
			}
			c := start(t, cfg)
			defer stop(t, c)
			k := kafkaOf(c)
			const rate = 100 // alerts per second
			var published []time.Time
			var maxCount int
			var maxAge time.Duration
			begin := time.Now()
			for i := 0; time.Since(begin) < run; i++ {
				c.Publish(event(i))
				published = append(published, time.Now())
				spooled := int(counter(c, k.m.spooled, "kafka", "flowcheck.alerts"))
				if mem := len(published) - spooled; mem > 0 {
					maxCount = max(maxCount, mem)
					maxAge = max(maxAge, time.Since(published[spooled]))
				}
				time.Sleep(time.Second / rate)
			}
			t.Logf("%d alerts/s for %v, write_timeout %v, spool_after %v: at most %d alerts and %v in memory only",
				rate, run, cfg.Kafka.WriteTimeout, cfg.Kafka.SpoolAfter, maxCount, maxAge.Round(10*time.Millisecond))
			// Loose: the point is spool_after, not the write timeout.
			if bound := 10 * cfg.Kafka.SpoolAfter; maxAge > bound {
				t.Fatalf("an alert stayed %v in memory only, bound %v", maxAge, bound)
			}
		})
	}
}
