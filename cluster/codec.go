package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/flowcheck/flowcheck/flow"
)

// Version is the FlowBatch version this code writes, and the only one it
// reads (cluster/flowpb/flows.proto).
const Version = 1

// Decode errors; Decode wraps one of them.
var (
	// ErrVersion is a batch of a version this code does not read.
	ErrVersion = errors.New("unknown flow batch version")
	// ErrCorrupt is a value that is not a FlowBatch.
	ErrCorrupt = errors.New("corrupt flow batch")
)

// Field numbers of flows.proto. The codec is written by hand over
// protowire so that encoding and decoding allocate nothing per record;
// codec_test.go holds it to the generated code.
const (
	fieldVersion = 1
	fieldFlows   = 2
	fieldLosses  = 3

	fieldLossAt       = 1
	fieldLossLost     = 2
	fieldLossReceived = 3

	fieldSrcAddr           = 1
	fieldDstAddr           = 2
	fieldSrcPort           = 3
	fieldDstPort           = 4
	fieldProto             = 5
	fieldTCPFlags          = 6
	fieldBytes             = 7
	fieldPackets           = 8
	fieldStart             = 9
	fieldEnd               = 10
	fieldSides             = 11
	fieldExporter          = 12
	fieldObservationDomain = 13
	fieldSamplingRate      = 14
	fieldBiflow            = 15
	fieldReverseBytes      = 16
	fieldReversePackets    = 17
	fieldReverseTCPFlags   = 18
	fieldClientTCPFlags    = 19
	fieldServerTCPFlags    = 20
	fieldSrcMAC            = 21
	fieldDstMAC            = 22
	fieldVLAN              = 23
	fieldInIf              = 24
	fieldOutIf             = 25
	fieldAppID             = 26
	fieldAppName           = 27
)

// Batch builds the value of one Kafka message: a FlowBatch, records
// appended one at a time into a buffer that Reset keeps.
type Batch struct {
	buf     []byte
	records int
	losses  int
	scratch []byte
}

// Reset empties the batch, keeping its buffer.
func (b *Batch) Reset() {
	b.buf = protowire.AppendVarint(b.buf[:0], protowire.EncodeTag(fieldVersion, protowire.VarintType))
	b.buf = protowire.AppendVarint(b.buf, Version)
	b.records, b.losses = 0, 0
}

// Add appends r as a copy for sides.
func (b *Batch) Add(r *flow.Record, sides flow.Side) {
	b.scratch = appendFlowBody(b.scratch[:0], r)
	b.AddEncoded(b.scratch, sides)
}

// AddEncoded appends a record encoded by appendFlowBody (without its
// sides), as a copy for sides: a record published to two partitions is
// encoded once.
func (b *Batch) AddEncoded(body []byte, sides flow.Side) {
	if len(b.buf) == 0 {
		b.Reset()
	}
	n := len(body)
	if sides != 0 {
		n += 2
	}
	b.buf = protowire.AppendVarint(b.buf, protowire.EncodeTag(fieldFlows, protowire.BytesType))
	b.buf = protowire.AppendVarint(b.buf, uint64(n))
	b.buf = append(b.buf, body...)
	if sides != 0 {
		b.buf = append(b.buf, byte(protowire.EncodeTag(fieldSides, protowire.VarintType)), byte(sides))
	}
	b.records++
}

// Loss is a report of data lost on ingest (a FlowBatch's losses): Lost
// units were lost and Received handed on since the previous report, as of
// At; the units are datagrams or record copies, the same in both. It is
// what the collector's Dependencies.Lost reports, carried to the check
// workers.
type Loss struct {
	At             time.Time
	Lost, Received int
}

// AddLoss appends a loss report.
func (b *Batch) AddLoss(l Loss) {
	if len(b.buf) == 0 {
		b.Reset()
	}
	var body [40]byte
	m := appendTime(body[:0], fieldLossAt, l.At)
	m = appendUint(m, fieldLossLost, uint64(max(l.Lost, 0)))
	m = appendUint(m, fieldLossReceived, uint64(max(l.Received, 0)))
	b.buf = appendTag(b.buf, fieldLosses, protowire.BytesType)
	b.buf = appendVarint(b.buf, uint64(len(m)))
	b.buf = append(b.buf, m...)
	b.losses++
}

// Len is the number of records in the batch.
func (b *Batch) Len() int { return b.records }

// Size is the batch's encoded size in bytes.
func (b *Batch) Size() int { return len(b.buf) }

// Bytes is the encoded FlowBatch; it is valid until the next Add or Reset.
func (b *Batch) Bytes() []byte {
	if len(b.buf) == 0 {
		b.Reset()
	}
	return b.buf
}

