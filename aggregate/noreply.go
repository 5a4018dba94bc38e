package aggregate

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
	"sync/atomic"

	"github.com/flowcheck/flowcheck/flow"
)

// convKey names a conversation independently of direction: endpoint a is the
// lower (address, port) pair, b the higher. Addresses are in their 16-byte
// form (IPv4 v4-mapped, never zoned). The key has no padding, so the maps
// hash and compare it as one 40-byte block.
type convKey struct {
	a, b  [16]byte
	ports uint32 // pa<<16 | pb
	vp    uint32 // vlan<<8 | proto
}

func (k *convKey) pa() uint16   { return uint16(k.ports >> 16) }
func (k *convKey) pb() uint16   { return uint16(k.ports) }
func (k *convKey) proto() uint8 { return uint8(k.vp) }
func (k *convKey) vlan() uint16 { return uint16(k.vp >> 8) }

// sampledKey marks, in convKey.vp, the key of a sampled service contact
// (see makeSampledKey); 5-tuple keys never carry it (vp is vlan<<8|proto).
const sampledKey = 1 << 31

// sampled reports whether k is a sampled service contact's key.
func (k *convKey) sampled() bool { return k.vp&sampledKey != 0 }

// rate is the sampling rate of a sampled key, 1 for a 5-tuple key.
func (k *convKey) rate() uint32 {
	if !k.sampled() {
		return 1
	}
	return k.ports >> 16
}

// makeSampledKey returns the key of a sampled service contact: records of
// one TCP client to one server port, whatever the client's port, sampled
// 1-in-rate. Endpoint a is always the client, and the client's port field
// holds the rate (at most 65535), so that exporters sampling at different
// rates keep apart.
func makeSampledKey(client [16]byte, server [16]byte, sport uint16, vlan uint16, rate uint32) convKey {
	return convKey{a: client, b: server, ports: min(rate, 1<<16-1)<<16 | uint32(sport),
		vp: sampledKey | uint32(vlan)<<8 | flow.ProtoTCP}
}

// makeConvKey returns the key of the conversation between (src, sp) and
// (dst, dp), and whether src is endpoint a. Addresses are 16-byte forms
// of unmapped addresses (netip.Addr.As16).
func makeConvKey(s [16]byte, sp uint16, d [16]byte, dp uint16, proto uint8, vlan uint16) (convKey, bool) {
	// (s, sp) > (d, dp), the addresses compared as big-endian numbers:
	// two word compares instead of bytes.Compare's call.
	sh, sl := binary.BigEndian.Uint64(s[:8]), binary.BigEndian.Uint64(s[8:])
	dh, dl := binary.BigEndian.Uint64(d[:8]), binary.BigEndian.Uint64(d[8:])
	srcIsA := !(sh > dh || (sh == dh && (sl > dl || (sl == dl && sp > dp))))
	k := convKey{vp: uint32(vlan)<<8 | uint32(proto)}
	if srcIsA {
		k.a, k.b, k.ports = s, d, uint32(sp)<<16|uint32(dp)
	} else {
		k.a, k.b, k.ports = d, s, uint32(dp)<<16|uint32(sp)
	}
	return k, srcIsA
}

// addrOf16 turns a key's 16-byte address back into an address: v4-mapped
// forms are IPv4, since keys never hold a mapped IPv6 address.
func addrOf16(b [16]byte) netip.Addr { return netip.AddrFrom16(b).Unmap() }

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
	client, server [16]byte // 16-byte forms, as in convKey
	sport          uint16
	proto          uint8
	vlan           uint16
	verdict        verdict
	// rate is the sampling rate behind the verdict: 1 for a conversation
	// seen unsampled, N for a sampled service contact (each stands for N
	// conversations).
	rate uint32
	// app and addFlow: the only record of a one-sided UDP conversation
	// came from the lower port, so countsFlow took it for the server's
	// direction and counted no flow, while the tracker made its sender
	// the client; the L7 entry app of both hosts then gains the flow.
	app     l7ID
	addFlow bool
	// lossy: one-sided, and ingest lost datagrams during the reply
	// window (or a window before it, when a reply may come first), so
	// the reply may have been lost rather than never sent.
	lossy bool
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

