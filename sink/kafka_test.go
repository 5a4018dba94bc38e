package sink

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flowcheck/flowcheck/alert"
)

// startCluster starts an in-process Kafka (kfake) on 127.0.0.1:port (0 for
// any) and returns it with its address.
func startCluster(t testing.TB, port int) (*kfake.Cluster, string) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.Ports(port), kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(4))
	if err != nil {
		t.Fatalf("kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c, c.ListenAddrs()[0]
}

// freeAddr returns a loopback address nothing listens on (yet).
func freeAddr(t testing.TB) (string, int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String(), ln.Addr().(*net.TCPAddr).Port
}

func testConfig(t testing.TB, brokers ...string) Configuration {
	t.Helper()
	c := baseTestConfig(brokers...)
	c.Kafka.Spool.Dir = filepath.Join(t.TempDir(), "spool")
	return c
}

// baseTestConfig is the test configuration without a spool directory.
func baseTestConfig(brokers ...string) Configuration {
	c := DefaultConfiguration()
	c.Stdout.Enabled = SwitchFalse
	c.Kafka.Brokers = brokers
	c.Kafka.Spool.SegmentBytes = 64 << 10
	c.Kafka.Spool.MaxBytes = 16 << 20
	c.Kafka.BatchTimeout = 2 * time.Millisecond
	c.Kafka.WriteTimeout = 3 * time.Second
	c.Kafka.RetryBackoffMin = 10 * time.Millisecond
	c.Kafka.RetryBackoffMax = 100 * time.Millisecond
	// A loaded machine may hold the spool writer back; no test but the
	// one about it may drop an alert as spool_slow.
	c.Kafka.Spool.IntakeWait = time.Minute
	c.Kafka.CreateTopics.Partitions = 4
	// Long enough never to expire on a loaded machine: Stop returns as
	// soon as the queue is flushed (or spooled, broker down).
	c.ShutdownGrace = 2 * time.Minute
	// Compression codecs are slow under the race detector; the routing
	// test covers each of them.
	c.Kafka.Compression = "none"
	return c
}

func start(t testing.TB, cfg Configuration) *Component {
	t.Helper()
	c, err := New(cfg, Dependencies{Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := c.Start(t.Context()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	return c
}

func stop(t testing.TB, c *Component) {
	t.Helper()
	if err := c.Stop(context.Background()); err != nil {
		t.Fatalf("Stop: %v", err)
	}
}

var hosts = []alert.Host{
	{IP: "192.0.2.1", IsLocal: true},
	{IP: "192.0.2.2", VLAN: 10, MAC: "02:00:00:00:00:02"},
	{IP: "2001:db8::3", Name: "three"},
	{IP: "198.51.100.4"},
	{IP: "198.51.100.5", VLAN: 4094},
}

var checks = []string{"scan_detection", "flow_flood", "syn_flood"}

// event i is about hosts[i%len(hosts)], alternating engaged and released.
func event(i int) alert.Event {
	t := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Second)
	value := (i * 37) % 100
	state := alert.Engaged
	if (i/len(hosts))%2 == 1 {
		state = alert.Released
	}
	return alert.Event{
		Schema:    alert.SchemaVersion,
		ID:        fmt.Sprintf("ev-%05d", i),
		State:     state,
		Check:     checks[i%len(checks)],
		Host:      hosts[i%len(hosts)],
		Value:     value,
		Severity:  alert.Severity(value),
		Score:     value,
		Message:   fmt.Sprintf("alert number %d", i),
		FirstSeen: t.Add(-time.Minute),
		LastSeen:  t,
		Time:      t,
		Collector: "test",
	}
}

// consume reads n records from the topics with a franz-go consumer.
func consume(t testing.TB, addr string, n int, topics ...string) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(50*time.Millisecond),
		kgo.MetadataMinAge(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d records of %d before timeout", len(out), n)
		}
		fs.EachRecord(func(r *kgo.Record) { out = append(out, r) })
	}
	return out
}

// checkOrder decodes records and checks, per topic and host key, that
// events come in publication order (duplicates allowed: at-least-once) and that nothing is missing from want.
func checkOrder(t testing.TB, recs []*kgo.Record, want []int) {
	t.Helper()
	last := map[string]int{}
	seen := map[int]bool{}
	for _, r := range recs {
		var ev alert.Event
		if err := json.Unmarshal(r.Value, &ev); err != nil {
			t.Fatalf("bad JSON %q: %v", r.Value, err)
		}
		var i int
		if _, err := fmt.Sscanf(ev.ID, "ev-%d", &i); err != nil {
			t.Fatalf("bad id %q", ev.ID)
		}
		if string(r.Key) != ev.Host.Key() {
			t.Fatalf("key %q for host %q", r.Key, ev.Host.Key())
		}
		// Order holds per host within a topic (routing may split a
		// host's events across topics).
		hk := r.Topic + "/" + ev.Host.Key()
		if p, ok := last[hk]; ok && i <= p && !seen[i] {
			t.Fatalf("host %s: event %d after %d", hk, i, p)
		}
		last[hk] = max(i, last[hk])
		seen[i] = true
	}
	for _, i := range want {
		if !seen[i] {
			t.Fatalf("event %d missing (got %d records)", i, len(recs))
		}
	}
}

func seq(from, to int) []int {
	var out []int
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

func kafkaOf(c *Component) *kafkaSink {
	for _, s := range c.sinks {
		if k, ok := s.(*kafkaSink); ok {
			return k
		}
	}
	return nil
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timeout waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func counter(c *Component, vec *prometheus.CounterVec, labels ...string) float64 {
	return value(vec.WithLabelValues(labels...))
}

// value reads a counter or gauge.
func value(m prometheus.Metric) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		panic(err)
	}
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}

// sum adds up the series of a counter vector.
func sum(c prometheus.Collector) float64 {
	ch := make(chan prometheus.Metric, 100)
	go func() { c.Collect(ch); close(ch) }()
	total := 0.0
	for m := range ch {
		total += value(m)
	}
	return total
}

func TestKafkaRoutingKeysHeadersOrder(t *testing.T) {
	cases := []struct{ acks, compression string }{
		{"all", "lz4"},
		{"one", "gzip"},
		{"none", "snappy"},
		{"all", "zstd"},
		{"one", "none"},
	}
	for _, tc := range cases {
		t.Run(tc.acks+"-"+tc.compression, func(t *testing.T) {
			_, addr := startCluster(t, 0)
			cfg := testConfig(t, addr)
			cfg.Kafka.Acks, cfg.Kafka.Compression = tc.acks, tc.compression
			cfg.Kafka.Routes = []Route{
				{Check: "scan_detection", Topic: "flowcheck.alerts.scan"},
				{Severity: "critical", Topic: "flowcheck.alerts.critical"},
			}
			c := start(t, cfg)
			const n = 150
			for i := range n {
				c.Publish(event(i))
			}
			stop(t, c)
			recs := consume(t, addr, n, "flowcheck.alerts", "flowcheck.alerts.scan", "flowcheck.alerts.critical")
			checkOrder(t, recs, seq(0, n))
			partitionOf := map[string]int32{}
			for _, r := range recs {
				var ev alert.Event
				_ = json.Unmarshal(r.Value, &ev)
				var i int
				_, _ = fmt.Sscanf(ev.ID, "ev-%d", &i)
				want := event(i)
				if !ev.Time.Equal(want.Time) || ev.Message != want.Message || ev.Host != want.Host || ev.State != want.State {
					t.Fatalf("decoded %+v, want %+v", ev, want)
				}
				topic := "flowcheck.alerts"
				switch {
				case want.Check == "scan_detection":
					topic = "flowcheck.alerts.scan"
				case want.Severity == "critical":
					topic = "flowcheck.alerts.critical"
				}
				if r.Topic != topic {
					t.Fatalf("event %d (%s, %s) in %s, want %s", i, want.Check, want.Severity, r.Topic, topic)
				}
				headers := map[string]string{}
				for _, h := range r.Headers {
					headers[h.Key] = string(h.Value)
				}
				if headers["schema"] != "1" || headers["check"] != want.Check {
					t.Fatalf("headers %v", headers)
				}
				pk := r.Topic + "/" + string(r.Key)
				if p, ok := partitionOf[pk]; ok && p != r.Partition {
					t.Fatalf("key %s in partitions %d and %d", pk, p, r.Partition)
				}
				partitionOf[pk] = r.Partition
			}
			k := kafkaOf(c)
			if got := counter(c, k.m.delivered, "kafka", "flowcheck.alerts.scan"); got != n/3 {
				t.Fatalf("delivered to scan = %v, want %d", got, n/3)
			}
		})
	}
}

// TestKafkaOutage produces while no broker exists, then brings one up on
// the same port: everything arrives in per-host order and the spool drains.
func TestKafkaOutage(t *testing.T) {
	addr, port := freeAddr(t)
	cfg := testConfig(t, addr)
	c := start(t, cfg)
	defer stop(t, c)
	k := kafkaOf(c)
	const n = 500
	for i := range n / 2 {
		c.Publish(event(i))
	}
	waitFor(t, "alerts spooled", func() bool { return k.spool.Len() == n/2 })
	if !c.Ready() {
		t.Fatal("not ready while spooling")
	}
	_, addr2 := startCluster(t, port)
	if addr2 != addr {
		t.Fatalf("cluster on %s, want %s", addr2, addr)
	}
	// New alerts interleave with the replay.
	for i := n / 2; i < n; i++ {
		c.Publish(event(i))
	}
	recs := consume(t, addr, n, "flowcheck.alerts")
	checkOrder(t, recs, seq(0, n))
	waitFor(t, "spool drained", func() bool { return k.spool.Len() == 0 && k.spool.Bytes() == 0 })
	if got := value(k.m.spoolCount.WithLabelValues("kafka")); got != 0 {
		t.Fatalf("spool gauge = %v", got)
	}
	if got := counter(c, k.m.replayed, "kafka", "flowcheck.alerts"); got < n/2 {
		t.Fatalf("replayed = %v, want ≥ %d", got, n/2)
	}
	if got := sum(k.m.errors); got == 0 {
		t.Fatal("no broker error counted")
	}
}

// TestKafkaOutageAcrossRestart spools during an outage, stops the
// component, starts a new one on the same spool, then the broker: the
// replay delivers everything in order before and along new alerts.
func TestKafkaOutageAcrossRestart(t *testing.T) {
	addr, port := freeAddr(t)
	cfg := testConfig(t, addr)
	c := start(t, cfg)
	const n = 300
	for i := range n {
		c.Publish(event(i))
	}
	stop(t, c)
	k := kafkaOf(c)
	if got := k.spool.Len(); got != n {
		t.Fatalf("spool holds %d alerts after stop, want %d", got, n)
	}

	c = start(t, cfg)
	defer stop(t, c)
	k = kafkaOf(c)
	if got := k.spool.Len(); got != n {
		t.Fatalf("spool holds %d alerts after restart, want %d", got, n)
	}
	for i := n; i < n+100; i++ {
		c.Publish(event(i))
	}
	startCluster(t, port)
	for i := n + 100; i < n+200; i++ {
		c.Publish(event(i))
	}
	recs := consume(t, addr, n+200, "flowcheck.alerts")
	checkOrder(t, recs, seq(0, n+200))
	waitFor(t, "spool drained", func() bool { return k.spool.Len() == 0 })
}

// TestKafkaSpoolCeiling shows oldest-first drops, counted.
func TestKafkaSpoolCeiling(t *testing.T) {
	addr, port := freeAddr(t)
	cfg := testConfig(t, addr)
	cfg.Kafka.QueueSize = 1
	cfg.Kafka.Spool.SegmentBytes = 4 << 10
	cfg.Kafka.Spool.MaxBytes = 16 << 10
	c := start(t, cfg)
	k := kafkaOf(c)
	const n = 400 // about 130 KiB of JSON
	// The first alert fails in memory and goes to the spool's front once
	// the write gives up; the others only once it is there, so that the
	// spool holds them in publication order.
	c.Publish(event(0))
	waitFor(t, "first alert spooled", func() bool { return k.spooling.Load() && k.spool.Len() == 1 })
	for i := 1; i < n; i++ {
		c.Publish(event(i))
	}
	stop(t, c)
	dropped := int(counter(c, k.m.dropped, "kafka", "", "spool_ceiling"))
	kept := k.spool.Len()
	if dropped == 0 || dropped+kept != n {
		t.Fatalf("dropped %d + kept %d, want %d with drops", dropped, kept, n)
	}
	if k.spool.Bytes() > cfg.Kafka.Spool.MaxBytes {
		t.Fatalf("spool %d bytes above ceiling", k.spool.Bytes())
	}
	startCluster(t, port)
	c = start(t, cfg)
	defer stop(t, c)
	recs := consume(t, addr, kept, "flowcheck.alerts")
	checkOrder(t, recs, seq(dropped, n))
	for _, r := range recs {
		var ev alert.Event
		_ = json.Unmarshal(r.Value, &ev)
		var i int
		_, _ = fmt.Sscanf(ev.ID, "ev-%d", &i)
		if i < dropped {
			t.Fatalf("event %d kept although older than the %d dropped", i, dropped)
		}
	}
}

// TestKafkaCorruptSpoolTail cuts the last spooled record (crash mid-write):
// the next start keeps and delivers the good ones and reports the rest.
func TestKafkaCorruptSpoolTail(t *testing.T) {
	addr, port := freeAddr(t)
	cfg := testConfig(t, addr)
	c := start(t, cfg)
	const n = 50
	for i := range n {
		c.Publish(event(i))
	}
	stop(t, c)
	segs, _ := filepath.Glob(filepath.Join(cfg.Kafka.Spool.Dir, "*.seg"))
	if len(segs) == 0 {
		t.Fatal("no segment")
	}
	last := segs[len(segs)-1]
	st, _ := os.Stat(last)
	if err := os.Truncate(last, st.Size()-10); err != nil {
		t.Fatal(err)
	}
	startCluster(t, port)
	c = start(t, cfg)
	defer stop(t, c)
	k := kafkaOf(c)
	if got := value(k.m.spoolCorrupt.WithLabelValues("kafka")); got == 0 {
		t.Fatal("corrupt bytes not counted")
	}
	recs := consume(t, addr, n-1, "flowcheck.alerts")
	checkOrder(t, recs, seq(0, n-1))
	waitFor(t, "spool drained", func() bool { return k.spool.Len() == 0 })
}

// TestKafkaShutdownBrokerDown: Stop returns promptly and spools the queue.
func TestKafkaShutdownBrokerDown(t *testing.T) {
	addr, _ := freeAddr(t)
	cfg := testConfig(t, addr)
	cfg.Kafka.RetryBackoffMin = time.Second
	cfg.Kafka.RetryBackoffMax = time.Second
	cfg.ShutdownGrace = 500 * time.Millisecond
	c := start(t, cfg)
	for i := range 20 {
		c.Publish(event(i))
	}
	stop(t, c)
	if got := kafkaOf(c).spool.Len(); got != 20 {
		t.Fatalf("spool holds %d, want 20", got)
	}
	c.Publish(event(21))
	if got := counter(c, kafkaOf(c).m.dropped, "kafka", "", "stopped"); got != 1 {
		t.Fatalf("publish after stop: dropped = %v", got)
	}
	if c.Ready() {
		t.Fatal("ready after stop")
	}
}

func TestRecordEncoding(t *testing.T) {
	r := kafkaRecord{topic: "t", key: "10.0.0.1@3", check: "c", schema: "1", value: []byte(`{"a":1}`)}
	got, err := decodeRecord(r.encode())
	if err != nil || got.topic != r.topic || got.key != r.key || got.check != r.check ||
		got.schema != r.schema || string(got.value) != string(r.value) {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	for _, bad := range [][]byte{nil, {2}, {1, 5, 'a'}, {1, 0xff}} {
		if _, err := decodeRecord(bad); err == nil {
			t.Errorf("decodeRecord(%v) accepted", bad)
		}
	}
}

func FuzzDecodeRecord(f *testing.F) {
	f.Add((&kafkaRecord{topic: "t", key: "k", check: "c", schema: "1", value: []byte("{}")}).encode())
	f.Add([]byte{1, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRecord(b)
		if err == nil && !strings.HasSuffix(string(b), string(r.value)) {
			t.Fatal("value is not the tail")
		}
	})
}

// TestKcatConsumer reads the topic with kcat, an outside librdkafka
// consumer, and parses what it printed.
func TestKcatConsumer(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		if os.Getenv("CI") == "" {
			t.Skip("kcat not installed (Debian package kcat); required under CI")
		}
		t.Fatal("kcat not installed")
	}
	_, addr := startCluster(t, 0)
	cfg := testConfig(t, addr)
	c := start(t, cfg)
	const n = 20
	for i := range n {
		c.Publish(event(i))
	}
	stop(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, kcat, "-C", "-b", addr, "-t", "flowcheck.alerts",
		"-e", "-o", "beginning", "-q", "-f", "%k\t%h\t%s\n").Output()
	if err != nil {
		t.Fatalf("kcat: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != n {
		t.Fatalf("kcat printed %d lines, want %d:\n%s", len(lines), n, out)
	}
	var got []int
	for _, l := range lines {
		parts := strings.SplitN(l, "\t", 3)
		if len(parts) != 3 {
			t.Fatalf("bad line %q", l)
		}
		var ev alert.Event
		if err := json.Unmarshal([]byte(parts[2]), &ev); err != nil {
			t.Fatalf("bad JSON from kcat %q: %v", parts[2], err)
		}
		if parts[0] != ev.Host.Key() {
			t.Fatalf("key %q, host %q", parts[0], ev.Host.Key())
		}
		if want := "schema=1,check=" + ev.Check; parts[1] != want {
			t.Fatalf("headers %q, want %q", parts[1], want)
		}
		var i int
		_, _ = fmt.Sscanf(ev.ID, "ev-%d", &i)
		got = append(got, i)
	}
	slices.Sort(got)
	if !slices.Equal(got, seq(0, n)) {
		t.Fatalf("kcat got events %v", got)
	}
}

// TestKafkaShutdownFlushes: with the broker up, Stop delivers everything
// queued before returning and leaves the spool empty.
func TestKafkaShutdownFlushes(t *testing.T) {
	_, addr := startCluster(t, 0)
	cfg := testConfig(t, addr)
	cfg.Kafka.BatchSize = 50
	c := start(t, cfg)
	const n = 1000
	for i := range n {
		c.Publish(event(i))
	}
	stop(t, c)
	k := kafkaOf(c)
	if got := k.spool.Len(); got != 0 {
		t.Fatalf("%d alerts spooled although the broker is up", got)
	}
	if got := counter(c, k.m.delivered, "kafka", "flowcheck.alerts"); got != n {
		t.Fatalf("delivered %v before Stop returned, want %d", got, n)
	}
	checkOrder(t, consume(t, addr, n, "flowcheck.alerts"), seq(0, n))
}

// TestKafkaFlappingBroker publishes from one goroutine per host while the
// broker goes down and comes back on the same port twice: every event
// arrives, each host's in order.
func TestKafkaFlappingBroker(t *testing.T) {
	addr, port := freeAddr(t)
	cfg := testConfig(t, addr)
	cfg.Kafka.QueueSize = 64
	cfg.Kafka.BatchSize = 32
	c := start(t, cfg)
	defer stop(t, c)
	k := kafkaOf(c)
	const perHost = 300
	publish := func(from, to int) {
		var wg sync.WaitGroup
		for h := range hosts {
			wg.Go(func() {
				for j := from; j < to; j++ {
					c.Publish(event(j*len(hosts) + h))
					if j%50 == 0 {
						time.Sleep(time.Millisecond)
					}
				}
			})
		}
		wg.Wait()
	}
	publish(0, perHost/3) // broker absent
	cluster, _ := startCluster(t, port)
	publish(perHost/3, 2*perHost/3) // up, replaying
	waitFor(t, "some delivery", func() bool { return counter(c, k.m.delivered, "kafka", "flowcheck.alerts") > 0 })
	cluster.Close() // down again: the new cluster starts empty
	publish(2*perHost/3, perHost)
	startCluster(t, port)
	waitFor(t, "spool drained", func() bool { return k.spool.Len() == 0 && len(k.queue) == 0 && !k.spooling.Load() })
	// Only what was written after the second start is in the new cluster;
	// delivered counts all acknowledged writes, across both clusters.
	delivered := int(counter(c, k.m.delivered, "kafka", "flowcheck.alerts"))
	if delivered < perHost*len(hosts) {
		t.Fatalf("delivered %d, want ≥ %d", delivered, perHost*len(hosts))
	}
	if d := sum(k.m.dropped); d != 0 {
		t.Fatalf("%v alerts dropped", d)
	}
}

// TestKafkaShutdownHungBroker: a broker that accepts connections but never
// answers holds the in-flight batch; Stop ends it when the grace period is
// over and spools everything that was not acknowledged.
func TestKafkaShutdownHungBroker(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	var mu sync.Mutex
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
	defer func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	}()
	cfg := testConfig(t, ln.Addr().String())
	cfg.Kafka.WriteTimeout = time.Minute
	cfg.ShutdownGrace = 200 * time.Millisecond
	c := start(t, cfg)
	k := kafkaOf(c)
	const n = 100
	for i := range n {
		c.Publish(event(i))
	}
	begin := time.Now()
	stop(t, c)
	if d := time.Since(begin); d > 30*time.Second {
		t.Fatalf("Stop took %v with a 200ms grace", d)
	}
	if got := k.spool.Len(); got != n {
		t.Fatalf("spool holds %d, want %d", got, n)
	}
	// The next start replays them, in order, once a broker answers.
	addr, port := freeAddr(t)
	cfg.Kafka.Brokers = []string{addr}
	cfg.Kafka.WriteTimeout = 3 * time.Second
	startCluster(t, port)
	c = start(t, cfg)
	defer stop(t, c)
	checkOrder(t, consume(t, addr, n, "flowcheck.alerts"), seq(0, n))
}