// appendFlowBody appends the fields of a Flow message for r, all but sides.
func appendFlowBody(b []byte, r *flow.Record) []byte {
	b = appendAddr(b, fieldSrcAddr, r.SrcAddr)
	b = appendAddr(b, fieldDstAddr, r.DstAddr)
	b = appendUint(b, fieldSrcPort, uint64(r.SrcPort))
	b = appendUint(b, fieldDstPort, uint64(r.DstPort))
	b = appendUint(b, fieldProto, uint64(r.Proto))
	b = appendUint(b, fieldTCPFlags, uint64(r.TCPFlags))
	b = appendUint(b, fieldBytes, r.Bytes)
	b = appendUint(b, fieldPackets, r.Packets)
	b = appendTime(b, fieldStart, r.Start)
	b = appendTime(b, fieldEnd, r.End)
	b = appendAddr(b, fieldExporter, r.Exporter)
	b = appendUint(b, fieldObservationDomain, uint64(r.ObservationDomain))
	b = appendUint(b, fieldSamplingRate, uint64(r.SamplingRate))
	if r.Biflow {
		b = appendUint(b, fieldBiflow, 1)
	}
	b = appendUint(b, fieldReverseBytes, r.ReverseBytes)
	b = appendUint(b, fieldReversePackets, r.ReversePackets)
	b = appendUint(b, fieldReverseTCPFlags, uint64(r.ReverseTCPFlags))
	b = appendUint(b, fieldClientTCPFlags, uint64(r.ClientTCPFlags))
	b = appendUint(b, fieldServerTCPFlags, uint64(r.ServerTCPFlags))
	b = appendUint(b, fieldSrcMAC, macToUint(r.SrcMAC))
	b = appendUint(b, fieldDstMAC, macToUint(r.DstMAC))
	b = appendUint(b, fieldVLAN, uint64(r.VLAN))
	b = appendUint(b, fieldInIf, uint64(r.InIf))
	b = appendUint(b, fieldOutIf, uint64(r.OutIf))
	b = appendUint(b, fieldAppID, uint64(r.AppID))
	if name := r.AppName; name != "" {
		// A proto3 string is UTF-8: what an exporter sent otherwise is
		// mended, lest readers of the schema refuse the whole batch.
		if !utf8.ValidString(name) {
			name = strings.ToValidUTF8(name, "\uFFFD")
		}
		b = protowire.AppendTag(b, fieldAppName, protowire.BytesType)
		b = protowire.AppendString(b, name)
	}
	return b
}

func appendUint(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	return appendVarint(appendTag(b, num, protowire.VarintType), v)
}

func appendAddr(b []byte, num protowire.Number, a netip.Addr) []byte {
	switch {
	case a.Is4():
		v := a.As4()
		b = append(appendTag(b, num, protowire.BytesType), 4)
		return append(b, v[:]...)
	case a.Is6():
		v := a.As16()
		b = append(appendTag(b, num, protowire.BytesType), 16)
		return append(b, v[:]...)
	}
	return b
}

func appendTime(b []byte, num protowire.Number, t time.Time) []byte {
	if t.IsZero() {
		return b
	}
	return binary.LittleEndian.AppendUint64(appendTag(b, num, protowire.Fixed64Type), uint64(t.UnixNano()))
}

// appendTag and appendVarint are protowire's, inlined for the one- and
// two-byte cases that every field of a Flow takes (numbers up to 27).
func appendTag(b []byte, num protowire.Number, typ protowire.Type) []byte {
	k := uint64(num)<<3 | uint64(typ)
	if k < 0x80 {
		return append(b, byte(k))
	}
	return appendVarint(b, k)
}

func appendVarint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

func macToUint(m [6]byte) uint64 {
	return uint64(m[0])<<40 | uint64(m[1])<<32 | uint64(m[2])<<24 | uint64(m[3])<<16 | uint64(m[4])<<8 | uint64(m[5])
}

func uintToMAC(v uint64) [6]byte {
	return [6]byte{byte(v >> 40), byte(v >> 32), byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}
}

// maxNames bounds the application names a Decoder keeps, so that a topic
// full of distinct names cannot grow it without end.
const maxNames = 4096

// Decoder reads FlowBatch values into flow.Records, reusing its record
// slice and sharing the strings of application names, so that decoding
// allocates nothing per record. It is not safe for concurrent use.
type Decoder struct {
	records []flow.Record
	losses  []Loss
	names   map[string]string
}

// Losses are the loss reports of the value last decoded, valid until the
// next Decode.
func (d *Decoder) Losses() []Loss { return d.losses }

