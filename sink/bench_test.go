package sink

import (
	"slices"
	"testing"
	"time"

	"github.com/flowcheck/flowcheck/sink/spool"
)

// BenchmarkKafkaSink measures alerts/s from Publish to acknowledgement by
// an in-process kfake broker (acks=all), per compression codec.
func BenchmarkKafkaSink(b *testing.B) {
	for _, codec := range []string{"none", "lz4"} {
		b.Run(codec, func(b *testing.B) {
			_, addr := startCluster(b, 0)
			cfg := testConfig(b, addr)
			cfg.Kafka.Compression = codec
			cfg.Kafka.QueueSize = 65536
			c := start(b, cfg)
			defer stop(b, c)
			k := kafkaOf(c)
			c.Publish(event(0)) // creates the topic outside the timing
			waitFor(b, "first delivery", func() bool { return counter(c, k.m.delivered, "kafka", "flowcheck.alerts") == 1 })
			b.ReportAllocs()
			b.ResetTimer()
			begin := time.Now()
			for i := range b.N {
				c.Publish(event(i))
			}
			waitFor(b, "delivery", func() bool {
				return counter(c, k.m.delivered, "kafka", "flowcheck.alerts") >= float64(b.N+1)
			})
			b.ReportMetric(float64(b.N)/time.Since(begin).Seconds(), "alerts/s")
		})
	}
}

// BenchmarkKafkaSpool measures alerts/s into the spool while the broker is
// down (Publish → encode → spool append), then the replay rate to a broker.
func BenchmarkKafkaSpool(b *testing.B) {
	addr, port := freeAddr(b)
	cfg := testConfig(b, addr)
	cfg.Kafka.QueueSize = 1
	cfg.Kafka.Spool.MaxBytes = 4 << 30
	cfg.Kafka.Spool.SegmentBytes = 16 << 20
	cfg.Kafka.RetryBackoffMin = time.Hour // keep the drainer out of the way
	cfg.Kafka.RetryBackoffMax = time.Hour
	c := start(b, cfg)
	k := kafkaOf(c)
	b.ReportAllocs()
	b.ResetTimer()
	begin := time.Now()
	for i := range b.N {
		c.Publish(event(i))
	}
	b.ReportMetric(float64(b.N)/time.Since(begin).Seconds(), "spooled/s")
	b.StopTimer()
	stop(b, c)
	if got := k.spool.Len(); got != b.N {
		b.Fatalf("spool holds %d, want %d", got, b.N)
	}
	startCluster(b, port)
	cfg.Kafka.RetryBackoffMin = 10 * time.Millisecond
	cfg.Kafka.RetryBackoffMax = 100 * time.Millisecond
	replayStart := time.Now()
	c = start(b, cfg)
	defer stop(b, c)
	k = kafkaOf(c)
	waitFor(b, "replay", func() bool { return k.spool.Len() == 0 })
	b.ReportMetric(float64(b.N)/time.Since(replayStart).Seconds(), "replayed/s")
}

// BenchmarkPublishOutage measures what Publish costs the tick while the
// brokers are down, per spool fsync policy: the latency of each call
// (p50, p99, max) and the rate at which the alerts reach the spool. A burst
// publishes 1 000 alerts (a tick raising many) and waits, untimed, for the
// spool to hold them; sustained publishes without a pause, faster than any
// disk takes them.
func BenchmarkPublishOutage(b *testing.B) {
	for _, mode := range []string{"burst", "sustained"} {
		for _, fsync := range []string{"always", "batch", "never"} {
			b.Run(mode+"/fsync="+fsync, func(b *testing.B) { benchPublishOutage(b, fsync, mode == "burst") })
		}
	}
}

func benchPublishOutage(b *testing.B, fsync string, bursts bool) {
	addr, _ := freeAddr(b)
	cfg := testConfig(b, addr)
	cfg.Kafka.QueueSize = 1
	cfg.Kafka.Spool.Fsync = spool.FsyncPolicy(fsync)
	cfg.Kafka.Spool.MaxBytes = 4 << 30
	cfg.Kafka.Spool.SegmentBytes = 16 << 20
	cfg.Kafka.RetryBackoffMin = time.Hour // keep the drainer out of the way
	cfg.Kafka.RetryBackoffMax = time.Hour
	c := start(b, cfg)
	defer stop(b, c)
	k := kafkaOf(c)
	c.Publish(event(0)) // fails once: the sink is spooling from then on
	waitFor(b, "spooling", func() bool { return k.spooling.Load() && k.spool.Len() == 1 })
	spooled := func(n int) func() bool {
		return func() bool { return counter(c, k.m.spooled, "kafka", "flowcheck.alerts") >= float64(n+1) }
	}
	took := make([]time.Duration, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	begin := time.Now()
	for i := range b.N {
		if bursts && i > 0 && i%1000 == 0 {
			b.StopTimer()
			waitFor(b, "burst spooled", spooled(i))
			b.StartTimer()
		}
		t := time.Now()
		c.Publish(event(i + 1))
		took[i] = time.Since(t)
	}
	b.StopTimer()
	waitFor(b, "spooled", spooled(b.N))
	b.ReportMetric(float64(b.N)/time.Since(begin).Seconds(), "spooled/s")
	slices.Sort(took)
	b.ReportMetric(float64(took[b.N/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(took[b.N*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(float64(took[b.N-1].Microseconds()), "max-µs")
	b.ReportMetric(sum(k.m.dropped), "dropped")
}
