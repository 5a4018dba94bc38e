package collector

// The reference decoder of the differential tests: the collector's v9/IPFIX
// data path as it was before the compiled plans (plan.go), decoding every
// data set with goflow2's DecodeMessageCommonFlowSet and mapping goflow2's
// DataField values, and its v5 path through goflow2's netflowlegacy. It shares the template registry (templates are parsed
// by goflow2 in both paths) and everything outside data set decoding.

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

// oracle is a decoder that decodes data sets with goflow2.
type oracle struct {
	d       *decoder
	buf     bytes.Buffer
	tmpls   [][]byte
	sets    [][]byte
	data    []oracleSet
	pending []pendingSet
	v5      netflowlegacy.PacketNetFlowV5
}

type oracleSet struct {
	records []netflow.DataRecord
	hdr     *exportHeader
}

func newOracle(c *Component) *oracle { return &oracle{d: newDecoder(c)} }

// handle decodes one datagram and hands its records on at once.
func (o *oracle) handle(from netip.AddrPort, b []byte, received time.Time, kind listenKind) {
	o.d.handleWith(o, from, b, received, kind)
	o.d.flush()
}

func (o *oracle) decodeNetFlow(e *exporterState, b []byte, received time.Time) {
	var hdr exportHeader
	var ok bool
	o.tmpls, o.sets, ok = o.d.c.splitMessage(e, b, received, &hdr, o.tmpls[:0], o.sets[:0])
	if !ok {
		return
	}
	for _, set := range o.tmpls {
		o.d.parseTemplateSet(e, &hdr, binary.BigEndian.Uint16(set), set)
	}
	o.data = o.data[:0]
	for _, set := range o.sets {
		o.dataSet(e, &hdr, set, true)
	}
	o.pending = e.takePending(o.pending[:0])
	for i := range o.pending {
		o.dataSet(e, &o.pending[i].hdr, o.pending[i].data, false)
	}
	for _, ds := range o.data {
		for i := range ds.records {
			o.mapRecord(e, ds.hdr, ds.records[i].Values)
		}
	}
	clear(o.pending)
}

func (o *oracle) dataSet(e *exporterState, hdr *exportHeader, set []byte, fresh bool) {
	o.buf = *bytes.NewBuffer(set)
	fs, err := netflow.DecodeMessageCommonFlowSet(&o.buf, e, hdr.domain, hdr.version)
	if err != nil {
		id := binary.BigEndian.Uint16(set)
		switch {
		case !errors.Is(err, netflow.ErrorTemplateNotFound):
			o.d.c.decodeError(e, "bad_data_set", "template", id, "err", err)
		case fresh:
			e.addPending(tmplKey{hdr.version, hdr.domain, id}, set, *hdr)
		default:
			o.d.c.decodeError(e, "template_missing", "template", id)
		}
		return
	}
	switch s := fs.(type) {
	case netflow.DataFlowSet:
		o.data = append(o.data, oracleSet{records: s.Records, hdr: hdr})
	case netflow.OptionsDataFlowSet:
		for _, r := range s.Records {
			o.applyOptions(e, hdr, r)
		}
	}
}

func (o *oracle) applyOptions(e *exporterState, hdr *exportHeader, r netflow.OptionsDataRecord) {
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

func (o *oracle) mapRecord(e *exporterState, hdr *exportHeader, vals []netflow.DataField) {
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
				r.AppName = o.d.intern(b)
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
	r.Start, r.End = o.d.resolveTimes(e, hdr, &t)
	o.d.emit(e, &r, e.rate(hdr.domain, uint32(recRate), sampler))
}

// decodeV5 is the reference v5 decoder: goflow2's netflowlegacy.
// The record count is checked against the datagram length first: goflow2
// allocates a record slice of whatever size the header claims.
func (o *oracle) decodeV5(e *exporterState, b []byte) {
	if len(b) < v5HeaderLen {
		o.d.c.decodeError(e, "truncated")
		return
	}
	count := int(binary.BigEndian.Uint16(b[2:]))
	if count == 0 || v5HeaderLen+count*v5RecordLen > len(b) {
		o.d.c.decodeError(e, "bad_length", "count", count, "size", len(b))
		return
	}
	o.buf = *bytes.NewBuffer(b)
	pkt := &o.v5
	if err := netflowlegacy.DecodeMessageVersion(&o.buf, pkt); err != nil {
		o.d.c.decodeError(e, "malformed", "err", err)
		return
	}
	export := time.Unix(int64(pkt.UnixSecs), int64(pkt.UnixNSecs)).UTC()
	// Top two bits: sampling mode; the rest: the interval (0: not told).
	headerRate := uint32(pkt.SamplingInterval & 0x3fff)
	rate := e.rate(0, headerRate, 0)
	for i := range pkt.Records {
		rec := &pkt.Records[i]
		r := flow.Record{
			Exporter: e.addr,
			SrcAddr:  v4(uint32(rec.SrcAddr)),
			DstAddr:  v4(uint32(rec.DstAddr)),
			SrcPort:  rec.SrcPort,
			DstPort:  rec.DstPort,
			Proto:    rec.Proto,
			TCPFlags: rec.TCPFlags,
			Bytes:    uint64(rec.DOctets),
			Packets:  uint64(rec.DPkts),
			InIf:     uint32(rec.Input),
			OutIf:    uint32(rec.Output),
			// uint32 arithmetic handles the uptime counter's wrap.
			Start: export.Add(-time.Duration(pkt.SysUptime-rec.First) * time.Millisecond),
			End:   export.Add(-time.Duration(pkt.SysUptime-rec.Last) * time.Millisecond),
		}
		o.d.emit(e, &r, rate)
	}
}

func v4(a uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(a >> 24), byte(a >> 16), byte(a >> 8), byte(a)})
}
