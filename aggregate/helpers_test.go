package aggregate

import (
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowcheck/flowcheck/clock"
	"github.com/flowcheck/flowcheck/flow"
)

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// newTestTable returns a table on a manual clock at t0.
func newTestTable(t testing.TB, cfg Configuration, deps Dependencies) (*HostTable, *clock.Manual, *prometheus.Registry) {
	t.Helper()
	clk := clock.NewManual(t0)
	reg := prometheus.NewRegistry()
	deps.Clock, deps.Registerer = clk, reg
	tbl, err := New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	return tbl, clk, reg
}

// rec builds a unidirectional record of one packet of 40 bytes.
func rec(src string, sp uint16, dst string, dp uint16, proto, flags uint8) flow.Record {
	return flow.Record{
		SrcAddr: netip.MustParseAddr(src), DstAddr: netip.MustParseAddr(dst),
		SrcPort: sp, DstPort: dp, Proto: proto, TCPFlags: flags, Bytes: 40, Packets: 1,
	}
}

func key(s string) HostKey { return HostKey{Addr: netip.MustParseAddr(s)} }

func snap(t testing.TB, tbl *HostTable, k HostKey) HostSnapshot {
	t.Helper()
	var s HostSnapshot
	if !tbl.Snapshot(k, &s) {
		t.Fatalf("host %v missing", k)
	}
	return s
}

// counterValue reads a counter (optionally one label set) from reg.
func counterValue(t testing.TB, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue next
				}
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

func netipAddr(last byte) netip.Addr { return netip.AddrFrom4([4]byte{192, 0, 2, last}) }
