package aggregate

import (
	"math/rand/v2"
	"net/netip"
	"reflect"
	"testing"

	"github.com/flowcheck/flowcheck/flow"
)

// TestBatchSumsAsRecords applies random batches whole and record by record
// to two tables: summing a batch by host (batchTraffic) must leave every
// host as the records one at a time would: traffic, L7 entries in the
// same order (folded into "Other" at the same cap), the last MAC, the
// refusals at the ceiling.
func TestBatchSumsAsRecords(t *testing.T) {
	cases := []struct {
		name     string
		hosts    int
		maxHosts int
		maxL7    int
		records  int
	}{
		{"few hosts, L7 cap reached", 4, 1000, 3, 400},
		{"many hosts", 300, 100_000, 32, 600},
		{"ceiling refuses hosts", 40, 20, 4, 400},
		{"one host", 1, 1000, 2, 50},
	}
	ports := []uint16{80, 443, 22, 25, 53, 3389, 6885, 40001, 5353}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfiguration()
			cfg.MaxL7Protocols, cfg.MaxHosts = tc.maxL7, tc.maxHosts
			whole, _, regWhole := newTestTable(t, cfg, Dependencies{})
			single, _, _ := newTestTable(t, cfg, Dependencies{})
			rng := rand.New(rand.NewPCG(uint64(tc.hosts), 7))
			addr := func() netip.Addr {
				return netip.AddrFrom4([4]byte{10, 0, byte(rng.IntN(2)), byte(1 + rng.IntN(tc.hosts))})
			}
			macs := [][6]byte{{}, {}, {2, 0, 0, 0, 0, 1}, {2, 0, 0, 0, 0, 2}}
			batch := make([]flow.Record, tc.records)
			for i := range batch {
				r := &batch[i]
				r.SrcAddr, r.DstAddr = addr(), addr()
				if rng.IntN(50) == 0 {
					r.DstAddr = netip.Addr{} // skipped
				}
				r.SrcPort, r.DstPort = 30000+uint16(rng.IntN(1000)), ports[rng.IntN(len(ports))]
				if rng.IntN(2) == 0 {
					r.SrcPort, r.DstPort = r.DstPort, r.SrcPort
				}
				r.Proto = []uint8{flow.ProtoTCP, flow.ProtoUDP, 1}[rng.IntN(3)]
				r.TCPFlags = []uint8{syn, synAck, 0x10}[rng.IntN(3)]
				r.Bytes, r.Packets = uint64(rng.IntN(1e6)), uint64(rng.IntN(100))
				if rng.IntN(4) == 0 {
					r.Biflow, r.ReverseBytes, r.ReversePackets = true, uint64(rng.IntN(1e6)), uint64(1+rng.IntN(100))
				}
				r.SrcMAC, r.DstMAC = macs[rng.IntN(len(macs))], macs[rng.IntN(len(macs))]
				r.VLAN = uint16(rng.IntN(2))
				r.Sides = []flow.Side{0, 0, flow.SideSrc, flow.SideDst}[rng.IntN(4)]
			}
			whole.Apply(batch)
			for i := range batch {
				single.Apply(batch[i : i+1])
			}
			// At the ceiling, which hosts get in depends on the order
			// of the updates (by shard already before the sums): the
			// hosts in both tables must agree, and each refusal be
			// counted once per record that named a refused host.
			keys := whole.AppendKeys(nil)
			if got, want := len(keys), single.Len(); got != want {
				t.Fatalf("%d hosts from the batch, %d record by record", got, want)
			}
			compared := 0
			for _, k := range keys {
				var a, b HostSnapshot
				if !whole.Snapshot(k, &a) {
					t.Fatalf("host %v listed but missing", k)
				}
				if !single.Snapshot(k, &b) {
					if tc.maxHosts >= 2*tc.hosts {
						t.Fatalf("host %v missing record by record", k)
					}
					continue
				}
				compared++
				if !reflect.DeepEqual(a, b) {
					t.Errorf("host %v:\nbatch:  %+v\nsingle: %+v", k, a, b)
				}
			}
			if compared == 0 {
				t.Fatal("no host to compare")
			}
			refusals := 0.0
			for i := range batch {
				r := &batch[i]
				if !r.SrcAddr.IsValid() || !r.DstAddr.IsValid() {
					continue
				}
				for _, side := range []struct {
					a    netip.Addr
					side flow.Side
				}{{r.SrcAddr, flow.SideSrc}, {r.DstAddr, flow.SideDst}} {
					if (r.Sides == 0 || r.Sides == side.side) && !whole.Snapshot(HostKey{side.a, r.VLAN}, &HostSnapshot{}) {
						refusals++
					}
				}
			}
			refused := counterValue(t, regWhole, "flowcheck_aggregate_hosts_refused_total", map[string]string{"kind": "local"}) +
				counterValue(t, regWhole, "flowcheck_aggregate_hosts_refused_total", map[string]string{"kind": "remote"})
			if refused != refusals {
				t.Errorf("hosts_refused_total %v, want %v (one per record naming a refused host)", refused, refusals)
			}
			if tc.maxHosts < 2*tc.hosts && refused == 0 {
				t.Errorf("no host refused at a ceiling of %d", tc.maxHosts)
			}
		})
	}
}
