package cluster

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flowcheck/flowcheck/internal/cputime"
)

// BenchmarkPublish feeds a softflowd capture's records, over and over, to
// a publisher writing into an in-process Kafka (kfake), from two
// goroutines as the two decode workers do, and waits for every copy to be
// acknowledged: one op is one record handed in. It reports records/s, the
// copies per record, and the Kafka bytes per record copy (compressed, as
// the consumer fetched them) and before compression.
func BenchmarkPublish(b *testing.B) {
	const chunk = 256
	recs := captureRecords(b, "../testdata/softflowd-v9.pcap")
	recs = recs[:len(recs)/chunk*chunk]
	_, broker := startKafka(b, 0)
	cfg := ingestConfig(broker, 32)
	p, _ := startPublisher(b, cfg, true)
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	start, cpu0 := time.Now(), cputime.Process()
	done := make(chan struct{})
	for range 2 {
		go func() {
			defer func() { done <- struct{}{} }()
			for {
				i := int(next.Add(chunk)) - chunk
				if i >= b.N {
					return
				}
				off := i % len(recs)
				p.Handle(recs[off : off+min(chunk, b.N-i)])
			}
		}()
	}
	<-done
	<-done
	if err := p.Stop(context.Background()); err != nil {
		b.Fatal(err)
	}
	elapsed, cpu := time.Since(start), cputime.Process()-cpu0
	b.StopTimer()
	// The process's CPU time: the in-process broker's included.
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/record")
	copies := testutil.ToFloat64(p.m.records)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "records/s")
	b.ReportMetric(copies/float64(b.N), "copies/record")
	b.ReportMetric(testutil.ToFloat64(p.m.bytes)/copies, "value-bytes/copy")
	b.ReportMetric(kafkaBytes(b, broker, cfg.FlowsTopic, int64(copies))/copies, "kafka-bytes/copy")
}

// kafkaBytes consumes the topic to its end and returns the compressed
// bytes of the record batches fetched.
func kafkaBytes(b *testing.B, broker, topic string, copies int64) float64 {
	var compressed, records atomic.Int64
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.WithHooks(batchHook{&compressed, &records}))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	var d Decoder
	var seen int64
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for seen < copies && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			recs, err := d.Decode(r.Value)
			if err != nil {
				b.Fatal(err)
			}
			seen += int64(len(recs))
		})
	}
	if seen < copies {
		b.Fatalf("consumed %d of %d copies", seen, copies)
	}
	return float64(compressed.Load())
}

// batchHook sums the compressed size of the fetched record batches.
type batchHook struct{ compressed, records *atomic.Int64 }

func (h batchHook) OnFetchBatchRead(_ kgo.BrokerMetadata, _ string, _ int32, m kgo.FetchBatchMetrics) {
	h.compressed.Add(int64(m.CompressedBytes))
	h.records.Add(int64(m.NumRecords))
}
