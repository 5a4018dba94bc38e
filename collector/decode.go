package collector

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"time"

	"github.com/flowcheck/flowcheck/flow"
	"github.com/netsampler/goflow2/v2/decoders/netflow"
	"github.com/netsampler/goflow2/v2/decoders/netflowlegacy"
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
// datagram so that steady-state decoding allocates only what goflow2 does.
type decoder struct {
	c       *Component
	batch   []flow.Record
	buf     bytes.Buffer
	sets    [][]byte
	data    []queuedSet
	pending []pendingSet
	names   map[string]string
	v5      netflowlegacy.PacketNetFlowV5
	sum     datagramSum
}

type queuedSet struct {
	records []netflow.DataRecord
	hdr     *exportHeader
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
	version := binary.BigEndian.Uint16(b)
	hdr := exportHeader{version: version, received: received}
	var off int
	switch version {
	case 9:
		if len(b) < 20 {
			d.c.decodeError(e, "truncated")
			return
		}
		hdr.sysUptime = binary.BigEndian.Uint32(b[4:])
		hdr.export = time.Unix(int64(binary.BigEndian.Uint32(b[8:])), 0).UTC()
		hdr.domain = binary.BigEndian.Uint32(b[16:])
		off = 20
	case 10:
		if len(b) < 16 {
			d.c.decodeError(e, "truncated")
			return
		}
		l := int(binary.BigEndian.Uint16(b[2:]))
		if l < 16 || l > len(b) {
			d.c.decodeError(e, "bad_length")
			return
		}
		b = b[:l]
		hdr.export = time.Unix(int64(binary.BigEndian.Uint32(b[4:])), 0).UTC()
		hdr.domain = binary.BigEndian.Uint32(b[12:])
		off = 16
	}
	d.sets = d.sets[:0]
	for off+4 <= len(b) {
		id := binary.BigEndian.Uint16(b[off:])
		l := int(binary.BigEndian.Uint16(b[off+2:]))
		if l < 4 || off+l > len(b) {
			d.c.decodeError(e, "bad_set_length")
			break
		}
		set := b[off : off+l]
		off += l
		switch {
		case version == 9 && (id == setV9Template || id == setV9OptionsTemplate),
			version == 10 && (id == setIPFIXTemplate || id == setIPFIXOptions):
			d.templateSet(e, &hdr, id, set)
		case id >= setFirstData:
			d.sets = append(d.sets, set)
		default:
			d.c.decodeError(e, "bad_set_id")
		}
	}
	d.data = d.data[:0]
	for _, set := range d.sets {
		d.dataSet(e, &hdr, set, true)
	}
	d.pending = e.takePending(d.pending[:0])
	for i := range d.pending {
		d.dataSet(e, &d.pending[i].hdr, d.pending[i].data, false)
	}
	for _, ds := range d.data {
		for i := range ds.records {
			d.mapRecord(e, ds.hdr, ds.records[i].Values)
		}
	}
	clear(d.pending)
}

// templateSet validates a template set's record layout before goflow2
// parses it: goflow2 allocates a field slice of whatever size a record
// header claims, so a header that lies about its field count is refused
// here rather than costing hundreds of kilobytes.
func (d *decoder) templateSet(e *exporterState, hdr *exportHeader, id uint16, set []byte) {
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
		var nfields int
		switch id {
		case setV9Template, setIPFIXTemplate:
			nfields = int(binary.BigEndian.Uint16(b[2:]))
			b = b[4:]
		case setV9OptionsTemplate:
			if len(b) < 6 {
				return false
			}
			scope, opts := int(binary.BigEndian.Uint16(b[2:])), int(binary.BigEndian.Uint16(b[4:]))
			if scope%4 != 0 || opts%4 != 0 {
				return false
			}
			nfields = (scope + opts) / 4
			b = b[6:]
		case setIPFIXOptions:
			if len(b) < 6 {
				// A 4-byte withdrawal record, or padding.
				return len(b) == 4 && binary.BigEndian.Uint16(b[2:]) == 0 || allZero(b)
			}
			nfields = int(binary.BigEndian.Uint16(b[2:]))
			if binary.BigEndian.Uint16(b[4:]) > uint16(nfields) {
				return false
			}
			b = b[6:]
		}
		if nfields > maxTemplateFields {
			return false
		}
		for range nfields {
			if len(b) < 4 {
				return false
			}
			n := 4
			if version == 10 && b[0]&0x80 != 0 {
				n = 8
			}
			if len(b) < n {
				return false
			}
			b = b[n:]
		}
	}
	return true
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// dataSet decodes one data set with goflow2. Options data is applied at
// once; flow data is queued in d.data for mapping. A set whose template is
// unknown is kept pending when fresh is true (a set replayed from the
// pending list is not queued again).
func (d *decoder) dataSet(e *exporterState, hdr *exportHeader, set []byte, fresh bool) {
	d.buf = *bytes.NewBuffer(set)
	fs, err := netflow.DecodeMessageCommonFlowSet(&d.buf, e, hdr.domain, hdr.version)
	if err != nil {
		id := binary.BigEndian.Uint16(set)
		switch {
		case !errors.Is(err, netflow.ErrorTemplateNotFound):
			d.c.decodeError(e, "bad_data_set", "template", id, "err", err)
		case fresh:
			e.addPending(tmplKey{hdr.version, hdr.domain, id}, set, *hdr)
		default:
			d.c.decodeError(e, "template_missing", "template", id)
		}
		return
	}
	switch s := fs.(type) {
	case netflow.DataFlowSet:
		d.data = append(d.data, queuedSet{records: s.Records, hdr: hdr})
	case netflow.OptionsDataFlowSet:
		for _, r := range s.Records {
			d.applyOptions(e, hdr, r)
		}
	}
}

