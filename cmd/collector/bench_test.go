package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"

	"github.com/flowcheck/flowcheck/clock"
	"github.com/flowcheck/flowcheck/pcapsrc"
)

// BenchmarkPipeline feeds the export packets of scan-mix.pcap (softflowd
// IPFIX: 155 datagrams, 4856 flow records) through the replay data path:
// decode, host table, scheduler. One op is the whole capture.
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

	cfg, err := loadConfig("", noEnv)
	if err != nil {
		b.Fatal(err)
	}
	clk := clock.NewManual(dgs[0].Time)
	p, err := build(context.Background(), cfg, clk, slog.New(slog.DiscardHandler), io.Discard, false)
	if err != nil {
		b.Fatal(err)
	}
	if err := p.start(false); err != nil {
		b.Fatal(err)
	}
	defer p.stop(slog.New(slog.DiscardHandler))
	b.ReportAllocs()
	for b.Loop() {
		for _, dg := range dgs {
			clk.Set(dg.Time)
			p.collector.HandleDatagram(dg.Src, dg.Payload, dg.Time)
			p.sched.advance(clk.Now())
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*4856), "ns/flow")
}
