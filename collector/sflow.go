package collector

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"time"

	"github.com/flowcheck/flowcheck/flow"
	"github.com/netsampler/goflow2/v2/decoders/sflow"
	"github.com/netsampler/goflow2/v2/decoders/utils"
)

// maxSFlowRecords bounds the records of one sample (goflow2 allocates a
// slice of the claimed size, and does not check expanded flow samples).
const maxSFlowRecords = 1000

// decodeSFlow decodes an sFlow v5 datagram. It walks the samples itself
// and hands each to goflow2 separately, so that one bad sample never costs
// the others and no claimed count is trusted before it is checked.
func (d *decoder) decodeSFlow(e *exporterState, b []byte, received time.Time) {
	if len(b) < 8 {
		d.c.decodeError(e, "truncated")
		return
	}
	off := 8
	switch binary.BigEndian.Uint32(b[4:]) {
	case 1:
		off += 4
	case 2:
		off += 16
	default:
		d.c.decodeError(e, "malformed", "what", "agent address type")
		return
	}
	off += 12 // sub-agent, sequence, uptime
	if len(b) < off+4 {
		d.c.decodeError(e, "truncated")
		return
	}
	count := int(binary.BigEndian.Uint32(b[off:]))
	off += 4
	for i := 0; i < count && off+8 <= len(b); i++ {
		format := binary.BigEndian.Uint32(b[off:])
		l := int(binary.BigEndian.Uint32(b[off+4:]))
		off += 8
		if l < 0 || l > len(b)-off {
			d.c.decodeError(e, "truncated", "what", "sample")
			return
		}
		sample := b[off : off+l]
		off += l
		var countOff int
		switch format {
		case sflow.SAMPLE_FORMAT_FLOW:
			countOff = 28
		case sflow.SAMPLE_FORMAT_EXPANDED_FLOW:
			countOff = 40
		default:
			continue // counter samples, drops, vendor formats: not flows
		}
		if len(sample) < countOff+4 || binary.BigEndian.Uint32(sample[countOff:]) > maxSFlowRecords {
			d.c.decodeError(e, "malformed", "what", "sample record count")
			continue
		}
		d.buf = *bytes.NewBuffer(sample)
		hdr := sflow.SampleHeader{Format: format, Length: uint32(l)}
		s, err := sflow.DecodeSample(&hdr, &d.buf)
		if err != nil {
			d.c.decodeError(e, "malformed", "what", "sample", "err", err)
			continue
		}
		switch s := s.(type) {
		case sflow.FlowSample:
			d.sflowSample(e, s.Records, s.SamplingRate, s.Input&0x3fffffff, s.Output&0x3fffffff, received)
		case sflow.ExpandedFlowSample:
			d.sflowSample(e, s.Records, s.SamplingRate, s.InputIfValue, s.OutputIfValue, received)
		}
	}
}

// sflowSample turns one flow sample into a record: one sampled packet,
// scaled by the sample's rate.
func (d *decoder) sflowSample(e *exporterState, recs []sflow.FlowRecord, rate, in, out uint32, received time.Time) {
	r := flow.Record{Exporter: e.addr, InIf: in, OutIf: out, Packets: 1, Start: received, End: received}
	var frameLen uint64
	for _, fr := range recs {
		switch v := fr.Data.(type) {
		case sflow.SampledHeader:
			frameLen = uint64(v.FrameLength)
			if ipLen, ok := parseSampledHeader(v.Protocol, v.HeaderData, &r); ok {
				r.Bytes = ipLen
			}
		case sflow.SampledIPv4:
			sampledIP(&r, v.SampledIPBase)
		case sflow.SampledIPv6:
			sampledIP(&r, v.SampledIPBase)
		case sflow.SampledEthernet:
			copy(r.SrcMAC[:], v.SrcMac)
			copy(r.DstMAC[:], v.DstMac)
		case sflow.ExtendedSwitch:
			if r.VLAN == 0 {
				r.VLAN = uint16(v.SrcVlan)
			}
		}
	}
	if !r.SrcAddr.IsValid() {
		return // not IP (ARP, LLDP...)
	}
	if r.Bytes == 0 {
		r.Bytes = frameLen
	}
	d.emit(e, &r, e.rate(0, rate, 0))
}

