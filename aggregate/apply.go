package aggregate

import (
	"encoding/binary"
	"slices"

	"github.com/flowcheck/flowcheck/flow"
)

// hostOp is one host update of Apply: the shard and hash of the host's
// key, and i: the host's sum in the batch (traffic), or decision i with
// flag telling whether the host is its client (commit).
type hostOp struct {
	shardOp
	hash uint64
}

// applyScratch holds Apply's per-call buffers, pooled.
type applyScratch struct {
	apps       []l7ID
	keys       []hkey // record i's source is keys[2i], its destination keys[2i+1]
	hosts      []*host
	traffic    batchTraffic
	touch      uint64 // sink of Apply's prefetching loads
	hostOps    []hostOp
	hostSort   []hostOp
	convOps    []shardOp
	convKeys   []convKey
	convHashes []uint64 // convKeys[i].hash()
	convV6     []bool   // convKeys[i] is not an IPv4 conversation
	convFlags  []uint8
	convApps   []l7ID
	sortBuf    []shardOp
	counts     []int
	decisions  []decision
	commits    []hostOp
}

// shardOp is one unit of work on a shard: index i into a batch, and a role
// flag (source / client).
type shardOp struct {
	shard uint32
	i     int32
	flag  bool
}

// sortOps orders ops by shard, stably (records of one shard keep their
// order), with a counting sort into tmp; it returns the sorted slice and
// the buffer to reuse next time.
func sortOps[O interface{ shardOf() uint32 }](ops, tmp []O, counts []int) (sorted, spare []O) {
	clear(counts)
	for _, op := range ops {
		counts[op.shardOf()]++
	}
	pos := 0
	for i, c := range counts {
		counts[i] = pos
		pos += c
	}
	tmp = slices.Grow(tmp[:0], len(ops))[:len(ops)]
	for _, op := range ops {
		tmp[counts[op.shardOf()]] = op
		counts[op.shardOf()]++
	}
	return tmp, ops
}

func (op shardOp) shardOf() uint32 { return op.shard }

// shardRuns walks the runs of a batch that sortOps ordered by shard, from
// the run ends it left in counts: the walk that locks each shard once per
// batch. Not an iter.Seq2 over the ops: that cost 3 % more instructions
// per record at batch=25 (docs/performance.md, "Host table internals").
type shardRuns struct {
	ends       []int // sortOps's counts: where each shard's run ends
	shard      int   // the current run's shard; -1 before the first
	start, end int   // the current run's ops are [start, end)
}

func newShardRuns(ends []int) shardRuns { return shardRuns{ends: ends, shard: -1} }

// next moves to the next shard that has ops, false after the last.
func (r *shardRuns) next() bool {
	for r.shard+1 < len(r.ends) {
		r.shard++
		r.start, r.end = r.end, r.ends[r.shard]
		if r.end > r.start {
			return true
		}
	}
	return false
}

// noApp marks a record Apply skips (an address missing); interned ids stay
// below maxL7Names.
const noApp l7ID = 1<<16 - 1

// Apply accounts a batch of records: traffic, L7 and MAC of both hosts,
// then conversation stitching. It is a flow.Handler and safe for concurrent
// use; each shard is locked once per batch, and each host looked up once
// per record.
func (t *HostTable) Apply(batch []flow.Record) {
	if len(batch) == 0 {
		return
	}
	now := t.clock.Now().UnixNano()
	sc := t.scratch.Get().(*applyScratch)
	defer t.scratch.Put(sc)
	t.applyTraffic(sc, batch, now)
	t.applyConversations(sc, batch, now)
}

// ApplyTrafficOnly accounts a batch's traffic, L7 and MAC as Apply does,
// but does not stitch its conversations: the cheaper path of an ingest
// that has fallen behind (the collector's Dependencies.Shed), so that host
// traffic stays complete instead of whole datagrams being dropped. The
// batch's conversations are never seen, so it counts as a loss for the
// no-reply verdicts: those whose window overlaps it are withheld (with
// withhold_after_ingest_loss). It is a flow.Handler, safe for concurrent
// use.
func (t *HostTable) ApplyTrafficOnly(batch []flow.Record) {
	if len(batch) == 0 {
		return
	}
	now := t.clock.Now().UnixNano()
	t.markLoss(now)
	sc := t.scratch.Get().(*applyScratch)
	defer t.scratch.Put(sc)
	t.applyTraffic(sc, batch, now)
}

