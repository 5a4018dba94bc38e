// Package capturetest runs real export captures through the real ingest
// path (pcapsrc → collector.HandleDatagram), in capture time, for the tests
// of the stages behind it: host state and host checks.
package capturetest

import (
	"errors"
	"io"
	"testing"
	"time"

	"github.com/flowcheck/flowcheck/clock"
	"github.com/flowcheck/flowcheck/collector"
	"github.com/flowcheck/flowcheck/flow"
	"github.com/flowcheck/flowcheck/pcapsrc"
	"github.com/prometheus/client_golang/prometheus"
)

// Start returns the capture time of the first datagram of the capture at
// path: the time to start a clock.Manual at, before building what Feed
// feeds.
func Start(t testing.TB, path string) time.Time {
	t.Helper()
	src, err := pcapsrc.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dg, err := src.Next()
	if err != nil {
		t.Fatalf("%s: first datagram: %v", path, err)
	}
	return dg.Time
}

// Feed decodes every datagram of the capture at path with a collector on
// its default configuration, as the pipeline does in replay: clk is set to
// each datagram's capture time, the datagram is decoded synchronously into
// flows, then after (when not nil) is called with that time. It returns the
// number of flow records ingest delivered.
func Feed(t testing.TB, path string, clk *clock.Manual, flows flow.Handler, after func(now time.Time)) int {
	t.Helper()
	src, err := pcapsrc.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	records := 0
	col, err := collector.New(collector.DefaultConfiguration(), collector.Dependencies{
		Registerer: prometheus.NewRegistry(),
		Clock:      clk,
		Flows: func(batch []flow.Record) {
			records += len(batch)
			flows(batch)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	for {
		dg, err := src.Next()
		if errors.Is(err, io.EOF) {
			return records
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		clk.Set(dg.Time)
		col.HandleDatagram(dg.Src, dg.Payload, dg.Time)
		if after != nil {
			after(clk.Now())
		}
	}
}
