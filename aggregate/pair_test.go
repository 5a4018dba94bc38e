package aggregate

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/flowcheck/flowcheck/flow"
)

// TestPairsDecideAsSequential feeds one random stream to two tables, one
// record per Apply (every record goes through the FIFO) and in batches
// (adjacent directions of a conversation take observePair's shortcut), and
// requires the same contact sets and counters on every host. The stream
// has answered, refused and one-sided conversations, pairs in both orders,
// late repeats within and after the reply window, and directions split
// across batches.
func TestPairsDecideAsSequential(t *testing.T) {
	for seed := range uint64(40) {
		rng := rand.New(rand.NewPCG(seed, 11))
		cfg := DefaultConfiguration()
		cfg.MaxPending = 1 << 20 // no overflow: its order differs by design
		one, clkOne, _ := newTestTable(t, cfg, Dependencies{})
		batched, clkBatched, _ := newTestTable(t, cfg, Dependencies{})

		type conv struct{ fwd, rev flow.Record }
		convs := make([]conv, 40)
		for i := range convs {
			c := netip.AddrFrom4([4]byte{10, 0, 0, byte(1 + rng.IntN(8))})
			s := netip.AddrFrom4([4]byte{10, 0, 1, byte(1 + rng.IntN(8))})
			proto, fwdFlags, revFlags := uint8(flow.ProtoTCP), uint8(syn|flow.TCPAck), uint8(synAck)
			switch rng.IntN(4) {
			case 0:
				proto, fwdFlags, revFlags = flow.ProtoUDP, 0, 0
			case 1:
				fwdFlags, revFlags = syn, rstAck
			}
			fwd := flow.Record{SrcAddr: c, DstAddr: s, SrcPort: uint16(40000 + i), DstPort: []uint16{80, 443, 53}[rng.IntN(3)],
				Proto: proto, TCPFlags: fwdFlags, Packets: 3, Bytes: 300}
			rev := fwd
			rev.SrcAddr, rev.DstAddr, rev.SrcPort, rev.DstPort, rev.TCPFlags = s, c, fwd.DstPort, fwd.SrcPort, revFlags
			convs[i] = conv{fwd, rev}
		}
		now := t0
		for range 60 {
			var batch []flow.Record
			for range 1 + rng.IntN(30) {
				c := convs[rng.IntN(len(convs))]
				if c.fwd.Proto == flow.ProtoTCP && rng.IntN(3) == 0 {
					// A later record of a direction may carry other
					// flags (an ACK after the SYN, a RST): the order in
					// which the two sides' flags arrive matters.
					extra := []uint8{flow.TCPAck, flow.TCPRst, flow.TCPFin}[rng.IntN(3)]
					if rng.IntN(2) == 0 {
						c.fwd.TCPFlags |= extra
					} else {
						c.rev.TCPFlags |= extra
					}
				}
				switch rng.IntN(5) {
				case 0: // one direction only
					batch = append(batch, c.fwd)
				case 1: // the reply alone
					batch = append(batch, c.rev)
				case 2: // reply first
					batch = append(batch, c.rev, c.fwd)
				default:
					batch = append(batch, c.fwd, c.rev)
				}
			}
			for i := range batch {
				one.Apply(batch[i : i+1])
			}
			batched.Apply(batch)
			// Steps of up to 20 s: windows (30 s) end in the middle of the
			// stream, so late records find tombstones and expired ones.
			now = now.Add(time.Duration(rng.IntN(20)) * time.Second)
			clkOne.Set(now)
			clkBatched.Set(now)
			one.Advance(now)
			batched.Advance(now)
		}
		end := now.Add(cfg.ReplyWindow + time.Second)
		one.Advance(end)
		batched.Advance(end)

		keys := one.AppendKeys(nil)
		if got := batched.Len(); got != len(keys) {
			t.Fatalf("seed %d: %d hosts batched, %d one by one", seed, got, len(keys))
		}
		for _, k := range keys {
			a, b := snap(t, one, k), snap(t, batched, k)
			if a.NoReply != b.NoReply || a.Refused != b.Refused || a.Unidirectional != b.Unidirectional || a.RefusedFlows != b.RefusedFlows {
				t.Errorf("seed %d, host %v: one by one %+v %+v %+v %+v; batched %+v %+v %+v %+v", seed, k,
					a.NoReply, a.Refused, a.Unidirectional, a.RefusedFlows, b.NoReply, b.Refused, b.Unidirectional, b.RefusedFlows)
			}
		}
	}
}

// TestPairTombstone checks observePair's tombstone: a late record of a
// conversation decided as a pair changes nothing within the reply window,
// and opens a new conversation after it.
func TestPairTombstone(t *testing.T) {
	tbl, clk, _ := newTestTable(t, DefaultConfiguration(), Dependencies{})
	fwd := rec("10.0.0.1", 40000, "10.0.1.1", 80, flow.ProtoTCP, syn)
	rev := rec("10.0.1.1", 80, "10.0.0.1", 40000, flow.ProtoTCP, synAck)
	tbl.Apply([]flow.Record{fwd, rev}) // answered, decided at once
	late := rec("10.0.0.1", 40000, "10.0.1.1", 80, flow.ProtoTCP, syn)
	clk.Set(t0.Add(10 * time.Second))
	tbl.Apply([]flow.Record{late})
	tbl.Advance(t0.Add(45 * time.Second)) // past the late record's own window, had it opened one
	if s := snap(t, tbl, key("10.0.0.1")); s.NoReply.PeersAsClient != 0 || s.Unidirectional.EgressTCP != 0 {
		t.Fatalf("late record within the window counted: %+v %+v", s.NoReply, s.Unidirectional)
	}
	clk.Set(t0.Add(60 * time.Second))
	tbl.Apply([]flow.Record{late}) // after the window: a new, unanswered attempt
	tbl.Advance(t0.Add(95 * time.Second))
	if s := snap(t, tbl, key("10.0.0.1")); s.NoReply.PeersAsClient != 1 || s.Unidirectional.EgressTCP != 1 {
		t.Fatalf("attempt after the window not counted: %+v %+v", s.NoReply, s.Unidirectional)
	}
}

// TestPairKnownConversationInOrder checks that a pair of a conversation
// the tracker already holds is observed in arrival order: the reply that
// comes first decides it, before the client's later flags (an ACK that
// would hide its SYN-only opening) are added.
func TestPairKnownConversationInOrder(t *testing.T) {
	tbl, _, _ := newTestTable(t, DefaultConfiguration(), Dependencies{})
	// A client opening from a low port: only its SYN-only flags make it
	// the client (by ports it would be the server).
	tbl.Apply([]flow.Record{rec("10.0.0.1", 1000, "10.0.1.1", 50000, flow.ProtoTCP, syn)})
	tbl.Apply([]flow.Record{
		rec("10.0.1.1", 50000, "10.0.0.1", 1000, flow.ProtoTCP, rstAck), // refused
		rec("10.0.0.1", 1000, "10.0.1.1", 50000, flow.ProtoTCP, flow.TCPAck),
	})
	if s := snap(t, tbl, key("10.0.0.1")); s.Refused.PeersAsClient != 1 || s.RefusedFlows.EgressTCP != 1 {
		t.Fatalf("refused conversation not decided on the reply that came first: %+v %+v", s.Refused, s.RefusedFlows)
	}
}
