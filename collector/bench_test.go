package collector

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/flowcheck/flowcheck/aggregate"
	"github.com/flowcheck/flowcheck/flow"
	"github.com/flowcheck/flowcheck/pcapsrc"
	"github.com/netsampler/goflow2/v2/decoders/netflow"
	"github.com/netsampler/goflow2/v2/decoders/netflowlegacy"
	"github.com/netsampler/goflow2/v2/producer"
	protoproducer "github.com/netsampler/goflow2/v2/producer/proto"
	"github.com/prometheus/client_golang/prometheus"
)

type datagram struct {
	from     netip.AddrPort
	payload  []byte
	received time.Time
}

// loadCapture reads a capture's datagrams into memory.
func loadCapture(tb testing.TB, path string) []datagram {
	tb.Helper()
	r, err := pcapsrc.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer r.Close()
	var out []datagram
	for {
		d, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, datagram{d.Src, bytes.Clone(d.Payload), d.Time})
	}
}

var benchCaptures = []struct{ name, file string }{
	{"v5", "softflowd-v5"},
	{"v9", "softflowd-v9"},
	{"ipfix", "softflowd-ipfix"},
}

// BenchmarkDecode measures the collector's decode path per flow record, its
// previous path through goflow2's decoders (the differential tests'
// reference), and goflow2's own decoder+producer path, on the same
// datagrams.
func BenchmarkDecode(b *testing.B) {
	for _, bc := range benchCaptures {
		dgs := loadCapture(b, "../testdata/"+bc.file+".pcap")
		b.Run(bc.name+"/flowcheck", func(b *testing.B) {
			var flows uint64
			c := newTestComponent(b, DefaultConfiguration(), func(batch []flow.Record) { flows += uint64(len(batch)) })
			d := newDecoder(c)
			run := func() {
				for _, dg := range dgs {
					d.handle(dg.from, dg.payload, dg.received, kindAuto)
					d.flush()
				}
			}
			run() // learn the templates
			reportPerFlow(b, &flows, run)
		})
		b.Run(bc.name+"/goflow2-decoders", func(b *testing.B) {
			// The collector's previous path (oracle_test.go): goflow2's
			// data set and v5 decoders, then the DataField mapping.
			var flows uint64
			c := newTestComponent(b, DefaultConfiguration(), func(batch []flow.Record) { flows += uint64(len(batch)) })
			o := newOracle(c)
			run := func() {
				for _, dg := range dgs {
					o.handle(dg.from, dg.payload, dg.received, kindAuto)
				}
			}
			run()
			reportPerFlow(b, &flows, run)
		})
		b.Run(bc.name+"/goflow2-producer", func(b *testing.B) {
			cfg, err := (&protoproducer.ProducerConfig{}).Compile()
			if err != nil {
				b.Fatal(err)
			}
			prod, err := protoproducer.CreateProtoProducer(cfg, protoproducer.CreateSamplingSystem)
			if err != nil {
				b.Fatal(err)
			}
			templates := netflow.CreateTemplateSystem()
			var flows uint64
			run := func() {
				for _, dg := range dgs {
					var msg any
					buf := bytes.NewBuffer(dg.payload)
					if bc.name == "v5" {
						var p netflowlegacy.PacketNetFlowV5
						if err := netflowlegacy.DecodeMessageVersion(buf, &p); err != nil {
							b.Fatal(err)
						}
						msg = &p
					} else {
						var p9 netflow.NFv9Packet
						var p10 netflow.IPFIXPacket
						if err := netflow.DecodeMessageVersion(buf, templates, &p9, &p10); err != nil {
							continue // data before its template: goflow2 drops the datagram
						}
						msg = &p9
						if bc.name == "ipfix" {
							msg = &p10
						}
					}
					out, err := prod.Produce(msg, &producer.ProduceArgs{Src: dg.from, SamplerAddress: dg.from.Addr(), TimeReceived: dg.received})
					if err != nil {
						b.Fatal(err)
					}
					flows += uint64(len(out))
					prod.Commit(out)
				}
			}
			run()
			reportPerFlow(b, &flows, run)
		})
	}
}

// reportPerFlow runs fn b.N times and reports ns and allocations per flow.
func reportPerFlow(b *testing.B, flows *uint64, fn func()) {
	b.Helper()
	*flows = 0
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	for b.Loop() {
		fn()
	}
	b.StopTimer()
	runtime.ReadMemStats(&after)
	if *flows == 0 {
		b.Fatal("no flows decoded")
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(*flows), "ns/flow")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(*flows), "allocs/flow")
}

// BenchmarkRealFeed runs the datagrams of a real export (softflowd's
// NetFlow v9, 31 records a datagram) through a worker's decode and the
// host table (aggregate.HostTable.Apply, as the daemon wires it), handing
// the records on every datagrams_per_flush datagrams: one datagram per
// call is what a worker without a backlog did at low rates. One op is one
// datagram. Its instruction counts (valgrind --tool=callgrind) are in
// docs/performance.md.
func BenchmarkRealFeed(b *testing.B) {
	dgs := loadCapture(b, "../testdata/softflowd-v9.pcap")
	for _, per := range []int{1, 8, 32} {
		b.Run(fmt.Sprintf("datagrams_per_flush=%d", per), func(b *testing.B) {
			table, err := aggregate.New(aggregate.DefaultConfiguration(), aggregate.Dependencies{Registerer: prometheus.NewRegistry()})
			if err != nil {
				b.Fatal(err)
			}
			c := newTestComponent(b, DefaultConfiguration(), table.Apply)
			d := newDecoder(c)
			// Warm up: templates known, hosts in the table.
			for _, dg := range dgs {
				d.handle(dg.from, dg.payload, dg.received, kindNetFlow)
			}
			d.flush()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				dg := &dgs[i%len(dgs)]
				d.handle(dg.from, dg.payload, dg.received, kindNetFlow)
				if i++; i%per == 0 {
					d.flush()
				}
			}
			d.flush()
		})
	}
}
