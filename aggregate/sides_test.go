package aggregate

import (
	"slices"
	"testing"
	"time"

	"github.com/flowcheck/flowcheck/flow"
)

// TestSidesCopies drives the side flags record by record: a copy accounts
// only the host it names; one conversation's copies under each host's
// partition give each host its verdict once, also on a worker that
// receives both.
func TestSidesCopies(t *testing.T) {
	const a, b = "10.0.0.1", "10.0.0.2"
	probe := rec(a, 40000, b, 22, flow.ProtoTCP, syn)
	rst := rec(b, 22, a, 40000, flow.ProtoTCP, rstAck)
	side := func(r flow.Record, s flow.Side) flow.Record { r.Sides = s; return r }
	cases := []struct {
		name    string
		batches [][]flow.Record
		hosts   []string // hosts the table holds
		// refusedA and refusedB: want a's egress, b's ingress refused TCP.
		refusedA, refusedB uint64
	}{
		{"whole", [][]flow.Record{{probe, rst}}, []string{a, b}, 1, 1},
		{"a's partition only", [][]flow.Record{{side(probe, flow.SideSrc), side(rst, flow.SideDst)}}, []string{a}, 1, 0},
		{"b's partition only", [][]flow.Record{{side(probe, flow.SideDst), side(rst, flow.SideSrc)}}, []string{b}, 0, 1},
		{"both partitions, one message each", [][]flow.Record{
			{side(probe, flow.SideSrc), side(rst, flow.SideDst)},
			{side(probe, flow.SideDst), side(rst, flow.SideSrc)},
		}, []string{a, b}, 1, 1},
		{"both partitions, interleaved", [][]flow.Record{
			{side(probe, flow.SideSrc)}, {side(probe, flow.SideDst)},
			{side(rst, flow.SideSrc)}, {side(rst, flow.SideDst)},
		}, []string{a, b}, 1, 1},
		{"one partition for both", [][]flow.Record{{side(probe, flow.SideSrc|flow.SideDst), side(rst, flow.SideSrc|flow.SideDst)}}, []string{a, b}, 1, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tbl, clk, _ := newTestTable(t, DefaultConfiguration(), Dependencies{})
			for _, batch := range tc.batches {
				tbl.Apply(batch)
			}
			clk.Advance(DefaultConfiguration().ReplyWindow + time.Second)
			tbl.Advance(clk.Now())
			var hosts []string
			for _, k := range tbl.AppendKeys(nil) {
				hosts = append(hosts, k.Addr.String())
			}
			slices.Sort(hosts)
			if !slices.Equal(hosts, tc.hosts) {
				t.Fatalf("hosts %v, want %v", hosts, tc.hosts)
			}
			for _, h := range tc.hosts {
				s := snap(t, tbl, key(h))
				if s.BytesSent != 40 || s.BytesRcvd != 40 || s.PacketsSent != 1 || s.PacketsRcvd != 1 {
					t.Errorf("%s: traffic %d/%d B %d/%d packets, want each record once", h, s.BytesSent, s.BytesRcvd, s.PacketsSent, s.PacketsRcvd)
				}
				got, want := s.RefusedFlows.EgressTCP, tc.refusedA
				if h == b {
					got, want = s.RefusedFlows.IngressTCP, tc.refusedB
				}
				if got != want {
					t.Errorf("%s: refused %+v, want %d", h, s.RefusedFlows, want)
				}
			}
		})
	}
}
