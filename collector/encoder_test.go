package collector

import (
	"encoding/binary"
	"net/netip"
)

// A small NetFlow v9 / IPFIX / sFlow encoder for hand-built test packets.

// ie is a template field: element id, enterprise number (IPFIX), length
// (0xffff: variable).
type ie struct {
	id     uint16
	pen    uint32
	length uint16
}

func be16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }
func be32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
func be64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }
func ip(s string) []byte   { return netip.MustParseAddr(s).AsSlice() }

func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// varLen encodes an IPFIX variable-length value.
func varLen(b []byte) []byte {
	if len(b) < 255 {
		return cat([]byte{byte(len(b))}, b)
	}
	return cat([]byte{0xff}, be16(uint16(len(b))), b)
}

func fieldSpecs(version uint16, fields []ie) []byte {
	var out []byte
	for _, f := range fields {
		if f.pen != 0 && version == 10 {
			out = cat(out, be16(f.id|0x8000), be16(f.length), be32(f.pen))
		} else {
			out = cat(out, be16(f.id), be16(f.length))
		}
	}
	return out
}

// set wraps a body into a set with the given ID, padded to 4 bytes.
func set(id uint16, body []byte) []byte {
	for len(body)%4 != 0 {
		body = append(body, 0)
	}
	return cat(be16(id), be16(uint16(len(body)+4)), body)
}

// templateSet is a (v9 or IPFIX) template set with one template.
func templateSet(version, id uint16, fields ...ie) []byte {
	sid := uint16(setV9Template)
	if version == 10 {
		sid = setIPFIXTemplate
	}
	return set(sid, cat(be16(id), be16(uint16(len(fields))), fieldSpecs(version, fields)))
}

// ipfixOptionsTemplateSet is an IPFIX options template set.
func ipfixOptionsTemplateSet(id uint16, scopes, options []ie) []byte {
	return set(setIPFIXOptions, cat(be16(id), be16(uint16(len(scopes)+len(options))), be16(uint16(len(scopes))),
		fieldSpecs(10, scopes), fieldSpecs(10, options)))
}

// v9OptionsTemplateSet is a NetFlow v9 options template set.
func v9OptionsTemplateSet(id uint16, scopes, options []ie) []byte {
	return set(setV9OptionsTemplate, cat(be16(id), be16(uint16(4*len(scopes))), be16(uint16(4*len(options))),
		fieldSpecs(9, scopes), fieldSpecs(9, options)))
}

// dataSet is a data set of the given template.
func dataSet(id uint16, records ...[]byte) []byte { return set(id, cat(records...)) }

// v9Msg is a NetFlow v9 message.
func v9Msg(domain, uptimeMS, unixSecs uint32, sets ...[]byte) []byte {
	return cat(be16(9), be16(uint16(len(sets))), be32(uptimeMS), be32(unixSecs), be32(0), be32(domain), cat(sets...))
}

// ipfixMsg is an IPFIX message.
func ipfixMsg(domain, exportSecs uint32, sets ...[]byte) []byte {
	body := cat(sets...)
	return cat(be16(10), be16(uint16(16+len(body))), be32(exportSecs), be32(0), be32(domain), body)
}

// v5Msg is a NetFlow v5 message with the given records (48 bytes each).
func v5Msg(uptimeMS, unixSecs uint32, sampling uint16, records ...[]byte) []byte {
	return cat(be16(5), be16(uint16(len(records))), be32(uptimeMS), be32(unixSecs), be32(0), be32(0),
		[]byte{0, 0}, be16(sampling), cat(records...))
}

func v5Record(src, dst string, sport, dport uint16, proto uint8, pkts, octets, first, last uint32) []byte {
	return cat(ip(src), ip(dst), ip("0.0.0.0"), be16(1), be16(2), be32(pkts), be32(octets), be32(first), be32(last),
		be16(sport), be16(dport), []byte{0, 0x12, proto, 0}, be16(0), be16(0), []byte{24, 24}, be16(0))
}

// sflowMsg is an sFlow v5 datagram from an IPv4 agent.
func sflowMsg(samples ...[]byte) []byte {
	return cat(be32(5), be32(1), ip("192.0.2.1"), be32(0), be32(1), be32(1000), be32(uint32(len(samples))), cat(samples...))
}

// sflowFlowSample is a flow sample (format 1) with one raw header record.
func sflowFlowSample(rate uint32, frameLen uint32, header []byte) []byte {
	rec := cat(be32(1), be32(frameLen), be32(4), be32(uint32(len(header))), header)
	for len(rec)%4 != 0 {
		rec = append(rec, 0)
	}
	body := cat(be32(1), be32(3), be32(rate), be32(rate*10), be32(0), be32(3), be32(4), be32(1),
		be32(1), be32(uint32(len(rec))), rec)
	return cat(be32(1), be32(uint32(len(body))), body)
}
