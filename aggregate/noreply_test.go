package aggregate

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowcheck/flowcheck/flow"
)

const (
	syn    = flow.TCPSyn
	synAck = flow.TCPSyn | flow.TCPAck
	rstAck = flow.TCPRst | flow.TCPAck
)

func TestDecide(t *testing.T) {
	cases := []struct {
		name    string
		proto   uint8
		a, b    sideState
		pa, pb  uint16
		want    verdict
		aClient bool
	}{
		{"syn only, no reply", flow.ProtoTCP, sideState{true, syn}, sideState{}, 40000, 80, verdictOneSided, true},
		{"syn from low port, no reply", flow.ProtoTCP, sideState{true, syn}, sideState{}, 53, 80, verdictOneSided, true},
		{"lone syn-ack is backscatter", flow.ProtoTCP, sideState{}, sideState{true, synAck}, 40000, 80, verdictNone, true},
		{"lone rst from server port", flow.ProtoTCP, sideState{}, sideState{true, rstAck}, 40000, 80, verdictNone, true},
		{"lone established client", flow.ProtoTCP, sideState{true, synAck | flow.TCPPsh}, sideState{}, 40000, 80, verdictOneSided, true},
		{"closed port", flow.ProtoTCP, sideState{true, syn}, sideState{true, rstAck}, 40000, 25, verdictRefused, true},
		{"closed port, client is b", flow.ProtoTCP, sideState{true, rstAck}, sideState{true, syn}, 25, 40000, verdictRefused, false},
		{"open port, syn scan", flow.ProtoTCP, sideState{true, syn | flow.TCPRst}, sideState{true, synAck}, 40000, 22, verdictNone, true},
		{"full connection", flow.ProtoTCP, sideState{true, synAck | flow.TCPFin}, sideState{true, synAck | flow.TCPFin}, 40000, 443, verdictNone, true},
		{"server resets established", flow.ProtoTCP, sideState{true, synAck}, sideState{true, synAck | flow.TCPRst}, 40000, 443, verdictNone, true},
		{"no flags, ports decide", flow.ProtoTCP, sideState{true, flow.TCPRst}, sideState{true, 0}, 443, 40000, verdictRefused, false},
		{"equal ports: lower address is client", flow.ProtoTCP, sideState{true, 0}, sideState{true, flow.TCPRst}, 7000, 7000, verdictRefused, true},
		{"udp answered", flow.ProtoUDP, sideState{true, 0}, sideState{true, 0}, 40000, 53, verdictNone, true},
		{"udp lone from low port is client", flow.ProtoUDP, sideState{}, sideState{true, 0}, 40000, 53, verdictOneSided, false},
		{"nothing seen", flow.ProtoUDP, sideState{}, sideState{}, 1, 2, verdictNone, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, aClient := decide(tc.proto, tc.a, tc.b, tc.pa, tc.pb)
			if v != tc.want || (v != verdictNone && aClient != tc.aClient) {
				t.Errorf("decide = %v, a client %v; want %v, %v", v, aClient, tc.want, tc.aClient)
			}
		})
	}
}

// scan returns a one-way SYN scan of n ports of dst by src.
func scan(src, dst string, n int) []flow.Record {
	recs := make([]flow.Record, 0, n)
	for p := 1; p <= n; p++ {
		recs = append(recs, rec(src, 50000, dst, uint16(p), flow.ProtoTCP, syn))
	}
	return recs
}

// replies returns dst's answers to scan(src, dst, n) with the given flags.
func replies(src, dst string, n int, flags uint8) []flow.Record {
	recs := make([]flow.Record, 0, n)
	for p := 1; p <= n; p++ {
		recs = append(recs, rec(dst, uint16(p), src, 50000, flow.ProtoTCP, flags))
	}
	return recs
}

