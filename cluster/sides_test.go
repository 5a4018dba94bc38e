package cluster

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowcheck/flowcheck/aggregate"
	"github.com/flowcheck/flowcheck/clock"
	"github.com/flowcheck/flowcheck/flow"
	"github.com/flowcheck/flowcheck/internal/capturetest"
)

// splitCopies returns the copies of batch that the ingest publishes to each
// of n partitions: each record under its source's partition with SideSrc
// and its destination's with SideDst, once with both when they meet.
func splitCopies(batch []flow.Record, n int) [][]flow.Record {
	parts := make([][]flow.Record, n)
	for _, r := range batch {
		if !r.SrcAddr.IsValid() || !r.DstAddr.IsValid() {
			continue
		}
		ps, pd := PartitionOf(r.SrcAddr.Unmap(), r.VLAN, n), PartitionOf(r.DstAddr.Unmap(), r.VLAN, n)
		if ps == pd {
			r.Sides = flow.SideSrc | flow.SideDst
			parts[ps] = append(parts[ps], r)
			continue
		}
		r.Sides = flow.SideSrc
		parts[ps] = append(parts[ps], r)
		r.Sides = flow.SideDst
		parts[pd] = append(parts[pd], r)
	}
	return parts
}

// timedBatch is one datagram's records and the capture time they came at.
type timedBatch struct {
	at      time.Time
	records []flow.Record
}

// captureBatches decodes a capture through the real ingest path and keeps
// its batches.
func captureBatches(t *testing.T, path string) (time.Time, []timedBatch) {
	t.Helper()
	start := capturetest.Start(t, path)
	clk := clock.NewManual(start)
	var out []timedBatch
	capturetest.Feed(t, path, clk, func(b []flow.Record) {
		out = append(out, timedBatch{clk.Now(), slices.Clone(b)})
	}, nil)
	return start, out
}

// allFigures returns every host's snapshot of tbl, by key, L7 sorted by
// name.
func allFigures(tbl *aggregate.HostTable) map[aggregate.HostKey]aggregate.HostSnapshot {
	out := map[aggregate.HostKey]aggregate.HostSnapshot{}
	for _, k := range tbl.AppendKeys(nil) {
		var s aggregate.HostSnapshot
		tbl.Snapshot(k, &s)
		slices.SortFunc(s.L7, func(a, b aggregate.L7Stat) int { return strings.Compare(a.Name, b.Name) })
		out[k] = s
	}
	return out
}

// TestSidesMatchWhole feeds real exports split as a cluster's ingest
// publishes them (2, 3 and 32 partitions) to 1–3 simulated owners, each a
// host table fed the copies of its partitions (one message per partition
// per datagram, in order), and compares every host's figures with one
// table fed the records whole: traffic, L7, MAC, flags, the no-reply and
// refused sets and counters, sampling. An owner of several partitions
// receives two copies of most records and must count each once.
func TestSidesMatchWhole(t *testing.T) {
	files := []string{
		"../testdata/softflowd-v9.pcap",                    // unidirectional, pairs and tracker
		"../testdata/softflowd-ipfix-bidir.pcap",           // biflows
		"../testdata/pmacctd-ipfix.pcap",                   // another exporter's order
		"../testdata/softflowd-filtered-ipfix.pcap",        // one-sided scans, IPv6
		"../aggregate/testdata/pmacctd-nfprobe-v9-10.pcap", // sampled 1-in-10
		"../testdata/softflowd-filtered-ipfix-bidir.pcap",
	}
	layouts := []struct{ partitions, owners int }{{2, 1}, {2, 2}, {3, 2}, {32, 1}, {32, 3}}
	for _, file := range files {
		t.Run(strings.TrimSuffix(file[strings.LastIndex(file, "/")+1:], ".pcap"), func(t *testing.T) {
			t.Parallel()
			start, batches := captureBatches(t, file)
			cfg := aggregate.DefaultConfiguration()
			newTable := func() (*aggregate.HostTable, *clock.Manual) {
				clk := clock.NewManual(start)
				tbl, err := aggregate.New(cfg, aggregate.Dependencies{Registerer: prometheus.NewRegistry(), Clock: clk})
				if err != nil {
					t.Fatal(err)
				}
				return tbl, clk
			}
			whole, wclk := newTable()
			for _, b := range batches {
				wclk.Set(b.at)
				whole.Apply(b.records)
				whole.Advance(b.at)
			}
			end := wclk.Now().Add(cfg.ReplyWindow + time.Second)
			whole.Advance(end)
			want := allFigures(whole)
			var oneSided int
			for _, s := range want {
				oneSided += int(s.Unidirectional.Egress() + s.RefusedFlows.Egress())
			}
			if oneSided == 0 {
				t.Fatal("no one-sided or refused conversation in the capture: the test proves nothing")
			}

			for _, l := range layouts {
				t.Run(fmt.Sprintf("partitions=%d,owners=%d", l.partitions, l.owners), func(t *testing.T) {
					tables := make([]*aggregate.HostTable, l.owners)
					clocks := make([]*clock.Manual, l.owners)
					for i := range tables {
						tables[i], clocks[i] = newTable()
					}
					for _, b := range batches {
						for p, copies := range splitCopies(b.records, l.partitions) {
							o := p % l.owners
							clocks[o].Set(b.at)
							tables[o].Apply(copies)
						}
						for o := range tables {
							clocks[o].Set(b.at)
							tables[o].Advance(b.at)
						}
					}
					got := map[aggregate.HostKey]aggregate.HostSnapshot{}
					for o, tbl := range tables {
						tbl.Advance(end)
						for k, s := range allFigures(tbl) {
							if p := PartitionOf(k.Addr, k.VLAN, l.partitions); p%l.owners != o {
								t.Errorf("%v: on owner %d, its partition %d is owner %d's", k, o, p, p%l.owners)
							}
							got[k] = s
						}
					}
					if len(got) != len(want) {
						t.Errorf("%d hosts across the owners, want %d", len(got), len(want))
					}
					for k, w := range want {
						if g, ok := got[k]; !ok {
							t.Errorf("%v: missing", k)
						} else if !reflect.DeepEqual(g, w) {
							t.Errorf("%v:\n got %+v\nwant %+v", k, g, w)
						}
					}
				})
			}
		})
	}
}
