package cluster

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/netsampler/goflow2/v2/decoders/netflow"
	"github.com/netsampler/goflow2/v2/format"
	_ "github.com/netsampler/goflow2/v2/format/binary" // goflow2's -format bin
	flowpb "github.com/netsampler/goflow2/v2/pb"
	"github.com/netsampler/goflow2/v2/producer"
	protoproducer "github.com/netsampler/goflow2/v2/producer/proto"
	"github.com/netsampler/goflow2/v2/utils/templates"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowcheck/flowcheck/aggregate"
	"github.com/flowcheck/flowcheck/clock"
	"github.com/flowcheck/flowcheck/internal/capturetest"
	"github.com/flowcheck/flowcheck/pcapsrc"
)

// goflow2Value is one Kafka message value goflow2 would publish, and the
// capture time of the datagram it came from.
type goflow2Value struct {
	at    time.Time
	value []byte
}

// goflow2Values runs a capture of NetFlow v9 or IPFIX exports through
// goflow2 as its CLI does (the steps of utils.NetFlowPipe.DecodeFlow, whose
// package brings dependencies of its UDP receiver: per-exporter templates,
// the default protobuf producer, -format bin) and returns the values its
// Kafka transport would publish.
func goflow2Values(t testing.TB, path string) []goflow2Value {
	t.Helper()
	cfg, err := (*protoproducer.ProducerConfig)(nil).Compile()
	if err != nil {
		t.Fatal(err)
	}
	prod, err := protoproducer.CreateProtoProducer(cfg, protoproducer.CreateSamplingSystem)
	if err != nil {
		t.Fatal(err)
	}
	bin, err := format.FindFormat("bin")
	if err != nil {
		t.Fatal(err)
	}
	tmpls := map[string]netflow.NetFlowTemplateSystem{}
	var out []goflow2Value
	src, err := pcapsrc.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	for {
		dg, err := src.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		ts, ok := tmpls[dg.Src.String()]
		if !ok {
			ts = templates.DefaultTemplateGenerator(dg.Src.String())
			tmpls[dg.Src.String()] = ts
		}
		buf := bytes.NewBuffer(slices.Clone(dg.Payload))
		args := &producer.ProduceArgs{Src: dg.Src, Dst: dg.Dst, TimeReceived: dg.Time, SamplerAddress: dg.Src.Addr()}
		var msgs []producer.ProducerMessage
		switch binary.BigEndian.Uint16(buf.Next(2)) {
		case 9:
			p := netflow.NFv9Packet{Version: 9}
			if err := netflow.DecodeMessageNetFlow(buf, ts, &p); err != nil {
				t.Logf("goflow2: %v", err)
				continue
			}
			msgs, err = prod.Produce(&p, args)
		case 10:
			p := netflow.IPFIXPacket{Version: 10}
			if err := netflow.DecodeMessageIPFIX(buf, ts, &p); err != nil {
				t.Logf("goflow2: %v", err)
				continue
			}
			msgs, err = prod.Produce(&p, args)
		default:
			t.Fatalf("%s: not NetFlow v9 or IPFIX", path)
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			_, data, err := bin.Format(m)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, goflow2Value{dg.Time, data})
		}
		prod.Commit(msgs)
	}
}

// TestGoflow2Figures: softflowd's v9 and IPFIX exports, decoded by goflow2
// and read back from its binary format, give every host of the host table
// the traffic and the one-sided and refused figures that the collector's
// own decoding gives (role all).
func TestGoflow2Figures(t *testing.T) {
	for _, file := range []string{"softflowd-v9.pcap", "softflowd-ipfix.pcap", "softflowd-filtered-v9.pcap"} {
		t.Run(file, func(t *testing.T) {
			path := "../testdata/" + file
			start := capturetest.Start(t, path)
			cfg := aggregate.DefaultConfiguration()
			newTable := func() (*aggregate.HostTable, *clock.Manual) {
				clk := clock.NewManual(start)
				tbl, err := aggregate.New(cfg, aggregate.Dependencies{Registerer: prometheus.NewRegistry(), Clock: clk})
				if err != nil {
					t.Fatal(err)
				}
				return tbl, clk
			}
			want, wclk := newTable()
			records := capturetest.Feed(t, path, wclk, want.Apply, want.Advance)
			end := wclk.Now().Add(cfg.ReplyWindow + time.Second)
			want.Advance(end)

			got, gclk := newTable()
			var dec goflow2Decoder
			decoded := 0
			for _, v := range goflow2Values(t, path) {
				recs, err := dec.decode(v.value, nil)
				if err != nil {
					t.Fatal(err)
				}
				decoded += len(recs)
				gclk.Set(v.at)
				got.Apply(recs)
				got.Advance(v.at)
			}
			got.Advance(end)
			if decoded != records {
				t.Errorf("goflow2 gave %d records, the collector %d", decoded, records)
			}
			keys := want.AppendKeys(nil)
			if n := len(got.AppendKeys(nil)); n != len(keys) {
				t.Errorf("%d hosts from goflow2's records, %d from the collector's", n, len(keys))
			}
			oneSided := 0
			for _, k := range keys {
				var w, g aggregate.HostSnapshot
				want.Snapshot(k, &w)
				if !got.Snapshot(k, &g) {
					t.Errorf("%v: missing", k)
					continue
				}
				oneSided += int(w.Unidirectional.Egress() + w.RefusedFlows.Egress())
				if g.BytesSent != w.BytesSent || g.BytesRcvd != w.BytesRcvd || g.PacketsSent != w.PacketsSent || g.PacketsRcvd != w.PacketsRcvd ||
					g.NoReply != w.NoReply || g.Refused != w.Refused || g.Unidirectional != w.Unidirectional || g.RefusedFlows != w.RefusedFlows {
					t.Errorf("%v:\n goflow2 %+v\ncollector %+v", k, g, w)
				}
			}
			if oneSided == 0 {
				t.Fatal("no one-sided or refused conversation: the test proves nothing")
			}
		})
	}
}

