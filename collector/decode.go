package collector

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"time"

	"github.com/flowcheck/flowcheck/flow"
	"github.com/netsampler/goflow2/v2/decoders/netflow"
)

// exportHeader is what the records of a v9/IPFIX set need from the
// message header they came in.
type exportHeader struct {
	version   uint16
	domain    uint32
	sysUptime uint32 // v9 only, milliseconds
	export    time.Time
	received  time.Time
}

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
	hdr     exportHeader
	rates   rateCache
	names   map[string]string
	sum     datagramSum
}

// queuedSet is a flow data set waiting for the options sets of its
// datagram to be applied.
type queuedSet struct {
	set  []byte
	plan *plan
	hdr  *exportHeader
}

func newDecoder(c *Component) *decoder {
	return &decoder{c: c, names: make(map[string]string)}
}

// Set IDs (RFC 3954, RFC 7011).
const (
	setV9Template        = 0
	setV9OptionsTemplate = 1
	setIPFIXTemplate     = 2
	setIPFIXOptions      = 3
	setFirstData         = 256
)

// decodeNetFlow decodes a NetFlow v9 or IPFIX message. It walks the sets
// itself and hands each one to goflow2 separately, so that one bad set
// never costs the others, and it runs all template sets first, then the
// data sets (options data before flow data), so that a datagram whose
// options record tells the system init time or sampling rate applies it to
// its own flows.
func (d *decoder) decodeNetFlow(e *exporterState, b []byte, received time.Time) {
	// The header lives in the decoder: the queued data sets point to it,
	// and a local would escape to the heap, once per datagram.
	hdr := &d.hdr
	var ok bool
	d.tmpls, d.sets, ok = d.c.splitMessage(e, b, received, hdr, d.tmpls[:0], d.sets[:0])
	if !ok {
		return
	}
	for _, set := range d.tmpls {
		d.templateSet(e, hdr, binary.BigEndian.Uint16(set), set)
	}
	d.data = d.data[:0]
	for _, set := range d.sets {
		d.dataSet(e, hdr, set, true)
	}
	d.pending = e.takePending(d.pending[:0])
	for i := range d.pending {
		d.dataSet(e, &d.pending[i].hdr, d.pending[i].data, false)
	}
	// The options sets are all applied: the sampling registry holds
	// still while the flow sets are decoded.
	d.rates = rateCache{}
	for _, ds := range d.data {
		d.flowSet(e, ds.hdr, ds.plan, ds.set)
	}
	clear(d.data) // drop references to the packet buffer
	clear(d.pending)
}

// splitMessage reads the header of NetFlow v9 or IPFIX message b into hdr
// and sorts its sets, each with its 4-byte set header: template sets are
// appended to tmpls, data sets to data, in message order. A set whose
// length is wrong ends the walk (the sets before it stand); an unknown set
// ID is skipped. Both are counted. ok is false when the header is unusable.
func (c *Component) splitMessage(e *exporterState, b []byte, received time.Time, hdr *exportHeader, tmpls, data [][]byte) (_, _ [][]byte, ok bool) {
	version := binary.BigEndian.Uint16(b)
	*hdr = exportHeader{version: version, received: received}
	var off int
	switch version {
	case 9:
		if len(b) < 20 {
			c.decodeError(e, "truncated")
			return tmpls, data, false
		}
		hdr.sysUptime = binary.BigEndian.Uint32(b[4:])
		hdr.export = time.Unix(int64(binary.BigEndian.Uint32(b[8:])), 0).UTC()
		hdr.domain = binary.BigEndian.Uint32(b[16:])
		off = 20
	case 10:
		if len(b) < 16 {
			c.decodeError(e, "truncated")
			return tmpls, data, false
		}
		l := int(binary.BigEndian.Uint16(b[2:]))
		if l < 16 || l > len(b) {
			c.decodeError(e, "bad_length")
			return tmpls, data, false
		}
		b = b[:l]
		hdr.export = time.Unix(int64(binary.BigEndian.Uint32(b[4:])), 0).UTC()
		hdr.domain = binary.BigEndian.Uint32(b[12:])
		off = 16
	}
	for off+4 <= len(b) {
		id := binary.BigEndian.Uint16(b[off:])
		l := int(binary.BigEndian.Uint16(b[off+2:]))
		if l < 4 || off+l > len(b) {
			c.decodeError(e, "bad_set_length")
			break
		}
		set := b[off : off+l]
		off += l
		switch {
		case version == 9 && (id == setV9Template || id == setV9OptionsTemplate),
			version == 10 && (id == setIPFIXTemplate || id == setIPFIXOptions):
			tmpls = append(tmpls, set)
		case id >= setFirstData:
			data = append(data, set)
		default:
			c.decodeError(e, "bad_set_id")
		}
	}
	return tmpls, data, true
}

