package aggregate

import (
	"math/bits"
	"sync/atomic"
	"unsafe"

	"github.com/flowcheck/flowcheck/internal/prefetch"
)

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

// prefetchHash asks for the home slot of hash h in the table v6 tells.
func (x *convIndex) prefetchHash(h uint64, v6 bool) {
	if !v6 {
		x.v4.prefetch(h)
	} else {
		x.v6.prefetch(h)
	}
}

func (x *convIndex) len() int { return x.v4.len() + x.v6.len() }

// trackerShard is one shard of the reply tracker: a FIFO of pending
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
// recent (zeroed, recentSlots(max) long) as its tombstone cache, for a
// reply window of window nanoseconds; lastLoss tells the time of the
// latest ingest loss (HostTable.lastLoss).
func newTrackerShard(max int, window int64, lastLoss *atomic.Int64, recent []recentConv) *trackerShard {
	return &trackerShard{idx: newConvIndex(), ring: make([]pendingConv, minRing), max: max,
		recent: recent, recentShift: uint8(64 - bits.TrailingZeros(uint(len(recent)))),
		window: window, lastLoss: lastLoss}
}

// recentSlots is the size of the tombstone cache of a shard of max
// conversations: a quarter of that, at least 64, a power of 2.
func recentSlots(max int) int {
	n := 64
	for n < max/4 {
		n *= 2
	}
	return n
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

// prefetchOps asks for the slots that observing ops will read in the
// index and the tombstone cache (ops[j].i indexes hashes and v6) before
// any of them is observed, so that their cache misses overlap (see
// Apply's passes).
func (s *trackerShard) prefetchOps(ops []shardOp, hashes []uint64, v6 []bool) {
	for _, op := range ops {
		h := hashes[op.i]
		prefetch.Line(unsafe.Pointer(s.recentBucket(h)))
		s.idx.prefetchHash(h, v6[op.i])
	}
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

// prefetchHeads asks for the index slots of the conversations that
// observing n more records may pop to make room (when the tracker is
// nearly full), so that their cache misses overlap.
func (s *trackerShard) prefetchHeads(n int) {
	n = min(n, s.len()+n-s.max, s.len())
	for seq := s.head; seq < s.head+uint64(max(n, 0)); seq++ {
		p := s.at(seq)
		s.idx.prefetchHash(p.hash, p.v6)
	}
}

// observe records one unidirectional record (srcIsA tells its direction,
// app its application) of conversation k (h: its hash) at time now. It
// returns the decisions made and whether an undecided conversation (the
// oldest) had to be decided early to make room; evicting the tombstone of a
// decided one costs nothing and is not reported. A sampled service contact
// is not decided when both sides have shown up: it gathers the flags of
// its sampled packets until its window ends.
func (s *trackerShard) observe(k *convKey, h uint64, srcIsA bool, flags uint8, app l7ID, now int64, out []decision) ([]decision, bool) {
	out = s.expire(now, out)
	if st := s.idx.get(k, h); st != nil {
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
			if d, ok := makeDecision(k, v, aClient, st.app); ok {
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
	s.push(k, h, now+s.window, st)
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
func (s *trackerShard) observePair(k *convKey, h uint64, firstIsA bool, firstFlags, secondFlags uint8, now int64, out []decision) []decision {
	out = s.expire(now, out)
	if k.sampled() || s.idx.get(k, h) != nil {
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
	if d, ok := makeDecision(k, v, aClient, noApp); ok {
		out = append(out, d)
	}
	s.remember(h, now+s.window)
	return out
}
