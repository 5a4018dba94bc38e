package collector

import (
	"bytes"
	"encoding/binary"
	"time"

	"github.com/netsampler/goflow2/v2/decoders/netflow"
)

// exportHeader is what the records of a v9/IPFIX set need from the
// message header they came in.
type exportHeader struct {
	version   uint16
	domain    uint32
	sysUptime uint32 // v9 only, milliseconds
	received  time.Time
	// at is the export time records are placed from: the header's, or
	// received when the exporter sent none (resolveExport); atNanos is it
	// in Unix nanoseconds when it is plausible (1970-2200), else 0. Once
	// per datagram, not per record (resolveTimes).
	at      time.Time
	atNanos int64
}

// resolveExport completes h.at (the header's export time) and sets
// h.atNanos.
func (h *exportHeader) resolveExport() {
	if h.at.Unix() <= 0 {
		h.at = h.received
	}
	if s := h.at.Unix(); s > 0 && s < maxPlausibleSec {
		h.atNanos = h.at.UnixNano()
	}
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
		hdr.at = time.Unix(int64(binary.BigEndian.Uint32(b[8:])), 0).UTC()
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
		hdr.at = time.Unix(int64(binary.BigEndian.Uint32(b[4:])), 0).UTC()
		hdr.domain = binary.BigEndian.Uint32(b[12:])
		off = 16
	}
	hdr.resolveExport()
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
			rs := recordState{r: d.nextRecord()}
			d.applyFields(&rs, p.fixedOps, b)
			d.finish(e, hdr, &rs)
		}
		return
	}
	mark, sum := len(d.batch), d.sum
	for pos := 0; len(b)-pos >= p.fixed; {
		rs := recordState{r: d.nextRecord()}
		d.fields = d.fields[:0]
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
				// v ends at next (a field cut short by the set's end
				// is shorter than its length says).
				d.fields = append(d.fields, fixedOp{op.kind, next - len(v), len(v)})
			}
		}
		d.applyFields(&rs, d.fields, b)
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

// queuedSet is a flow data set waiting for the options sets of its
// datagram to be applied.
type queuedSet struct {
	set  []byte
	plan *plan
	hdr  *exportHeader
}