func sampledIP(r *flow.Record, v sflow.SampledIPBase) {
	r.SrcAddr = ipFrom(v.SrcIP)
	r.DstAddr = ipFrom(v.DstIP)
	r.SrcPort, r.DstPort = uint16(v.SrcPort), uint16(v.DstPort)
	r.Proto, r.TCPFlags = uint8(v.Protocol), uint8(v.TcpFlags)
	if r.Bytes == 0 {
		r.Bytes = uint64(v.Length)
	}
}

func ipFrom(b utils.IPAddress) netip.Addr {
	a, _ := netip.AddrFromSlice(b)
	return a.Unmap()
}

// sFlow header protocols.
const (
	sflowHeaderEthernet = 1
	sflowHeaderIPv4     = 11
	sflowHeaderIPv6     = 12
)

// parseSampledHeader reads addresses, ports, protocol and flags from the
// first bytes of a sampled packet, and returns its IP total length.
func parseSampledHeader(proto uint32, b []byte, r *flow.Record) (uint64, bool) {
	etherType := uint16(0)
	switch proto {
	case sflowHeaderEthernet:
		if len(b) < 14 {
			return 0, false
		}
		copy(r.DstMAC[:], b[0:6])
		copy(r.SrcMAC[:], b[6:12])
		etherType, b = binary.BigEndian.Uint16(b[12:]), b[14:]
		for (etherType == 0x8100 || etherType == 0x88a8) && len(b) >= 4 {
			if r.VLAN == 0 {
				r.VLAN = binary.BigEndian.Uint16(b) & 0x0fff
			}
			etherType, b = binary.BigEndian.Uint16(b[2:]), b[4:]
		}
	case sflowHeaderIPv4:
		etherType = 0x0800
	case sflowHeaderIPv6:
		etherType = 0x86dd
	default:
		return 0, false
	}
	var l4 []byte
	var ipLen uint64
	switch etherType {
	case 0x0800:
		if len(b) < 20 || b[0]>>4 != 4 {
			return 0, false
		}
		ihl := int(b[0]&0x0f) * 4
		ipLen = uint64(binary.BigEndian.Uint16(b[2:]))
		r.Proto = b[9]
		r.SrcAddr = netip.AddrFrom4([4]byte(b[12:16]))
		r.DstAddr = netip.AddrFrom4([4]byte(b[16:20]))
		if ihl >= 20 && len(b) >= ihl && binary.BigEndian.Uint16(b[6:])&0x1fff == 0 {
			l4 = b[ihl:]
		}
	case 0x86dd:
		if len(b) < 40 || b[0]>>4 != 6 {
			return 0, false
		}
		ipLen = uint64(binary.BigEndian.Uint16(b[4:])) + 40
		r.Proto = b[6]
		r.SrcAddr = netip.AddrFrom16([16]byte(b[8:24]))
		r.DstAddr = netip.AddrFrom16([16]byte(b[24:40]))
		l4 = b[40:]
	default:
		return 0, false
	}
	switch r.Proto {
	case flow.ProtoTCP:
		if len(l4) >= 14 {
			r.SrcPort, r.DstPort = binary.BigEndian.Uint16(l4), binary.BigEndian.Uint16(l4[2:])
			r.TCPFlags = l4[13]
		}
	case flow.ProtoUDP:
		if len(l4) >= 4 {
			r.SrcPort, r.DstPort = binary.BigEndian.Uint16(l4), binary.BigEndian.Uint16(l4[2:])
		}
	case flow.ProtoICMP, flow.ProtoICMPv6:
		if len(l4) >= 2 {
			r.DstPort = uint16(l4[0])<<8 | uint16(l4[1])
		}
	}
	return ipLen, true
}
