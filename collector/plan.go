package collector

import (
	"encoding/binary"

	"github.com/netsampler/goflow2/v2/decoders/netflow"
)

// A plan is a v9/IPFIX template compiled once, when the template arrives,
// into the list of operations that decode one of its data records: read so
// many bytes (or a variable-length value), then store them as this kind of
// field. Decoding a data set walks the plan over the set's bytes and writes
// straight into a flow.Record, with no per-field value boxing and no
// per-record allocation (goflow2's data set decoder allocates a value slice
// per record and an interface per field).
//
// The walk reproduces goflow2's DecodeDataSet and DecodeOptionsDataSet
// exactly (which records are read, where a set is malformed); the
// differential tests hold the two side by side.
type plan struct {
	ops []fieldOp
	// scopes is the number of leading ops that are options scope fields.
	scopes int
	// fixed is the byte length of the fixed-length fields; scopeFixed of
	// those among the scopes. A set keeps yielding records while at least
	// fixed bytes remain, as goflow2's decoder does.
	fixed, scopeFixed int
	options           bool
	// fixedOps is set for a flow template without variable-length
	// fields: its records are all fixed-length bytes long, and only the
	// fields that are used are read, at their offsets.
	fixedOps []fixedOp
}

// fixedOp reads a used field of a fixed-length record at its offset.
type fixedOp struct {
	kind        fieldKind
	off, length int
}

// fieldOp decodes one template field.
type fieldOp struct {
	kind   fieldKind
	length uint16 // varLength: IPFIX variable-length encoding
}

// varLength is the template length of an IPFIX variable-length field.
const varLength = 0xffff

// fieldKind is what a template field means to the collector; a data record
// walk switches on it instead of on (element ID, enterprise, version).
type fieldKind uint8

// Field kinds of flow data records.
const (
	kIgnore fieldKind = iota
	// RFC 5103 reverse elements (PEN 29305); kRevOther only marks the
	// record as a biflow.
	kRevBytes
	kRevPackets
	kRevTCPFlags
	kRevOther
	// ntop nProbe elements.
	kClientTCPFlags
	kServerTCPFlags
	kL7Proto
	kL7Name
	// IANA elements.
	kBytes
	kPackets
	kBytesTotal
	kPacketsTotal
	kOutBytes
	kOutPackets
	kInitiatorOctets
	kResponderOctets
	kInitiatorPackets
	kResponderPackets
	kProto
	kTCPFlags
	kSrcPort
	kDstPort
	kSrcAddr4
	kDstAddr4
	kSrcAddr6
	kDstAddr6
	kInIf
	kOutIf
	kICMPTypeCode
	kICMPType
	kICMPCode
	kSrcMAC
	kDstMAC
	kPostSrcMAC
	kPostDstMAC
	kVLAN
	kDot1qVLAN
	kPostVLAN
	kAppID
	kSamplingInterval
	kPacketInterval
	kPacketSpace
	kSamplerID
	kUptimeLast
	kUptimeFirst
	kFirstSec
	kLastSec
	kFirstMilli
	kLastMilli
	kFirstNTP
	kLastNTP
	kDeltaFirst
	kDeltaLast
	kSysInit
)

// ianaKinds maps IANA element IDs to field kinds (read-only).
var ianaKinds = map[uint16]fieldKind{
	1: kBytes, 2: kPackets, 85: kBytesTotal, 86: kPacketsTotal,
	23: kOutBytes, 24: kOutPackets,
	231: kInitiatorOctets, 232: kResponderOctets, 298: kInitiatorPackets, 299: kResponderPackets,
	4: kProto, 6: kTCPFlags, 7: kSrcPort, 11: kDstPort,
	8: kSrcAddr4, 12: kDstAddr4, 27: kSrcAddr6, 28: kDstAddr6,
	10: kInIf, 14: kOutIf,
	32: kICMPTypeCode, 139: kICMPTypeCode, 176: kICMPType, 178: kICMPType, 177: kICMPCode, 179: kICMPCode,
	56: kSrcMAC, 80: kDstMAC, 81: kPostSrcMAC, 57: kPostDstMAC,
	58: kVLAN, 243: kDot1qVLAN, 59: kPostVLAN,
	95: kAppID,
	34: kSamplingInterval, 305: kPacketInterval, 306: kPacketSpace, 48: kSamplerID, 302: kSamplerID,
	21: kUptimeLast, 22: kUptimeFirst,
	150: kFirstSec, 151: kLastSec, 152: kFirstMilli, 153: kLastMilli,
	154: kFirstNTP, 156: kFirstNTP, 155: kLastNTP, 157: kLastNTP,
	158: kDeltaFirst, 159: kDeltaLast, 160: kSysInit,
}