// applyTraffic is Apply's first part: the traffic of both hosts of each
// record, summed by host (batchTraffic) and then added to each host once.
// It leaves in sc each record's application (sc.apps[i], noApp when the
// record is skipped) and host keys (sc.keys[2i], sc.keys[2i+1]) for
// applyConversations.
func (t *HostTable) applyTraffic(sc *applyScratch, batch []flow.Record, now int64) {
	nc := t.nc.Load()
	sc.apps = sc.apps[:0]
	sc.keys = slices.Grow(sc.keys[:0], 2*len(batch))[:2*len(batch)]
	sums := &sc.traffic
	sums.reset(2 * len(batch))
	for i := range batch {
		r := &batch[i]
		src, dst := &sc.keys[2*i], &sc.keys[2*i+1]
		if !r.SrcAddr.IsValid() || !r.DstAddr.IsValid() {
			t.metrics.recordsInvalid.Inc()
			sc.apps = append(sc.apps, noApp)
			*src, *dst = hkey{}, hkey{}
			continue
		}
		// In place, hashed right after (hkey.set). As16 maps IPv4 as
		// Unmap would have it: 4in6 records meet their IPv4 hosts.
		src.set(r.SrcAddr, r.VLAN)
		dst.set(r.DstAddr, r.VLAN)
		app, flows := t.l7.appOf(r), countsFlow(r)
		sc.apps = append(sc.apps, app)
		// A cluster's copy accounts only the host(s) its side names
		// (zero: both, a record decoded here).
		if r.Sides != flow.SideDst {
			sums.add(src, src.hash(), r.Bytes, r.Packets, r.ReverseBytes, r.ReversePackets, app, flows, r.SrcMAC)
		}
		if r.Sides != flow.SideSrc {
			sums.add(dst, dst.hash(), r.ReverseBytes, r.ReversePackets, r.Bytes, r.Packets, app, flows, r.DstMAC)
		}
	}
	sc.hostOps = sc.hostOps[:0]
	for i := range sums.hosts {
		hash := sums.hosts[i].hash
		sc.hostOps = append(sc.hostOps, hostOp{shardOp{uint32(hash & t.mask), int32(i), false}, hash})
	}
	if len(sc.counts) != len(t.shards) {
		sc.counts = make([]int, len(t.shards))
	}
	sc.hostOps, sc.hostSort = sortOps(sc.hostOps, sc.hostSort, sc.counts)
	for runs := newShardRuns(sc.counts); runs.next(); {
		ops := sc.hostOps[runs.start:runs.end]
		sh := &t.shards[runs.shard]
		sh.mu.Lock()
		// Look the shard's hosts up first, then touch them, then update
		// them: the loads of each pass do not depend on each other, so
		// their cache misses overlap instead of queueing behind each
		// update.
		sc.hosts = slices.Grow(sc.hosts[:0], len(ops))[:len(ops)]
		for j, op := range ops {
			sc.hosts[j] = sh.hosts.find(op.hash)
		}
		for _, h := range sc.hosts {
			if h != nil {
				// Its first line, then the last word of its first L7
				// entries: the second inline entry straddles two
				// lines, and its id lies in the first, which the first
				// entry touched. Only the first: a host with many
				// applications would cost a load per entry per record.
				for i := range min(len(h.l7), inlineL7) {
					sc.touch += h.l7[i].flows
				}
			}
		}
		for j, op := range ops {
			h, s := sc.hosts[j], &sums.hosts[op.i]
			if h == nil || h.key != s.key {
				// New, colliding, or refused at the ceiling.
				if h = t.getOrCreate(sh, s.key, op.hash, now, nc, s.records); h == nil {
					continue
				}
			}
			h.lastSeen = now
			sums.applyTo(h, s, t.maxL7)
		}
		sh.mu.Unlock()
		clear(sc.hosts) // drop host pointers: the pool must not keep expired hosts alive
	}
}