// applyOptions learns sampling rates and system init time from an options
// data record. v9 scope fields use scope types, not element IDs, so only
// IPFIX scopes are read.
func (d *decoder) applyOptions(e *exporterState, hdr *exportHeader, r netflow.OptionsDataRecord) {
	var sampler, interval, space, rate uint64
	read := func(vals []netflow.DataField) {
		for _, v := range vals {
			if v.PenProvided {
				continue
			}
			b, _ := v.Value.([]byte)
			switch v.Type {
			case 48, 302: // samplerId / FLOW_SAMPLER_ID, selectorId
				sampler = beUint(b)
			case 34, 50: // samplingInterval, samplerRandomInterval
				rate = beUint(b)
			case 305: // samplingPacketInterval
				interval = beUint(b)
			case 306: // samplingPacketSpace
				space = beUint(b)
			case 160: // systemInitTimeMilliseconds
				if ms := beUint(b); plausibleMillis(ms) && len(e.sysInit) < maxSamplers {
					e.sysInit[hdr.domain] = time.UnixMilli(int64(ms)).UTC()
				}
			}
		}
	}
	if hdr.version == 10 {
		read(r.ScopesValues)
	}
	read(r.OptionsValues)
	if interval != 0 {
		// Count-based selection: interval packets taken, space skipped.
		rate = (interval + space) / interval
	}
	if rate != 0 && rate <= 1<<32-1 {
		e.learnRate(hdr.domain, sampler, uint32(rate))
	}
}

