package gen

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/netsampler/goflow2/v2/decoders/netflow"
	"github.com/netsampler/goflow2/v2/decoders/netflowlegacy"
)

// decoded is one record as goflow2's decoders read it back, with the
// timestamps it carried.
type decoded struct {
	Flow
	// first and last are sysUpTime ms (v5, v9) or Unix ms (IPFIX).
	first, last uint64
}

// header is what the test checks of a datagram header.
type header struct {
	version int
	domain  uint32
	seq     uint32
	uptime  uint32 // v5, v9
	unix    uint32
	tmpl    bool // a template set was present (v9, IPFIX)
}

// decode reads one datagram with goflow2's decoders, using ts for templates.
func decode(t *testing.T, ts netflow.NetFlowTemplateSystem, b []byte) (header, []decoded) {
	t.Helper()
	version := binary.BigEndian.Uint16(b)
	if version == V5 {
		var p netflowlegacy.PacketNetFlowV5
		if err := netflowlegacy.DecodeMessageVersion(bytes.NewBuffer(b), &p); err != nil {
			t.Fatalf("v5 decode: %v", err)
		}
		h := header{version: V5, domain: uint32(p.EngineId), seq: p.FlowSequence, uptime: p.SysUptime, unix: p.UnixSecs}
		var out []decoded
		for _, r := range p.Records {
			var d decoded
			binary.BigEndian.PutUint32(d.Src[:], uint32(r.SrcAddr))
			binary.BigEndian.PutUint32(d.Dst[:], uint32(r.DstAddr))
			d.SrcPort, d.DstPort, d.Proto, d.TCPFlags = r.SrcPort, r.DstPort, r.Proto, r.TCPFlags
			d.InIf, d.OutIf, d.Bytes, d.Packets = r.Input, r.Output, r.DOctets, r.DPkts
			d.first, d.last = uint64(r.First), uint64(r.Last)
			d.DurationMs = r.Last - r.First
			out = append(out, d)
		}
		return h, out
	}
	var p9 netflow.NFv9Packet
	var pfix netflow.IPFIXPacket
	if err := netflow.DecodeMessageVersion(bytes.NewBuffer(b), ts, &p9, &pfix); err != nil {
		t.Fatalf("v9/IPFIX decode: %v", err)
	}
	var h header
	var sets []any
	if version == V9 {
		h = header{version: V9, domain: p9.SourceId, seq: p9.SequenceNumber, uptime: p9.SystemUptime, unix: p9.UnixSeconds}
		sets = p9.FlowSets
	} else {
		h = header{version: IPFIX, domain: pfix.ObservationDomainId, seq: pfix.SequenceNumber, unix: pfix.ExportTime}
		sets = pfix.FlowSets
		if int(pfix.Length) != len(b) {
			t.Fatalf("IPFIX length %d, datagram %d", pfix.Length, len(b))
		}
	}
	var out []decoded
	for _, s := range sets {
		switch s := s.(type) {
		case netflow.TemplateFlowSet:
			h.tmpl = true
		case netflow.DataFlowSet:
			for _, r := range s.Records {
				out = append(out, fromFields(t, r.Values))
			}
		default:
			t.Fatalf("unexpected flow set %T", s)
		}
	}
	return h, out
}

// fromFields maps the information elements of both templates to a Flow.
func fromFields(t *testing.T, values []netflow.DataField) decoded {
	t.Helper()
	var d decoded
	for _, v := range values {
		b := v.Value.([]byte)
		var u uint64
		for _, c := range b {
			u = u<<8 | uint64(c)
		}
		switch v.Type {
		case 8:
			copy(d.Src[:], b)
		case 12:
			copy(d.Dst[:], b)
		case 7:
			d.SrcPort = uint16(u)
		case 11:
			d.DstPort = uint16(u)
		case 4:
			d.Proto = uint8(u)
		case 6:
			d.TCPFlags = uint8(u)
		case 5:
			if u != 0 {
				t.Errorf("tos %d", u)
			}
		case 1:
			d.Bytes = uint32(u)
		case 2:
			d.Packets = uint32(u)
		case 22, 152:
			d.first = u
		case 21, 153:
			d.last = u
		case 10:
			d.InIf = uint16(u)
		case 14:
			d.OutIf = uint16(u)
		default:
			t.Fatalf("unexpected field %d", v.Type)
		}
	}
	d.DurationMs = uint32(d.last - d.first)
	return d
}

