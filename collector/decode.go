package collector

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"time"

	"github.com/flowcheck/flowcheck/flow"
)

// decoder holds one goroutine's scratch space, reused from datagram to
// datagram so that steady-state decoding of data sets allocates nothing.
type decoder struct {
	c       *Component
	batch   []flow.Record
	buf     bytes.Buffer
	tmpls   [][]byte
	sets    [][]byte
	data    []queuedSet
	pending []pendingSet
	opts    []optionRecord
	fields  []fixedOp // a variable-length record's fields, for applyFields
	hdr     exportHeader
	rates   rateCache
	names   map[string]string
	sum     datagramSum
}

func newDecoder(c *Component) *decoder {
	return &decoder{c: c, names: make(map[string]string)}
}

// Protocol of a datagram, from its first bytes.
const (
	protoUnknown = iota
	protoV5
	protoV9
	protoIPFIX
	protoSFlow
)

func detect(b []byte) int {
	if len(b) < 4 {
		return protoUnknown
	}
	if binary.BigEndian.Uint32(b) == 5 {
		return protoSFlow
	}
	switch binary.BigEndian.Uint16(b) {
	case 5:
		return protoV5
	case 9:
		return protoV9
	case 10:
		return protoIPFIX
	}
	return protoUnknown
}

func accepts(k listenKind, proto int) bool {
	switch k {
	case kindNetFlow:
		return proto == protoV5 || proto == protoV9 || proto == protoIPFIX
	case kindIPFIX:
		return proto == protoIPFIX
	case kindSFlow:
		return proto == protoSFlow
	}
	return true
}

// begin runs the checks before decoding a datagram: the allow-list, the
// listener's protocols, the exporter cap. It returns the exporter, locked,
// and the datagram's protocol; nil when the datagram is dropped.
func (c *Component) begin(addr netip.Addr, b []byte, received time.Time, kind listenKind) (*exporterState, int) {
	if !c.allowed(addr) {
		c.notAllowed(addr, received)
		return nil, 0
	}
	proto := detect(b)
	if proto != protoUnknown && !accepts(kind, proto) {
		c.dropped(addr, dropWrongProtocol)
		return nil, 0
	}
	c.maybeSweep(received)
	e := c.admit(addr, received)
	if e == nil {
		c.metrics.drops[dropExporterCap].Inc()
		return nil, 0
	}
	e.now = received
	if received.After(e.lastSeen) {
		// Spilled datagrams (pick) can be decoded a little out of order.
		e.lastSeen = received
	}
	e.added = e.added[:0]
	e.expireTemplates()
	e.expirePending()
	if proto != protoUnknown {
		c.datagrams.Add(1)
		e.packets++
		e.m.datagramBytes.Add(float64(len(b)))
		e.m.datagrams[proto].Inc()
	}
	return e, proto
}

// HandleDatagram runs one export datagram through the allow-list and the
// decode path synchronously: deps.Flows has been called with its records
// when it returns. received stands for the receive time (the capture time
// in replays); template and pending-set expiry run on it.
func (c *Component) HandleDatagram(from netip.AddrPort, payload []byte, received time.Time) {
	d := c.decoders.Get().(*decoder)
	d.handle(from, payload, received, kindAuto)
	d.flush()
	c.decoders.Put(d)
}

// handle decodes one datagram, appending its records to d.batch; flush
// hands them on.
func (d *decoder) handle(from netip.AddrPort, b []byte, received time.Time, kind listenKind) {
	d.handleWith(d, from, b, received, kind)
}

// dataPath decodes NetFlow data: the decoder's compiled plans, or, in the
// differential tests, goflow2's own decoders.
type dataPath interface {
	decodeV5(e *exporterState, b []byte)
	decodeNetFlow(e *exporterState, b []byte, received time.Time)
}

