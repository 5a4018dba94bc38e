package aggregate

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/flowcheck/flowcheck/flow"
)

// TestContacts lists the members of a scanner's sets: its refused ports
// ascending, its first peers committed (at most ListedMembers of each), and, once a set turned into a sketch, its estimate with the peers
// it listed before and no ports.
func TestContacts(t *testing.T) {
	cfg := DefaultConfiguration()
	cfg.ExactSetSize = 150
	tbl, clk, _ := newTestTable(t, cfg, Dependencies{})
	// Refused: 120 ports of one victim, answered RST/ACK.
	tbl.Apply(scan("192.0.2.1", "192.0.2.2", 120))
	tbl.Apply(replies("192.0.2.1", "192.0.2.2", 120, rstAck))
	// One-sided: port 22 of 200 peers, never answered.
	var sweep []flow.Record
	for i := 200; i >= 1; i-- {
		sweep = append(sweep, rec("192.0.2.1", 50001, fmt.Sprintf("198.51.100.%d", i), 22, flow.ProtoTCP, syn))
	}
	tbl.Apply(sweep)
	tbl.Advance(clk.Now().Add(time.Minute))

	c, ok := tbl.Contacts(key("192.0.2.1"))
	if !ok {
		t.Fatal("scanner unknown")
	}
	ref := c.Refused
	if ref.ServerPorts.Count != 120 || !ref.ServerPorts.Exact || len(ref.ServerPorts.Ports) != ListedMembers ||
		ref.ServerPorts.Ports[0] != 1 || ref.ServerPorts.Ports[99] != 100 {
		t.Fatalf("refused ports %+v", ref.ServerPorts)
	}
	if ref.PeersAsClient.Count != 1 || len(ref.PeersAsClient.Peers) != 1 || ref.PeersAsClient.Peers[0] != netip.MustParseAddr("192.0.2.2") {
		t.Fatalf("refused peers %+v", ref.PeersAsClient)
	}
	nr := c.NoReply.PeersAsClient
	if nr.Exact || nr.Count < 190 || nr.Count > 210 || len(nr.Peers) != ListedMembers {
		t.Fatalf("one-sided peers: count %d exact %v, %d listed", nr.Count, nr.Exact, len(nr.Peers))
	}
	listed := map[netip.Addr]bool{}
	for _, p := range nr.Peers {
		if listed[p] || !netip.MustParsePrefix("198.51.100.0/24").Contains(p) {
			t.Fatalf("peer %v listed twice or not a peer", p)
		}
		listed[p] = true
	}
	if p := c.NoReply.ServerPorts; p.Count != 1 || len(p.Ports) != 1 || p.Ports[0] != 22 {
		t.Fatalf("one-sided ports %+v", p)
	}
	// The victim lists its scanner as a refused client; a host with no
	// contact has empty exact sets.
	v, _ := tbl.Contacts(key("192.0.2.2"))
	if v.Refused.PeersAsServer.Count != 1 || v.Refused.PeersAsServer.Peers[0] != netip.MustParseAddr("192.0.2.1") {
		t.Fatalf("victim %+v", v.Refused.PeersAsServer)
	}
	if v.NoReply.ServerPorts.Ports == nil || !v.NoReply.PeersAsClient.Exact || v.NoReply.PeersAsClient.Count != 0 {
		t.Fatalf("victim one-sided %+v", v.NoReply)
	}
	if _, ok := tbl.Contacts(key("203.0.113.1")); ok {
		t.Fatal("unknown host listed")
	}
	// A reset forgets the lists with the sets.
	tbl.ResetContacts(key("192.0.2.1"))
	if c, _ := tbl.Contacts(key("192.0.2.1")); len(c.NoReply.PeersAsClient.Peers) != 0 || c.Refused.ServerPorts.Count != 0 {
		t.Fatalf("after reset %+v", c)
	}
}

// TestAppendShardKeys: the shards' keys together are the table's.
func TestAppendShardKeys(t *testing.T) {
	tbl, _, _ := newTestTable(t, DefaultConfiguration(), Dependencies{})
	tbl.Apply(scan("192.0.2.1", "192.0.2.2", 10))
	var recs []flow.Record
	for i := range 500 {
		recs = append(recs, rec(fmt.Sprintf("10.0.%d.%d", i/250, i%250), 1000, "192.0.2.9", 53, flow.ProtoUDP, 0))
	}
	tbl.Apply(recs)
	all := tbl.AppendKeys(nil)
	var byShard []HostKey
	for i := range tbl.Shards() {
		byShard = tbl.AppendShardKeys(i, byShard)
	}
	if len(all) != 503 || len(byShard) != len(all) {
		t.Fatalf("%d keys, %d by shard", len(all), len(byShard))
	}
	seen := map[HostKey]bool{}
	for _, k := range byShard {
		seen[k] = true
	}
	for _, k := range all {
		if !seen[k] {
			t.Fatalf("%v missing from the shards", k)
		}
	}
}

// TestSnapshotCounters: the same copy as Snapshot, without the name.
func TestSnapshotCounters(t *testing.T) {
	tbl, _, _ := newTestTable(t, DefaultConfiguration(), Dependencies{})
	tbl.Apply(scan("192.0.2.1", "192.0.2.2", 10))
	full := snap(t, tbl, key("192.0.2.1"))
	var c HostSnapshot
	c.Name = "stale"
	if !tbl.SnapshotCounters(key("192.0.2.1"), &c) || c.Name != "" || full.Name != "192.0.2.1" {
		t.Fatalf("counters %+v, full name %q", c, full.Name)
	}
	c.Name = full.Name
	if fmt.Sprint(c) != fmt.Sprint(full) {
		t.Fatalf("counters %+v, want %+v", c, full)
	}
	if tbl.SnapshotCounters(key("203.0.113.1"), &c) {
		t.Fatal("unknown host copied")
	}
}
