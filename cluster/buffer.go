package cluster

import (
	"log/slog"
	"sync"
	"time"

	"github.com/flowcheck/flowcheck/flow"
)

// partition is the batch being filled for one partition of the topic.
type partition struct {
	mu    sync.Mutex
	batch *Batch
	// dropped and kept count the copies for this partition the buffer
	// had no room for, and those it took, since the last batch sealed:
	// a batch sealed after drops carries them as a Loss.
	dropped, kept int
	// socketLoss is the ingest's loss (Lost) not yet in a batch, for want
	// of buffer space.
	socketLoss    Loss
	hasSocketLoss bool
	// Padding keeps two partitions' locks off one cache line: decode
	// workers fill different partitions at once.
	_ [64]byte
}

// lossBytes is room kept in a batch for its loss reports.
const lossBytes = 64

// sealedBatch is a batch ready to send to its partition.
type sealedBatch struct {
	partition int
	batch     *Batch
	// at is the flush's wall time: the message's timestamp, which a check
	// worker's rebuild looks up by time.
	at time.Time
}

// maxRecordBytes bounds a record's encoding: half of flush_bytes, so that
// every batch holds at least two.
func (p *Publisher) maxRecordBytes() int { return p.cfg.Publish.FlushBytes / 2 }

// Handle is the flow.Handler the collector feeds: each record goes to the
// partition of its source host with SideSrc and to that of its destination
// host with SideDst, or once with both when they share a partition. It is
// safe for concurrent use and waits for nothing (unless Block).
func (p *Publisher) Handle(batch []flow.Record) {
	p.closing.RLock()
	defer p.closing.RUnlock()
	p.m.input.Add(float64(len(batch)))
	if p.closed {
		copies := 0
		for i := range batch {
			copies += p.copies(&batch[i])
		}
		p.drop(dropStopped, copies)
		return
	}
	// Most records encode under 128 bytes: the scratch stays on the stack.
	var scratch [256]byte
	var copies, accepted, large int
	n := len(p.parts)
	for i := range batch {
		r := &batch[i]
		body := appendFlowBody(scratch[:0], r)
		src, dst := PartitionOf(r.SrcAddr, r.VLAN, n), PartitionOf(r.DstAddr, r.VLAN, n)
		switch {
		case len(body) > p.maxRecordBytes():
			large += 2
			if src == dst {
				large--
			}
		case src == dst:
			copies++
			accepted += p.add(src, body, flow.SideSrc|flow.SideDst)
		default:
			copies += 2
			accepted += p.add(src, body, flow.SideSrc)
			accepted += p.add(dst, body, flow.SideDst)
		}
	}
	// Counted once per batch: a drop per record would contend on the
	// counters while the buffer is full, when the workers are busiest.
	p.accepted.Add(uint64(accepted))
	if large > 0 {
		p.drop(dropTooLarge, large)
	}
	if copies > accepted {
		p.drop(dropBufferFull, copies-accepted)
	}
}

// copies is how many copies of r are published: 1 when both hosts share a
// partition, else 2.
func (p *Publisher) copies(r *flow.Record) int {
	n := len(p.parts)
	if PartitionOf(r.SrcAddr, r.VLAN, n) == PartitionOf(r.DstAddr, r.VLAN, n) {
		return 1
	}
	return 2
}

// add appends one encoded copy to its partition's batch, sealing the batch
// first when the copy would not fit. It returns 1, or 0 when the buffer is
// full.
func (p *Publisher) add(part int, body []byte, sides flow.Side) int {
	pt := &p.parts[part]
	need := len(body) + 16 + lossBytes // the Flow's tag, length and sides
	pt.mu.Lock()
	for pt.batch == nil || pt.batch.Size()+need > p.cfg.Publish.FlushBytes {
		if pt.batch != nil {
			p.seal(part, pt)
			continue
		}
		if p.acquire(false) {
			pt.batch = p.newBatch()
			continue
		}
		if !p.deps.Block || p.stalled.Load() {
			pt.dropped++
			pt.mu.Unlock()
			return 0
		}
		// Wait without the lock: the interval flush needs it.
		pt.mu.Unlock()
		ok := p.acquire(true)
		pt.mu.Lock()
		if !ok {
			// Nothing was acknowledged for a whole write_timeout: stop
			// waiting until something is, lest every record wait.
			p.stalled.Store(true)
			pt.dropped++
			pt.mu.Unlock()
			return 0
		}
		if pt.batch != nil {
			p.release() // another worker started one meanwhile
			continue
		}
		pt.batch = p.newBatch()
	}
	pt.batch.AddEncoded(body, sides)
	pt.kept++
	pt.mu.Unlock()
	return 1
}

