package collector

import (
	"encoding/binary"
	"net/netip"
	"time"

	"github.com/flowcheck/flowcheck/flow"
)

// v5 sizes (Cisco's NetFlow v5 format).
const (
	v5HeaderLen = 24
	v5RecordLen = 48
)

// decodeV5 decodes a NetFlow v5 datagram. The format is fixed, so records
// are read at their offsets, straight into flow.Records: goflow2's
// netflowlegacy decoder, which this replaces on the hot path, reads every
// field through an interface and cost four fifths of the v5 decode time.
// The differential tests hold the two side by side.
func (d *decoder) decodeV5(e *exporterState, b []byte) {
	if len(b) < v5HeaderLen {
		d.c.decodeError(e, "truncated")
		return
	}
	count := int(binary.BigEndian.Uint16(b[2:]))
	if count == 0 || v5HeaderLen+count*v5RecordLen > len(b) {
		d.c.decodeError(e, "bad_length", "count", count, "size", len(b))
		return
	}
	sysUptime := binary.BigEndian.Uint32(b[4:])
	export := time.Unix(int64(binary.BigEndian.Uint32(b[8:])), int64(binary.BigEndian.Uint32(b[12:]))).UTC()
	// Top two bits: sampling mode; the rest: the interval (0: not told).
	headerRate := uint32(binary.BigEndian.Uint16(b[22:]) & 0x3fff)
	rate := e.rate(0, headerRate, 0)
	for i := range count {
		rec := b[v5HeaderLen+i*v5RecordLen:][:v5RecordLen]
		r := flow.Record{
			Exporter: e.addr,
			SrcAddr:  netip.AddrFrom4([4]byte(rec[0:4])),
			DstAddr:  netip.AddrFrom4([4]byte(rec[4:8])),
			InIf:     uint32(binary.BigEndian.Uint16(rec[12:])),
			OutIf:    uint32(binary.BigEndian.Uint16(rec[14:])),
			Packets:  uint64(binary.BigEndian.Uint32(rec[16:])),
			Bytes:    uint64(binary.BigEndian.Uint32(rec[20:])),
			SrcPort:  binary.BigEndian.Uint16(rec[32:]),
			DstPort:  binary.BigEndian.Uint16(rec[34:]),
			TCPFlags: rec[37],
			Proto:    rec[38],
			// uint32 arithmetic handles the uptime counter's wrap.
			Start: export.Add(-time.Duration(sysUptime-binary.BigEndian.Uint32(rec[24:])) * time.Millisecond),
			End:   export.Add(-time.Duration(sysUptime-binary.BigEndian.Uint32(rec[28:])) * time.Millisecond),
		}
		d.emit(e, &r, rate)
	}
}
