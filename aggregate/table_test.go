package aggregate

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowcheck/flowcheck/flow"
)

func TestValidate(t *testing.T) {
	cases := []struct {
		name   string
		modify func(*Configuration)
		want   string
	}{
		{"defaults", func(*Configuration) {}, ""},
		{"bad CIDR", func(c *Configuration) { c.LocalNetworks = []string{"10.0.0.0/8", "10.0.0.0/8", "x"} }, `local_networks[2]: invalid CIDR "x"`},
		{"bad name", func(c *Configuration) { c.Names = map[string]string{"nope": "x"} }, `names: invalid IP address "nope"`},
		{"max hosts", func(c *Configuration) { c.MaxHosts = 0 }, "max_hosts: must be > 0"},
		{"shards", func(c *Configuration) { c.Shards = 3 }, "shards: must be a power of 2"},
		{"window", func(c *Configuration) { c.ReplyWindow = 0 }, "reply_window: must be > 0"},
		{"idle", func(c *Configuration) { c.IdleTimeout.Remote = 0 }, "idle_timeout.remote: must be > 0"},
		{"exact", func(c *Configuration) { c.ExactSetSize = -1 }, "exact_set_size: must be > 0"},
		{"loss tolerance", func(c *Configuration) { c.IngestLossTolerance = 1 }, "ingest_loss_tolerance: must be at least 0 and below 1"},
		{"rdns workers", func(c *Configuration) { c.ReverseDNS.Enabled, c.ReverseDNS.Workers = true, 0 }, "reverse_dns.workers: must be > 0"},
		{"blacklist name", func(c *Configuration) { c.Blacklists = []string{""} }, "blacklists[0]: empty file name"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfiguration()
			tc.modify(&c)
			err := c.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

func TestFlags(t *testing.T) {
	cfg := DefaultConfiguration()
	cfg.LocalNetworks = []string{"192.168.10.0/24", "10.0.0.0/8", "2001:db8:1::/48", "198.51.100.7/32", "203.0.113.8/31"}
	cases := []struct {
		addr                                 string
		local, multicast, broadcast, unicast bool
	}{
		{"192.168.10.20", true, false, false, true},
		{"192.168.10.0", true, false, true, false},   // directed broadcast (network)
		{"192.168.10.255", true, false, true, false}, // directed broadcast
		{"192.168.11.255", false, false, false, true},
		{"10.255.255.255", true, false, true, false},
		{"10.1.255.255", true, false, false, true}, // not the /8's broadcast
		{"255.255.255.255", false, false, true, false},
		{"224.0.0.251", false, true, false, false},
		{"239.255.255.250", false, true, false, false},
		{"8.8.8.8", false, false, false, true},
		{"198.51.100.7", true, false, false, true}, // /32: no broadcast
		{"203.0.113.9", true, false, false, true},  // /31: both addresses usable
		{"203.0.113.10", false, false, false, true},
		{"2001:db8:1::1", true, false, false, true},
		{"2001:db8:2::1", false, false, false, true},
		{"2001:db8:1:ffff:ffff:ffff:ffff:ffff", true, false, false, true}, // IPv6 has no broadcast
		{"ff02::1", false, true, false, false},
		{"ff05::1:3", false, true, false, false},
		{"fe80::1", false, false, false, true},
	}
	tbl, _, _ := newTestTable(t, cfg, Dependencies{})
	for _, tc := range cases {
		t.Run(tc.addr, func(t *testing.T) {
			peer := "192.0.2.1"
			if strings.Contains(tc.addr, ":") {
				peer = "2001:db8:ffff::1"
			}
			tbl.Apply([]flow.Record{rec(peer, 1000, tc.addr, 2000, flow.ProtoUDP, 0)})
			s := snap(t, tbl, key(tc.addr))
			if s.Local != tc.local || s.Multicast != tc.multicast || s.Broadcast != tc.broadcast || s.Unicast() != tc.unicast {
				t.Errorf("local %v multicast %v broadcast %v unicast %v, want %v %v %v %v",
					s.Local, s.Multicast, s.Broadcast, s.Unicast(), tc.local, tc.multicast, tc.broadcast, tc.unicast)
			}
			if !s.RxOnly {
				t.Errorf("receiver not rx-only")
			}
		})
	}
}

func TestVLANDistinctHosts(t *testing.T) {
	tbl, _, _ := newTestTable(t, DefaultConfiguration(), Dependencies{})
	r1 := rec("10.0.0.1", 1000, "10.0.0.2", 80, flow.ProtoTCP, syn)
	r2 := r1
	r2.VLAN = 7
	r2.Bytes = 100
	tbl.Apply([]flow.Record{r1, r2})
	if tbl.Len() != 4 {
		t.Fatalf("Len %d, want 4", tbl.Len())
	}
	s := snap(t, tbl, HostKey{Addr: netip.MustParseAddr("10.0.0.1"), VLAN: 7})
	if s.BytesSent != 100 || s.Key.String() != "10.0.0.1@7" {
		t.Fatalf("vlan host: %+v", s)
	}
	if snap(t, tbl, key("10.0.0.1")).BytesSent != 40 {
		t.Fatal("untagged host mixed with the tagged one")
	}
	keys := tbl.AppendKeys(nil)
	if len(keys) != 4 {
		t.Fatalf("AppendKeys %d", len(keys))
	}
}

func TestTrafficMACAndNames(t *testing.T) {
	cfg := DefaultConfiguration()
	cfg.Names = map[string]string{"10.0.0.1": "gateway"}
	tbl, clk, _ := newTestTable(t, cfg, Dependencies{})
	r := rec("10.0.0.1", 1000, "10.0.0.2", 80, flow.ProtoTCP, syn)
	r.SrcMAC = [6]byte{0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff}
	tbl.Apply([]flow.Record{r})
	clk.Advance(5 * time.Second)
	tbl.Apply([]flow.Record{rec("10.0.0.2", 80, "10.0.0.1", 1000, flow.ProtoTCP, synAck)})
	s := snap(t, tbl, key("10.0.0.1"))
	if s.Name != "gateway" || s.MAC.String() != "aa:bb:cc:dd:ee:ff" {
		t.Errorf("name %q mac %v", s.Name, s.MAC)
	}
	if !s.FirstSeen.Equal(t0) || !s.LastSeen.Equal(t0.Add(5*time.Second)) {
		t.Errorf("first %v last %v", s.FirstSeen, s.LastSeen)
	}
	if s.BytesSent != 40 || s.BytesRcvd != 40 || s.PacketsSent != 1 || s.PacketsRcvd != 1 || s.RxOnly {
		t.Errorf("traffic %+v", s)
	}
	if len(s.L7) != 1 || s.L7[0].Name != "HTTP" || s.L7[0].Flows != 1 { // one conversation, two records
		t.Errorf("l7 %+v", s.L7)
	}
	if s2 := snap(t, tbl, key("10.0.0.2")); s2.Name != "10.0.0.2" || s2.MAC != (MAC{}) {
		t.Errorf("unnamed host: %q %v", s2.Name, s2.MAC)
	}
}

func TestAppName(t *testing.T) {
	cases := []struct {
		r    flow.Record
		want string
	}{
		{flow.Record{AppName: "TLS.Google", Proto: 6, DstPort: 443}, "TLS.Google"},
		{flow.Record{AppID: 7, Proto: 6, DstPort: 443}, "HTTP"},
		{flow.Record{AppID: 3<<24 | 53, Proto: 17}, "DNS"},
		{flow.Record{Proto: 6, SrcPort: 50000, DstPort: 443}, "TLS"},
		{flow.Record{Proto: 17, SrcPort: 443, DstPort: 50000}, "QUIC"},
		{flow.Record{Proto: 17, SrcPort: 40000, DstPort: 6885}, "BitTorrent"},
		{flow.Record{Proto: 6, SrcPort: 40000, DstPort: 3389}, "RDP"},
		{flow.Record{Proto: 17, SrcPort: 5353, DstPort: 5353}, "MDNS"},
		{flow.Record{Proto: 1}, "ICMP"},
		{flow.Record{Proto: 6, SrcPort: 40000, DstPort: 40001}, "Unknown"},
		{flow.Record{Proto: 47}, "Unknown"},
	}
	var names l7Names
	for _, tc := range cases {
		if got := names.name(names.appOf(&tc.r)); got != tc.want {
			t.Errorf("appOf(%+v) = %q, want %q", tc.r, got, tc.want)
		}
	}
}

func TestL7Cap(t *testing.T) {
	cfg := DefaultConfiguration()
	cfg.MaxL7Protocols = 3
	tbl, _, _ := newTestTable(t, cfg, Dependencies{})
	for _, p := range []uint16{80, 443, 22, 25, 3389, 80} {
		tbl.Apply([]flow.Record{rec("10.0.0.1", 40000, "10.0.0.2", p, flow.ProtoTCP, syn)})
	}
	s := snap(t, tbl, key("10.0.0.1"))
	names := map[string]uint64{}
	for _, l := range s.L7 {
		names[l.Name] = l.Flows
	}
	if len(s.L7) != 3 || names["HTTP"] != 2 || names["TLS"] != 1 || names["Other"] != 3 {
		t.Fatalf("l7 %+v", s.L7)
	}
}

func TestDistinctSetExactThenSketch(t *testing.T) {
	var s distinctSet
	for i := range 1024 {
		s.add(uint64(i), 1024)
		s.add(uint64(i), 1024) // duplicates never count
	}
	if !s.exactly() || s.count() != 1024 {
		t.Fatalf("exact: %d exact=%v", s.count(), s.exactly())
	}
	s.add(5000, 1024)
	if s.exactly() {
		t.Fatal("still exact past the limit")
	}
	if c := s.count(); c < 1010 || c > 1040 {
		t.Fatalf("sketch count %d just past the limit", c)
	}
}

// TestHyperLogLogErrorBound shows the error on 10^5 distinct members: the
// relative error of each of 10 sets of distinct addresses stays under 2 %
// (the sketch is deterministic for given members, so this cannot flake),
// and the RMS error is near the 0.81 % standard error.
func TestHyperLogLogErrorBound(t *testing.T) {
	const n, sets = 100_000, 10
	var sumSq float64
	for seed := range uint32(sets) {
		var s distinctSet
		for i := range uint32(n) {
			// Distinct by construction: 10^5 consecutive addresses of a
			// different block per set.
			v := seed<<24 | i
			s.add(addrHash16(netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}).As16()), 1024)
		}
		rel := (float64(s.count()) - n) / n
		if math.Abs(rel) > 0.02 {
			t.Errorf("set %d: estimate %d for %d distinct: error %.2f %%", seed, s.count(), n, 100*rel)
		}
		sumSq += rel * rel
	}
	rms := math.Sqrt(sumSq / sets)
	t.Logf("RMS relative error over %d sets of 10^5: %.3f %%", sets, 100*rms)
	if rms > 0.015 {
		t.Errorf("RMS error %.3f %%, want <= 1.5 %%", 100*rms)
	}
}

// TestCeilingFlood floods the table with 10^6 random remote sources
// against a ceiling of 10^5: the table stops at the remote share of the
// ceiling, refusals are counted, memory stays bounded, and local hosts
// still get in.
func TestCeilingFlood(t *testing.T) {
	// The race detector makes map work ~10x slower: scale the flood down
	// by 10 under -race so that the package's tests stay fast.
	scale := 1
	if raceEnabled {
		scale = 10
	}
	cfg := DefaultConfiguration()
	cfg.MaxHosts = 100_000 / scale
	cfg.MaxPending = 10_000
	tbl, _, reg := newTestTable(t, cfg, Dependencies{})
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	n := 1_000_000 / scale
	rng := rand.New(rand.NewPCG(1, 2))
	batch := make([]flow.Record, 0, 1000)
	victim := netip.MustParseAddr("10.0.0.1")
	for i := range n {
		src := netip.AddrFrom4([4]byte{byte(1 + rng.IntN(9)), byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32())})
		batch = append(batch, flow.Record{SrcAddr: src, DstAddr: victim, SrcPort: uint16(i), DstPort: 80,
			Proto: flow.ProtoTCP, TCPFlags: syn, Bytes: 40, Packets: 1})
		if len(batch) == cap(batch) {
			tbl.Apply(batch)
			batch = batch[:0]
		}
	}
	remoteCeiling := cfg.MaxHosts * (100 - cfg.LocalReservePercent) / 100
	if got := tbl.Len(); got != remoteCeiling {
		t.Fatalf("Len %d, want the remote ceiling %d", got, remoteCeiling)
	}
	refused := counterValue(t, reg, "flowcheck_aggregate_hosts_refused_total", map[string]string{"kind": "remote"})
	if refused < float64(n-remoteCeiling-n/1000) { // random sources repeat a little
		t.Fatalf("refused %v", refused)
	}
	if p := tbl.pendingLen(); p > cfg.MaxPending {
		t.Fatalf("pending %d above %d", p, cfg.MaxPending)
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	grown := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("heap grew %d MB for %d hosts (%d B/host incl. pending)", grown>>20, tbl.Len(), grown/int64(tbl.Len()))
	if grown > int64(cfg.MaxHosts)*1024 {
		t.Fatalf("heap grew %d MB", grown>>20)
	}
	// Local hosts still fit in the reserve.
	tbl.Apply([]flow.Record{rec("10.0.0.9", 1000, "10.0.0.1", 80, flow.ProtoTCP, syn)})
	if !tbl.Snapshot(key("10.0.0.9"), &HostSnapshot{}) {
		t.Fatal("local host refused while the reserve was free")
	}
}

// expiryRecorder is an ExpiryListener that keeps what it is told.
type expiryRecorder struct {
	mu      sync.Mutex
	expired []HostKey
}

func (r *expiryRecorder) HostExpired(k HostKey) {
	r.mu.Lock()
	r.expired = append(r.expired, k)
	r.mu.Unlock()
}

func TestIdleExpiry(t *testing.T) {
	lis := &expiryRecorder{}
	tbl, clk, _ := newTestTable(t, DefaultConfiguration(), Dependencies{})
	if err := tbl.ListenExpiry(lis); err != nil {
		t.Fatal(err)
	}
	expired := func() []HostKey {
		lis.mu.Lock()
		defer lis.mu.Unlock()
		return slices.Clone(lis.expired)
	}
	tbl.Apply([]flow.Record{rec("10.0.0.1", 1000, "8.8.8.8", 53, flow.ProtoUDP, 0)})
	clk.Advance(61 * time.Second)
	tbl.Advance(clk.Now())
	if got := expired(); len(got) != 1 || got[0] != key("8.8.8.8") || tbl.Len() != 1 {
		t.Fatalf("after 61 s: expired %v, Len %d", got, tbl.Len())
	}
	clk.Advance(200 * time.Second)
	tbl.Advance(clk.Now())
	if got := expired(); len(got) != 1 {
		t.Fatalf("local host expired early: %v", got)
	}
	clk.Advance(40 * time.Second)
	tbl.Advance(clk.Now())
	if got := expired(); len(got) != 2 || tbl.Len() != 0 {
		t.Fatalf("after 301 s: expired %v, Len %d", got, tbl.Len())
	}
	// The listener is a dependency set before Start, not after.
	if err := tbl.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := tbl.Stop(t.Context()); err != nil {
			t.Error(err)
		}
	}()
	if err := tbl.ListenExpiry(lis); err == nil {
		t.Fatal("ListenExpiry after Start succeeded")
	}
}