func TestStitching(t *testing.T) {
	const a, b = "192.0.2.1", "198.51.100.7"
	const n = 200
	window := DefaultConfiguration().ReplyWindow
	cases := []struct {
		name string
		// steps run in order; each applies records after advancing the
		// clock by delay.
		steps []struct {
			delay time.Duration
			recs  []flow.Record
		}
		noReplyA, noReplyB, refusedA, refusedB ContactCounts
		noAdvance                              bool
	}{
		{
			name: "one-way SYN scan",
			steps: []struct {
				delay time.Duration
				recs  []flow.Record
			}{{0, scan(a, b, n)}},
			noReplyA: ContactCounts{PeersAsClient: 1, ServerPorts: n},
			noReplyB: ContactCounts{PeersAsServer: 1},
		},
		{
			name: "answered within the window",
			steps: []struct {
				delay time.Duration
				recs  []flow.Record
			}{{0, scan(a, b, n)}, {window - time.Second, replies(a, b, n, synAck)}},
		},
		{
			name: "reply before the request (record order)",
			steps: []struct {
				delay time.Duration
				recs  []flow.Record
			}{{0, replies(a, b, n, rstAck)}, {time.Second, scan(a, b, n)}},
			refusedA: ContactCounts{PeersAsClient: 1, ServerPorts: n},
			refusedB: ContactCounts{PeersAsServer: 1},
		},
		{
			name: "refused by RST",
			steps: []struct {
				delay time.Duration
				recs  []flow.Record
			}{{0, scan(a, b, n)}, {time.Second, replies(a, b, n, rstAck)}},
			refusedA: ContactCounts{PeersAsClient: 1, ServerPorts: n},
			refusedB: ContactCounts{PeersAsServer: 1},
		},
		{
			name: "reply after the window",
			steps: []struct {
				delay time.Duration
				recs  []flow.Record
			}{{0, scan(a, b, n)}, {window + time.Second, replies(a, b, n, synAck)}},
			noReplyA: ContactCounts{PeersAsClient: 1, ServerPorts: n},
			noReplyB: ContactCounts{PeersAsServer: 1},
		},
		{
			name: "reply after the window, no Advance in between",
			steps: []struct {
				delay time.Duration
				recs  []flow.Record
			}{{0, scan(a, b, n)}, {window + time.Second, replies(a, b, n, synAck)}},
			noReplyA:  ContactCounts{PeersAsClient: 1, ServerPorts: n},
			noReplyB:  ContactCounts{PeersAsServer: 1},
			noAdvance: true,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tbl, clk, _ := newTestTable(t, DefaultConfiguration(), Dependencies{})
			for _, st := range tc.steps {
				clk.Advance(st.delay)
				if !tc.noAdvance {
					tbl.Advance(clk.Now())
				}
				tbl.Apply(st.recs)
			}
			tbl.Advance(clk.Now().Add(window + time.Second))
			sa, sb := snap(t, tbl, key(a)), snap(t, tbl, key(b))
			if sa.NoReply != tc.noReplyA || sb.NoReply != tc.noReplyB {
				t.Errorf("no-reply A %+v B %+v, want %+v %+v", sa.NoReply, sb.NoReply, tc.noReplyA, tc.noReplyB)
			}
			if sa.Refused != tc.refusedA || sb.Refused != tc.refusedB {
				t.Errorf("refused A %+v B %+v, want %+v %+v", sa.Refused, sb.Refused, tc.refusedA, tc.refusedB)
			}
			if got := sa.Unidirectional.Egress(); got != tc.noReplyA.ServerPorts {
				t.Errorf("A egress %d, want %d", got, tc.noReplyA.ServerPorts)
			}
			if got := sb.Unidirectional.Ingress(); got != tc.noReplyA.ServerPorts {
				t.Errorf("B ingress %d, want %d", got, tc.noReplyA.ServerPorts)
			}
		})
	}
}

func TestWindowNotOverBeforeDeadline(t *testing.T) {
	tbl, clk, _ := newTestTable(t, DefaultConfiguration(), Dependencies{})
	tbl.Apply(scan("192.0.2.1", "192.0.2.2", 3))
	clk.Advance(DefaultConfiguration().ReplyWindow - time.Millisecond)
	tbl.Advance(clk.Now())
	if s := snap(t, tbl, key("192.0.2.1")); s.NoReply != (ContactCounts{}) {
		t.Fatalf("committed before the window ended: %+v", s.NoReply)
	}
	if tbl.pendingLen() != 3 {
		t.Fatalf("pending %d, want 3", tbl.pendingLen())
	}
	clk.Advance(time.Millisecond)
	tbl.Advance(clk.Now())
	if s := snap(t, tbl, key("192.0.2.1")); s.NoReply.ServerPorts != 3 {
		t.Fatalf("not committed at the window's end: %+v", s.NoReply)
	}
	if tbl.pendingLen() != 0 {
		t.Fatalf("pending %d, want 0", tbl.pendingLen())
	}
}

