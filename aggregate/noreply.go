package aggregate

import (
	"net/netip"

	"github.com/flowcheck/flowcheck/flow"
)

// convKey names a conversation independently of direction: endpoint a is the
// lower (address, port) pair, b the higher.
type convKey struct {
	a, b   [16]byte
	pa, pb uint16
	vlan   uint16
	proto  uint8
	v4     bool
}

// makeConvKey returns the key of the conversation between (src, sp) and
// (dst, dp), and whether src is endpoint a.
func makeConvKey(src netip.Addr, sp uint16, dst netip.Addr, dp uint16, proto uint8, vlan uint16) (convKey, bool) {
	s, d := src.As16(), dst.As16()
	srcIsA := true
	if c := compare16(s, d); c > 0 || (c == 0 && sp > dp) {
		srcIsA = false
	}
	k := convKey{vlan: vlan, proto: proto, v4: src.Is4()}
	if srcIsA {
		k.a, k.pa, k.b, k.pb = s, sp, d, dp
	} else {
		k.a, k.pa, k.b, k.pb = d, dp, s, sp
	}
	return k, srcIsA
}

func compare16(x, y [16]byte) int {
	for i := range x {
		if x[i] != y[i] {
			if x[i] < y[i] {
				return -1
			}
			return 1
		}
	}
	return 0
}

func (k *convKey) addrA() netip.Addr { return keyAddr(k.a, k.v4) }
func (k *convKey) addrB() netip.Addr { return keyAddr(k.b, k.v4) }

func keyAddr(b [16]byte, v4 bool) netip.Addr {
	a := netip.AddrFrom16(b)
	if v4 {
		return a.Unmap()
	}
	return a
}

// sideState is what one direction of a conversation showed: whether it
// carried a packet, and the OR of its TCP flags.
type sideState struct {
	seen  bool
	flags uint8
}

// verdict is the outcome of a conversation.
type verdict uint8

const (
	// verdictNone: answered (or nothing the client sent), no effect.
	verdictNone verdict = iota
	// verdictOneSided: the server sent no packet back.
	verdictOneSided
	// verdictRefused: TCP, the server answered only with RST (no SYN-ACK).
	verdictRefused
)

// decision is a decided conversation that changes contact sets.
type decision struct {
	client, server netip.Addr
	sport          uint16
	proto          uint8
	vlan           uint16
	verdict        verdict
}

// synOnly reports whether a direction's flags show a SYN without an ACK:
// the mark of the side that opened the connection.
func synOnly(f uint8) bool { return f&(flow.TCPSyn|flow.TCPAck) == flow.TCPSyn }

// decide applies the no-reply semantics to the two sides of a conversation.
// It returns the verdict and whether endpoint a is the client.
//
// Roles: for TCP, the side whose flags show SYN without ACK is the client
// (when exactly one side does). Otherwise the side with the lower port is
// the server; on equal ports the lower address (endpoint a) is the client.
// A conversation seen in one direction only is one-sided with the sender as
// client, except a TCP sender whose flags lack SYN-without-ACK and whose
// port is the lower one: that is a server talking to a silent client
// (backscatter, or a lost client record), not an attempt, so it has no
// effect. UDP has no flags: a lone UDP sender is always the client.
func decide(proto uint8, a, b sideState, pa, pb uint16) (verdict, bool) {
	switch {
	case a.seen && b.seen:
		aClient := roleAIsClient(proto, a, b, pa, pb)
		srv := b
		if !aClient {
			srv = a
		}
		if proto == flow.ProtoTCP && srv.flags&flow.TCPRst != 0 && srv.flags&flow.TCPSyn == 0 {
			return verdictRefused, aClient
		}
		return verdictNone, aClient
	case a.seen || b.seen:
		sender, sp, rp := a, pa, pb
		aSent := a.seen
		if !aSent {
			sender, sp, rp = b, pb, pa
		}
		if proto == flow.ProtoTCP && !synOnly(sender.flags) && sp < rp {
			return verdictNone, !aSent
		}
		return verdictOneSided, aSent
	}
	return verdictNone, true
}

// roleAIsClient tells whether endpoint a is the client of a conversation
// seen in both directions.
func roleAIsClient(proto uint8, a, b sideState, pa, pb uint16) bool {
	if proto == flow.ProtoTCP {
		as, bs := synOnly(a.flags), synOnly(b.flags)
		if as && !bs {
			return true
		}
		if bs && !as {
			return false
		}
	}
	if pa != pb {
		return pa > pb
	}
	return true
}

// makeDecision turns a verdict on key into a decision; ok is false when
// there is nothing to commit.
func makeDecision(k *convKey, v verdict, aClient bool) (decision, bool) {
	if v == verdictNone {
		return decision{}, false
	}
	d := decision{proto: k.proto, vlan: k.vlan, verdict: v}
	if aClient {
		d.client, d.server, d.sport = k.addrA(), k.addrB(), k.pb
	} else {
		d.client, d.server, d.sport = k.addrB(), k.addrA(), k.pa
	}
	return d, true
}

