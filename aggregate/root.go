package aggregate

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowcheck/flowcheck/clock"
	"github.com/flowcheck/flowcheck/flow"
)

// Dependencies are what the host table needs from the rest of the program.
type Dependencies struct {
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Clock is the only time source (live or replay): windows, expiry and
	// first/last seen read it, never record timestamps.
	Clock clock.Clock
	// OnExpire is called, outside the table's locks, for each host that
	// expires. It may be nil.
	OnExpire func(key HostKey)
	// LookupAddr resolves an address to names for the optional reverse
	// DNS; nil means net.DefaultResolver.LookupAddr.
	LookupAddr LookupAddrFunc
}

// sweepInterval is how often (in clock time) Advance looks for idle hosts.
const sweepInterval = time.Second

// HostTable holds the state of every host, sharded by a hash of the host
// key so that ingest workers update it in parallel.
type HostTable struct {
	log      *slog.Logger
	clock    clock.Clock
	onExpire func(HostKey)
	metrics  *metrics
	// refusedLocal and refusedRemote are hostsRefused's two series,
	// commitOneSided and commitRefused committed's.
	refusedLocal, refusedRemote   prometheus.Counter
	commitOneSided, commitRefused prometheus.Counter
	withheld                      prometheus.Counter

	shards   []hostShard
	trackers []trackerLock
	mask     uint64

	// count is the number of hosts, across shards.
	count                   atomic.Int64
	localLimit, remoteLimit int64
	idleLocal, idleRemote   int64
	exactSetSize            int
	maxL7                   int
	foldRefused             bool
	withholdAfterLoss       bool
	lossTolerance           float64

	// lastLoss is the clock time (ns) of the latest ingest loss told to
	// IngestLost; noLoss before any.
	lastLoss atomic.Int64

	nc        atomic.Pointer[netClass]
	lastSweep atomic.Int64
	sweepMu   sync.Mutex

	scratch sync.Pool
	l7      l7Names

	// reloadMu serializes Reload, blacklist reloads and Start/Stop.
	reloadMu sync.Mutex
	cfg      Configuration
	black    *prefixSet
	watch    *blacklistWatcher
	rdns     *resolver
}

type hostShard struct {
	mu    sync.Mutex
	hosts hostIndex
	_     [48]byte // keep shards on separate cache lines
}

// hkey is the host map's key: HostKey with the address in its 16-byte
// form (IPv4 v4-mapped). Unlike netip.Addr it holds no zone pointer, so
// the map hashes and compares it as one 18-byte block.
type hkey struct {
	addr [16]byte
	vlan uint16
}

// keyOf is the map key of a host key; a v4-mapped IPv6 address is the same
// host as its IPv4 address.
func keyOf(k HostKey) hkey { return hkey{k.Addr.Unmap().As16(), k.VLAN} }

// hostKey turns a map key back into the host key.
func (k hkey) hostKey() HostKey { return HostKey{addrOf16(k.addr), k.vlan} }

type trackerLock struct {
	mu sync.Mutex
	t  *trackerShard
	_  [48]byte
}

