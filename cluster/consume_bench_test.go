package cluster

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/flowcheck/flowcheck/aggregate"
	"github.com/flowcheck/flowcheck/alert"
	"github.com/flowcheck/flowcheck/clock"
	"github.com/flowcheck/flowcheck/internal/cputime"
)

// noAlerts is an Engine without alerts: the benchmark measures the
// consumer and the host table.
type noAlerts struct{}

func (noAlerts) Engaged() []alert.Event     { return nil }
func (noAlerts) Adopt([]alert.Event) int    { return 0 }
func (noAlerts) Forget([]aggregate.HostKey) {}
func (noAlerts) Quiet([]aggregate.HostKey)  {}

// BenchmarkConsume publishes a softflowd capture's records, over and over,
// into an in-process Kafka (kfake) with the ingest role's publisher (32
// partitions), then one check worker's consumer reads them all into a real
// host table: one op is one record copy applied, from the consumer's start
// (joining the group, rebuilding each partition from its first message)
// to the last copy. It reports copies/s and the process's CPU per copy
// (the in-process broker's included); allocs/op count the broker's too.
func BenchmarkConsume(b *testing.B) {
	recs := captureRecords(b, "../testdata/softflowd-v9.pcap")
	_, broker := startKafka(b, 0)
	pcfg := ingestConfig(broker, 32)
	p, _ := startPublisher(b, pcfg, true)
	// About two copies per record (docs/cluster.md): b.N/2 records.
	for left := (b.N + 1) / 2; left > 0; left -= min(left, len(recs)) {
		p.Handle(recs[:min(left, len(recs))])
	}
	if err := p.Stop(context.Background()); err != nil {
		b.Fatal(err)
	}
	copies := int(p.Acknowledged())
	table, err := aggregate.New(aggregate.DefaultConfiguration(), aggregate.Dependencies{Registerer: prometheus.NewRegistry(), Clock: clock.NewManual(time.Now())})
	if err != nil {
		b.Fatal(err)
	}
	cfg := checkConfig(broker, "bench", 32)
	c, err := NewConsumer(cfg, ConsumerDependencies{Registerer: prometheus.NewRegistry(), Table: table, Engine: noAlerts{}})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	start, cpu0 := time.Now(), cputime.Process()
	if err := c.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	for int(testutil.ToFloat64(c.m.records)) < copies {
		time.Sleep(time.Millisecond)
	}
	elapsed, cpu := time.Since(start), cputime.Process()-cpu0
	b.StopTimer()
	if err := c.Stop(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(copies)/elapsed.Seconds(), "copies/s")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(copies), "cpu-ns/copy")
	b.ReportMetric(testutil.ToFloat64(c.m.bytes)/float64(copies), "value-bytes/copy")
}
