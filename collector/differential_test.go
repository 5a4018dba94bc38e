package collector

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flowcheck/flowcheck/flow"
	"github.com/prometheus/client_golang/prometheus"
)

// The differential tests run the same datagrams through the collector's
// decode path (compiled template plans, plan.go) and through the reference
// path of oracle_test.go (goflow2's data set decoder and the DataField
// mapping it replaced), each with its own component, and require the same
// flow records, in the same order, and the same metrics (decode errors by
// reason, template events, pending bytes, sampling-unknown, ...).
//
// The two paths agree on every input, including goflow2's corner cases,
// which the plan walk reproduces on purpose: a set keeps yielding records
// while its fixed-length fields fit (so a template of only variable-length
// fields always ends its set with an error and loses the set), a value cut
// short by the end of the set is read short, and an options record without
// room for its options keeps its scope values.

// shadow is the reference decoder run beside a component.
type shadow struct {
	c       *Component
	reg     *prometheus.Registry
	o       *oracle
	records []flow.Record
}

func newShadow(t testing.TB, cfg Configuration) *shadow {
	t.Helper()
	s := &shadow{reg: prometheus.NewRegistry()}
	c, err := New(cfg, Dependencies{Registerer: s.reg, Flows: func(b []flow.Record) { s.records = append(s.records, b...) }})
	if err != nil {
		t.Fatal(err)
	}
	s.c, s.o = c, newOracle(c)
	return s
}

func (s *shadow) send(from netip.AddrPort, payload []byte, at time.Time) {
	s.o.handle(from, payload, at, kindAuto)
}

// compare fails t when the records or the metrics differ; it takes the
// records the shadow collected so far.
func (s *shadow) compare(t testing.TB, what string, got []flow.Record, reg *prometheus.Registry) {
	t.Helper()
	want := s.records
	s.records = nil
	if len(got) != len(want) {
		t.Errorf("%s: %d records, reference path %d", what, len(got), len(want))
	}
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			t.Errorf("%s: record %d differs:\n plan      %+v\n reference %+v", what, i, got[i], want[i])
			break
		}
	}
	if a, b := metricDump(t, reg), metricDump(t, s.reg); a != b {
		t.Errorf("%s: metrics differ:\n plan:\n%s\n reference:\n%s", what, a, b)
	}
}

// metricDump renders every counter and gauge of a registry, one per line.
func metricDump(t testing.TB, reg *prometheus.Registry) string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			lines = append(lines, fmt.Sprintf("%s{%s} %v %v", mf.GetName(), strings.Join(labels, ","),
				m.GetCounter().GetValue(), m.GetGauge().GetValue()))
		}
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// diffDecode runs datagrams through both paths, compares the outcome and
// returns the number of records.
func diffDecode(t testing.TB, what string, dgs []datagram) int {
	t.Helper()
	reg := prometheus.NewRegistry()
	var got []flow.Record
	c, err := New(DefaultConfiguration(), Dependencies{Registerer: reg, Flows: func(b []flow.Record) { got = append(got, b...) }})
	if err != nil {
		t.Fatal(err)
	}
	s := newShadow(t, DefaultConfiguration())
	for _, dg := range dgs {
		c.HandleDatagram(dg.from, dg.payload, dg.received)
		s.send(dg.from, dg.payload, dg.received)
	}
	s.compare(t, what, got, reg)
	return len(got)
}

// TestDifferentialCaptures compares the two paths on every capture.
func TestDifferentialCaptures(t *testing.T) {
	files, err := filepath.Glob("../testdata/*.pcap")
	if err != nil || len(files) == 0 {
		t.Fatalf("no captures: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			t.Parallel()
			n := diffDecode(t, f, loadCapture(t, f))
			// The captures of exporters must exercise the data path
			// (the others are raw traffic).
			if base := filepath.Base(f); n == 0 && (strings.HasPrefix(base, "softflowd") || strings.HasPrefix(base, "pmacctd")) {
				t.Errorf("%s: no records", f)
			}
		})
	}
}

// FuzzDifferential compares the two paths on NetFlow v5, v9 and IPFIX
// input, sent after the template datagrams of the captures, then again,
// then from another exporter.
func FuzzDifferential(f *testing.F) {
	v9, v9prime := v9Seeds(f)
	ipfix, ipfixPrime := ipfixSeeds(f)
	for _, s := range append(append(v9, ipfix...), v5Seeds(f)...) {
		f.Add(s)
	}
	prime := append(v9prime, ipfixPrime...)
	f.Fuzz(func(t *testing.T, b []byte) {
		var dgs []datagram
		for _, p := range prime {
			dgs = append(dgs, datagram{exp1, p, t0})
		}
		dgs = append(dgs, datagram{exp1, b, t0}, datagram{exp1, b, t0.Add(time.Second)}, datagram{exp2, b, t0})
		diffDecode(t, "fuzz input", dgs)
	})
}