// applyConversations is Apply's second part: biflow records decide at once;
// unidirectional ones go through the tracker. It reads what applyTraffic
// left in sc.
func (t *HostTable) applyConversations(sc *applyScratch, batch []flow.Record, now int64) {
	sc.convOps, sc.convKeys, sc.convHashes, sc.convFlags = sc.convOps[:0], sc.convKeys[:0], sc.convHashes[:0], sc.convFlags[:0]
	sc.convApps, sc.convV6 = sc.convApps[:0], sc.convV6[:0]
	// Room for two ops per record (a sampled biflow's two sides): keys
	// are built in place (nextConvKey).
	sc.convKeys = slices.Grow(sc.convKeys, 2*len(batch))
	sc.decisions = sc.decisions[:0]
	for i := range batch {
		r := &batch[i]
		if (r.Proto != flow.ProtoTCP && r.Proto != flow.ProtoUDP) || sc.apps[i] == noApp {
			continue
		}
		if r.SamplingRate > 1 {
			t.addSampled(sc, r, i)
			continue
		}
		k := sc.nextConvKey()
		srcIsA := k.set(&sc.keys[2*i].addr, r.SrcPort, &sc.keys[2*i+1].addr, r.DstPort, r.Proto, r.VLAN)
		if r.Sides == flow.SideSrc || r.Sides == flow.SideDst {
			k.vp |= onlyTag(r.Sides == flow.SideSrc == srcIsA)
		}
		if r.Biflow {
			if d, ok := decideBiflow(r, k, srcIsA); ok {
				sc.decisions = append(sc.decisions, d)
			}
			continue
		}
		if r.Packets == 0 {
			continue
		}
		t.addConvOp(sc, srcIsA, r.TCPFlags, sc.apps[i])
	}
	sc.convOps, sc.sortBuf = sortOps(sc.convOps, sc.sortBuf, sc.counts)
	overflows := 0
	for runs := newShardRuns(sc.counts); runs.next(); {
		ops := sc.convOps[runs.start:runs.end]
		tl := &t.trackers[runs.shard]
		tl.mu.Lock()
		// As for hosts: a pass of independent loads first.
		tl.t.prefetchOps(ops, sc.convHashes, sc.convV6)
		tl.t.prefetchHeads(len(ops))
		for j := 0; j < len(ops); j++ {
			op := ops[j]
			// Both directions of a conversation, next to each other (a
			// shard keeps its records in order).
			if j+1 < len(ops) && ops[j+1].flag != op.flag && sc.convKeys[ops[j+1].i] == sc.convKeys[op.i] {
				sc.decisions = tl.t.observePair(&sc.convKeys[op.i], sc.convHashes[op.i], op.flag, sc.convFlags[op.i], sc.convFlags[ops[j+1].i], now, sc.decisions)
				j++
				continue
			}
			var overflow bool
			sc.decisions, overflow = tl.t.observe(&sc.convKeys[op.i], sc.convHashes[op.i], op.flag, sc.convFlags[op.i], sc.convApps[op.i], now, sc.decisions)
			if overflow {
				overflows++
			}
		}
		tl.mu.Unlock()
	}
	if overflows > 0 {
		t.metrics.pendingOverflow.Add(float64(overflows))
	}
	t.commit(sc, sc.decisions)
}

// nextConvKey returns the room of the next op's key, at the end of
// sc.convKeys (whose capacity applyConversations grew); addConvOp takes it.
func (sc *applyScratch) nextConvKey() *convKey {
	n := len(sc.convKeys)
	return &sc.convKeys[:n+1][n]
}

// addConvOp queues one direction (srcIsA: sent by endpoint a) of the
// conversation whose key nextConvKey's room holds, for the tracker.
func (t *HostTable) addConvOp(sc *applyScratch, srcIsA bool, flags uint8, app l7ID) {
	i := len(sc.convKeys)
	sc.convKeys = sc.convKeys[:i+1]
	k := &sc.convKeys[i]
	h := k.hash()
	sc.convOps = append(sc.convOps, shardOp{uint32(h & t.mask), int32(i), srcIsA})
	sc.convHashes = append(sc.convHashes, h)
	_, v4 := k.short()
	sc.convV6 = append(sc.convV6, !v4)
	sc.convFlags = append(sc.convFlags, flags)
	sc.convApps = append(sc.convApps, app)
}