// New builds a host table. The blacklist files are read now; a file that
// cannot be read is an error.
func New(cfg Configuration, deps Dependencies) (*HostTable, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Registerer == nil {
		deps.Registerer = prometheus.NewRegistry()
	}
	if deps.Clock == nil {
		deps.Clock = clock.Live{}
	}
	t := &HostTable{
		log:          deps.Logger.With("component", "aggregate"),
		clock:        deps.Clock,
		onExpire:     deps.OnExpire,
		shards:       make([]hostShard, cfg.Shards),
		trackers:     make([]trackerLock, cfg.Shards),
		mask:         uint64(cfg.Shards - 1),
		localLimit:   int64(cfg.MaxHosts),
		remoteLimit:  int64(cfg.MaxHosts) * int64(100-cfg.LocalReservePercent) / 100,
		idleLocal:    int64(cfg.IdleTimeout.Local),
		idleRemote:   int64(cfg.IdleTimeout.Remote),
		exactSetSize: cfg.ExactSetSize,
		maxL7:        cfg.MaxL7Protocols,
		foldRefused:  cfg.FoldRefusedIntoNoReply,
		cfg:          cfg,

		withholdAfterLoss: cfg.WithholdAfterIngestLoss,
		lossTolerance:     cfg.IngestLossTolerance,
	}
	t.lastLoss.Store(noLoss)
	t.scratch.New = func() any { return &applyScratch{} }
	perShard := max(1, cfg.MaxPending/cfg.Shards)
	for i := range t.shards {
		t.shards[i].hosts = newHostIndex()
		t.trackers[i].t = newTrackerShard(perShard, int64(cfg.ReplyWindow), &t.lastLoss)
	}
	m, err := newMetrics(deps.Registerer, t)
	if err != nil {
		return nil, fmt.Errorf("aggregate: metrics: %w", err)
	}
	t.metrics = m
	t.refusedLocal = m.hostsRefused.WithLabelValues("local")
	t.refusedRemote = m.hostsRefused.WithLabelValues("remote")
	t.commitOneSided = m.committed.WithLabelValues("one_sided")
	t.commitRefused = m.committed.WithLabelValues("refused")
	t.withheld = m.withheld
	t.l7.overflow = m.l7NamesOverflow.Inc
	if err := t.loadConfig(cfg); err != nil {
		return nil, err
	}
	if cfg.ReverseDNS.Enabled {
		t.rdns = newResolver(cfg.ReverseDNS, deps.LookupAddr, m, t.log)
	}
	t.lastSweep.Store(t.clock.Now().UnixNano())
	return t, nil
}

// loadConfig reads the blacklists and swaps in the classifier built from
// cfg. On error nothing changes. The caller holds reloadMu (or is New).
func (t *HostTable) loadConfig(cfg Configuration) error {
	black, bad, err := loadBlacklists(cfg.Blacklists)
	if err != nil {
		t.metrics.blacklistReloads.WithLabelValues("error").Inc()
		return err
	}
	nc, err := newNetClass(cfg, black)
	if err != nil {
		return err
	}
	t.reportBadLines(bad)
	t.metrics.blacklistReloads.WithLabelValues("ok").Inc()
	t.metrics.blacklistEntries.Set(float64(black.Len()))
	t.cfg, t.black = cfg, black
	t.nc.Store(nc)
	return nil
}

func (t *HostTable) reportBadLines(bad []lineError) {
	t.metrics.blacklistBadLines.Add(float64(len(bad)))
	for i, b := range bad {
		if i == 10 {
			t.log.Warn("more bad blacklist lines skipped", "count", len(bad)-i)
			break
		}
		t.log.Warn("bad blacklist line skipped", "error", b.Error())
	}
}

// Reload applies a new configuration's local networks, names and blacklist
// files (SIGHUP) and re-classifies every host; host state is kept. On error
// the running configuration stays. The other keys need a restart.
func (t *HostTable) Reload(cfg Configuration) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	t.reloadMu.Lock()
	err := t.loadConfig(cfg)
	if err == nil && t.watch != nil {
		t.watch.setFiles(cfg.Blacklists)
	}
	t.reloadMu.Unlock()
	if err != nil {
		return err
	}
	t.reclassify()
	return nil
}

// reloadBlacklists re-reads the blacklist files of the running
// configuration (the watcher calls it when one changes).
func (t *HostTable) reloadBlacklists() {
	t.reloadMu.Lock()
	err := t.loadConfig(t.cfg)
	t.reloadMu.Unlock()
	if err != nil {
		t.log.Error("blacklist reload failed, keeping the previous one", "error", err)
		return
	}
	t.log.Info("blacklists reloaded", "entries", t.black.Len())
	t.reclassify()
}

// reclassify recomputes the address flags of every host.
func (t *HostTable) reclassify() {
	nc := t.nc.Load()
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		sh.hosts.each(func(h *host) bool {
			h.flags = nc.classify(addrOf16(h.key.addr))
			return false
		})
		sh.mu.Unlock()
	}
}