// Decode returns the records of one FlowBatch value. The slice is valid
// until the next call. An error wraps ErrVersion or ErrCorrupt, and then no
// record of the value is returned: a batch is applied whole or not at all.
func (d *Decoder) Decode(value []byte) ([]flow.Record, error) {
	d.records, d.losses = d.records[:0], d.losses[:0]
	var version uint64
	seen := false
	for len(value) > 0 {
		num, typ, n := protowire.ConsumeTag(value)
		if n < 0 {
			return nil, corrupt("batch tag", n)
		}
		if num > protowire.MaxValidNumber {
			return nil, fmt.Errorf("%w: field number %d", ErrCorrupt, num)
		}
		value = value[n:]
		switch {
		case num == fieldVersion && typ == protowire.VarintType:
			version, n = protowire.ConsumeVarint(value)
			seen = true
		case num == fieldFlows && typ == protowire.BytesType:
			var body []byte
			body, n = protowire.ConsumeBytes(value)
			if n >= 0 {
				d.records = append(d.records, flow.Record{})
				if err := d.decodeFlow(body, &d.records[len(d.records)-1]); err != nil {
					return nil, err
				}
			}
		case num == fieldLosses && typ == protowire.BytesType:
			var body []byte
			body, n = protowire.ConsumeBytes(value)
			if n >= 0 {
				l, err := decodeLoss(body)
				if err != nil {
					d.losses = d.losses[:0]
					return nil, err
				}
				d.losses = append(d.losses, l)
			}
		default:
			n = protowire.ConsumeFieldValue(num, typ, value)
		}
		if n < 0 {
			d.losses = d.losses[:0]
			return nil, corrupt("batch field", n)
		}
		value = value[n:]
	}
	if !seen || version != Version {
		d.losses = d.losses[:0]
		return nil, fmt.Errorf("%w: %d", ErrVersion, version)
	}
	return d.records, nil
}

func corrupt(what string, n int) error {
	return fmt.Errorf("%w: %s: %v", ErrCorrupt, what, protowire.ParseError(n))
}

// decodeFlow fills r (zero) from a Flow message. Unknown fields are
// skipped, so that a newer writer may add some; a known field of the wrong
// type, or a value out of its Go field's range, is corruption.
func (d *Decoder) decodeFlow(b []byte, r *flow.Record) error {
	for len(b) > 0 {
		// Every field of a Flow has a tag of one or two bytes, most
		// values are one byte: those cases skip protowire's general
		// loops.
		var num protowire.Number
		var typ protowire.Type
		n := 1
		switch {
		case b[0] < 0x80:
			num, typ = protowire.Number(b[0]>>3), protowire.Type(b[0]&7)
		case len(b) > 1 && b[1] < 0x80:
			k := uint64(b[0]&0x7f) | uint64(b[1])<<7
			num, typ, n = protowire.Number(k>>3), protowire.Type(k&7), 2
		default:
			num, typ, n = protowire.ConsumeTag(b)
		}
		if n < 0 {
			return corrupt("flow tag", n)
		}
		if num < protowire.MinValidNumber || num > protowire.MaxValidNumber {
			return fmt.Errorf("%w: field number %d", ErrCorrupt, num)
		}
		b = b[n:]
		if num < 0 || int(num) >= len(wireTypes) || !wireTypes[num].known {
			if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
				return corrupt("flow field", n)
			}
			b = b[n:]
			continue
		}
		if typ != wireTypes[num].typ {
			return fmt.Errorf("%w: field %d has wire type %d", ErrCorrupt, num, typ)
		}
		var v uint64
		var raw []byte
		switch {
		case typ == protowire.VarintType && len(b) > 0 && b[0] < 0x80:
			v, n = uint64(b[0]), 1
		case typ == protowire.VarintType:
			v, n = protowire.ConsumeVarint(b)
		case typ == protowire.Fixed64Type:
			v, n = protowire.ConsumeFixed64(b)
		default:
			raw, n = protowire.ConsumeBytes(b)
		}
		if n < 0 {
			return corrupt("flow field", n)
		}
		b = b[n:]
		if err := d.set(r, num, v, raw); err != nil {
			return err
		}
	}
	return nil
}

// decodeLoss reads a Loss message; counts beyond an int are corrupt.
func decodeLoss(b []byte) (Loss, error) {
	var l Loss
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return l, corrupt("loss tag", n)
		}
		if num > protowire.MaxValidNumber {
			return l, fmt.Errorf("%w: field number %d", ErrCorrupt, num)
		}
		b = b[n:]
		var v uint64
		switch {
		case num == fieldLossAt && typ == protowire.Fixed64Type:
			v, n = protowire.ConsumeFixed64(b)
			l.At = time.Unix(0, int64(v)).UTC()
		case (num == fieldLossLost || num == fieldLossReceived) && typ == protowire.VarintType:
			v, n = protowire.ConsumeVarint(b)
			if n >= 0 && v > math.MaxInt32 {
				return l, fmt.Errorf("%w: loss count %d", ErrCorrupt, v)
			}
			if num == fieldLossLost {
				l.Lost = int(v)
			} else {
				l.Received = int(v)
			}
		case num == fieldLossAt || num == fieldLossLost || num == fieldLossReceived:
			return l, fmt.Errorf("%w: loss field %d has wire type %d", ErrCorrupt, num, typ)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return l, corrupt("loss field", n)
		}
		b = b[n:]
	}
	return l, nil
}