func TestBiflowDecidesAtOnce(t *testing.T) {
	tbl, _, _ := newTestTable(t, DefaultConfiguration(), Dependencies{})
	// Exporter order: lower address first, so the scanner (higher address)
	// is the reverse side.
	var recs []flow.Record
	for p := uint16(1); p <= 100; p++ {
		r := rec("10.0.0.5", p, "10.0.0.66", 61641, flow.ProtoTCP, 0)
		r.Bytes, r.Packets, r.Biflow = 0, 0, true
		r.ReverseBytes, r.ReversePackets, r.ReverseTCPFlags = 44, 1, syn
		if p > 50 { // closed ports answer RST
			r.Bytes, r.Packets, r.TCPFlags = 40, 1, rstAck
		}
		recs = append(recs, r)
	}
	// An answered UDP biflow and a normal TCP connection: no effect.
	u := rec("10.0.0.5", 53, "10.0.0.66", 40000, flow.ProtoUDP, 0)
	u.Biflow, u.ReverseBytes, u.ReversePackets = true, 60, 1
	c := rec("10.0.0.5", 443, "10.0.0.66", 40001, flow.ProtoTCP, synAck|flow.TCPFin)
	c.Biflow, c.ReverseBytes, c.ReversePackets, c.ReverseTCPFlags = true, 600, 5, synAck|flow.TCPFin
	recs = append(recs, u, c)
	tbl.Apply(recs)
	if n := tbl.pendingLen(); n != 0 {
		t.Fatalf("biflow records went to the tracker: %d pending", n)
	}
	scanner, victim := snap(t, tbl, key("10.0.0.66")), snap(t, tbl, key("10.0.0.5"))
	if want := (ContactCounts{PeersAsClient: 1, ServerPorts: 50}); scanner.NoReply != want || scanner.Refused != want {
		t.Errorf("scanner no-reply %+v refused %+v, want %+v both", scanner.NoReply, scanner.Refused, want)
	}
	if want := (ContactCounts{PeersAsServer: 1}); victim.NoReply != want || victim.Refused != want {
		t.Errorf("victim no-reply %+v refused %+v", victim.NoReply, victim.Refused)
	}
	if scanner.BytesSent != 100*44+60+600 || victim.RxOnly {
		t.Errorf("scanner sent %d, victim rx-only %v", scanner.BytesSent, victim.RxOnly)
	}
}

func TestFoldRefused(t *testing.T) {
	cfg := DefaultConfiguration()
	cfg.FoldRefusedIntoNoReply = true
	tbl, _, _ := newTestTable(t, cfg, Dependencies{})
	tbl.Apply(scan("192.0.2.1", "192.0.2.2", 10))
	tbl.Apply(replies("192.0.2.1", "192.0.2.2", 10, rstAck))
	s := snap(t, tbl, key("192.0.2.1"))
	if s.NoReply.ServerPorts != 10 || s.Refused.ServerPorts != 10 || s.Unidirectional.EgressTCP != 10 {
		t.Fatalf("fold: no-reply %+v refused %+v uni %+v", s.NoReply, s.Refused, s.Unidirectional)
	}
}

func TestPendingBound(t *testing.T) {
	cfg := DefaultConfiguration()
	cfg.MaxPending, cfg.Shards = 100, 1
	tbl, _, reg := newTestTable(t, cfg, Dependencies{})
	tbl.Apply(scan("192.0.2.1", "192.0.2.2", 250))
	if n := tbl.pendingLen(); n != 100 {
		t.Fatalf("pending %d, want 100", n)
	}
	if got := counterValue(t, reg, "flowcheck_aggregate_pending_overflow_total", nil); got != 150 {
		t.Fatalf("overflow %v, want 150", got)
	}
	// The 150 oldest were decided early, as one-sided.
	if s := snap(t, tbl, key("192.0.2.1")); s.NoReply.ServerPorts != 150 {
		t.Fatalf("committed early %d, want 150", s.NoReply.ServerPorts)
	}
}

