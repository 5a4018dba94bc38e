package gen

import (
	"encoding/binary"
	"fmt"
	"time"
)

// TemplateID is the template (and data set) ID the v9 and IPFIX encoders use.
const TemplateID = 256

// field is one template entry: information element and length.
type field struct{ typ, length uint16 }

// v9Fields is the v9 template, close to what softflowd exports for IPv4.
var v9Fields = [...]field{
	{8, 4},  // IPV4_SRC_ADDR
	{12, 4}, // IPV4_DST_ADDR
	{7, 2},  // L4_SRC_PORT
	{11, 2}, // L4_DST_PORT
	{4, 1},  // PROTOCOL
	{6, 1},  // TCP_FLAGS
	{5, 1},  // SRC_TOS
	{1, 8},  // IN_BYTES
	{2, 8},  // IN_PKTS
	{22, 4}, // FIRST_SWITCHED (sysUpTime ms)
	{21, 4}, // LAST_SWITCHED (sysUpTime ms)
	{10, 2}, // INPUT_SNMP
	{14, 2}, // OUTPUT_SNMP
}

// ipfixFields is the IPFIX template, with absolute millisecond timestamps as
// most IPFIX exporters send.
var ipfixFields = [...]field{
	{8, 4},   // sourceIPv4Address
	{12, 4},  // destinationIPv4Address
	{7, 2},   // sourceTransportPort
	{11, 2},  // destinationTransportPort
	{4, 1},   // protocolIdentifier
	{6, 1},   // tcpControlBits (reduced size)
	{5, 1},   // ipClassOfService
	{1, 8},   // octetDeltaCount
	{2, 8},   // packetDeltaCount
	{152, 8}, // flowStartMilliseconds
	{153, 8}, // flowEndMilliseconds
	{10, 4},  // ingressInterface
	{14, 4},  // egressInterface
}

// Sizes of the fixed parts of each format.
const (
	v5HeaderLen    = 24
	v5RecordLen    = 48
	v9HeaderLen    = 20
	v9RecordLen    = 43
	ipfixHeaderLen = 16
	ipfixRecordLen = 55
	setHeaderLen   = 4
	v9TemplateLen  = setHeaderLen + 4 + len(v9Fields)*4
	ipfixTmplLen   = setHeaderLen + 4 + len(ipfixFields)*4
)

// MaxRecordsPerPacket is the most records of a version that fit in one
// 1472-byte datagram together with a template.
func MaxRecordsPerPacket(version int) int {
	switch version {
	case V5:
		return 30 // the v5 format's own limit
	case V9:
		return (maxDatagram - v9HeaderLen - v9TemplateLen - setHeaderLen - 3) / v9RecordLen
	case IPFIX:
		return (maxDatagram - ipfixHeaderLen - ipfixTmplLen - setHeaderLen) / ipfixRecordLen
	}
	return 0
}

// Encoder builds the datagrams of one exporter: it keeps the exporter's
// sequence numbers, uptime base and template refresh schedule. It is not
// safe for concurrent use.
type Encoder struct {
	version int
	// domain is the v9 source ID, the IPFIX observation domain ID, or the
	// v5 engine ID (low byte).
	domain  uint32
	boot    time.Time
	refresh uint64
	packets uint64
	records uint32
}

// NewEncoder returns an encoder for version (5, 9 or 10). boot is the
// exporter's start time (sysUpTime counts from it; it must be before every
// flow's start); templateRefresh is the v9/IPFIX template period in
// datagrams.
func NewEncoder(version int, domain uint32, templateRefresh int, boot time.Time) (*Encoder, error) {
	if version != V5 && version != V9 && version != IPFIX {
		return nil, fmt.Errorf("version: %d is not 5, 9 or 10", version)
	}
	if templateRefresh < 1 {
		return nil, fmt.Errorf("template_refresh: must be >= 1")
	}
	return &Encoder{version: version, domain: domain, boot: boot, refresh: uint64(templateRefresh)}, nil
}

// Packets is the number of datagrams encoded so far.
func (e *Encoder) Packets() uint64 { return e.packets }

// Append encodes flows as one datagram stamped with now and appends it to
// dst. It allocates only when dst lacks capacity; flows must not exceed
// MaxRecordsPerPacket.
func (e *Encoder) Append(dst []byte, flows []Flow, now time.Time) []byte {
	var out []byte
	switch e.version {
	case V5:
		out = e.appendV5(dst, flows, now)
	case V9:
		out = e.appendV9(dst, flows, now)
	default:
		out = e.appendIPFIX(dst, flows, now)
	}
	e.packets++
	e.records += uint32(len(flows))
	return out
}

// grow extends b by n bytes and returns the extended slice and the new part.
func grow(b []byte, n int) ([]byte, []byte) {
	l := len(b)
	if cap(b)-l < n {
		nb := make([]byte, l, 2*cap(b)+n)
		copy(nb, b)
		b = nb
	}
	b = b[:l+n]
	return b, b[l:]
}

// uptime is the exporter's sysUpTime in milliseconds at t.
func (e *Encoder) uptime(t time.Time) uint32 { return uint32(t.Sub(e.boot).Milliseconds()) }