// Start starts the blacklist file watcher and the reverse DNS workers.
func (t *HostTable) Start() error {
	t.reloadMu.Lock()
	defer t.reloadMu.Unlock()
	if t.watch != nil {
		return errors.New("aggregate: already started")
	}
	w, err := newBlacklistWatcher(t.log, t.reloadBlacklists)
	if err != nil {
		return fmt.Errorf("aggregate: blacklist watcher: %w", err)
	}
	w.setFiles(t.cfg.Blacklists)
	t.watch = w
	if t.rdns != nil {
		t.rdns.start()
	}
	return nil
}

// Stop stops the watcher and the reverse DNS workers.
func (t *HostTable) Stop() {
	t.reloadMu.Lock()
	w := t.watch
	t.watch = nil
	t.reloadMu.Unlock()
	if w != nil {
		w.close()
	}
	if t.rdns != nil {
		t.rdns.stop()
	}
}

// noLoss is HostTable.lastLoss before any ingest loss.
const noLoss = math.MinInt64

// IngestLost tells the table that lost datagrams of flow data were lost on
// ingest, and received were not, in the second before clock time at (the
// collector's Dependencies.Lost). Above ingest_loss_tolerance, and with
// withhold_after_ingest_loss, one-sided conversations whose reply window
// overlaps the loss are then withheld from the contact sets, since their
// reply may have been lost with it. It is safe for concurrent use.
func (t *HostTable) IngestLost(at time.Time, lost, received int) {
	if lost <= 0 || float64(lost) <= t.lossTolerance*float64(lost+received) {
		return
	}
	t.markLoss(at.UnixNano())
}

// markLoss records a loss at clock time at (ns); concurrent reports
// keep the latest.
func (t *HostTable) markLoss(at int64) {
	for {
		last := t.lastLoss.Load()
		if at <= last || t.lastLoss.CompareAndSwap(last, at) {
			return
		}
	}
}

// hostHash spreads host keys over shards and index slots. The VLAN is
// spread by a multiplication before it meets the address: XORed in place
// it would cancel against address bits, so that 10.0.5.1 on VLAN 5 and
// 10.0.0.1 untagged would always collide. The key's upper half and the
// VLAN go through a mix of their own only when not both zero (mix64(0) is
// 0): the commonest key, an untagged IPv4 address, costs one mix.
func hostHash(k hkey) uint64 {
	hi := binary.LittleEndian.Uint64(k.addr[:8])
	lo := binary.LittleEndian.Uint64(k.addr[8:])
	x := hi ^ uint64(k.vlan)*0x9e3779b97f4a7c15
	if x != 0 {
		x = mix64(x)
	}
	return mix64(lo ^ x)
}

// hostOp is one host update of Apply: the shard and hash of the host's
// key, record i, and whether the host is its source.
type hostOp struct {
	shardOp
	hash uint64
}