func TestBlacklist(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "bl.txt")
	write := func(s string) {
		t.Helper()
		tmp := file + ".tmp"
		if err := os.WriteFile(tmp, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, file); err != nil {
			t.Fatal(err)
		}
	}
	write("# bad hosts\n203.0.113.5\n198.51.100.0/24 # a whole net\nnot-an-ip\n2001:db8:bad::/48\n\n")
	cfg := DefaultConfiguration()
	cfg.Blacklists = []string{file}
	tbl, _, reg := newTestTable(t, cfg, Dependencies{})
	if got := counterValue(t, reg, "flowcheck_aggregate_blacklist_bad_lines_total", nil); got != 1 {
		t.Fatalf("bad lines %v, want 1", got)
	}
	for _, a := range []string{"203.0.113.5", "198.51.100.77", "2001:db8:bad:1::1", "203.0.113.6", "2001:db8::1"} {
		peer := "192.0.2.1"
		if strings.Contains(a, ":") {
			peer = "2001:db8:ffff::1"
		}
		tbl.Apply([]flow.Record{rec(peer, 1, a, 2, flow.ProtoUDP, 0)})
	}
	check := func(want map[string]bool) {
		t.Helper()
		for a, w := range want {
			if got := snap(t, tbl, key(a)).Blacklisted; got != w {
				t.Errorf("%s blacklisted %v, want %v", a, got, w)
			}
		}
	}
	check(map[string]bool{"203.0.113.5": true, "198.51.100.77": true, "2001:db8:bad:1::1": true, "203.0.113.6": false, "2001:db8::1": false})

	// Reload (SIGHUP) with a changed file.
	write("203.0.113.6\n")
	if err := tbl.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	check(map[string]bool{"203.0.113.5": false, "203.0.113.6": true})

	// A failed reload keeps the running configuration.
	bad := cfg
	bad.Blacklists = []string{filepath.Join(dir, "missing.txt")}
	if err := tbl.Reload(bad); err == nil {
		t.Fatal("reload of a missing file succeeded")
	}
	check(map[string]bool{"203.0.113.6": true})

	// The watcher reloads on file change.
	if err := tbl.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := tbl.Stop(t.Context()); err != nil {
			t.Error(err)
		}
	}()
	write("203.0.113.5\n")
	deadline := time.Now().Add(10 * time.Second)
	for snap(t, tbl, key("203.0.113.5")).Blacklisted != true {
		if time.Now().After(deadline) {
			t.Fatal("watcher did not reload the blacklist")
		}
		time.Sleep(20 * time.Millisecond)
	}
	check(map[string]bool{"203.0.113.6": false})
}