func TestEncodeDecodesWithGoflow2(t *testing.T) {
	pop, err := NewPopulation(DefaultPopulationConfiguration())
	if err != nil {
		t.Fatal(err)
	}
	boot := time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		version, perPacket, refresh int
	}{
		{V5, 30, 1},
		{V5, 1, 1},
		{V9, 25, 20},
		{V9, 1, 3},
		{V9, MaxRecordsPerPacket(V9), 5},
		{IPFIX, 25, 20},
		{IPFIX, 2, 4},
		{IPFIX, MaxRecordsPerPacket(IPFIX), 5},
	} {
		t.Run(fmt.Sprintf("v%d/%d/%d", tc.version, tc.perPacket, tc.refresh), func(t *testing.T) {
			enc, err := NewEncoder(tc.version, 7, tc.refresh, boot)
			if err != nil {
				t.Fatal(err)
			}
			ts := netflow.CreateTemplateSystem()
			batch := make([]Flow, tc.perPacket)
			pos, sent := 0, uint32(0)
			for pkt := range 50 {
				want := pos
				pos = pop.Fill(batch, pos)
				now := boot.Add(time.Hour + time.Duration(pkt)*time.Millisecond*37)
				b := enc.Append(nil, batch, now)
				if len(b) > maxDatagram {
					t.Fatalf("datagram of %d bytes", len(b))
				}
				h, recs := decode(t, ts, b)
				if h.version != tc.version || h.domain != 7 || h.unix != uint32(now.Unix()) {
					t.Fatalf("packet %d: header %+v", pkt, h)
				}
				switch tc.version {
				case V5:
					if h.seq != sent {
						t.Fatalf("v5 flow sequence %d, want %d", h.seq, sent)
					}
				case V9:
					if h.seq != uint32(pkt) {
						t.Fatalf("v9 sequence %d, want %d", h.seq, pkt)
					}
				case IPFIX:
					if h.seq != sent {
						t.Fatalf("IPFIX sequence %d, want %d", h.seq, sent)
					}
				}
				if tc.version != V5 && h.tmpl != (pkt%tc.refresh == 0) {
					t.Fatalf("packet %d: template present %v with refresh %d", pkt, h.tmpl, tc.refresh)
				}
				if len(recs) != len(batch) {
					t.Fatalf("packet %d: decoded %d records, sent %d", pkt, len(recs), len(batch))
				}
				for i, r := range recs {
					exp := pop.Flows()[(want+i)%pop.Len()]
					if r.Flow != exp {
						t.Fatalf("packet %d record %d:\n got %+v\nwant %+v", pkt, i, r.Flow, exp)
					}
					wantLast := uint64(now.Sub(boot).Milliseconds())
					if tc.version == IPFIX {
						wantLast = uint64(now.UnixMilli())
					}
					if r.last != wantLast {
						t.Fatalf("record end %d, want %d", r.last, wantLast)
					}
				}
				sent += uint32(len(batch))
			}
		})
	}
}

func TestNewEncoderRejects(t *testing.T) {
	for _, tc := range []struct{ version, refresh int }{{8, 1}, {0, 1}, {9, 0}} {
		if _, err := NewEncoder(tc.version, 0, tc.refresh, time.Now()); err == nil {
			t.Errorf("NewEncoder(%d, refresh %d) accepted", tc.version, tc.refresh)
		}
	}
}

func TestEncodeDeterministic(t *testing.T) {
	build := func(seed uint64) []byte {
		c := DefaultPopulationConfiguration()
		c.Seed = seed
		pop, err := NewPopulation(c)
		if err != nil {
			t.Fatal(err)
		}
		boot := time.Unix(1_700_000_000, 0)
		enc, err := NewEncoder(V9, 1, 20, boot)
		if err != nil {
			t.Fatal(err)
		}
		var out []byte
		batch := make([]Flow, 25)
		pos := 0
		for i := range 100 {
			pos = pop.Fill(batch, pos)
			out = enc.Append(out, batch, boot.Add(time.Duration(i)*time.Second))
		}
		return out
	}
	a, b, c := build(42), build(42), build(43)
	if !bytes.Equal(a, b) {
		t.Error("same seed gave different datagrams")
	}
	if bytes.Equal(a, c) {
		t.Error("different seeds gave the same datagrams")
	}
}

func TestEncodeAllocatesNothing(t *testing.T) {
	pop, err := NewPopulation(DefaultPopulationConfiguration())
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []int{V5, V9, IPFIX} {
		enc, err := NewEncoder(v, 1, 20, time.Now().Add(-time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 0, maxDatagram)
		batch := make([]Flow, min(25, MaxRecordsPerPacket(v)))
		pos := 0
		now := time.Now()
		allocs := testing.AllocsPerRun(1000, func() {
			pos = pop.Fill(batch, pos)
			buf = enc.Append(buf[:0], batch, now)
		})
		if allocs != 0 {
			t.Errorf("version %d: %.1f allocations per datagram", v, allocs)
		}
	}
}

func BenchmarkEncode(b *testing.B) {
	pop, err := NewPopulation(DefaultPopulationConfiguration())
	if err != nil {
		b.Fatal(err)
	}
	for _, v := range []int{V5, V9, IPFIX} {
		b.Run(fmt.Sprintf("v%d", v), func(b *testing.B) {
			enc, err := NewEncoder(v, 1, 20, time.Now().Add(-time.Hour))
			if err != nil {
				b.Fatal(err)
			}
			buf := make([]byte, 0, maxDatagram)
			batch := make([]Flow, 25)
			pos := 0
			now := time.Now()
			b.ReportAllocs()
			for b.Loop() {
				pos = pop.Fill(batch, pos)
				buf = enc.Append(buf[:0], batch, now)
			}
			b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "records/s")
		})
	}
}