// pendingConv is a conversation waiting for its reply window to end.
type pendingConv struct {
	key      convKey
	deadline int64 // clock nanoseconds
	a, b     sideState
	decided  bool
}

// trackerShard is one shard of the NoReplyTracker: a FIFO of pending
// conversations (deadlines grow with insertion, since the clock never runs
// back) and an index from key to FIFO sequence number. A conversation
// decided before its deadline (both directions seen) stays in the FIFO as a
// tombstone until the deadline, so that a late record of the same
// conversation does not open a new one.
type trackerShard struct {
	idx        map[convKey]uint64
	ring       []pendingConv // length a power of 2
	head, tail uint64        // sequence numbers; live entries are [head, tail)
	max        int
}

func newTrackerShard(max int) *trackerShard {
	return &trackerShard{idx: make(map[convKey]uint64), ring: make([]pendingConv, minRing), max: max}
}

func (s *trackerShard) len() int { return int(s.tail - s.head) }

func (s *trackerShard) at(seq uint64) *pendingConv {
	return &s.ring[seq&uint64(len(s.ring)-1)]
}

// push appends a conversation; the caller made room.
func (s *trackerShard) push(p pendingConv) {
	if s.len() == len(s.ring) {
		s.resize(2 * len(s.ring))
	}
	*s.at(s.tail) = p
	s.idx[p.key] = s.tail
	s.tail++
}

// popHead removes the oldest conversation and decides it if it is still
// undecided, appending to out; early reports whether it was undecided.
func (s *trackerShard) popHead(out []decision) (_ []decision, early bool) {
	p := s.at(s.head)
	delete(s.idx, p.key)
	early = !p.decided
	if early {
		v, aClient := decide(p.key.proto, p.a, p.b, p.key.pa, p.key.pb)
		if d, ok := makeDecision(&p.key, v, aClient); ok {
			out = append(out, d)
		}
	}
	*p = pendingConv{}
	s.head++
	return out, early
}

// expire pops every conversation whose deadline is at or before now, and
// gives memory back after a burst.
func (s *trackerShard) expire(now int64, out []decision) []decision {
	popped := false
	for s.head < s.tail && s.at(s.head).deadline <= now {
		out, _ = s.popHead(out)
		popped = true
	}
	if popped && len(s.ring) > minRing && s.len() < len(s.ring)/8 {
		s.resize(len(s.ring) / 4)
	}
	return out
}

// minRing is the smallest ring; resize never goes below it.
const minRing = 16

// resize moves the live entries to a ring of n (a power of 2 >= len).
func (s *trackerShard) resize(n int) {
	n = max(n, minRing)
	ring := make([]pendingConv, n)
	for seq := s.head; seq < s.tail; seq++ {
		ring[seq&uint64(n-1)] = *s.at(seq)
	}
	s.ring = ring
}

// observe records one unidirectional record (srcIsA tells its direction)
// at time now. It returns the decisions made and whether an undecided
// conversation (the oldest) had to be decided early to make room; evicting
// the tombstone of a decided one costs nothing and is not reported.
func (s *trackerShard) observe(k convKey, srcIsA bool, flags uint8, now, window int64, out []decision) ([]decision, bool) {
	out = s.expire(now, out)
	if seq, ok := s.idx[k]; ok {
		p := s.at(seq)
		side := &p.a
		if !srcIsA {
			side = &p.b
		}
		side.seen = true
		side.flags |= flags
		if !p.decided && p.a.seen && p.b.seen {
			p.decided = true
			v, aClient := decide(k.proto, p.a, p.b, k.pa, k.pb)
			if d, ok := makeDecision(&k, v, aClient); ok {
				out = append(out, d)
			}
		}
		return out, false
	}
	overflow := false
	if s.len() >= s.max {
		out, overflow = s.popHead(out)
	}
	p := pendingConv{key: k, deadline: now + window}
	if srcIsA {
		p.a = sideState{seen: true, flags: flags}
	} else {
		p.b = sideState{seen: true, flags: flags}
	}
	s.push(p)
	return out, overflow
}

// decideBiflow decides a biflow record at once: its forward side is src
// (endpoint a when srcIsA), its reverse side dst.
func decideBiflow(r *flow.Record, k *convKey, srcIsA bool) (decision, bool) {
	fwdFlags, revFlags := r.TCPFlags, r.ReverseTCPFlags
	if r.ClientTCPFlags|r.ServerTCPFlags != 0 {
		// nProbe's per-role flags are more precise than the OR of both.
		fwdFlags, revFlags = r.ClientTCPFlags, r.ServerTCPFlags
	}
	fwd := sideState{seen: r.Packets > 0, flags: fwdFlags}
	rev := sideState{seen: r.ReversePackets > 0, flags: revFlags}
	a, b := fwd, rev
	if !srcIsA {
		a, b = rev, fwd
	}
	v, aClient := decide(k.proto, a, b, k.pa, k.pb)
	return makeDecision(k, v, aClient)
}
