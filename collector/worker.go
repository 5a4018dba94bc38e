package collector

import (
	"log/slog"
	"net/netip"
	"strconv"
	"sync"
	"time"
)

// packet is one received datagram on its way to a decode worker.
type packet struct {
	from     netip.AddrPort
	received time.Time
	kind     listenKind
	buf      []byte
}

// shard maps an exporter address to its home worker, so that one
// exporter's datagrams are decoded in order by one goroutine while that
// worker keeps up (pick).
func shard(a netip.Addr, n int) int {
	b := a.As16()
	h := uint64(14695981039346656037)
	for _, c := range b {
		h = (h ^ uint64(c)) * 1099511628211
	}
	return int(h % uint64(n))
}

// spillBacklog is the backlog of an exporter's home worker past which its
// datagrams go to the least loaded worker instead (pick): about 4 ms of
// datagrams at 60 k a second, longer than a read_pause's batch, so that an
// exporter its home worker keeps up with stays in order on it.
const spillBacklog = 256

// pick returns the queue for a datagram of exporter a. It is the
// exporter's home worker's while that worker's backlog is short, so that
// a template is learned before the data that follows it; past
// spillBacklog it is the least loaded worker's, so that one exporter
// bigger than a core uses every worker. Its state is then decoded by
// several workers, one datagram at a time under the exporter's lock.
func (c *Component) pick(a netip.Addr) (q chan *packet, spilled bool) {
	home := c.queues[shard(a, len(c.queues))]
	if len(home) < spillBacklog {
		return home, false
	}
	q = home
	for _, o := range c.queues {
		if len(o) < len(q) {
			q = o
		}
	}
	return q, q != home
}

// work is decode worker i's loop; it exits when its queue is closed and
// drained.
func (c *Component) work(i int, q chan *packet) {
	defer c.workers.Done()
	d := newDecoder(c)
	decoded := c.metrics.workerDatagrams.WithLabelValues(strconv.Itoa(i))
	n := 0 // datagrams since the last flush, added to decoded at the flush
	// Past shedHigh queued datagrams the worker sheds (Dependencies.Shed)
	// until the backlog is back under shedLow: the gap keeps it from
	// flapping at the threshold, and is small so that a worker near its
	// capacity sheds in short bursts, only what would otherwise overflow.
	shedHigh := int(c.config.ShedBacklog * float64(cap(q)))
	if c.deps.Shed == nil {
		shedHigh = 0 // nowhere to shed to
	}
	shedLow := shedHigh * 3 / 4
	shedding := false
	for p := range q {
		d.handle(p.from, p.buf, p.received, p.kind)
		n++
		at := p.received // p is the reader's again once put back
		c.putPacket(p)
		// Under load, records of several datagrams go to the host table in
		// one call: it locks each of its shards once per call, so bigger
		// batches cost less per record. An idle queue flushes at once, so
		// batching adds no latency when there is no backlog.
		if backlog := len(q); backlog == 0 || len(d.batch) >= flushRecords {
			decoded.Add(float64(n))
			n = 0
			if shedHigh > 0 {
				was := shedding
				shedding = backlog > shedHigh || (shedding && backlog > shedLow)
				switch {
				case shedding && !was:
					c.logs.LogAt(at, slog.LevelWarn, "shed\x00on", "decode worker behind: conversation stitching suspended until it catches up (no-reply verdicts of the time are withheld)",
						"queued", backlog, "queue_size", cap(q))
				case was && !shedding:
					c.logs.LogAt(at, slog.LevelInfo, "shed\x00off", "decode worker caught up: conversation stitching resumed", "queued", backlog)
				}
			}
			if shedding {
				c.metrics.shedRecords.Add(float64(len(d.batch)))
				d.flushTo(c.deps.Shed)
			} else {
				d.flush()
			}
		}
	}
	decoded.Add(float64(n))
	d.flush()
}

// flushRecords is how many decoded records a worker with a backlog gathers
// before handing them to the host table.
const flushRecords = 512

// getPacket takes a recycled packet, or makes one. A new packet's buffer
// is sized by its first datagram (append rounds it up to a size class):
// typical export datagrams (1-1.5 KB) then take half of a fixed 2 KiB, which
// matters when a backlog fills the queues with new packets at once.
func (c *Component) getPacket() *packet {
	if p := c.free.get(); p != nil {
		return p
	}
	return &packet{}
}

// putPacket recycles a packet, unless the free list is full.
func (c *Component) putPacket(p *packet) {
	if cap(p.buf) > 16384 {
		p.buf = nil // do not keep jumbo buffers
	}
	c.free.put(p)
}

// packetPool is the free list of packets, last in first out: the packet
// a reader takes is the one a worker put back last, whose buffer is still
// in the cache, instead of the one that waited longest (a FIFO cycles
// every packet a backlog ever made through the cache, evicting the host
// table's lines). Unlike a sync.Pool it is never emptied by the GC (nor,
// under the race detector, at random), so the receive path does not
// allocate in a steady state; it holds at most max packets.
type packetPool struct {
	mu    sync.Mutex
	stack []*packet
	max   int
}

// get pops the packet put back last, or returns nil.
func (f *packetPool) get() *packet {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := len(f.stack)
	if n == 0 {
		return nil
	}
	p := f.stack[n-1]
	f.stack[n-1] = nil
	f.stack = f.stack[:n-1]
	return p
}

// put pushes p, unless the pool holds max packets.
func (f *packetPool) put(p *packet) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.stack) < f.max {
		f.stack = append(f.stack, p)
	}
}