func TestResetContacts(t *testing.T) {
	tbl, clk, _ := newTestTable(t, DefaultConfiguration(), Dependencies{})
	tbl.Apply(scan("192.0.2.1", "192.0.2.2", 10))
	tbl.Advance(clk.Now().Add(time.Minute))
	tbl.ResetContacts(key("192.0.2.1"))
	s := snap(t, tbl, key("192.0.2.1"))
	if s.NoReply != (ContactCounts{}) || s.Unidirectional != (UnidirectionalStats{}) {
		t.Fatalf("after reset: %+v %+v", s.NoReply, s.Unidirectional)
	}
	if s.BytesSent != 400 {
		t.Fatalf("reset touched traffic: %d", s.BytesSent)
	}
	if v := snap(t, tbl, key("192.0.2.2")); v.NoReply.PeersAsServer != 1 {
		t.Fatalf("reset touched another host: %+v", v.NoReply)
	}
}

func TestTrackerRingGrowsAndShrinks(t *testing.T) {
	var lastLoss atomic.Int64
	lastLoss.Store(noLoss)
	s := newTrackerShard(1<<20, 1000, &lastLoss, make([]recentConv, recentSlots(1<<20)))
	var out []decision
	for i := range 5000 {
		a, b := netipAddr(1).As16(), netipAddr(2).As16()
		var k convKey
		aSrc := k.set(&a, uint16(i), &b, 80, flow.ProtoTCP, 0)
		out, _ = s.observe(&k, k.hash(), aSrc, syn, noApp, int64(i), out)
	}
	if s.len() != 1000 || len(s.ring) < 1000 {
		t.Fatalf("len %d ring %d", s.len(), len(s.ring))
	}
	if len(out) != 4000 {
		t.Fatalf("decided %d, want 4000", len(out))
	}
	out = s.expire(1<<40, out[:0])
	if s.len() != 0 || len(s.ring) > 256 || len(out) != 1000 || s.idx.len() != 0 {
		t.Fatalf("after expiry: len %d ring %d decided %d idx %d", s.len(), len(s.ring), len(out), s.idx.len())
	}
	// Entries survive resizes.
	out = out[:0]
	for i := range 100 {
		a, b := netipAddr(1).As16(), netipAddr(3).As16()
		var k convKey
		aSrc := k.set(&a, uint16(i), &b, 80, flow.ProtoTCP, 0)
		out, _ = s.observe(&k, k.hash(), aSrc, syn, noApp, int64(i), out)
	}
	out = s.expire(1<<40, out)
	for i, d := range out {
		if d.client != netipAddr(1).As16() || d.server != netipAddr(3).As16() || len(out) != 100 {
			t.Fatalf("decision %d: %+v", i, d)
		}
	}
}