// TestGoflow2Framing: goflow2's values are length-delimited FlowMessages;
// several in one value are read whole; a cut or corrupt value is an error
// (ErrCorrupt) and gives no record.
func TestGoflow2Framing(t *testing.T) {
	a := msgWith(t, func(*flowpb.FlowMessage) {})
	b := msgWith(t, func(m *flowpb.FlowMessage) {
		m.SrcAddr, m.SamplingRate = netip.MustParseAddr("2001:db8::1").AsSlice(), 10
	})
	var dec goflow2Decoder
	recs, err := dec.decode(slices.Concat(a, b), nil)
	if err != nil || len(recs) != 2 {
		t.Fatalf("two messages: %d records, %v", len(recs), err)
	}
	r := recs[0]
	if r.SrcAddr != netip.MustParseAddr("10.0.0.1") || r.DstPort != 443 || r.Proto != 6 || r.TCPFlags != 2 || r.VLAN != 7 ||
		r.SrcMAC != [6]byte{0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f} || r.Exporter != netip.MustParseAddr("10.0.0.254") || r.ObservationDomain != 3 ||
		!r.Start.Equal(time.Unix(1_700_000_000, 0)) || !r.End.Equal(time.Unix(1_700_000_001, 0)) || r.Sides != 0 {
		t.Errorf("record %+v", r)
	}
	if s := recs[1]; s.SamplingRate != 10 || s.Bytes != 600 || s.Packets != 10 || !s.SrcAddr.Is6() {
		t.Errorf("sampled record %+v: counts not scaled by the rate", s)
	}
	for name, v := range map[string][]byte{
		"cut":     slices.Concat(a, b[:len(b)-3]),
		"corrupt": slices.Concat(a, []byte{3, 0xff, 0xff, 0xff}),
		"varint":  slices.Concat(a, []byte{0xff}),
		"address": slices.Concat(a, msgWith(t, func(m *flowpb.FlowMessage) { m.SrcAddr = []byte{1, 2, 3} })),
	} {
		recs, err := dec.decode(v, nil)
		if !errors.Is(err, ErrCorrupt) || len(recs) != 0 {
			t.Errorf("%s: %d records, %v; want none and ErrCorrupt", name, len(recs), err)
		}
	}
}

// msgWith returns a goflow2 value (its own MarshalBinary: the length and
// the message) of a TCP SYN from 10.0.0.1 that edit changes.
func msgWith(t *testing.T, edit func(m *flowpb.FlowMessage)) []byte {
	m := &protoproducer.ProtoProducerMessage{FlowMessage: flowpb.FlowMessage{
		SrcAddr: netip.MustParseAddr("10.0.0.1").AsSlice(), DstAddr: netip.MustParseAddr("192.0.2.1").AsSlice(),
		SrcPort: 40000, DstPort: 443, Proto: 6, TcpFlags: 2, Bytes: 60, Packets: 1,
		SrcMac: 0x0a0b0c0d0e0f, VlanId: 7, TimeFlowStartNs: 1_700_000_000_000_000_000, TimeFlowEndNs: 1_700_000_001_000_000_000,
		SamplerAddress: netip.MustParseAddr("10.0.0.254").AsSlice(), ObservationDomainId: 3,
	}}
	edit(&m.FlowMessage)
	b, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func FuzzGoflow2Decode(f *testing.F) {
	for i, v := range goflow2Values(f, "../testdata/softflowd-v9.pcap") {
		if i%500 == 0 {
			f.Add(v.value)
		}
	}
	f.Add([]byte{})
	f.Add([]byte{0x80})
	var dec goflow2Decoder
	f.Fuzz(func(t *testing.T, b []byte) {
		recs, _ := dec.decode(b, nil)
		// Each message takes at least its length byte.
		if len(recs) > len(b) {
			t.Fatalf("%d records from %d bytes", len(recs), len(b))
		}
	})
}
