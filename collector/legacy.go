package collector

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"time"

	"github.com/flowcheck/flowcheck/flow"
	"github.com/netsampler/goflow2/v2/decoders/netflowlegacy"
)

// v5 sizes (Cisco's NetFlow v5 format).
const (
	v5HeaderLen = 24
	v5RecordLen = 48
)

// decodeV5 decodes a NetFlow v5 datagram with goflow2's netflowlegacy.
// The record count is checked against the datagram length first: goflow2
// allocates a record slice of whatever size the header claims.
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
	d.buf = *bytes.NewBuffer(b)
	pkt := &d.v5
	if err := netflowlegacy.DecodeMessageVersion(&d.buf, pkt); err != nil {
		d.c.decodeError(e, "malformed", "err", err)
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
		d.emit(e, &r, rate)
	}
}

func v4(a uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(a >> 24), byte(a >> 16), byte(a >> 8), byte(a)})
}