// templateSet applies a template set. A set that only resends templates
// the exporter holds, byte for byte (as exporters do every few datagrams),
// just refreshes them; any other set is parsed by goflow2.
func (d *decoder) templateSet(e *exporterState, hdr *exportHeader, id uint16, set []byte) {
	if e.refreshTemplates(hdr.version, hdr.domain, id, set[4:]) {
		return
	}
	d.parseTemplateSet(e, hdr, id, set)
}

// parseTemplateSet validates a template set's record layout before goflow2
// parses it: goflow2 allocates a field slice of whatever size a record
// header claims, so a header that lies about its field count is refused
// here rather than costing hundreds of kilobytes.
func (d *decoder) parseTemplateSet(e *exporterState, hdr *exportHeader, id uint16, set []byte) {
	if !templateSetFits(hdr.version, id, set[4:]) {
		d.c.decodeError(e, "bad_template")
		return
	}
	d.buf = *bytes.NewBuffer(set)
	if _, err := netflow.DecodeMessageCommonFlowSet(&d.buf, e, hdr.domain, hdr.version); err != nil {
		d.c.decodeError(e, "bad_template", "err", err)
	}
}

// templateSetFits checks that every template record of a set fits in it.
func templateSetFits(version, id uint16, b []byte) bool {
	for len(b) >= 4 {
		if id == setIPFIXOptions && len(b) < 6 {
			// A 4-byte withdrawal record, or padding.
			return len(b) == 4 && binary.BigEndian.Uint16(b[2:]) == 0 || allZero(b)
		}
		n := templateRecordLen(version, id, b)
		if n == 0 {
			return false
		}
		b = b[n:]
	}
	return true
}

