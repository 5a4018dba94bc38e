package aggregate

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
	"github.com/netsampler/goflow2/v2/decoders/netflow"
	"github.com/netsampler/goflow2/v2/decoders/netflowlegacy"

	"github.com/flowcheck/flowcheck/flow"
)

// exportDatagram is one captured export datagram decoded to records.
type exportDatagram struct {
	ts      time.Time
	records []flow.Record
}

// decodeExportPcap reads a capture of NetFlow v5/v9/IPFIX export datagrams
// (Ethernet/IPv4/UDP) and decodes them with goflow2's decoders. It is a
// test-only stand-in for the ingest package.
func decodeExportPcap(t testing.TB, path string) []exportDatagram {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatalf("pcap %s: %v", path, err)
	}
	if r.LinkType() != layers.LinkTypeEthernet {
		t.Fatalf("%s: link type %v, want Ethernet", path, r.LinkType())
	}
	templates := netflow.CreateTemplateSystem()
	var out []exportDatagram
	for {
		data, ci, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		payload, exporter, ok := udpPayload(data)
		if !ok {
			continue
		}
		recs, err := decodeExport(payload, exporter, templates)
		if err != nil {
			t.Fatalf("%s: decode: %v", path, err)
		}
		out = append(out, exportDatagram{ts: ci.Timestamp.UTC(), records: recs})
	}
	return out
}

// udpPayload extracts the UDP payload of an Ethernet/IPv4 frame.
func udpPayload(b []byte) ([]byte, netip.Addr, bool) {
	if len(b) < 14+20+8 || binary.BigEndian.Uint16(b[12:14]) != 0x0800 {
		return nil, netip.Addr{}, false
	}
	ip := b[14:]
	ihl := int(ip[0]&0x0f) * 4
	if ip[9] != 17 || len(ip) < ihl+8 {
		return nil, netip.Addr{}, false
	}
	src := netip.AddrFrom4([4]byte(ip[12:16]))
	total := int(binary.BigEndian.Uint16(ip[2:4]))
	if total > len(ip) {
		total = len(ip)
	}
	return ip[ihl+8 : total], src, true
}

func decodeExport(payload []byte, exporter netip.Addr, templates netflow.NetFlowTemplateSystem) ([]flow.Record, error) {
	if len(payload) < 2 {
		return nil, errors.New("short datagram")
	}
	switch binary.BigEndian.Uint16(payload) {
	case 5:
		var p netflowlegacy.PacketNetFlowV5
		if err := netflowlegacy.DecodeMessageVersion(bytes.NewBuffer(payload), &p); err != nil {
			return nil, err
		}
		recs := make([]flow.Record, 0, len(p.Records))
		for _, v := range p.Records {
			recs = append(recs, flow.Record{
				Exporter: exporter,
				SrcAddr:  v4(uint32(v.SrcAddr)), DstAddr: v4(uint32(v.DstAddr)),
				SrcPort: v.SrcPort, DstPort: v.DstPort, Proto: v.Proto, TCPFlags: v.TCPFlags,
				Bytes: uint64(v.DOctets), Packets: uint64(v.DPkts),
			})
		}
		return recs, nil
	case 9, 10:
		var p9 netflow.NFv9Packet
		var p10 netflow.IPFIXPacket
		if err := netflow.DecodeMessageVersion(bytes.NewBuffer(payload), templates, &p9, &p10); err != nil {
			return nil, err
		}
		sets := p9.FlowSets
		if p10.Version == 10 {
			sets = p10.FlowSets
		}
		var recs []flow.Record
		for _, s := range sets {
			ds, ok := s.(netflow.DataFlowSet)
			if !ok {
				continue
			}
			for _, dr := range ds.Records {
				recs = append(recs, mapFields(exporter, dr.Values))
			}
		}
		return recs, nil
	}
	return nil, errors.New("unknown version")
}

func v4(x uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(x >> 24), byte(x >> 16), byte(x >> 8), byte(x)})
}

func beUint(b []byte) uint64 {
	var x uint64
	for _, c := range b {
		x = x<<8 | uint64(c)
	}
	return x
}

// mapFields maps the information elements the host table reads.
func mapFields(exporter netip.Addr, vals []netflow.DataField) flow.Record {
	r := flow.Record{Exporter: exporter}
	for _, f := range vals {
		b, _ := f.Value.([]byte)
		if f.PenProvided {
			if f.Pen == 29305 { // RFC 5103 reverse information elements
				switch f.Type {
				case 1:
					r.ReverseBytes, r.Biflow = beUint(b), true
				case 2:
					r.ReversePackets, r.Biflow = beUint(b), true
				case 6:
					r.ReverseTCPFlags = uint8(beUint(b))
				}
			}
			continue
		}
		switch f.Type {
		case 1:
			r.Bytes = beUint(b)
		case 2:
			r.Packets = beUint(b)
		case 23:
			r.ReverseBytes, r.Biflow = beUint(b), true
		case 24:
			r.ReversePackets, r.Biflow = beUint(b), true
		case 4:
			r.Proto = uint8(beUint(b))
		case 6:
			r.TCPFlags = uint8(beUint(b))
		case 7:
			r.SrcPort = uint16(beUint(b))
		case 11:
			r.DstPort = uint16(beUint(b))
		case 8, 27:
			if a, ok := netip.AddrFromSlice(b); ok {
				r.SrcAddr = a.Unmap()
			}
		case 12, 28:
			if a, ok := netip.AddrFromSlice(b); ok {
				r.DstAddr = a.Unmap()
			}
		case 56, 81:
			if len(b) == 6 {
				r.SrcMAC = [6]byte(b)
			}
		case 80, 57:
			if len(b) == 6 {
				r.DstMAC = [6]byte(b)
			}
		case 58:
			r.VLAN = uint16(beUint(b))
		}
	}
	return r
}