// wireTypes are the wire types of the Flow fields, by number.
var wireTypes = func() (t [fieldAppName + 1]struct {
	typ   protowire.Type
	known bool
}) {
	for num := fieldSrcAddr; num <= fieldAppName; num++ {
		t[num].typ, t[num].known = protowire.VarintType, true
	}
	for _, num := range []int{fieldSrcAddr, fieldDstAddr, fieldExporter, fieldAppName} {
		t[num].typ = protowire.BytesType
	}
	t[fieldStart].typ, t[fieldEnd].typ = protowire.Fixed64Type, protowire.Fixed64Type
	return t
}()

// set stores one decoded field in r.
func (d *Decoder) set(r *flow.Record, num protowire.Number, v uint64, raw []byte) error {
	var err error
	switch num {
	case fieldSrcAddr:
		r.SrcAddr, err = addrOf(raw)
	case fieldDstAddr:
		r.DstAddr, err = addrOf(raw)
	case fieldExporter:
		r.Exporter, err = addrOf(raw)
	case fieldAppName:
		if !utf8.Valid(raw) {
			return fmt.Errorf("%w: app_name is not UTF-8", ErrCorrupt)
		}
		r.AppName = d.name(raw)
	case fieldStart:
		r.Start = time.Unix(0, int64(v)).UTC()
	case fieldEnd:
		r.End = time.Unix(0, int64(v)).UTC()
	case fieldSrcPort:
		r.SrcPort, err = narrow[uint16](num, v)
	case fieldDstPort:
		r.DstPort, err = narrow[uint16](num, v)
	case fieldVLAN:
		r.VLAN, err = narrow[uint16](num, v)
	case fieldProto:
		r.Proto, err = narrow[uint8](num, v)
	case fieldTCPFlags:
		r.TCPFlags, err = narrow[uint8](num, v)
	case fieldReverseTCPFlags:
		r.ReverseTCPFlags, err = narrow[uint8](num, v)
	case fieldClientTCPFlags:
		r.ClientTCPFlags, err = narrow[uint8](num, v)
	case fieldServerTCPFlags:
		r.ServerTCPFlags, err = narrow[uint8](num, v)
	case fieldSides:
		if v > uint64(flow.SideSrc|flow.SideDst) {
			return fmt.Errorf("%w: sides %d", ErrCorrupt, v)
		}
		r.Sides = flow.Side(v)
	case fieldBiflow:
		r.Biflow = v != 0
	case fieldBytes:
		r.Bytes = v
	case fieldPackets:
		r.Packets = v
	case fieldReverseBytes:
		r.ReverseBytes = v
	case fieldReversePackets:
		r.ReversePackets = v
	case fieldObservationDomain:
		r.ObservationDomain, err = narrow[uint32](num, v)
	case fieldSamplingRate:
		r.SamplingRate, err = narrow[uint32](num, v)
	case fieldInIf:
		r.InIf, err = narrow[uint32](num, v)
	case fieldOutIf:
		r.OutIf, err = narrow[uint32](num, v)
	case fieldAppID:
		r.AppID, err = narrow[uint32](num, v)
	case fieldSrcMAC, fieldDstMAC:
		if v >= 1<<48 {
			return fmt.Errorf("%w: field %d: %#x is not a MAC address", ErrCorrupt, num, v)
		}
		if num == fieldSrcMAC {
			r.SrcMAC = uintToMAC(v)
		} else {
			r.DstMAC = uintToMAC(v)
		}
	}
	return err
}

// narrow converts a varint to its Go field's type, refusing one that does
// not fit.
func narrow[T uint8 | uint16 | uint32](num protowire.Number, v uint64) (T, error) {
	if uint64(T(v)) != v {
		return 0, fmt.Errorf("%w: field %d: %d out of range", ErrCorrupt, num, v)
	}
	return T(v), nil
}

func addrOf(b []byte) (netip.Addr, error) {
	switch len(b) {
	case 0:
		return netip.Addr{}, nil
	case 4:
		return netip.AddrFrom4([4]byte(b)), nil
	case 16:
		return netip.AddrFrom16([16]byte(b)), nil
	}
	return netip.Addr{}, fmt.Errorf("%w: %d-byte address", ErrCorrupt, len(b))
}

// name returns b as a string, shared between the records that name the
// same application.
func (d *Decoder) name(b []byte) string {
	if s, ok := d.names[string(b)]; ok {
		return s
	}
	s := string(b)
	if d.names == nil {
		d.names = make(map[string]string)
	}
	if len(d.names) < maxNames {
		d.names[s] = s
	}
	return s
}
