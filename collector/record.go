package collector

import (
	"encoding/binary"
	"net/netip"
	"time"

	"github.com/flowcheck/flowcheck/flow"
)

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

// recordState is a flow record being decoded (in the batch, nextRecord),
// with the fields that are only resolved once the whole record is read.
type recordState struct {
	r                       *flow.Record
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

// applyFields stores the used field values of a flow data record: ops
// give each field's kind and place in rec. The loop is here rather than in
// the caller: a call per field cost a third of a field's decoding.
func (d *decoder) applyFields(s *recordState, ops []fixedOp, rec []byte) {
	r, t := s.r, &s.t
	for _, op := range ops {
		b := rec[op.off : op.off+op.length]
		switch op.kind {
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
}

// finish resolves what a record's fields left open and accounts it, or
// gives it back when it is no flow record.
func (d *decoder) finish(e *exporterState, hdr *exportHeader, s *recordState) {
	r := s.r
	if !r.SrcAddr.IsValid() && !r.DstAddr.IsValid() {
		// Not a flow record (e.g. an exporter's interface table sent
		// with a data template): nothing to count.
		d.dropLast()
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
	d.account(r, d.rate(e, hdr.domain, uint32(recRate), s.sampler))
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
	export := hdr.at
	start, end := t.first, t.last
	if start.IsZero() && end.IsZero() && t.hasDelta {
		start = export.Add(-time.Duration(t.deltaFirst) * time.Microsecond)
		end = export.Add(-time.Duration(t.deltaEnd) * time.Microsecond)
	}
	if start.IsZero() && end.IsZero() && t.hasUp {
		switch {
		case hdr.version == 9 && hdr.atNanos != 0:
			// export is sysUptime ms after boot; uint32 arithmetic
			// handles the 49.7-day wrap of the uptime counter. In
			// int64 nanoseconds, as below: no overflow in 1970-2200.
			x := hdr.atNanos
			start = time.Unix(0, x-int64(hdr.sysUptime-uint32(t.upFirst))*int64(time.Millisecond))
			end = time.Unix(0, x-int64(hdr.sysUptime-uint32(t.upLast))*int64(time.Millisecond))
		case hdr.version == 9:
			start = export.Add(-time.Duration(hdr.sysUptime-uint32(t.upFirst)) * time.Millisecond)
			end = export.Add(-time.Duration(hdr.sysUptime-uint32(t.upLast)) * time.Millisecond)
		default:
			init := t.sysInit
			if init.IsZero() {
				init = e.sysInit[hdr.domain]
			}
			switch {
			case init.IsZero():
			case hdr.atNanos != 0:
				// Both within 1970-2200: int64 nanoseconds
				// cannot overflow, and cost a third of
				// time.Time arithmetic.
				i, x := init.UnixNano(), hdr.atNanos
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