func (e *Encoder) appendV5(dst []byte, flows []Flow, now time.Time) []byte {
	dst, h := grow(dst, v5HeaderLen+len(flows)*v5RecordLen)
	up := e.uptime(now)
	be := binary.BigEndian
	be.PutUint16(h[0:], V5)
	be.PutUint16(h[2:], uint16(len(flows)))
	be.PutUint32(h[4:], up)
	be.PutUint32(h[8:], uint32(now.Unix()))
	be.PutUint32(h[12:], uint32(now.Nanosecond()))
	be.PutUint32(h[16:], e.records)
	h[20] = 0
	h[21] = byte(e.domain)
	be.PutUint16(h[22:], 0)
	b := h[v5HeaderLen:]
	for i := range flows {
		f := &flows[i]
		r := b[i*v5RecordLen : (i+1)*v5RecordLen]
		copy(r[0:4], f.Src[:])
		copy(r[4:8], f.Dst[:])
		be.PutUint32(r[8:], 0) // next hop
		be.PutUint16(r[12:], f.InIf)
		be.PutUint16(r[14:], f.OutIf)
		be.PutUint32(r[16:], f.Packets)
		be.PutUint32(r[20:], f.Bytes)
		be.PutUint32(r[24:], up-f.DurationMs)
		be.PutUint32(r[28:], up)
		be.PutUint16(r[32:], f.SrcPort)
		be.PutUint16(r[34:], f.DstPort)
		r[36] = 0
		r[37] = f.TCPFlags
		r[38] = f.Proto
		r[39] = 0               // tos
		be.PutUint64(r[40:], 0) // src/dst AS, masks, pad
	}
	return dst
}

// withTemplate reports whether the next datagram carries the template.
func (e *Encoder) withTemplate() bool { return e.packets%e.refresh == 0 }

func (e *Encoder) appendV9(dst []byte, flows []Flow, now time.Time) []byte {
	tmpl := e.withTemplate()
	dataLen := setHeaderLen + len(flows)*v9RecordLen
	pad := (4 - dataLen%4) % 4
	total := v9HeaderLen + dataLen + pad
	if tmpl {
		total += v9TemplateLen
	}
	dst, b := grow(dst, total)
	up := e.uptime(now)
	be := binary.BigEndian
	count := len(flows)
	if tmpl {
		count++
	}
	be.PutUint16(b[0:], V9)
	be.PutUint16(b[2:], uint16(count))
	be.PutUint32(b[4:], up)
	be.PutUint32(b[8:], uint32(now.Unix()))
	be.PutUint32(b[12:], uint32(e.packets))
	be.PutUint32(b[16:], e.domain)
	b = b[v9HeaderLen:]
	if tmpl {
		b = b[putTemplateSet(b, 0, v9Fields[:]):] // set 0: v9 template flowset
	}
	be.PutUint16(b[0:], TemplateID)
	be.PutUint16(b[2:], uint16(dataLen+pad))
	b = b[setHeaderLen:]
	for i := range flows {
		f := &flows[i]
		r := b[i*v9RecordLen : (i+1)*v9RecordLen]
		putFlowKey(r, f)
		be.PutUint32(r[31:], up-f.DurationMs)
		be.PutUint32(r[35:], up)
		be.PutUint16(r[39:], f.InIf)
		be.PutUint16(r[41:], f.OutIf)
	}
	clear(b[len(flows)*v9RecordLen:])
	return dst
}

func (e *Encoder) appendIPFIX(dst []byte, flows []Flow, now time.Time) []byte {
	tmpl := e.withTemplate()
	dataLen := setHeaderLen + len(flows)*ipfixRecordLen
	total := ipfixHeaderLen + dataLen
	if tmpl {
		total += ipfixTmplLen
	}
	dst, b := grow(dst, total)
	be := binary.BigEndian
	nowMs := uint64(now.UnixMilli())
	be.PutUint16(b[0:], IPFIX)
	be.PutUint16(b[2:], uint16(total))
	be.PutUint32(b[4:], uint32(now.Unix()))
	be.PutUint32(b[8:], e.records)
	be.PutUint32(b[12:], e.domain)
	b = b[ipfixHeaderLen:]
	if tmpl {
		b = b[putTemplateSet(b, 2, ipfixFields[:]):] // set 2: IPFIX template set
	}
	be.PutUint16(b[0:], TemplateID)
	be.PutUint16(b[2:], uint16(dataLen))
	b = b[setHeaderLen:]
	for i := range flows {
		f := &flows[i]
		r := b[i*ipfixRecordLen : (i+1)*ipfixRecordLen]
		putFlowKey(r, f)
		be.PutUint64(r[31:], nowMs-uint64(f.DurationMs))
		be.PutUint64(r[39:], nowMs)
		be.PutUint32(r[47:], uint32(f.InIf))
		be.PutUint32(r[51:], uint32(f.OutIf))
	}
	return dst
}

// putTemplateSet writes a template set (v9 flowset 0 or IPFIX set 2) of one
// template, TemplateID, with fields, and returns its length.
func putTemplateSet(b []byte, setID uint16, fields []field) int {
	be := binary.BigEndian
	n := setHeaderLen + 4 + 4*len(fields)
	be.PutUint16(b[0:], setID)
	be.PutUint16(b[2:], uint16(n))
	be.PutUint16(b[4:], TemplateID)
	be.PutUint16(b[6:], uint16(len(fields)))
	for i, f := range fields {
		be.PutUint16(b[8+4*i:], f.typ)
		be.PutUint16(b[10+4*i:], f.length)
	}
	return n
}

// putFlowKey writes the first 31 bytes of a v9 or IPFIX data record, which
// both templates lay out alike: addresses, ports, protocol, TCP flags, ToS
// (zero), bytes and packets.
func putFlowKey(r []byte, f *Flow) {
	be := binary.BigEndian
	copy(r[0:4], f.Src[:])
	copy(r[4:8], f.Dst[:])
	be.PutUint16(r[8:], f.SrcPort)
	be.PutUint16(r[10:], f.DstPort)
	r[12] = f.Proto
	r[13] = f.TCPFlags
	r[14] = 0
	be.PutUint64(r[15:], uint64(f.Bytes))
	be.PutUint64(r[23:], uint64(f.Packets))
}