func TestParseBlacklistLines(t *testing.T) {
	set := newPrefixSet()
	bad, err := parseBlacklist(strings.NewReader("10.0.0.1\n  # c\nfoo\n10.1.0.0/16\n::ffff:10.2.0.1\nfe80::1%eth0\n10.3.0.0/33\n"), "x.txt", set)
	if err != nil {
		t.Fatal(err)
	}
	if len(bad) != 3 || bad[0].Line != 3 || bad[1].Line != 6 || bad[2].Line != 7 {
		t.Fatalf("bad lines %+v", bad)
	}
	if bad[0].Error() != `x.txt:3: invalid address or CIDR "foo"` {
		t.Fatalf("error text %q", bad[0].Error())
	}
	for a, want := range map[string]bool{"10.0.0.1": true, "10.1.2.3": true, "10.2.0.1": true, "10.0.0.2": false} {
		if got := set.contains(netip.MustParseAddr(a)); got != want {
			t.Errorf("%s: %v, want %v", a, got, want)
		}
	}
}

func FuzzParseBlacklist(f *testing.F) {
	for _, s := range []string{"10.0.0.1\n", "# x\n2001:db8::/32\n", "1.2.3.4/40\n", "::ffff:1.2.3.4/120\n", "\x00\xff\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		set := newPrefixSet()
		if _, err := parseBlacklist(strings.NewReader(s), "fuzz", set); err != nil {
			return
		}
		set.contains(netip.MustParseAddr("10.0.0.1"))
		set.contains(netip.MustParseAddr("2001:db8::1"))
	})
}