// applyScratch holds Apply's per-call buffers, pooled.
type applyScratch struct {
	apps       []l7ID
	keys       []hkey // record i's source is keys[2i], its destination keys[2i+1]
	hosts      []*host
	touch      uint64 // sinks of Apply's prefetching loads
	touched    bool
	hostOps    []hostOp
	hostSort   []hostOp
	convOps    []shardOp
	convKeys   []convKey
	convHashes []uint64 // convKeys[i].hash()
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
// record. It leaves in sc each record's application (sc.apps[i], noApp
// when the record is skipped) and host keys (sc.keys[2i], sc.keys[2i+1])
// for applyConversations.
func (t *HostTable) applyTraffic(sc *applyScratch, batch []flow.Record, now int64) {
	nc := t.nc.Load()
	sc.apps, sc.keys, sc.hostOps = sc.apps[:0], sc.keys[:0], sc.hostOps[:0]
	for i := range batch {
		r := &batch[i]
		if !r.SrcAddr.IsValid() || !r.DstAddr.IsValid() {
			t.metrics.recordsInvalid.Inc()
			sc.apps = append(sc.apps, noApp)
			sc.keys = append(sc.keys, hkey{}, hkey{})
			continue
		}
		// As16 maps IPv4 as Unmap would have it: 4in6 records meet
		// their IPv4 hosts.
		src, dst := hkey{r.SrcAddr.As16(), r.VLAN}, hkey{r.DstAddr.As16(), r.VLAN}
		sc.apps = append(sc.apps, t.l7.appOf(r))
		sc.keys = append(sc.keys, src, dst)
		hs, hd := hostHash(src), hostHash(dst)
		sc.hostOps = append(sc.hostOps,
			hostOp{shardOp{uint32(hs & t.mask), int32(i), true}, hs},
			hostOp{shardOp{uint32(hd & t.mask), int32(i), false}, hd})
	}
	if len(sc.counts) != len(t.shards) {
		sc.counts = make([]int, len(t.shards))
	}
	sc.hostOps, sc.hostSort = sortOps(sc.hostOps, sc.hostSort, sc.counts)
	for start := 0; start < len(sc.hostOps); {
		shard := sc.hostOps[start].shard
		sh := &t.shards[shard]
		end := start + 1
		for end < len(sc.hostOps) && sc.hostOps[end].shard == shard {
			end++
		}
		ops := sc.hostOps[start:end]
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
				// Its first line, then each L7 entry's last word: the
				// second inline entry straddles two lines, and its id
				// lies in the first, which the first entry touched.
				for i := range h.l7 {
					sc.touch += h.l7[i].flows
				}
			}
		}
		for j, op := range ops {
			h := sc.hosts[j]
			if k := &sc.keys[opKey(op.shardOp)]; h == nil || h.key != *k {
				// New, colliding, or refused at the ceiling:
				// getOrCreate looks again, since an earlier op may
				// have created it.
				if h = t.getOrCreate(sh, *k, op.hash, now, nc); h == nil {
					continue
				}
			}
			r := &batch[op.i]
			h.lastSeen = now
			if op.flag {
				h.addTraffic(r.Bytes, r.Packets, r.ReverseBytes, r.ReversePackets, sc.apps[op.i], t.maxL7, countsFlow(r))
				if r.SrcMAC != ([6]byte{}) {
					h.mac = r.SrcMAC
				}
			} else {
				h.addTraffic(r.ReverseBytes, r.ReversePackets, r.Bytes, r.Packets, sc.apps[op.i], t.maxL7, countsFlow(r))
				if r.DstMAC != ([6]byte{}) {
					h.mac = r.DstMAC
				}
			}
		}
		sh.mu.Unlock()
		clear(sc.hosts) // drop host pointers: the pool must not keep expired hosts alive
		start = end
	}
}

