package cluster

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flowcheck/flowcheck/clock"
	"github.com/flowcheck/flowcheck/flow"
	"github.com/flowcheck/flowcheck/internal/capturetest"
	"github.com/flowcheck/flowcheck/internal/kafkaconn"
)

// startKafka starts an in-process Kafka (kfake) on 127.0.0.1:port (0 for
// any) and returns it with its address.
func startKafka(t testing.TB, port int) (*kfake.Cluster, string) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.Ports(port))
	if err != nil {
		t.Fatalf("kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c, c.ListenAddrs()[0]
}

// freePort returns a loopback port nothing listens on (yet).
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func ingestConfig(broker string, partitions int) Configuration {
	c := DefaultConfiguration()
	c.Role, c.Brokers, c.Partitions = RoleIngest, []string{broker}, partitions
	c.FlowsTopic = "test.flows"
	c.Publish.FlushInterval = 20 * time.Millisecond
	c.Publish.WriteTimeout = 5 * time.Second
	c.Publish.RetryBackoffMin = 10 * time.Millisecond
	c.Publish.RetryBackoffMax = 200 * time.Millisecond
	return c
}

func startPublisher(t testing.TB, cfg Configuration, block bool) (*Publisher, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	p, err := NewPublisher(cfg, PublisherDependencies{Registerer: reg, Block: block})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Bounded: with the brokers away, Stop would wait for them.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = p.Stop(ctx)
	})
	return p, reg
}

// captureRecords decodes a capture of the repository with the collector.
func captureRecords(t testing.TB, path string) []flow.Record {
	t.Helper()
	var recs []flow.Record
	clk := clock.NewManual(capturetest.Start(t, path))
	capturetest.Feed(t, path, clk, func(b []flow.Record) { recs = append(recs, b...) }, nil)
	if len(recs) == 0 {
		t.Fatalf("%s: no records", path)
	}
	return recs
}

// copyKey identifies one published copy: its partition, its sides and the
// record's encoding.
type copyKey struct {
	partition int
	sides     flow.Side
	body      string
}

// expectedCopies is what the contract says ingest publishes for recs.
func expectedCopies(recs []flow.Record, n int) map[copyKey]int {
	want := map[copyKey]int{}
	for i := range recs {
		r := &recs[i]
		body := string(appendFlowBody(nil, r))
		src, dst := PartitionOf(r.SrcAddr, r.VLAN, n), PartitionOf(r.DstAddr, r.VLAN, n)
		if src == dst {
			want[copyKey{src, flow.SideSrc | flow.SideDst, body}]++
			continue
		}
		want[copyKey{src, flow.SideSrc, body}]++
		want[copyKey{dst, flow.SideDst, body}]++
	}
	return want
}

// consumeCopies reads every partition of topic from the start until it
// has total copies (or the deadline), decoding each message; it returns
// the copies and the loss reports read on the way.
func consumeCopies(t *testing.T, broker, topic string, total int) (map[copyKey]int, map[int][]Loss) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	got, losses := map[copyKey]int{}, map[int][]Loss{}
	n := 0
	var d Decoder
	for n < total {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d copies before the deadline", n, total)
		}
		fetches.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
		fetches.EachRecord(func(r *kgo.Record) {
			if r.Timestamp.IsZero() || time.Since(r.Timestamp) > time.Hour {
				t.Errorf("message timestamp %v is not the flush's wall time", r.Timestamp)
			}
			recs, err := d.Decode(r.Value)
			if err != nil {
				t.Fatalf("partition %d offset %d: %v", r.Partition, r.Offset, err)
			}
			if l := d.Losses(); len(l) > 0 {
				losses[int(r.Partition)] = append(losses[int(r.Partition)], l...)
			}
			for i := range recs {
				sides := recs[i].Sides
				recs[i].Sides = 0
				got[copyKey{int(r.Partition), sides, string(appendFlowBody(nil, &recs[i]))}]++
				n++
			}
		})
	}
	return got, losses
}

