package collector

import (
	"log/slog"
	"net/netip"
	"time"
)

// packet is one received datagram on its way to a decode worker.
type packet struct {
	from     netip.AddrPort
	received time.Time
	kind     listenKind
	buf      []byte
}

// shard maps an exporter address to a worker, so that one exporter's
// datagrams are decoded in order by one goroutine.
func shard(a netip.Addr, n int) int {
	b := a.As16()
	h := uint64(14695981039346656037)
	for _, c := range b {
		h = (h ^ uint64(c)) * 1099511628211
	}
	return int(h % uint64(n))
}

// work is a decode worker's loop; it exits when its queue is closed and
// drained.
func (c *Component) work(q chan *packet) {
	defer c.workers.Done()
	d := newDecoder(c)
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
		at := p.received // p is the reader's again once put back
		c.putPacket(p)
		// Under load, records of several datagrams go to the host table in
		// one call: it locks each of its shards once per call, so bigger
		// batches cost less per record. An idle queue flushes at once, so
		// batching adds no latency when there is no backlog.
		if backlog := len(q); backlog == 0 || len(d.batch) >= flushRecords {
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
	select {
	case p := <-c.free:
		return p
	default:
		return &packet{}
	}
}

// putPacket recycles a packet, unless the free list is full.
func (c *Component) putPacket(p *packet) {
	if cap(p.buf) > 16384 {
		p.buf = nil // do not keep jumbo buffers
	}
	select {
	case c.free <- p:
	default:
	}
}