// applyConversations is Apply's second part: biflow records decide at once;
// unidirectional ones go through the tracker. It reads what applyTraffic
// left in sc.
func (t *HostTable) applyConversations(sc *applyScratch, batch []flow.Record, now int64) {
	sc.convOps, sc.convKeys, sc.convHashes, sc.convFlags = sc.convOps[:0], sc.convKeys[:0], sc.convHashes[:0], sc.convFlags[:0]
	sc.convApps = sc.convApps[:0]
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
		k, srcIsA := makeConvKey(sc.keys[2*i].addr, r.SrcPort, sc.keys[2*i+1].addr, r.DstPort, r.Proto, r.VLAN)
		if r.Biflow {
			if d, ok := decideBiflow(r, &k, srcIsA); ok {
				sc.decisions = append(sc.decisions, d)
			}
			continue
		}
		if r.Packets == 0 {
			continue
		}
		t.addConvOp(sc, k, srcIsA, r.TCPFlags, sc.apps[i])
	}
	sc.convOps, sc.sortBuf = sortOps(sc.convOps, sc.sortBuf, sc.counts)
	overflows := 0
	for start := 0; start < len(sc.convOps); {
		tl := &t.trackers[sc.convOps[start].shard]
		end := start + 1
		for end < len(sc.convOps) && sc.convOps[end].shard == sc.convOps[start].shard {
			end++
		}
		tl.mu.Lock()
		// As for hosts: a pass of independent loads first.
		ops := sc.convOps[start:end]
		for _, op := range ops {
			sc.touched = tl.t.touch(&sc.convKeys[op.i], sc.convHashes[op.i]) != sc.touched
		}
		sc.touched = tl.t.touchHeads(len(ops)) != sc.touched
		for j := 0; j < len(ops); j++ {
			op := ops[j]
			// Both directions of a conversation, next to each other (a
			// shard keeps its records in order).
			if j+1 < len(ops) && ops[j+1].flag != op.flag && sc.convKeys[ops[j+1].i] == sc.convKeys[op.i] {
				sc.decisions = tl.t.observePair(sc.convKeys[op.i], sc.convHashes[op.i], op.flag, sc.convFlags[op.i], sc.convFlags[ops[j+1].i], now, sc.decisions)
				j++
				continue
			}
			var overflow bool
			sc.decisions, overflow = tl.t.observe(sc.convKeys[op.i], sc.convHashes[op.i], op.flag, sc.convFlags[op.i], sc.convApps[op.i], now, sc.decisions)
			if overflow {
				overflows++
			}
		}
		tl.mu.Unlock()
		start = end
	}
	if overflows > 0 {
		t.metrics.pendingOverflow.Add(float64(overflows))
	}
	t.commit(sc, sc.decisions)
}

// addConvOp queues one direction of conversation k (srcIsA: sent by
// endpoint a) for the tracker.
func (t *HostTable) addConvOp(sc *applyScratch, k convKey, srcIsA bool, flags uint8, app l7ID) {
	h := k.hash()
	sc.convOps = append(sc.convOps, shardOp{uint32(h & t.mask), int32(len(sc.convKeys)), srcIsA})
	sc.convKeys = append(sc.convKeys, k)
	sc.convHashes = append(sc.convHashes, h)
	sc.convFlags = append(sc.convFlags, flags)
	sc.convApps = append(sc.convApps, app)
}

// addSampled queues record i, sampled 1-in-N (N > 1), as evidence about
// its TCP service contact (see makeSampledKey and decideSampled). The
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
	k := makeSampledKey(cli, srv, sport, r.VLAN, r.SamplingRate)
	if cs.seen {
		t.addConvOp(sc, k, true, cs.flags, noApp)
	}
	if ss.seen {
		t.addConvOp(sc, k, false, ss.flags, noApp)
	}
}

// bytesLess compares two 16-byte address forms as big-endian numbers.
func bytesLess(a, b [16]byte) bool {
	ah, bh := binary.BigEndian.Uint64(a[:8]), binary.BigEndian.Uint64(b[:8])
	return ah < bh || (ah == bh && binary.BigEndian.Uint64(a[8:]) < binary.BigEndian.Uint64(b[8:]))
}

// opKey is the index in applyScratch.keys of a host op's key.
func opKey(op shardOp) int {
	if op.flag {
		return 2 * int(op.i)
	}
	return 2*int(op.i) + 1
}