func TestReverseDNS(t *testing.T) {
	cfg := DefaultConfiguration()
	cfg.ReverseDNS.Enabled = true
	lookups := make(chan string, 10)
	tbl, _, _ := newTestTable(t, cfg, Dependencies{LookupAddr: func(_ context.Context, addr string) ([]string, error) {
		lookups <- addr
		if addr == "10.0.0.1" {
			return []string{"one.example."}, nil
		}
		return nil, errors.New("NXDOMAIN")
	}})
	if err := tbl.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := tbl.Stop(t.Context()); err != nil {
			t.Error(err)
		}
	}()
	tbl.Apply([]flow.Record{rec("10.0.0.1", 1, "10.0.0.2", 2, flow.ProtoUDP, 0)})
	deadline := time.Now().Add(10 * time.Second)
	for snap(t, tbl, key("10.0.0.1")).Name != "one.example" {
		if time.Now().After(deadline) {
			t.Fatal("name not resolved")
		}
		time.Sleep(10 * time.Millisecond)
	}
	for len(lookups) < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := snap(t, tbl, key("10.0.0.2")).Name; n != "10.0.0.2" {
		t.Fatalf("failed lookup name %q", n)
	}
	// Cached: a new record asks nothing.
	tbl.Apply([]flow.Record{rec("10.0.0.1", 1, "10.0.0.2", 2, flow.ProtoUDP, 0)})
	time.Sleep(20 * time.Millisecond)
	if len(lookups) != 2 {
		t.Fatalf("%d lookups, want 2", len(lookups))
	}
}