// beUint reads a big-endian unsigned integer of up to 8 bytes (the last 8
// of a longer value).
func beUint(b []byte) uint64 {
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

// mapRecord turns one goflow2 data record into a flow.Record.
func (d *decoder) mapRecord(e *exporterState, hdr *exportHeader, vals []netflow.DataField) {
	var (
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
	)
	r.Exporter = e.addr
	r.ObservationDomain = hdr.domain
	for _, v := range vals {
		b, _ := v.Value.([]byte)
		typ, pen := v.Type, uint32(0)
		if v.PenProvided {
			pen = v.Pen
		}
		if hdr.version == 9 && typ >= ntopV9Base && typ < ntopV9Base+1024 {
			typ, pen = typ-ntopV9Base, penNtop
		}
		switch pen {
		case 0:
		case penReverse:
			r.Biflow = true
			switch typ {
			case 1, 85:
				r.ReverseBytes = beUint(b)
			case 2, 86:
				r.ReversePackets = beUint(b)
			case 6:
				r.ReverseTCPFlags = uint8(beUint(b))
			}
			continue
		case penNtop:
			switch typ {
			case 78:
				r.ClientTCPFlags = uint8(beUint(b))
			case 79:
				r.ServerTCPFlags = uint8(beUint(b))
			case 118:
				r.AppID = ntopL7(b)
			case 119:
				r.AppName = d.intern(b)
			}
			continue
		default:
			continue
		}
		switch typ {
		case 1:
			r.Bytes, hasBytes = beUint(b), true
		case 2:
			r.Packets, hasPkts = beUint(b), true
		case 85:
			bytesTotal = beUint(b)
		case 86:
			pktsTotal = beUint(b)
		case 23: // OUT_BYTES / postOctetDeltaCount: the reverse side
			r.ReverseBytes, r.Biflow = beUint(b), true
		case 24:
			r.ReversePackets, r.Biflow = beUint(b), true
		case 231: // initiatorOctets
			initOctets = beUint(b)
		case 232: // responderOctets
			r.ReverseBytes, r.Biflow = beUint(b), true
		case 298: // initiatorPackets
			initPkts = beUint(b)
		case 299: // responderPackets
			r.ReversePackets, r.Biflow = beUint(b), true
		case 4:
			r.Proto = uint8(beUint(b))
		case 6:
			r.TCPFlags = uint8(beUint(b))
		case 7:
			r.SrcPort = uint16(beUint(b))
		case 11:
			r.DstPort = uint16(beUint(b))
		case 8:
			if len(b) == 4 {
				r.SrcAddr = netip.AddrFrom4([4]byte(b))
			}
		case 12:
			if len(b) == 4 {
				r.DstAddr = netip.AddrFrom4([4]byte(b))
			}
		case 27:
			if len(b) == 16 {
				r.SrcAddr = netip.AddrFrom16([16]byte(b))
			}
		case 28:
			if len(b) == 16 {
				r.DstAddr = netip.AddrFrom16([16]byte(b))
			}
		case 10:
			r.InIf = uint32(beUint(b))
		case 14:
			r.OutIf = uint32(beUint(b))
		case 32, 139: // icmpTypeCode
			v := beUint(b)
			icmpType, icmpCode, hasICMP = uint16(v>>8)&0xff, uint16(v)&0xff, true
		case 176, 178:
			icmpType, hasICMP = uint16(beUint(b)), true
		case 177, 179:
			icmpCode, hasICMP = uint16(beUint(b)), true
		case 56:
			copy(r.SrcMAC[:], b)
		case 80:
			copy(r.DstMAC[:], b)
		case 81:
			copy(postSrcMAC[:], b)
		case 57:
			copy(postDstMAC[:], b)
		case 58:
			vlan = uint16(beUint(b))
		case 243:
			vlanDot1q = uint16(beUint(b))
		case 59:
			vlanPo = uint16(beUint(b))
		case 95:
			if len(b) > 1 { // classification engine ID, then selector
				r.AppID = uint32(beUint(b[1:]))
			}
		case 34:
			recRate = beUint(b)
		case 305:
			interval = beUint(b)
		case 306:
			space = beUint(b)
		case 48, 302:
			sampler = beUint(b)
		case 21:
			t.upLast, t.hasUp = beUint(b), true
		case 22:
			t.upFirst, t.hasUp = beUint(b), true
		case 150:
			t.first = time.Unix(int64(beUint(b)), 0)
		case 151:
			t.last = time.Unix(int64(beUint(b)), 0)
		case 152:
			t.first = time.UnixMilli(int64(beUint(b)))
		case 153:
			t.last = time.UnixMilli(int64(beUint(b)))
		case 154, 156:
			t.first = ntpTime(b)
		case 155, 157:
			t.last = ntpTime(b)
		case 158:
			t.deltaFirst, t.hasDelta = beUint(b), true
		case 159:
			t.deltaEnd, t.hasDelta = beUint(b), true
		case 160:
			if ms := beUint(b); plausibleMillis(ms) {
				t.sysInit = time.UnixMilli(int64(ms))
			}
		}
	}
	if !r.SrcAddr.IsValid() && !r.DstAddr.IsValid() {
		// Not a flow record (e.g. an exporter's interface table sent
		// with a data template): nothing to count.
		return
	}
	if !hasBytes {
		if bytesTotal != 0 {
			r.Bytes = bytesTotal
		} else {
			r.Bytes = initOctets
		}
	}
	if !hasPkts {
		if pktsTotal != 0 {
			r.Packets = pktsTotal
		} else {
			r.Packets = initPkts
		}
	}
	if hasICMP && r.DstPort == 0 && (r.Proto == flow.ProtoICMP || r.Proto == flow.ProtoICMPv6) {
		// Same convention as NetFlow v5: type<<8|code in the
		// destination port.
		r.DstPort = icmpType<<8 | icmpCode
	}
	if r.SrcMAC == ([6]byte{}) {
		r.SrcMAC = postSrcMAC
	}
	if r.DstMAC == ([6]byte{}) {
		r.DstMAC = postDstMAC
	}
	switch {
	case vlan != 0:
		r.VLAN = vlan
	case vlanDot1q != 0:
		r.VLAN = vlanDot1q
	default:
		r.VLAN = vlanPo
	}
	if interval != 0 {
		recRate = (interval + space) / interval
	}
	if recRate > 1<<32-1 {
		recRate = 0
	}
	r.Start, r.End = d.resolveTimes(e, hdr, &t)
	d.emit(e, &r, e.rate(hdr.domain, uint32(recRate), sampler))
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
			if !init.IsZero() {
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

// plausibleMillis tells whether a Unix time in milliseconds is one an
// exporter could mean (1970 to 2200), so that a garbage system init time is
// ignored rather than turned into absurd flow times.
func plausibleMillis(ms uint64) bool {
	return ms != 0 && ms < 7258118400000
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