// handleWith is handle with NetFlow decoded by p (sFlow always by d).
func (d *decoder) handleWith(p dataPath, from netip.AddrPort, b []byte, received time.Time, kind listenKind) {
	c := d.c
	addr := from.Addr().Unmap()
	e, proto := c.begin(addr, b, received, kind)
	if e == nil {
		return
	}
	switch proto {
	case protoV5:
		e.versions |= 1 << 5
		p.decodeV5(e, b)
	case protoV9:
		e.versions |= 1 << 9
		p.decodeNetFlow(e, b, received)
	case protoIPFIX:
		e.versions |= 1 << 10
		p.decodeNetFlow(e, b, received)
	case protoSFlow:
		e.versions |= 1
		d.decodeSFlow(e, b, received)
	default:
		c.decodeError(e, "unknown_version")
	}
	if e.flows == 0 && d.sum.flows > 0 {
		c.logFirstRecords(e, proto, d.sum.flows)
	}
	if e.tmplUntold != ([numTemplateEvents]uint32{}) {
		c.logTemplates(e)
	}
	d.sum.flush(e)
	e.mu.Unlock()
}

// flush hands the decoded records to deps.Flows.
func (d *decoder) flush() { d.flushTo(d.c.deps.Flows) }

// flushTo hands the batch to h.
func (d *decoder) flushTo(h flow.Handler) {
	if len(d.batch) > 0 {
		h(d.batch)
		clear(d.batch) // drop references (application names) early
		d.batch = d.batch[:0]
	}
}

// maxInternedNames bounds the application name cache of a decoder.
const maxInternedNames = 4096

// intern returns b as a string, sharing one copy per distinct name so that
// records do not each allocate their application name.
func (d *decoder) intern(b []byte) string {
	b = bytes.TrimRight(b, "\x00 ")
	if s, ok := d.names[string(b)]; ok {
		return s
	}
	if len(d.names) >= maxInternedNames {
		clear(d.names)
	}
	s := string(b)
	d.names[s] = s
	return s
}

// emit scales a record by its sampling rate and queues it in the batch.
func (d *decoder) emit(e *exporterState, r *flow.Record, rate uint32) {
	d.batch = append(d.batch, *r)
	d.account(&d.batch[len(d.batch)-1], rate)
}

// nextRecord returns a zero record at the end of the batch, for a decoder
// that writes its fields in place (NetFlow v9 and IPFIX data sets): no copy
// of the record once decoded. account takes it, dropLast gives it back.
func (d *decoder) nextRecord() *flow.Record {
	d.batch = append(d.batch, flow.Record{})
	return &d.batch[len(d.batch)-1]
}

// dropLast gives back the record nextRecord returned last.
func (d *decoder) dropLast() {
	d.batch[len(d.batch)-1] = flow.Record{}
	d.batch = d.batch[:len(d.batch)-1]
}

// account scales a record of the batch by its sampling rate and adds it
// to the datagram's sums.
func (d *decoder) account(r *flow.Record, rate uint32) {
	r.SamplingRate = rate
	if rate > 1 {
		r.Bytes *= uint64(rate)
		r.Packets *= uint64(rate)
		r.ReverseBytes *= uint64(rate)
		r.ReversePackets *= uint64(rate)
	} else if rate == 0 {
		d.sum.unknown++
	}
	d.sum.flows++
	d.sum.bytes += r.Bytes + r.ReverseBytes
	d.sum.packets += r.Packets + r.ReversePackets
}

// datagramSum accumulates a datagram's metrics, so that the Prometheus
// counters are touched once per datagram rather than once per record.
type datagramSum struct {
	flows, bytes, packets, unknown uint64
}

// flush adds the accumulated sums to the exporter's counters.
func (s *datagramSum) flush(e *exporterState) {
	if s.flows == 0 {
		return
	}
	e.flows += s.flows
	e.c.records.Add(s.flows)
	e.m.flows.Add(float64(s.flows))
	e.m.flowBytes.Add(float64(s.bytes))
	e.m.flowPackets.Add(float64(s.packets))
	if s.unknown != 0 {
		e.m.samplingUnk.Add(float64(s.unknown))
	}
	*s = datagramSum{}
}