// TestPublishPartitions publishes a softflowd capture's records and reads
// them back: every record is in its source host's partition with SideSrc
// and its destination host's with SideDst, or once with both.
func TestPublishPartitions(t *testing.T) {
	recs := captureRecords(t, "../testdata/softflowd-v9.pcap")
	_, broker := startKafka(t, 0)
	const partitions = 8
	cfg := ingestConfig(broker, partitions)
	cfg.Publish.FlushBytes = 16 << 10 // several messages per partition
	p, reg := startPublisher(t, cfg, false)
	for i := 0; i < len(recs); i += 100 {
		p.Handle(recs[i:min(i+100, len(recs))])
	}
	if err := p.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := expectedCopies(recs, partitions)
	total := 0
	for _, c := range want {
		total += c
	}
	got, losses := consumeCopies(t, broker, cfg.FlowsTopic, total)
	if len(losses) != 0 {
		t.Errorf("loss reports %v, with nothing lost", losses)
	}
	for k, c := range want {
		if got[k] != c {
			t.Errorf("partition %d sides %d: %d copies, want %d", k.partition, k.sides, got[k], c)
		}
	}
	for k, c := range got {
		if want[k] == 0 {
			t.Errorf("partition %d sides %d: %d unexpected copies", k.partition, k.sides, c)
		}
	}
	if v := testutil.ToFloat64(p.m.records); int(v) != total {
		t.Errorf("records_total %v, want %d", v, total)
	}
	if v := testutil.ToFloat64(p.m.input); int(v) != len(recs) {
		t.Errorf("input_records_total %v, want %d", v, len(recs))
	}
	if n, err := testutil.GatherAndCount(reg, "flowcheck_cluster_publish_dropped_records_total"); err != nil || n != len(dropReasons) {
		t.Errorf("dropped series: %d, %v", n, err)
	}
	t.Logf("%d records, %d copies (%.2f per record), %v messages, %.1f bytes per copy before compression",
		len(recs), total, float64(total)/float64(len(recs)), testutil.ToFloat64(p.m.messages),
		testutil.ToFloat64(p.m.bytes)/float64(total))
}

// waitFor polls cond until it holds, failing the test after a generous
// deadline (the machine may be slow; nothing here is timed).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestPublishBrokerOutage: the brokers go away; ingest keeps taking
// records without waiting, fills its bounded buffer, drops and counts the
// rest; a broker comes back (empty: the topic is created again) and what
// was buffered is delivered, then what follows.
func TestPublishBrokerOutage(t *testing.T) {
	recs := captureRecords(t, "../testdata/softflowd-v9.pcap")
	port := freePort(t)
	kf, broker := startKafka(t, port)
	const partitions = 4
	cfg := ingestConfig(broker, partitions)
	cfg.Publish.FlushBytes = 4 << 10
	cfg.Publish.BufferBytes = 16 * cfg.Publish.FlushBytes
	p, _ := startPublisher(t, cfg, false)

	// The buffer holds fewer records than the capture: feed it in steps.
	feed := func() {
		for i := 0; i < len(recs); i += 200 {
			p.Handle(recs[i:min(i+200, len(recs))])
			waitFor(t, "records acknowledged", func() bool { return p.Unacknowledged() == 0 })
		}
	}
	feed()
	waitFor(t, "ready", p.Ready)
	before := testutil.ToFloat64(p.m.records)

	kf.Close()
	waitFor(t, "records dropped while the broker is away", func() bool {
		p.Handle(recs[:100]) // returns at once: nothing waits for the broker
		return testutil.ToFloat64(p.m.dropped.WithLabelValues(dropBufferFull)) > 0
	})
	waitFor(t, "not ready while the broker is away", func() bool { return !p.Ready() })
	if got := testutil.ToFloat64(p.m.buffered); got > float64(cfg.Publish.BufferBytes) {
		t.Errorf("buffer at %v bytes, above buffer_bytes %d", got, cfg.Publish.BufferBytes)
	}
	waitFor(t, "a retry", func() bool { return testutil.ToFloat64(p.m.retries) > 0 })

	_, broker2 := startKafka(t, port)
	if broker2 != broker {
		t.Fatalf("broker came back on %s, not %s", broker2, broker)
	}
	waitFor(t, "the buffered records delivered", func() bool { return p.Unacknowledged() == 0 && p.Ready() })
	dropped := testutil.ToFloat64(p.m.dropped.WithLabelValues(dropBufferFull))
	feed()
	if d := testutil.ToFloat64(p.m.dropped.WithLabelValues(dropBufferFull)); d != dropped {
		t.Errorf("%v records dropped once the broker was back", d-dropped)
	}
	if err := p.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}

	after := int(testutil.ToFloat64(p.m.records) - before)
	got, losses := consumeCopies(t, broker, cfg.FlowsTopic, after)
	told := 0
	for _, ls := range losses {
		for _, l := range ls {
			told += l.Lost
		}
	}
	if want := int(testutil.ToFloat64(p.m.dropped.WithLabelValues(dropBufferFull))); told != want {
		t.Errorf("loss reports tell of %d copies lost, %d were dropped", told, want)
	}
	for k, c := range expectedCopies(recs, partitions) {
		if got[k] < c {
			t.Errorf("after the outage: partition %d sides %d: %d copies, want at least %d", k.partition, k.sides, got[k], c)
		}
	}
	// The kind depends on where the broker was cut (refused, reset).
	if sum(p.m.errors) == 0 {
		t.Error("no failed write counted")
	}
	t.Logf("dropped %v, retries %v, delivered after the outage %d copies",
		testutil.ToFloat64(p.m.dropped.WithLabelValues(dropBufferFull)), testutil.ToFloat64(p.m.retries), after)
}