// getOrCreate returns the host of key, creating it unless the table is at
// its ceiling (remote hosts hit a lower one, keeping room for local hosts).
// The caller holds sh.mu.
func (t *HostTable) getOrCreate(sh *hostShard, key hkey, hash uint64, now int64, nc *netClass) *host {
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
		refused.Inc()
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

// commit applies decided conversations to the contact sets of their client
// and server hosts. Hosts that are gone (expired, or refused at the
// ceiling) are skipped.
func (t *HostTable) commit(sc *applyScratch, ds []decision) {
	if len(ds) == 0 {
		return
	}
	sc.commits = sc.commits[:0]
	refused, withheld := 0, 0
	for i := range ds {
		d := &ds[i]
		if d.lossy && t.withholdAfterLoss {
			withheld++
			if !d.addFlow {
				continue
			}
			// Withheld from the sets, but the L7 flow is traffic,
			// not a verdict.
			d.verdict = verdictNone
		}
		hc, hs := hostHash(hkey{d.client, d.vlan}), hostHash(hkey{d.server, d.vlan})
		sc.commits = append(sc.commits,
			hostOp{shardOp{uint32(hc & t.mask), int32(i), true}, hc},
			hostOp{shardOp{uint32(hs & t.mask), int32(i), false}, hs})
		if d.verdict == verdictRefused {
			refused++
		}
	}
	// One atomic add per call, not per decision: the workers share the
	// counters' cache lines.
	t.commitRefused.Add(float64(refused))
	t.commitOneSided.Add(float64(len(ds) - refused - withheld))
	if withheld > 0 {
		t.withheld.Add(float64(withheld))
	}
	if len(sc.counts) != len(t.shards) {
		sc.counts = make([]int, len(t.shards))
	}
	sc.commits, sc.hostSort = sortOps(sc.commits, sc.hostSort, sc.counts)
	for start := 0; start < len(sc.commits); {
		sh := &t.shards[sc.commits[start].shard]
		end := start + 1
		for end < len(sc.commits) && sc.commits[end].shard == sc.commits[start].shard {
			end++
		}
		ops := sc.commits[start:end]
		sh.mu.Lock()
		// As in Apply: look the hosts up, then read their contact sets,
		// then commit, so that the cache misses of each pass overlap
		// (under overload most conversations end here).
		sc.hosts = slices.Grow(sc.hosts[:0], len(ops))[:len(ops)]
		for j, op := range ops {
			d := &ds[op.i]
			key := hkey{d.server, d.vlan}
			if op.flag {
				key.addr = d.client
			}
			sc.hosts[j] = sh.hosts.get(key, op.hash)
		}
		for _, h := range sc.hosts {
			if h != nil && h.noReply != nil {
				// Both of its lines: the client's sets, then the
				// server's set and the counts.
				sc.touch += uint64(len(h.noReply.peersAsClient.exact)) + h.noReply.flows.EgressTCP
			}
		}
		for j, op := range ops {
			if h := sc.hosts[j]; h != nil {
				h.commit(&ds[op.i], op.flag, t.foldRefused, t.exactSetSize, t.maxL7)
			}
		}
		sh.mu.Unlock()
		clear(sc.hosts) // drop host pointers: the pool must not keep expired hosts alive
		start = end
	}
}

// Advance decides the conversations whose reply window ended by now and,
// at most once per second of clock time, expires idle hosts. The pipeline
// calls it about every second live, after each datagram in replay, and with
// now + reply window + 1s at the end of a replay.
func (t *HostTable) Advance(now time.Time) {
	n := now.UnixNano()
	sc := t.scratch.Get().(*applyScratch)
	defer t.scratch.Put(sc)
	sc.decisions = sc.decisions[:0]
	for i := range t.trackers {
		tl := &t.trackers[i]
		tl.mu.Lock()
		sc.decisions = tl.t.expire(n, sc.decisions)
		tl.mu.Unlock()
	}
	t.commit(sc, sc.decisions)
	if n-t.lastSweep.Load() >= int64(sweepInterval) {
		t.sweep(n)
	}
}

// sweep removes the hosts idle for longer than their timeout and tells
// OnExpire, outside the locks.
func (t *HostTable) sweep(now int64) {
	t.sweepMu.Lock()
	defer t.sweepMu.Unlock()
	if now-t.lastSweep.Load() < int64(sweepInterval) {
		return
	}
	t.lastSweep.Store(now)
	var expired []HostKey
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		sh.hosts.each(func(h *host) bool {
			idle := t.idleRemote
			if h.flags&flagLocal != 0 {
				idle = t.idleLocal
			}
			if now-h.lastSeen > idle {
				expired = append(expired, h.key.hostKey())
				return true
			}
			return false
		})
		sh.mu.Unlock()
	}
	if len(expired) == 0 {
		return
	}
	t.count.Add(-int64(len(expired)))
	t.metrics.hostsExpired.Add(float64(len(expired)))
	if t.onExpire != nil {
		for _, k := range expired {
			t.onExpire(k)
		}
	}
}