// seal hands a partition's batch to the sender (pt.mu held), with the
// losses it has to tell. The sealed queue has room for every batch a token
// allows: this never waits.
func (p *Publisher) seal(part int, pt *partition) {
	if pt.hasSocketLoss {
		pt.batch.AddLoss(pt.socketLoss)
		pt.hasSocketLoss = false
	}
	if pt.dropped > 0 {
		pt.batch.AddLoss(Loss{At: p.deps.Clock.Now(), Lost: pt.dropped, Received: pt.kept})
	}
	pt.dropped, pt.kept = 0, 0
	p.sealed[part%len(p.sealed)] <- &sealedBatch{partition: part, batch: pt.batch, at: time.Now()}
	pt.batch = nil
}

// Lost is the collector's Dependencies.Lost: datagrams of flow data lost
// on ingest's sockets (lost) and handed on (received) as of clock time at.
// Every partition's owner must know, since any of them may have a reply in
// what was lost: the report goes into each partition's batch, or waits
// there for buffer space. It is safe for concurrent use.
func (p *Publisher) Lost(at time.Time, lost, received int) {
	p.closing.RLock()
	defer p.closing.RUnlock()
	if p.closed || lost <= 0 {
		return
	}
	for i := range p.parts {
		pt := &p.parts[i]
		pt.mu.Lock()
		l := &pt.socketLoss
		if !pt.hasSocketLoss {
			*l = Loss{}
		}
		// Reports waiting together become one, as of the latest.
		l.Lost, l.Received = l.Lost+lost, l.Received+received
		if at.After(l.At) {
			l.At = at
		}
		pt.hasSocketLoss = true
		p.placeLoss(pt)
		pt.mu.Unlock()
	}
}

// placeLoss moves a waiting socket loss into the partition's batch, taking
// buffer space for one if there is none (pt.mu held). The interval flush
// then sends it even without records.
func (p *Publisher) placeLoss(pt *partition) {
	if !pt.hasSocketLoss || pt.batch == nil && !p.acquire(false) {
		return
	}
	if pt.batch == nil {
		pt.batch = p.newBatch()
	}
	pt.batch.AddLoss(pt.socketLoss)
	pt.hasSocketLoss = false
}

// sealAll seals every partition's batch that holds records.
func (p *Publisher) sealAll() {
	for i := range p.parts {
		pt := &p.parts[i]
		pt.mu.Lock()
		p.placeLoss(pt)
		if pt.batch == nil && pt.dropped > 0 && p.acquire(false) {
			// Drops to tell, and room again: tell them now, not with
			// the partition's next record, which may be long coming.
			pt.batch = p.newBatch()
		}
		if pt.batch != nil && (pt.batch.Len() > 0 || pt.batch.losses > 0 || pt.dropped > 0) {
			p.seal(i, pt)
		}
		pt.mu.Unlock()
	}
}

// flushLoop seals the batches every flush_interval, so that no record
// waits longer than that for a quiet partition to fill.
func (p *Publisher) flushLoop() {
	defer close(p.flushDone)
	t := time.NewTicker(p.cfg.Publish.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			p.sealAll()
		case <-p.stopFlush:
			return
		}
	}
}

// acquire takes a token for one batch buffer; wait says whether to wait
// for one, up to write_timeout.
func (p *Publisher) acquire(wait bool) bool {
	select {
	case p.tokens <- struct{}{}:
		p.gauge()
		return true
	default:
	}
	if !wait {
		return false
	}
	t := time.NewTimer(p.cfg.Publish.WriteTimeout)
	defer t.Stop()
	select {
	case p.tokens <- struct{}{}:
		p.gauge()
		return true
	case <-t.C:
		return false
	}
}

// release gives a token back.
func (p *Publisher) release() {
	<-p.tokens
	p.gauge()
}

func (p *Publisher) gauge() {
	p.m.buffered.Set(float64(len(p.tokens) * p.cfg.Publish.FlushBytes))
}

// newBatch is an empty batch, recycled when one is free.
func (p *Publisher) newBatch() *Batch {
	select {
	case b := <-p.free:
		b.Reset()
		return b
	default:
	}
	b := &Batch{buf: make([]byte, 0, p.cfg.Publish.FlushBytes)}
	b.Reset()
	return b
}

// recycle returns a batch whose bytes nothing reads any more, and its
// token.
func (p *Publisher) recycle(b *Batch) {
	select {
	case p.free <- b:
	default:
	}
	p.release()
	p.stalled.Store(false)
}

func (p *Publisher) drop(reason string, n int) {
	p.dropped.Add(uint64(n))
	p.m.dropped.WithLabelValues(reason).Add(float64(n))
	p.logs.Log(slog.LevelWarn, "drop:"+reason, "flow records dropped, not published", "reason", reason, "count", n)
}