// TestConcurrent runs ingest workers, the tick's snapshots, resets and
// Advance at once (run with -race).
func TestConcurrent(t *testing.T) {
	cfg := DefaultConfiguration()
	cfg.Shards = 8
	tbl, clk, _ := newTestTable(t, cfg, Dependencies{})
	var writers, reader sync.WaitGroup
	stop := make(chan struct{})
	for w := range 4 {
		writers.Add(1)
		go func() {
			defer writers.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 9))
			batch := make([]flow.Record, 64)
			for range 200 {
				for i := range batch {
					batch[i] = flow.Record{
						SrcAddr: netip.AddrFrom4([4]byte{10, 0, byte(rng.IntN(4)), byte(rng.IntN(50))}),
						DstAddr: netip.AddrFrom4([4]byte{10, 1, 0, byte(rng.IntN(50))}),
						SrcPort: uint16(rng.IntN(65536)), DstPort: uint16(rng.IntN(1024)),
						Proto: flow.ProtoTCP, TCPFlags: syn, Bytes: 40, Packets: 1, Biflow: rng.IntN(4) == 0,
					}
				}
				tbl.Apply(batch)
			}
		}()
	}
	reader.Add(1)
	go func() {
		defer reader.Done()
		var s HostSnapshot
		var keys []HostKey
		for {
			select {
			case <-stop:
				return
			default:
			}
			keys = tbl.AppendKeys(keys[:0])
			for i, k := range keys {
				tbl.Snapshot(k, &s)
				if i%7 == 0 {
					tbl.ResetContacts(k)
				}
			}
			clk.Advance(time.Second)
			tbl.Advance(clk.Now())
		}
	}()
	writers.Wait()
	close(stop)
	reader.Wait()
	if tbl.Len() == 0 {
		t.Fatal("no hosts")
	}
}