// AppendKeys appends the key of every host to dst.
func (t *HostTable) AppendKeys(dst []HostKey) []HostKey {
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		sh.hosts.each(func(h *host) bool {
			dst = append(dst, h.key.hostKey())
			return false
		})
		sh.mu.Unlock()
	}
	return dst
}

// Snapshot copies the state of one host into dst, reusing dst.L7's
// capacity. It returns false if the host is unknown.
func (t *HostTable) Snapshot(key HostKey, dst *HostSnapshot) bool {
	k := keyOf(key)
	hash := hostHash(k)
	sh := &t.shards[hash&t.mask]
	l7 := dst.L7[:0]
	sh.mu.Lock()
	h := sh.hosts.get(k, hash)
	if h == nil {
		sh.mu.Unlock()
		return false
	}
	bytesSent, bytesRcvd, packetsSent, packetsRcvd := h.totals()
	*dst = HostSnapshot{
		Key:         key,
		MAC:         h.mac,
		Local:       h.flags&flagLocal != 0,
		Multicast:   h.flags&flagMulticast != 0,
		Broadcast:   h.flags&flagBroadcast != 0,
		Blacklisted: h.flags&flagBlacklisted != 0,
		RxOnly:      !h.sent,
		BytesSent:   bytesSent,
		BytesRcvd:   bytesRcvd,
		PacketsSent: packetsSent,
		PacketsRcvd: packetsRcvd,
		FirstSeen:   time.Unix(0, h.firstSeen).UTC(),
		LastSeen:    time.Unix(0, h.lastSeen).UTC(),
	}
	for _, e := range h.l7 {
		l7 = append(l7, L7Stat{Name: t.l7.name(e.id), BytesSent: e.bytesSent, BytesRcvd: e.bytesRcvd,
			PacketsSent: e.packetsSent, PacketsRcvd: e.packetsRcvd, Flows: e.flows})
	}
	dst.L7 = l7
	dst.NoReply, dst.Unidirectional = h.noReply.counts(), h.noReply.stats()
	dst.Refused, dst.RefusedFlows = h.refused.counts(), h.refused.stats()
	nr, ref := h.noReply.sampling(), h.refused.sampling()
	if t.foldRefused {
		ref.Verdicts = 0 // already among the no-reply sets' own
	}
	dst.Sampling = VerdictSampling{Rate: max(nr.Rate, ref.Rate), Verdicts: nr.Verdicts + ref.Verdicts}
	sh.mu.Unlock()
	dst.Name = t.nameOf(addrOf16(k.addr))
	return true
}

// nameOf is a host's display name: static name, else a cached reverse DNS
// answer, else the address.
func (t *HostTable) nameOf(a netip.Addr) string {
	if n, ok := t.nc.Load().names[a]; ok {
		return n
	}
	if t.rdns != nil {
		if n, ok := t.rdns.cached(a); ok && n != "" {
			return n
		}
	}
	return a.String()
}

// ResetContacts clears a host's no-reply and refused contact sets and its
// unidirectional and refused counters (host.resetHostContacts()).
func (t *HostTable) ResetContacts(key HostKey) {
	k := keyOf(key)
	hash := hostHash(k)
	sh := &t.shards[hash&t.mask]
	sh.mu.Lock()
	if h := sh.hosts.get(k, hash); h != nil {
		h.noReply, h.refused = nil, nil
	}
	sh.mu.Unlock()
}

// Len returns the number of hosts.
func (t *HostTable) Len() int { return int(t.count.Load()) }

// pendingLen is the number of conversations in the tracker.
func (t *HostTable) pendingLen() int {
	n := 0
	for i := range t.trackers {
		tl := &t.trackers[i]
		tl.mu.Lock()
		n += tl.t.len()
		tl.mu.Unlock()
	}
	return n
}