// addSampled queues record i, sampled 1-in-N (N > 1), as evidence about
// its TCP service contact (see convKey.setSampled and decideSampled). The
// sender is the client when its flags show SYN without ACK, else when it
// has the higher port (the lower address on equal ports), as countsFlow
// has it. A sampled UDP record is no evidence: without a handshake an
// unsampled reply cannot be told from none. A biflow gives its two sides.
func (t *HostTable) addSampled(sc *applyScratch, r *flow.Record, i int) {
	if r.Proto != flow.ProtoTCP {
		return
	}
	src, dst := sc.keys[2*i].addr, sc.keys[2*i+1].addr
	fwd := sideState{seen: r.Packets > 0, flags: r.TCPFlags}
	rev := sideState{seen: r.Biflow && r.ReversePackets > 0, flags: r.ReverseTCPFlags}
	if r.Biflow && r.ClientTCPFlags|r.ServerTCPFlags != 0 {
		fwd.flags, rev.flags = r.ClientTCPFlags, r.ServerTCPFlags
	}
	var srcClient bool
	if fwd.seen && rev.seen {
		srcClient = roleAIsClient(flow.ProtoTCP, fwd, rev, r.SrcPort, r.DstPort)
	} else {
		one := fwd
		if !fwd.seen {
			one = rev
		}
		// A lone reverse side is sent by dst: the port comparison
		// turns round.
		higher := r.SrcPort > r.DstPort || (r.SrcPort == r.DstPort && bytesLess(src, dst))
		if !fwd.seen {
			higher = r.DstPort > r.SrcPort || (r.SrcPort == r.DstPort && bytesLess(dst, src))
		}
		srcClient = (synOnly(one.flags) || higher) == fwd.seen
	}
	cli, srv, sport, cs, ss := src, dst, r.DstPort, fwd, rev
	if !srcClient {
		cli, srv, sport, cs, ss = dst, src, r.SrcPort, rev, fwd
	}
	k := sc.nextConvKey()
	k.setSampled(&cli, &srv, sport, r.VLAN, r.SamplingRate)
	if r.Sides == flow.SideSrc || r.Sides == flow.SideDst {
		// Endpoint a of a sampled key is the client.
		k.vp |= onlyTag(r.Sides == flow.SideSrc == srcClient)
	}
	if cs.seen {
		t.addConvOp(sc, true, cs.flags, noApp)
		if ss.seen {
			*sc.nextConvKey() = *k // the server's side: an op of its own
		}
	}
	if ss.seen {
		t.addConvOp(sc, false, ss.flags, noApp)
	}
}

// bytesLess compares two 16-byte address forms as big-endian numbers.
func bytesLess(a, b [16]byte) bool {
	ah, bh := binary.BigEndian.Uint64(a[:8]), binary.BigEndian.Uint64(b[:8])
	return ah < bh || (ah == bh && binary.BigEndian.Uint64(a[8:]) < binary.BigEndian.Uint64(b[8:]))
}

// getOrCreate returns the host of key, creating it unless the table is at
// its ceiling (remote hosts hit a lower one, keeping room for local hosts;
// a refusal counts once per record that named it). The caller
// holds sh.mu.
func (t *HostTable) getOrCreate(sh *hostShard, key hkey, hash uint64, now int64, nc *netClass, records int) *host {
	if h := sh.hosts.get(key, hash); h != nil {
		return h
	}
	addr := addrOf16(key.addr)
	flags := nc.classify(addr)
	limit, refused := t.remoteLimit, t.refusedRemote
	if flags&flagLocal != 0 {
		limit, refused = t.localLimit, t.refusedLocal
	}
	if t.count.Add(1) > limit {
		t.count.Add(-1)
		refused.Add(float64(records))
		return nil
	}
	h := newHost(key, flags, now)
	sh.hosts.put(hash, h)
	if t.rdns != nil {
		if _, static := nc.names[addr]; !static {
			t.rdns.request(addr)
		}
	}
	return h
}