// templateRecordLen returns the length of the template record b starts
// with (b holds at least 4 bytes), or 0 when it does not fit in b, claims
// more than maxTemplateFields fields, or is a short IPFIX options record.
func templateRecordLen(version, id uint16, b []byte) int {
	var nfields, off int
	switch id {
	case setV9Template, setIPFIXTemplate:
		nfields, off = int(binary.BigEndian.Uint16(b[2:])), 4
	case setV9OptionsTemplate:
		if len(b) < 6 {
			return 0
		}
		scope, opts := int(binary.BigEndian.Uint16(b[2:])), int(binary.BigEndian.Uint16(b[4:]))
		if scope%4 != 0 || opts%4 != 0 {
			return 0
		}
		nfields, off = (scope+opts)/4, 6
	case setIPFIXOptions:
		if len(b) < 6 {
			return 0
		}
		nfields, off = int(binary.BigEndian.Uint16(b[2:])), 6
		if binary.BigEndian.Uint16(b[4:]) > uint16(nfields) {
			return 0
		}
	}
	if nfields > maxTemplateFields {
		return 0
	}
	for range nfields {
		if len(b) < off+4 {
			return 0
		}
		n := 4
		if version == 10 && b[off]&0x80 != 0 {
			n = 8
		}
		if len(b) < off+n {
			return 0
		}
		off += n
	}
	return off
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// dataSet looks up a data set's template. Options data is applied at
// once; flow data is queued in d.data, to be decoded once every options
// set of the datagram is applied. A set whose template is unknown is kept
// pending when fresh is true (a set replayed from the pending list is not
// queued again).
func (d *decoder) dataSet(e *exporterState, hdr *exportHeader, set []byte, fresh bool) {
	id := binary.BigEndian.Uint16(set)
	key := tmplKey{hdr.version, hdr.domain, id}
	t := e.lookup(key)
	switch {
	case t != nil && t.compiled().options:
		d.optionsSet(e, hdr, t.plan, set)
	case t != nil:
		d.data = append(d.data, queuedSet{set: set, plan: t.plan, hdr: hdr})
	case fresh:
		e.addPending(key, set, *hdr)
	default:
		d.c.decodeError(e, "template_missing", "template", id)
	}
}

// flowSet decodes the records of a flow data set with the plan of its
// template. A malformed set costs all its records, as it does with
// goflow2's decoder: what it emitted is taken back.
func (d *decoder) flowSet(e *exporterState, hdr *exportHeader, p *plan, set []byte) {
	b := set[4:]
	if p.fixedOps != nil {
		for ; len(b) >= p.fixed; b = b[p.fixed:] {
			var rs recordState
			for _, op := range p.fixedOps {
				d.apply(&rs, op.kind, b[op.off:op.off+op.length])
			}
			d.finish(e, hdr, &rs)
		}
		return
	}
	mark, sum := len(d.batch), d.sum
	for pos := 0; len(b)-pos >= p.fixed; {
		var rs recordState
		for _, op := range p.ops {
			v, next, ok := op.field(b, pos)
			if !ok {
				clear(d.batch[mark:])
				d.batch, d.sum = d.batch[:mark], sum
				d.c.decodeError(e, "bad_data_set", "template", binary.BigEndian.Uint16(set), "err", "truncated variable-length field")
				return
			}
			pos = next
			if op.kind != kIgnore {
				d.apply(&rs, op.kind, v)
			}
		}
		d.finish(e, hdr, &rs)
	}
}

// optionRecord is what an options data record tells.
type optionRecord struct {
	sampler, rate, interval, space uint64
	sysInit                        uint64 // 0: not told
}

// optionsSet decodes an options data set and learns the sampling rates
// and system init times it tells. A malformed set is not applied at all.
func (d *decoder) optionsSet(e *exporterState, hdr *exportHeader, p *plan, set []byte) {
	b := set[4:]
	d.opts = d.opts[:0]
	optFixed := p.fixed - p.scopeFixed
	for pos := 0; len(b)-pos >= p.fixed; {
		var o optionRecord
		for i, op := range p.ops {
			if i == p.scopes && len(b)-pos < optFixed {
				// goflow2 leaves the options of a record without
				// room for them unread.
				break
			}
			v, next, ok := op.field(b, pos)
			if !ok {
				d.c.decodeError(e, "bad_data_set", "template", binary.BigEndian.Uint16(set), "err", "truncated variable-length field")
				return
			}
			pos = next
			switch op.kind {
			case oSampler:
				o.sampler = beUint(v)
			case oRate:
				o.rate = beUint(v)
			case oInterval:
				o.interval = beUint(v)
			case oSpace:
				o.space = beUint(v)
			case oSysInit:
				if ms := beUint(v); plausibleMillis(ms) {
					o.sysInit = ms
				}
			}
		}
		d.opts = append(d.opts, o)
	}
	for _, o := range d.opts {
		if o.sysInit != 0 && len(e.sysInit) < maxSamplers {
			e.sysInit[hdr.domain] = time.UnixMilli(int64(o.sysInit)).UTC()
		}
		rate := o.rate
		if o.interval != 0 {
			// Count-based selection: interval packets taken, space
			// skipped.
			rate = (o.interval + o.space) / o.interval
		}
		if rate != 0 && rate <= 1<<32-1 {
			e.learnRate(hdr.domain, o.sampler, uint32(rate))
		}
	}
}

// beUint reads a big-endian unsigned integer of up to 8 bytes (the last 8
// of a longer value).
func beUint(b []byte) uint64 {
	switch len(b) {
	case 1:
		return uint64(b[0])
	case 2:
		return uint64(binary.BigEndian.Uint16(b))
	case 4:
		return uint64(binary.BigEndian.Uint32(b))
	case 8:
		return binary.BigEndian.Uint64(b)
	}
	if len(b) > 8 {
		b = b[len(b)-8:]
	}
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v
}

// IANA private enterprise numbers whose elements are mapped.
const (
	penReverse = 29305 // RFC 5103 reverse elements
	penNtop    = 35632 // ntop nProbe
	// ntopV9Base is where nProbe puts its elements in NetFlow v9 (no PEN
	// there): element N becomes 57472+N.
	ntopV9Base = 57472
)

// recordTimes collects the time fields of one record in every form an
// exporter may use, to be resolved once the record is read.
type recordTimes struct {
	upFirst, upLast      uint64 // 22, 21: sysUptime ms
	hasUp                bool
	first, last          time.Time // 150-157: absolute
	deltaFirst, deltaEnd uint64    // 158, 159: µs before export
	hasDelta             bool
	sysInit              time.Time // 160 in the record
}

// recordState is a flow record being decoded, with the fields that are
// only resolved once the whole record is read.
type recordState struct {
	r                       flow.Record
	t                       recordTimes
	bytesTotal, pktsTotal   uint64
	hasBytes, hasPkts       bool
	initOctets, initPkts    uint64
	icmpType, icmpCode      uint16
	hasICMP                 bool
	vlan, vlanDot1q, vlanPo uint16
	recRate                 uint64
	interval, space         uint64
	sampler                 uint64
	postSrcMAC, postDstMAC  [6]byte
}

// apply stores one field value of a flow data record.
func (d *decoder) apply(s *recordState, k fieldKind, b []byte) {
	r, t := &s.r, &s.t
	switch k {
	case kRevBytes:
		r.ReverseBytes, r.Biflow = beUint(b), true
	case kRevPackets:
		r.ReversePackets, r.Biflow = beUint(b), true
	case kRevTCPFlags:
		r.ReverseTCPFlags, r.Biflow = uint8(beUint(b)), true
	case kRevOther:
		r.Biflow = true
	case kClientTCPFlags:
		r.ClientTCPFlags = uint8(beUint(b))
	case kServerTCPFlags:
		r.ServerTCPFlags = uint8(beUint(b))
	case kL7Proto:
		r.AppID = ntopL7(b)
	case kL7Name:
		r.AppName = d.intern(b)
	case kBytes:
		r.Bytes, s.hasBytes = beUint(b), true
	case kPackets:
		r.Packets, s.hasPkts = beUint(b), true
	case kBytesTotal:
		s.bytesTotal = beUint(b)
	case kPacketsTotal:
		s.pktsTotal = beUint(b)
	case kOutBytes, kResponderOctets: // OUT_BYTES / postOctetDeltaCount: the reverse side
		r.ReverseBytes, r.Biflow = beUint(b), true
	case kOutPackets, kResponderPackets:
		r.ReversePackets, r.Biflow = beUint(b), true
	case kInitiatorOctets:
		s.initOctets = beUint(b)
	case kInitiatorPackets:
		s.initPkts = beUint(b)
	case kProto:
		r.Proto = uint8(beUint(b))
	case kTCPFlags:
		r.TCPFlags = uint8(beUint(b))
	case kSrcPort:
		r.SrcPort = uint16(beUint(b))
	case kDstPort:
		r.DstPort = uint16(beUint(b))
	case kSrcAddr4:
		if len(b) == 4 {
			r.SrcAddr = netip.AddrFrom4([4]byte(b))
		}
	case kDstAddr4:
		if len(b) == 4 {
			r.DstAddr = netip.AddrFrom4([4]byte(b))
		}
	case kSrcAddr6:
		if len(b) == 16 {
			r.SrcAddr = netip.AddrFrom16([16]byte(b))
		}
	case kDstAddr6:
		if len(b) == 16 {
			r.DstAddr = netip.AddrFrom16([16]byte(b))
		}
	case kInIf:
		r.InIf = uint32(beUint(b))
	case kOutIf:
		r.OutIf = uint32(beUint(b))
	case kICMPTypeCode:
		v := beUint(b)
		s.icmpType, s.icmpCode, s.hasICMP = uint16(v>>8)&0xff, uint16(v)&0xff, true
	case kICMPType:
		s.icmpType, s.hasICMP = uint16(beUint(b)), true
	case kICMPCode:
		s.icmpCode, s.hasICMP = uint16(beUint(b)), true
	case kSrcMAC:
		copy(r.SrcMAC[:], b)
	case kDstMAC:
		copy(r.DstMAC[:], b)
	case kPostSrcMAC:
		copy(s.postSrcMAC[:], b)
	case kPostDstMAC:
		copy(s.postDstMAC[:], b)
	case kVLAN:
		s.vlan = uint16(beUint(b))
	case kDot1qVLAN:
		s.vlanDot1q = uint16(beUint(b))
	case kPostVLAN:
		s.vlanPo = uint16(beUint(b))
	case kAppID:
		if len(b) > 1 { // classification engine ID, then selector
			r.AppID = uint32(beUint(b[1:]))
		}
	case kSamplingInterval:
		s.recRate = beUint(b)
	case kPacketInterval:
		s.interval = beUint(b)
	case kPacketSpace:
		s.space = beUint(b)
	case kSamplerID:
		s.sampler = beUint(b)
	case kUptimeLast:
		t.upLast, t.hasUp = beUint(b), true
	case kUptimeFirst:
		t.upFirst, t.hasUp = beUint(b), true
	case kFirstSec:
		t.first = time.Unix(int64(beUint(b)), 0)
	case kLastSec:
		t.last = time.Unix(int64(beUint(b)), 0)
	case kFirstMilli:
		t.first = time.UnixMilli(int64(beUint(b)))
	case kLastMilli:
		t.last = time.UnixMilli(int64(beUint(b)))
	case kFirstNTP:
		t.first = ntpTime(b)
	case kLastNTP:
		t.last = ntpTime(b)
	case kDeltaFirst:
		t.deltaFirst, t.hasDelta = beUint(b), true
	case kDeltaLast:
		t.deltaEnd, t.hasDelta = beUint(b), true
	case kSysInit:
		if ms := beUint(b); plausibleMillis(ms) {
			t.sysInit = time.UnixMilli(int64(ms))
		}
	}
}

// finish resolves what a record's fields left open and emits it.
func (d *decoder) finish(e *exporterState, hdr *exportHeader, s *recordState) {
	r := &s.r
	if !r.SrcAddr.IsValid() && !r.DstAddr.IsValid() {
		// Not a flow record (e.g. an exporter's interface table sent
		// with a data template): nothing to count.
		return
	}
	r.Exporter = e.addr
	r.ObservationDomain = hdr.domain
	if !s.hasBytes {
		if s.bytesTotal != 0 {
			r.Bytes = s.bytesTotal
		} else {
			r.Bytes = s.initOctets
		}
	}
	if !s.hasPkts {
		if s.pktsTotal != 0 {
			r.Packets = s.pktsTotal
		} else {
			r.Packets = s.initPkts
		}
	}
	if s.hasICMP && r.DstPort == 0 && (r.Proto == flow.ProtoICMP || r.Proto == flow.ProtoICMPv6) {
		// Same convention as NetFlow v5: type<<8|code in the
		// destination port.
		r.DstPort = s.icmpType<<8 | s.icmpCode
	}
	if r.SrcMAC == ([6]byte{}) {
		r.SrcMAC = s.postSrcMAC
	}
	if r.DstMAC == ([6]byte{}) {
		r.DstMAC = s.postDstMAC
	}
	switch {
	case s.vlan != 0:
		r.VLAN = s.vlan
	case s.vlanDot1q != 0:
		r.VLAN = s.vlanDot1q
	default:
		r.VLAN = s.vlanPo
	}
	recRate := s.recRate
	if s.interval != 0 {
		recRate = (s.interval + s.space) / s.interval
	}
	if recRate > 1<<32-1 {
		recRate = 0
	}
	r.Start, r.End = d.resolveTimes(e, hdr, &s.t)
	d.emit(e, r, d.rate(e, hdr.domain, uint32(recRate), s.sampler))
}

// rateCache remembers the last sampler rate looked up in the sampling
// registry: the records of a datagram nearly always name the same sampler,
// and the lookup (a map keyed by a struct) cost a sixth of the v9 decode
// time. It is reset whenever the registry may have changed.
type rateCache struct {
	valid   bool
	domain  uint32
	sampler uint64
	rate    uint32
}

// rate is exporterState.rate through the decoder's cache.
func (d *decoder) rate(e *exporterState, domain, recordRate uint32, sampler uint64) uint32 {
	if e.overrideRate != 0 || recordRate != 0 {
		return e.rate(domain, recordRate, sampler)
	}
	c := &d.rates
	if !c.valid || c.domain != domain || c.sampler != sampler {
		*c = rateCache{true, domain, sampler, e.rate(domain, 0, sampler)}
	}
	return c.rate
}

// resolveTimes normalises a record's times to UTC, preferring absolute
// times, then delta times, then sysUptime offsets, and the export time
// only as a last resort.
func (d *decoder) resolveTimes(e *exporterState, hdr *exportHeader, t *recordTimes) (time.Time, time.Time) {
	export := hdr.export
	if export.Unix() <= 0 {
		export = hdr.received
	}
	start, end := t.first, t.last
	if start.IsZero() && end.IsZero() && t.hasDelta {
		start = export.Add(-time.Duration(t.deltaFirst) * time.Microsecond)
		end = export.Add(-time.Duration(t.deltaEnd) * time.Microsecond)
	}
	if start.IsZero() && end.IsZero() && t.hasUp {
		switch {
		case hdr.version == 9:
			// export is sysUptime ms after boot; uint32 arithmetic
			// handles the 49.7-day wrap of the uptime counter.
			start = export.Add(-time.Duration(hdr.sysUptime-uint32(t.upFirst)) * time.Millisecond)
			end = export.Add(-time.Duration(hdr.sysUptime-uint32(t.upLast)) * time.Millisecond)
		default:
			init := t.sysInit
			if init.IsZero() {
				init = e.sysInit[hdr.domain]
			}
			switch {
			case init.IsZero():
			case export.Unix() > 0 && export.Unix() < maxPlausibleSec:
				// Both within 1970-2200: int64 nanoseconds
				// cannot overflow, and cost a third of
				// time.Time arithmetic.
				i, x := init.UnixNano(), export.UnixNano()
				start = uptimeNanos(i, uint32(t.upFirst), x)
				end = uptimeNanos(i, uint32(t.upLast), x)
			default:
				start = uptimeToTime(init, uint32(t.upFirst), export)
				end = uptimeToTime(init, uint32(t.upLast), export)
			}
		}
	}
	if start.IsZero() {
		start = end
	}
	if end.IsZero() {
		end = start
	}
	if start.IsZero() {
		start, end = export, export
	}
	return start.UTC(), end.UTC()
}

// uptimeWrap is the period of a 32-bit millisecond uptime counter.
const uptimeWrap = time.Duration(1<<32) * time.Millisecond

// uptimeToTime turns a 32-bit millisecond uptime into a time, adding whole
// wraps of the counter so that the result is the one closest before the
// export time.
func uptimeToTime(init time.Time, up uint32, export time.Time) time.Time {
	t := init.Add(time.Duration(up) * time.Millisecond)
	if d := export.Sub(t); d > uptimeWrap/2 {
		// Whole wraps in one step: init comes from the exporter, and a
		// lying one must not cost a loop over centuries.
		t = t.Add(uptimeWrap * ((d + uptimeWrap/2) / uptimeWrap))
	}
	return t
}

// uptimeNanos is uptimeToTime on Unix nanoseconds, for init and export
// times both between 1970 and 2200.
func uptimeNanos(init int64, up uint32, export int64) time.Time {
	t := init + int64(up)*int64(time.Millisecond)
	if d := export - t; d > int64(uptimeWrap/2) {
		t += int64(uptimeWrap) * ((d + int64(uptimeWrap/2)) / int64(uptimeWrap))
	}
	return time.Unix(0, t)
}

// maxPlausibleSec is 2200-01-01 in Unix seconds.
const maxPlausibleSec = 7258118400

// plausibleMillis tells whether a Unix time in milliseconds is one an
// exporter could mean (1970 to 2200), so that a garbage system init time is
// ignored rather than turned into absurd flow times.
func plausibleMillis(ms uint64) bool {
	return ms != 0 && ms < maxPlausibleSec*1000
}

// ntpEpochOffset is the number of seconds from 1900 (NTP) to 1970 (Unix).
const ntpEpochOffset = 2208988800

// ntpTime decodes the 64-bit NTP timestamp of dateTimeMicroseconds and
// dateTimeNanoseconds.
func ntpTime(b []byte) time.Time {
	if len(b) != 8 {
		return time.Time{}
	}
	sec := int64(binary.BigEndian.Uint32(b)) - ntpEpochOffset
	frac := uint64(binary.BigEndian.Uint32(b[4:]))
	return time.Unix(sec, int64(frac*1e9>>32))
}

// ntopL7 reads nProbe's L7_PROTO: a number, or (newer nProbe) text
// "master.app"; the application ID wins over the master protocol.
func ntopL7(b []byte) uint32 {
	if len(b) <= 4 {
		return uint32(beUint(b))
	}
	var cur, master uint32
	dot := false
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			if cur < 1<<24 {
				cur = cur*10 + uint32(c-'0')
			}
		case c == '.' && !dot:
			master, cur, dot = cur, 0, true
		case c == 0: // NUL padding of a fixed-length field
		default:
			return 0
		}
	}
	if dot && cur == 0 {
		return master
	}
	return cur
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
	d.batch = append(d.batch, *r)
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
	e.m.flows.Add(float64(s.flows))
	e.m.flowBytes.Add(float64(s.bytes))
	e.m.flowPackets.Add(float64(s.packets))
	if s.unknown != 0 {
		e.m.samplingUnk.Add(float64(s.unknown))
	}
	*s = datagramSum{}
}