func TestCeilingLocalReserve(t *testing.T) {
	cfg := DefaultConfiguration()
	cfg.MaxHosts, cfg.LocalReservePercent = 10, 20
	tbl, _, reg := newTestTable(t, cfg, Dependencies{})
	var recs []flow.Record
	for i := range 12 { // remote to remote, 24 hosts: 8 fit, whatever the order
		recs = append(recs, rec(fmt.Sprintf("198.51.100.%d", i+1), 1, netipAddr(byte(i+1)).String(), 2, flow.ProtoICMP, 0))
	}
	tbl.Apply(recs)
	if tbl.Len() != 8 {
		t.Fatalf("Len %d after the remote flood, want 8", tbl.Len())
	}
	recs = recs[:0]
	for i := range 4 { // local to local: 2 fit
		recs = append(recs, rec(fmt.Sprintf("10.0.0.%d", 2*i+1), 1, fmt.Sprintf("10.0.0.%d", 2*i+2), 2, flow.ProtoICMP, 0))
	}
	tbl.Apply(recs)
	if tbl.Len() != 10 {
		t.Fatalf("Len %d, want the ceiling 10", tbl.Len())
	}
	if r := counterValue(t, reg, "flowcheck_aggregate_hosts_refused_total", map[string]string{"kind": "local"}); r != 6 {
		t.Fatalf("local refusals %v, want 6", r)
	}
	if r := counterValue(t, reg, "flowcheck_aggregate_hosts_refused_total", map[string]string{"kind": "remote"}); r != 16 {
		t.Fatalf("remote refusals %v, want 16", r)
	}
}

func TestReloadLocalNetworks(t *testing.T) {
	cfg := DefaultConfiguration()
	tbl, _, _ := newTestTable(t, cfg, Dependencies{})
	tbl.Apply([]flow.Record{rec("10.0.0.1", 1, "203.0.113.9", 2, flow.ProtoUDP, 0)})
	if snap(t, tbl, key("203.0.113.9")).Local {
		t.Fatal("local before reload")
	}
	next := cfg
	next.LocalNetworks = []string{"203.0.113.0/24"}
	next.Names = map[string]string{"203.0.113.9": "web"}
	if err := tbl.Reload(next); err != nil {
		t.Fatal(err)
	}
	s := snap(t, tbl, key("203.0.113.9"))
	if !s.Local || s.Name != "web" || snap(t, tbl, key("10.0.0.1")).Local {
		t.Fatalf("after reload: local %v name %q", s.Local, s.Name)
	}
	bad := next
	bad.LocalNetworks = []string{"nope"}
	if err := tbl.Reload(bad); err == nil || !strings.Contains(err.Error(), `local_networks[0]: invalid CIDR "nope"`) {
		t.Fatalf("bad reload error %v", err)
	}
	if !snap(t, tbl, key("203.0.113.9")).Local {
		t.Fatal("failed reload changed the running configuration")
	}
}