// TestPublishIdleOutage: with no record flowing, readiness still follows
// the brokers (the sender asks for metadata while idle).
func TestPublishIdleOutage(t *testing.T) {
	port := freePort(t)
	kf, broker := startKafka(t, port)
	p, _ := startPublisher(t, ingestConfig(broker, 4), false)
	waitFor(t, "ready", p.Ready)
	kf.Close()
	waitFor(t, "not ready with the broker away", func() bool { return !p.Ready() })
	startKafka(t, port)
	waitFor(t, "ready once the broker is back", p.Ready)
}

// TestPublishSocketLoss: a loss on ingest's sockets reaches the owner of
// every partition, records flowing or not.
func TestPublishSocketLoss(t *testing.T) {
	_, broker := startKafka(t, 0)
	const partitions = 4
	cfg := ingestConfig(broker, partitions)
	p, _ := startPublisher(t, cfg, false)
	at := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	p.Lost(at, 5, 100)
	p.Lost(at.Add(time.Second), 0, 100) // nothing lost: nothing to tell
	if err := p.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Read until every partition told (no records to count).
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.ConsumeTopics(cfg.FlowsTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	told := map[int32][]Loss{}
	var d Decoder
	for len(told) < partitions && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			if _, err := d.Decode(r.Value); err != nil {
				t.Fatal(err)
			}
			told[r.Partition] = append(told[r.Partition], d.Losses()...)
		})
	}
	for part := range int32(partitions) {
		if l := told[part]; len(l) != 1 || l[0] != (Loss{At: at, Lost: 5, Received: 100}) {
			t.Errorf("partition %d: losses %+v", part, l)
		}
	}
}

// TestPublishStopDeadline: a broker that accepts connections and never
// answers holds nothing past Stop's deadline; what it did not acknowledge
// is dropped, counted and reported.
func TestPublishStopDeadline(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	cfg := ingestConfig(ln.Addr().String(), 4)
	cfg.Publish.WriteTimeout = time.Second
	p, _ := startPublisher(t, cfg, false)
	recs := []flow.Record{fullRecord(), fullRecord()}
	recs[1].DstAddr = recs[1].SrcAddr // one copy for both sides
	p.Handle(recs)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := p.Stop(ctx); err == nil {
		t.Fatal("Stop reported nothing lost")
	}
	if n := testutil.ToFloat64(p.m.dropped.WithLabelValues(dropUnacknowledged)); n != 3 {
		t.Errorf("%v copies dropped unacknowledged, want 3", n)
	}
}

// TestPublishSASL: the publisher authenticates as the alert sink does
// (internal/kafkaconn); a refused login is an error counted, not a crash.
func TestPublishSASL(t *testing.T) {
	kf, err := kfake.NewCluster(kfake.Ports(0), kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-256", "flowcheck", "s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	defer kf.Close()
	broker := kf.ListenAddrs()[0]
	for _, tc := range []struct {
		password string
		ok       bool
	}{{"s3cret", true}, {"wrong", false}} {
		cfg := ingestConfig(broker, 4)
		cfg.SASL = kafkaconn.SASLConfiguration{Mechanism: "scram-sha-256", Username: "flowcheck", Password: tc.password}
		cfg.Publish.WriteTimeout = 2 * time.Second
		p, _ := startPublisher(t, cfg, false)
		p.Handle([]flow.Record{fullRecord()})
		if tc.ok {
			waitFor(t, "acknowledged", func() bool { return p.Unacknowledged() == 0 && p.Ready() })
			continue
		}
		waitFor(t, "an error counted", func() bool { return sum(p.m.errors) > 0 })
		if p.Ready() {
			t.Error("ready with a refused login")
		}
	}
}

// sum adds up the counters of a vector.
func sum(c prometheus.Collector) float64 {
	ch := make(chan prometheus.Metric, 64)
	go func() { c.Collect(ch); close(ch) }()
	total := 0.0
	for m := range ch {
		var d dto.Metric
		if err := m.Write(&d); err == nil {
			total += d.GetCounter().GetValue()
		}
	}
	return total
}