// TestWithholdAfterIngestLoss checks which one-sided conversations an
// ingest loss keeps out of the contact sets: those whose reply window, or
// the window before it (a reply may come first), saw the loss.
func TestWithholdAfterIngestLoss(t *testing.T) {
	const a, b = "192.0.2.1", "198.51.100.7"
	const n = 50
	window := DefaultConfiguration().ReplyWindow
	cases := []struct {
		name string
		// loss is when the loss happens, relative to the scan; none if
		// noLoss is set.
		loss      time.Duration
		noLoss    bool
		received  int  // datagrams received in the loss's second
		answered  bool // the scan's replies arrive (synAck)
		overflow  bool // a tiny tracker decides the scan early
		keep      bool // withhold_after_ingest_loss off
		committed bool
	}{
		{name: "no loss", noLoss: true, committed: true},
		{name: "loss during the window", loss: window / 2},
		{name: "loss above the tolerance", loss: window / 2, received: 500},
		{name: "loss within the tolerance", loss: window / 2, received: 5000, committed: true},
		{name: "loss just before the request", loss: -time.Second},
		{name: "loss at the window's end", loss: window},
		{name: "loss more than a window before", loss: -window - time.Second, committed: true},
		{name: "loss during the window, withholding off", loss: window / 2, keep: true, committed: true},
		{name: "answered despite a loss", loss: time.Second, answered: true},
		{name: "decided early for room after a loss", loss: -time.Second, overflow: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfiguration()
			cfg.WithholdAfterIngestLoss = !tc.keep
			if tc.overflow {
				cfg.Shards, cfg.MaxPending = 1, n/2
			}
			tbl, clk, reg := newTestTable(t, cfg, Dependencies{})
			start := clk.Now()
			if !tc.noLoss && tc.loss < 0 {
				tbl.IngestLost(start.Add(tc.loss), 1, tc.received)
			}
			tbl.Apply(scan(a, b, n))
			if tc.answered {
				clk.Advance(2 * time.Second)
				tbl.Apply(replies(a, b, n, synAck))
			}
			if !tc.noLoss && tc.loss >= 0 {
				tbl.IngestLost(start.Add(tc.loss), 1, tc.received)
			}
			clk.Set(start.Add(window + 2*time.Second))
			tbl.Advance(clk.Now())
			got := snap(t, tbl, key(a)).NoReply.ServerPorts
			withheld := counterValue(t, reg, "flowcheck_aggregate_conversations_withheld_total", nil)
			switch {
			case tc.answered:
				if got != 0 || withheld != 0 {
					t.Errorf("answered: %d ports committed, %v withheld; want none", got, withheld)
				}
			case tc.committed:
				if got != n || withheld != 0 {
					t.Errorf("%d ports committed, %v withheld; want %d, 0", got, withheld, n)
				}
			default:
				if got != 0 || withheld != n {
					t.Errorf("%d ports committed, %v withheld; want 0, %d", got, withheld, n)
				}
			}
			if c := counterValue(t, reg, "flowcheck_aggregate_conversations_committed_total", map[string]string{"verdict": "one_sided"}); uint64(c) != got {
				t.Errorf("one_sided committed counter %v, sets hold %d", c, got)
			}
		})
	}
}

// TestIngestLostKeepsLatest checks that a late report of an older loss does
// not hide a newer one (readers report concurrently, out of order).
func TestIngestLostKeepsLatest(t *testing.T) {
	tbl, clk, _ := newTestTable(t, DefaultConfiguration(), Dependencies{})
	tbl.IngestLost(clk.Now(), 0, 10)   // nothing lost: no effect
	tbl.IngestLost(clk.Now(), 1, 1000) // within the 0.1 % tolerance
	if got := tbl.lastLoss.Load(); got != noLoss {
		t.Fatalf("a loss within the tolerance set the loss time: %d", got)
	}
	tbl.IngestLost(clk.Now().Add(time.Second), 3, 0)
	tbl.IngestLost(clk.Now(), 1, 0)
	if got, want := tbl.lastLoss.Load(), clk.Now().Add(time.Second).UnixNano(); got != want {
		t.Fatalf("last loss %d, want %d", got, want)
	}
}

// TestApplyTrafficOnly checks the shed path: traffic is accounted as by
// Apply, conversations are not stitched, and pending one-sided verdicts
// whose window overlaps it are withheld.
func TestApplyTrafficOnly(t *testing.T) {
	const a, b, c = "192.0.2.1", "198.51.100.7", "198.51.100.8"
	tbl, clk, reg := newTestTable(t, DefaultConfiguration(), Dependencies{})
	tbl.Apply(scan(a, b, 10)) // pending: may have been answered in the shed batch
	clk.Advance(time.Second)
	tbl.ApplyTrafficOnly(scan(a, c, 20))
	if s := snap(t, tbl, key(c)); s.BytesRcvd != 20*40 || s.PacketsRcvd != 20 {
		t.Errorf("shed traffic not accounted: %d bytes, %d packets", s.BytesRcvd, s.PacketsRcvd)
	}
	if got := tbl.pendingLen(); got != 10 {
		t.Errorf("pending %d, want the 10 stitched before (none of the shed batch)", got)
	}
	tbl.Advance(clk.Now().Add(DefaultConfiguration().ReplyWindow + time.Second))
	if s := snap(t, tbl, key(a)); s.NoReply != (ContactCounts{}) {
		t.Errorf("verdicts committed across the shed batch: %+v", s.NoReply)
	}
	if w := counterValue(t, reg, "flowcheck_aggregate_conversations_withheld_total", nil); w != 10 {
		t.Errorf("withheld %v, want 10", w)
	}
}