// flowKind classifies a field of a flow data template.
func flowKind(version uint16, f netflow.Field) fieldKind {
	typ, pen := f.Type, uint32(0)
	if f.PenProvided {
		pen = f.Pen
	}
	if version == 9 && typ >= ntopV9Base && typ < ntopV9Base+1024 {
		typ, pen = typ-ntopV9Base, penNtop
	}
	switch pen {
	case 0:
		return ianaKinds[typ]
	case penReverse:
		switch typ {
		case 1, 85:
			return kRevBytes
		case 2, 86:
			return kRevPackets
		case 6:
			return kRevTCPFlags
		}
		return kRevOther
	case penNtop:
		switch typ {
		case 78:
			return kClientTCPFlags
		case 79:
			return kServerTCPFlags
		case 118:
			return kL7Proto
		case 119:
			return kL7Name
		}
	}
	return kIgnore
}

// Field kinds of options data records (sampling and system init time).
const (
	oIgnore fieldKind = iota
	oSampler
	oRate
	oInterval
	oSpace
	oSysInit
)

// optionKind classifies a field of an options template. NetFlow v9 scope
// fields use scope types, not element IDs, so they are never read.
func optionKind(version uint16, scope bool, f netflow.Field) fieldKind {
	if f.PenProvided || scope && version != 10 {
		return oIgnore
	}
	switch f.Type {
	case 48, 302: // samplerId / FLOW_SAMPLER_ID, selectorId
		return oSampler
	case 34, 50: // samplingInterval, samplerRandomInterval
		return oRate
	case 305: // samplingPacketInterval
		return oInterval
	case 306: // samplingPacketSpace
		return oSpace
	case 160: // systemInitTimeMilliseconds
		return oSysInit
	}
	return oIgnore
}

// compilePlan compiles one of goflow2's template records; nil for another
// type.
func compilePlan(version uint16, template any) *plan {
	p := &plan{ops: make([]fieldOp, 0, templateFields(template))}
	add := func(fields []netflow.Field, kind func(netflow.Field) fieldKind) int {
		fixed := 0
		for _, f := range fields {
			p.ops = append(p.ops, fieldOp{kind: kind(f), length: f.Length})
			if f.Length != varLength {
				fixed += int(f.Length)
			}
		}
		return fixed
	}
	flowField := func(f netflow.Field) fieldKind { return flowKind(version, f) }
	scopeField := func(f netflow.Field) fieldKind { return optionKind(version, true, f) }
	optionField := func(f netflow.Field) fieldKind { return optionKind(version, false, f) }
	switch t := template.(type) {
	case netflow.TemplateRecord:
		p.fixed = add(t.Fields, flowField)
		off := 0
		for _, op := range p.ops {
			if op.length == varLength {
				p.fixedOps = nil
				break
			}
			if op.kind != kIgnore {
				p.fixedOps = append(p.fixedOps, fixedOp{op.kind, off, int(op.length)})
			}
			off += int(op.length)
		}
	case netflow.NFv9OptionsTemplateRecord:
		p.options, p.scopes = true, len(t.Scopes)
		p.scopeFixed = add(t.Scopes, scopeField)
		p.fixed = p.scopeFixed + add(t.Options, optionField)
	case netflow.IPFIXOptionsTemplateRecord:
		p.options, p.scopes = true, len(t.Scopes)
		p.scopeFixed = add(t.Scopes, scopeField)
		p.fixed = p.scopeFixed + add(t.Options, optionField)
	default:
		return nil
	}
	return p
}

// templateFields counts the fields of one of goflow2's template records.
func templateFields(template any) int {
	switch t := template.(type) {
	case netflow.TemplateRecord:
		return len(t.Fields)
	case netflow.NFv9OptionsTemplateRecord:
		return len(t.Scopes) + len(t.Options)
	case netflow.IPFIXOptionsTemplateRecord:
		return len(t.Scopes) + len(t.Options)
	}
	return 0
}

// field reads the value of op at b[pos:], returning it and the position
// after it. A value cut short by the end of the set is returned short (as
// goflow2 does); ok is false when a variable-length prefix is itself cut
// short, which makes the whole set malformed.
func (op fieldOp) field(b []byte, pos int) (v []byte, next int, ok bool) {
	n := int(op.length)
	if op.length == varLength {
		if pos >= len(b) {
			return nil, pos, false
		}
		n = int(b[pos])
		pos++
		if n == 0xff {
			if pos+2 > len(b) {
				return nil, pos, false
			}
			n = int(binary.BigEndian.Uint16(b[pos:]))
			pos += 2
		}
	}
	end := min(pos+n, len(b))
	return b[pos:end], end, true
}