// decideKey decides conversation k from its two sides: decide for a
// 5-tuple, decideSampled for a sampled service contact (whose endpoint a
// is the client).
func decideKey(k *convKey, a, b sideState) (verdict, bool) {
	if k.sampled() {
		return decideSampled(a, b), true
	}
	return decide(k.proto(), a, b, k.pa(), k.pb())
}

// decideSampled decides a sampled TCP service contact from the OR of the
// flags its client (cli) and server (srv) sent in the sampled packets of
// one reply window. Only what was sampled is evidence; the absence of a
// reply is not, unless the client only ever tried to connect:
//   - refused: the server sent RST, and neither SYN nor data flags (PSH,
//     FIN, URG), and the client never acknowledged anything (no ACK);
//   - one-sided: the client sent only connection attempts (SYN without
//     ACK or RST) and nothing of the server was sampled;
//   - otherwise answered: a SYN-ACK or data from the server, or an ACK
//     from the client (an established connection), was sampled, or the
//     client's packets were not attempts.
func decideSampled(cli, srv sideState) verdict {
	const data = flow.TCPSyn | flow.TCPFin | flow.TCPPsh | flow.TCPUrg
	switch {
	case srv.seen:
		if srv.flags&flow.TCPRst != 0 && srv.flags&data == 0 && (!cli.seen || cli.flags&flow.TCPAck == 0) {
			return verdictRefused
		}
	case cli.seen && synOnly(cli.flags) && cli.flags&flow.TCPRst == 0:
		return verdictOneSided
	}
	return verdictNone
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
// there is nothing to commit. app is the application of the
// conversation's records (noApp when unknown: pairs, biflows).
func makeDecision(k *convKey, v verdict, aClient bool, app l7ID) (decision, bool) {
	if v == verdictNone {
		return decision{}, false
	}
	d := decision{proto: k.proto(), vlan: k.vlan(), verdict: v, rate: k.rate(), app: app}
	var cport uint16
	if aClient {
		d.client, d.server, d.sport, cport = k.a, k.b, k.pb(), k.pa()
	} else {
		d.client, d.server, d.sport, cport = k.b, k.a, k.pa(), k.pb()
	}
	// countsFlow counts a UDP record as a flow when it comes from the
	// higher port (the lower address on equal ports): the only record of
	// a one-sided conversation that does not was counted by nobody.
	d.addFlow = app != noApp && v == verdictOneSided && d.proto == flow.ProtoUDP && !k.sampled() &&
		(cport < d.sport || (cport == d.sport && !aClient))
	return d, true
}

// pendingConv is a conversation in the FIFO, waiting for its reply
// window to end: its key's hash (the index slot holds the key) and which
// of the index's tables holds it. 24 bytes instead of the key's 48: the
// FIFO is written once and read once per conversation.
type pendingConv struct {
	hash     uint64
	deadline int64 // clock nanoseconds
	v6       bool
}

// convState is what a pending conversation has shown so far. It lives in
// the index itself, so that a record of a known conversation costs one map
// lookup and no visit to the FIFO.
type convState struct {
	a, b    sideState
	decided bool
	// app is the application of the record that opened the conversation
	// (for the L7 flow of a lone UDP datagram, see decision.addFlow).
	app l7ID
}

// convIndex maps conversations to their state. IPv4 conversations, the
// bulk of the traffic, are keyed by a 16-byte form of the key: slots are
// 32 bytes instead of 56 and compare in two words after the hash, so a
// lookup touches fewer cache lines.
type convIndex struct {
	v4 probeTable[convKey4, convState]
	v6 probeTable[convKey, convState]
}

// convKey4 is a convKey whose two addresses are IPv4.
type convKey4 struct {
	a, b      uint32
	ports, vp uint32
}

// v4Prefix is the first 12 bytes of a v4-mapped address.
var v4Prefix = [12]byte{10: 0xff, 11: 0xff}

// long returns the convKey of an IPv4 conversation's short key.
func (k convKey4) long() convKey {
	l := convKey{ports: k.ports, vp: k.vp}
	copy(l.a[:], v4Prefix[:])
	copy(l.b[:], v4Prefix[:])
	binary.BigEndian.PutUint32(l.a[12:], k.a)
	binary.BigEndian.PutUint32(l.b[12:], k.b)
	return l
}

// short returns the 16-byte form of an IPv4 conversation's key.
func (k *convKey) short() (convKey4, bool) {
	if [12]byte(k.a[:12]) != v4Prefix || [12]byte(k.b[:12]) != v4Prefix {
		return convKey4{}, false
	}
	return convKey4{binary.BigEndian.Uint32(k.a[12:]), binary.BigEndian.Uint32(k.b[12:]), k.ports, k.vp}, true
}

// hash4 hashes an IPv4 conversation's short key.
func hash4(k convKey4) uint64 {
	return mix64(uint64(k.a)<<32 | uint64(k.b) ^ mix64(uint64(k.ports)<<32|uint64(k.vp)))
}

// hash6 hashes a conversation's full key.
func hash6(k convKey) uint64 {
	x := mix64(uint64(k.ports)<<32 | uint64(k.vp))
	x = mix64(x ^ binary.LittleEndian.Uint64(k.a[:8]))
	x = mix64(x ^ binary.LittleEndian.Uint64(k.a[8:]))
	x = mix64(x ^ binary.LittleEndian.Uint64(k.b[:8]))
	return mix64(x ^ binary.LittleEndian.Uint64(k.b[8:]))
}

// hash is the hash of k that picks its tracker shard (low bits), its
// index slot and its tombstone bucket (high bits): hash4 of the short key
// for IPv4, hash6 otherwise.
func (k *convKey) hash() uint64 {
	if k4, ok := k.short(); ok {
		return hash4(k4)
	}
	return hash6(*k)
}

func newConvIndex() convIndex {
	return convIndex{v4: newProbeTable[convKey4, convState](), v6: newProbeTable[convKey, convState]()}
}

// The methods below take k's hash, k.hash(), which the caller computed
// once for the record (it picked the tracker shard).

// get returns k's state, or nil; the pointer is valid until the next add
// or take.
func (x *convIndex) get(k *convKey, h uint64) *convState {
	if k4, ok := k.short(); ok {
		return x.v4.find(k4, h)
	}
	return x.v6.find(*k, h)
}

// add adds k, which get did not find, and tells which table holds it.
func (x *convIndex) add(k *convKey, h uint64, st convState) (v6 bool) {
	if k4, ok := k.short(); ok {
		x.v4.insert(k4, h, st)
		return false
	}
	x.v6.insert(*k, h, st)
	return true
}

// takeHash removes the conversation of hash h from the table v6 tells, and
// returns its key and state. Should two live keys share a 64-bit hash, it
// takes one of them: that conversation is then decided at the other's
// deadline, which changes nothing but its timing.
func (x *convIndex) takeHash(h uint64, v6 bool) (convKey, convState, bool) {
	if !v6 {
		k4, st, ok := x.v4.removeHash(h)
		return k4.long(), st, ok
	}
	return x.v6.removeHash(h)
}

// touch reads k's home slot (see Apply's passes).
func (x *convIndex) touch(k *convKey, h uint64) bool {
	_, ok := k.short()
	return x.touchHash(h, !ok)
}

// touchHash reads the home slot of hash h in the table v6 tells.
func (x *convIndex) touchHash(h uint64, v6 bool) bool {
	if !v6 {
		return x.v4.touch(h)
	}
	return x.v6.touch(h)
}

func (x *convIndex) len() int { return x.v4.len() + x.v6.len() }

// trackerShard is one shard of the NoReplyTracker: a FIFO of pending
// conversations (deadlines grow with insertion, since the clock never runs
// back) and an index from key to state. A conversation decided before its
// deadline (both directions seen) stays as a tombstone until the
// deadline, so that a late record of the same conversation does not open a
// new one.
type trackerShard struct {
	idx        convIndex
	ring       []pendingConv // length a power of 2
	head, tail uint64        // sequence numbers; live entries are [head, tail)
	max        int
	// recent holds the tombstones of conversations decided by observePair,
	// in two-way buckets picked by the top bits of the key hash
	// (recentShift): a pair costs one slot write instead of a place in the
	// index and the FIFO.
	recent      []recentConv
	recentShift uint8
	// window is the reply window (clock ns).
	window int64
	// lastLoss is the table's HostTable.lastLoss: the clock time of the
	// latest ingest loss, read when a conversation is decided.
	lastLoss *atomic.Int64
}

// recentConv is the tombstone of a conversation decided by observePair:
// the 64-bit hash of its key, and the end of its reply window.
type recentConv struct {
	hash     uint64
	deadline int64
}

// newTrackerShard returns a shard holding at most max conversations, with
// a tombstone cache of a quarter of that (at least 64, a power of 2), for
// a reply window of window nanoseconds; lastLoss tells the time of the
// latest ingest loss (HostTable.lastLoss).
func newTrackerShard(max int, window int64, lastLoss *atomic.Int64) *trackerShard {
	n := 64
	for n < max/4 {
		n *= 2
	}
	return &trackerShard{idx: newConvIndex(), ring: make([]pendingConv, minRing), max: max,
		recent: make([]recentConv, n), recentShift: uint8(64 - bits.TrailingZeros(uint(n))),
		window: window, lastLoss: lastLoss}
}

// recentBucket returns the two slots (one cache line) where the tombstone
// of key hash h may be: two ways, so that two live tombstones whose hashes
// meet do not push each other out.
func (s *trackerShard) recentBucket(h uint64) *[2]recentConv {
	return (*[2]recentConv)(s.recent[h>>s.recentShift&^1:])
}

// decidedRecently reports whether the conversation of key hash h was
// decided by observePair less than a reply window ago (and its cache slot
// not reused since).
func (s *trackerShard) decidedRecently(h uint64, now int64) bool {
	b := s.recentBucket(h)
	return (b[0].hash == h && b[0].deadline > now) || (b[1].hash == h && b[1].deadline > now)
}

// remember keeps the tombstone of key hash h until deadline, in the slot of
// its bucket whose tombstone ends first.
func (s *trackerShard) remember(h uint64, deadline int64) {
	b := s.recentBucket(h)
	i := 0
	if b[1].hash == h || (b[0].hash != h && b[1].deadline < b[0].deadline) {
		i = 1
	}
	b[i] = recentConv{hash: h, deadline: deadline}
}

// touch reads k's slots in the index and the tombstone cache (see Apply's
// passes); the result only feeds a sink.
func (s *trackerShard) touch(k *convKey, h uint64) bool {
	return s.idx.touch(k, h) != (s.recentBucket(h)[0].deadline == 0)
}

func (s *trackerShard) len() int { return int(s.tail - s.head) }

func (s *trackerShard) at(seq uint64) *pendingConv {
	return &s.ring[seq&uint64(len(s.ring)-1)]
}

// push appends conversation k (h: its hash); the caller made room.
func (s *trackerShard) push(k *convKey, h uint64, deadline int64, st convState) {
	if s.len() == len(s.ring) {
		s.resize(2 * len(s.ring))
	}
	*s.at(s.tail) = pendingConv{hash: h, deadline: deadline, v6: s.idx.add(k, h, st)}
	s.tail++
}

// popHead removes the oldest conversation and decides it if it is still
// undecided, appending to out; early reports whether it was undecided.
func (s *trackerShard) popHead(out []decision) (_ []decision, early bool) {
	p := s.at(s.head)
	k, st, ok := s.idx.takeHash(p.hash, p.v6)
	early = ok && !st.decided
	if early {
		v, aClient := decideKey(&k, st.a, st.b)
		if d, ok := makeDecision(&k, v, aClient, st.app); ok {
			// A loss since one window before the first record (a reply
			// may precede its request by up to a window) may have
			// taken the reply. lastLoss only grows, so a loss after
			// the deadline but before this pop counts too: the pop
			// comes within about a second of the deadline (Advance).
			d.lossy = v == verdictOneSided && s.lastLoss.Load() >= p.deadline-2*s.window
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

// touchHeads reads the index slots of the conversations that observing n
// more records may pop to make room (when the tracker is nearly full), so
// that their cache misses overlap; the result only feeds a sink.
func (s *trackerShard) touchHeads(n int) bool {
	n = min(n, s.len()+n-s.max, s.len())
	t := false
	for seq := s.head; seq < s.head+uint64(max(n, 0)); seq++ {
		p := s.at(seq)
		t = s.idx.touchHash(p.hash, p.v6) != t
	}
	return t
}

// observe records one unidirectional record (srcIsA tells its direction,
// app its application) of conversation k (h: its hash) at time now. It
// returns the decisions made and whether an undecided conversation (the
// oldest) had to be decided early to make room; evicting the tombstone of a
// decided one costs nothing and is not reported. A sampled service contact
// is not decided when both sides have shown up: it gathers the flags of
// its sampled packets until its window ends.
func (s *trackerShard) observe(k convKey, h uint64, srcIsA bool, flags uint8, app l7ID, now int64, out []decision) ([]decision, bool) {
	out = s.expire(now, out)
	if st := s.idx.get(&k, h); st != nil {
		if st.decided {
			// A tombstone: later records change nothing.
			return out, false
		}
		side := &st.a
		if !srcIsA {
			side = &st.b
		}
		side.seen = true
		side.flags |= flags
		if st.a.seen && st.b.seen && !k.sampled() {
			st.decided = true
			v, aClient := decide(k.proto(), st.a, st.b, k.pa(), k.pb())
			if d, ok := makeDecision(&k, v, aClient, st.app); ok {
				out = append(out, d)
			}
		}
		return out, false
	}
	if s.decidedRecently(h, now) {
		// The tombstone of a conversation observePair decided.
		return out, false
	}
	overflow := false
	if s.len() >= s.max {
		out, overflow = s.popHead(out)
	}
	st := convState{app: app}
	if srcIsA {
		st.a = sideState{seen: true, flags: flags}
	} else {
		st.b = sideState{seen: true, flags: flags}
	}
	s.push(&k, h, now+s.window, st)
	return out, overflow
}

// observePair records two unidirectional records of conversation k (h: its
// hash), one per direction, that arrived next to each other: first (from
// endpoint a when firstIsA) with flags firstFlags, then the other with
// secondFlags. Exporters that expire both directions together (softflowd,
// pmacctd) send most conversations this way. Unless the conversation is
// already pending or decided, it is decided at once, as the second record
// would have decided it, and only its tombstone is kept, in the cache of
// recent decisions, not in the index and the FIFO: no insertion, and no
// eviction to make room, which would cost a cache miss each.
func (s *trackerShard) observePair(k convKey, h uint64, firstIsA bool, firstFlags, secondFlags uint8, now int64, out []decision) []decision {
	out = s.expire(now, out)
	if k.sampled() || s.idx.get(&k, h) != nil {
		// Known, or a sampled contact that waits for its whole window:
		// the records go the usual way, in order (the first may decide
		// the conversation before the second adds its flags).
		out, _ = s.observe(k, h, firstIsA, firstFlags, noApp, now, out)
		out, _ = s.observe(k, h, !firstIsA, secondFlags, noApp, now, out)
		return out
	}
	if s.decidedRecently(h, now) {
		return out
	}
	aFlags, bFlags := firstFlags, secondFlags
	if !firstIsA {
		aFlags, bFlags = bFlags, aFlags
	}
	v, aClient := decide(k.proto(), sideState{seen: true, flags: aFlags}, sideState{seen: true, flags: bFlags}, k.pa(), k.pb())
	if d, ok := makeDecision(&k, v, aClient, noApp); ok {
		out = append(out, d)
	}
	s.remember(h, now+s.window)
	return out
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
	v, aClient := decide(k.proto(), a, b, k.pa(), k.pb())
	return makeDecision(k, v, aClient, noApp)
}
