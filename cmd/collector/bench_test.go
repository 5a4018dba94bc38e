package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/flowcheck/flowcheck/clock"
	"github.com/flowcheck/flowcheck/cmd/flowgen/gen"
	"github.com/flowcheck/flowcheck/pcapsrc"
)

// benchPipeline builds and starts the pipeline of the shipped
// configuration, on a manual clock set to start.
func benchPipeline(b *testing.B, start time.Time) (*pipeline, *clock.Manual) {
	b.Helper()
	cfg, err := loadConfig("", noEnv)
	if err != nil {
		b.Fatal(err)
	}
	clk := clock.NewManual(start)
	p, err := build(cfg, clk, slog.New(slog.DiscardHandler), io.Discard, false)
	if err != nil {
		b.Fatal(err)
	}
	if err := p.start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.stop(slog.New(slog.DiscardHandler)) })
	return p, clk
}

// decodedFlows is the number of flow records the collector decoded.
func decodedFlows(p *pipeline) uint64 {
	var n uint64
	for _, e := range p.collector.Exporters() {
		n += e.Flows
	}
	return n
}

// BenchmarkPipeline feeds the export packets of softflowd-ipfix.pcap
// through the replay data path: decode, host table, scheduler. One op is
// the whole capture.
func BenchmarkPipeline(b *testing.B) {
	r, err := pcapsrc.Open("../../testdata/softflowd-ipfix.pcap")
	if err != nil {
		b.Fatal(err)
	}
	var dgs []pcapsrc.Datagram
	for {
		dg, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			b.Fatal(err)
		}
		dg.Payload = append([]byte(nil), dg.Payload...)
		dgs = append(dgs, dg)
	}
	r.Close()
	p, clk := benchPipeline(b, dgs[0].Time)
	b.ReportAllocs()
	for b.Loop() {
		for _, dg := range dgs {
			clk.Set(dg.Time)
			p.collector.HandleDatagram(dg.Src, dg.Payload, dg.Time)
			p.sched.advance(clk.Now())
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(decodedFlows(p)), "ns/flow")
}

// BenchmarkPipelineFlowgen measures decode and host table together on
// flowgen's stream as bench/peers.sh sends it by default (NetFlow v9,
// 100 000 hosts, 4 exporters taking turns), without sockets: the datagrams
// are encoded beforehand, and each goroutine hands its exporters'
// datagrams to HandleDatagram, which passes each datagram's 25 records to
// the host table alone (as a live worker without a backlog does). This is
// what the engine takes on this machine without the kernel's UDP path and
// the sender, which share the CPUs in the peer runs. One op is one flow
// record.
func BenchmarkPipelineFlowgen(b *testing.B) {
	const exporters = 4
	pc := gen.DefaultPopulationConfiguration()
	pc.Hosts = 100_000
	pop, err := gen.NewPopulation(pc)
	if err != nil {
		b.Fatal(err)
	}
	boot := time.Unix(1_700_000_000, 0).UTC()
	now := boot.Add(time.Hour)
	rpp := gen.MaxRecordsPerPacket(gen.V9)
	scratch := make([]gen.Flow, rpp)
	// dgs[e] is exporter e's share of one cycle of the stream.
	dgs := make([][][]byte, exporters)
	encs := make([]*gen.Encoder, exporters)
	for e := range encs {
		if encs[e], err = gen.NewEncoder(gen.V9, 0, 20, boot); err != nil {
			b.Fatal(err)
		}
	}
	for d, pos := 0, 0; d*rpp < pop.Len(); d++ {
		e := d % exporters
		pos = pop.Fill(scratch, pos)
		dgs[e] = append(dgs[e], encs[e].Append(nil, scratch, now))
	}
	for _, workers := range []int{1, 2} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			p, _ := benchPipeline(b, now)
			// Warm up: every host in the table, every template known.
			for e := range exporters {
				from := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, byte(2 + e)}), 9995)
				for _, dg := range dgs[e] {
					p.collector.HandleDatagram(from, dg, now)
				}
			}
			before := decodedFlows(p)
			b.ResetTimer()
			var wg sync.WaitGroup
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					// Worker w takes exporters w, w+workers, ...
					// in turn, one datagram each, until it has
					// decoded its share of b.N records.
					for done, i := 0, 0; done < b.N/workers; i++ {
						for e := w; e < exporters; e += workers {
							from := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, byte(2 + e)}), 9995)
							p.collector.HandleDatagram(from, dgs[e][i%len(dgs[e])], now)
							done += rpp
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			got := decodedFlows(p) - before
			b.ReportMetric(float64(got)/b.Elapsed().Seconds(), "records/s")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(got), "ns/record")
		})
	}
}
