package cluster

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/flowcheck/flowcheck/cluster/flowpb"
	"github.com/flowcheck/flowcheck/flow"
)

// fullRecord sets every field of flow.Record to a value other than zero.
func fullRecord() flow.Record {
	start := time.Date(2026, 12, 3, 9, 30, 0, 123456789, time.UTC)
	return flow.Record{
		Exporter: netip.MustParseAddr("192.0.2.254"), ObservationDomain: 7,
		SrcAddr: netip.MustParseAddr("2001:db8::1"), DstAddr: netip.MustParseAddr("198.51.100.7"),
		SrcPort: 51234, DstPort: 443, Proto: flow.ProtoTCP, TCPFlags: 0x1b,
		ClientTCPFlags: 0x02, ServerTCPFlags: 0x12, ReverseTCPFlags: 0x1a,
		Bytes: 1 << 40, Packets: 123456, ReverseBytes: 999, ReversePackets: 3, Biflow: true,
		Start: start, End: start.Add(1500 * time.Millisecond),
		SrcMAC: [6]byte{0xde, 0xad, 0xbe, 0xef, 0, 1}, DstMAC: [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xfe},
		VLAN: 4095, InIf: 1 << 31, OutIf: 3, SamplingRate: 1000, AppID: 91, AppName: "TLS.Google",
		Sides: flow.SideDst,
	}
}

// randomRecord fills a record from rng, leaving fields at zero at random.
func randomRecord(rng *rand.Rand) flow.Record {
	r := fullRecord()
	v := reflect.ValueOf(&r).Elem()
	for i := range v.NumField() {
		if rng.IntN(3) == 0 {
			v.Field(i).SetZero()
		}
	}
	if rng.IntN(2) == 0 {
		r.SrcAddr = netip.AddrFrom4([4]byte{10, byte(rng.IntN(256)), byte(rng.IntN(256)), 1})
	}
	r.Bytes = rng.Uint64()
	r.Sides = flow.Side(rng.IntN(4))
	return r
}

// toPB is the generated code's view of a record, written from the schema's
// comments, independently of the codec.
func toPB(r flow.Record) *flowpb.Flow {
	addr := func(a netip.Addr) []byte {
		if !a.IsValid() {
			return nil
		}
		if a.Is4() {
			b := a.As4()
			return b[:]
		}
		b := a.As16()
		return b[:]
	}
	ns := func(t time.Time) int64 {
		if t.IsZero() {
			return 0
		}
		return t.UnixNano()
	}
	mac := func(m [6]byte) uint64 {
		var v uint64
		for _, b := range m {
			v = v<<8 | uint64(b)
		}
		return v
	}
	return &flowpb.Flow{
		SrcAddr: addr(r.SrcAddr), DstAddr: addr(r.DstAddr), SrcPort: uint32(r.SrcPort), DstPort: uint32(r.DstPort),
		Proto: uint32(r.Proto), TcpFlags: uint32(r.TCPFlags), Bytes: r.Bytes, Packets: r.Packets,
		StartNs: ns(r.Start), EndNs: ns(r.End), Sides: uint32(r.Sides), Exporter: addr(r.Exporter),
		ObservationDomain: r.ObservationDomain, SamplingRate: r.SamplingRate, Biflow: r.Biflow,
		ReverseBytes: r.ReverseBytes, ReversePackets: r.ReversePackets, ReverseTcpFlags: uint32(r.ReverseTCPFlags),
		ClientTcpFlags: uint32(r.ClientTCPFlags), ServerTcpFlags: uint32(r.ServerTCPFlags),
		SrcMac: mac(r.SrcMAC), DstMac: mac(r.DstMAC), Vlan: uint32(r.VLAN), InIf: r.InIf, OutIf: r.OutIf,
		AppId: r.AppID, AppName: r.AppName,
	}
}

func testRecords(n int) []flow.Record {
	rng := rand.New(rand.NewPCG(1, 2))
	recs := []flow.Record{fullRecord(), {}}
	for len(recs) < n {
		recs = append(recs, randomRecord(rng))
	}
	return recs
}

// TestCodecMatchesSchema holds the hand-written codec to the generated
// code both ways: what Batch writes, proto.Unmarshal reads as the same
// flows; what proto.Marshal writes, Decoder reads as the same records.
func TestCodecMatchesSchema(t *testing.T) {
	recs := testRecords(200)
	var b Batch
	want := &flowpb.FlowBatch{Version: Version}
	for i := range recs {
		b.Add(&recs[i], recs[i].Sides)
		want.Flows = append(want.Flows, toPB(recs[i]))
	}
	loss := Loss{At: time.Date(2026, 12, 3, 10, 0, 0, 5, time.UTC), Lost: 3, Received: 997}
	b.AddLoss(loss)
	b.AddLoss(Loss{})
	want.Losses = []*flowpb.Loss{{AtNs: loss.At.UnixNano(), Lost: 3, Received: 997}, {}}
	if b.Len() != len(recs) || b.Size() != len(b.Bytes()) {
		t.Fatalf("Len %d Size %d, want %d records and %d bytes", b.Len(), b.Size(), len(recs), len(b.Bytes()))
	}
	var got flowpb.FlowBatch
	if err := proto.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(&got, want) {
		for i := range want.Flows {
			if !proto.Equal(got.Flows[i], want.Flows[i]) {
				t.Fatalf("flow %d:\n got %v\nwant %v", i, got.Flows[i], want.Flows[i])
			}
		}
		t.Fatalf("batch differs: version %d", got.Version)
	}

	value, err := proto.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	var d Decoder
	decoded, err := d.Decode(value)
	if err != nil {
		t.Fatal(err)
	}
	if l := d.Losses(); len(l) != 2 || l[0] != loss || l[1].Lost != 0 || !l[1].At.IsZero() {
		t.Errorf("losses %+v, want %+v and an empty one", l, loss)
	}
	if !reflect.DeepEqual(decoded, recs) {
		for i := range recs {
			if !reflect.DeepEqual(decoded[i], recs[i]) {
				t.Fatalf("record %d:\n got %+v\nwant %+v", i, decoded[i], recs[i])
			}
		}
	}
}

// TestDecodeErrors: what the decoder refuses, and what it skips.
func TestDecodeErrors(t *testing.T) {
	one := fullRecord()
	var good Batch
	good.Add(&one, flow.SideSrc)
	valid := good.Bytes()
	version := func(v uint64) []byte {
		b := protowire.AppendTag(nil, fieldVersion, protowire.VarintType)
		return protowire.AppendVarint(b, v)
	}
	flowOf := func(body []byte) []byte {
		b := version(Version)
		b = protowire.AppendTag(b, fieldFlows, protowire.BytesType)
		return protowire.AppendBytes(b, body)
	}
	field := func(num protowire.Number, v uint64) []byte {
		return protowire.AppendVarint(protowire.AppendTag(nil, num, protowire.VarintType), v)
	}
	for _, tc := range []struct {
		name  string
		value []byte
		want  error // nil: decodes
		n     int
	}{
		{"valid", valid, nil, 1},
		{"empty batch of version 1", version(Version), nil, 0},
		{"empty value", nil, ErrVersion, 0},
		{"version 2", append(version(2), valid[2:]...), ErrVersion, 0},
		{"no version", valid[2:], ErrVersion, 0},
		{"truncated", valid[:len(valid)-3], ErrCorrupt, 0},
		{"garbage", []byte("{\"json\": true}"), ErrCorrupt, 0},
		{"unknown batch field", append(field(9, 1), valid...), nil, 1},
		{"unknown flow field", flowOf(field(99, 5)), nil, 1},
		{"port out of range", flowOf(field(fieldSrcPort, 70000)), ErrCorrupt, 0},
		{"proto out of range", flowOf(field(fieldProto, 256)), ErrCorrupt, 0},
		{"sides out of range", flowOf(field(fieldSides, 4)), ErrCorrupt, 0},
		{"MAC out of range", flowOf(field(fieldSrcMAC, 1<<48)), ErrCorrupt, 0},
		{"address of 5 bytes", flowOf(protowire.AppendBytes(protowire.AppendTag(nil, fieldSrcAddr, protowire.BytesType), []byte{1, 2, 3, 4, 5})), ErrCorrupt, 0},
		{"app_name not UTF-8", flowOf(protowire.AppendBytes(protowire.AppendTag(nil, fieldAppName, protowire.BytesType), []byte{0xff, 'x'})), ErrCorrupt, 0},
		{"loss count beyond an int", append(version(Version), protowire.AppendBytes(protowire.AppendTag(nil, fieldLosses, protowire.BytesType), field(fieldLossLost, 1<<40))...), ErrCorrupt, 0},
		{"wrong wire type", flowOf(protowire.AppendFixed32(protowire.AppendTag(nil, fieldBytes, protowire.Fixed32Type), 1)), ErrCorrupt, 0},
	} {
		var d Decoder
		recs, err := d.Decode(tc.value)
		if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("%s: error %v, want %v", tc.name, err, tc.want)
		}
		if len(recs) != tc.n {
			t.Errorf("%s: %d records, want %d", tc.name, len(recs), tc.n)
		}
	}
}

// TestAppNameMended: an application name that is not UTF-8 is published
// mended, so that the batch stays readable by the schema's generated code.
func TestAppNameMended(t *testing.T) {
	r := fullRecord()
	r.AppName = "TLS.\xffGoogle"
	var b Batch
	b.Add(&r, 0)
	var pb flowpb.FlowBatch
	if err := proto.Unmarshal(b.Bytes(), &pb); err != nil {
		t.Fatal(err)
	}
	if got := pb.Flows[0].AppName; got != "TLS.\uFFFDGoogle" {
		t.Errorf("app_name %q", got)
	}
}

// TestCodecAllocs: encoding and decoding a batch allocate nothing per
// record once the buffers have grown.
func TestCodecAllocs(t *testing.T) {
	recs := testRecords(500)
	var b Batch
	var d Decoder
	run := func() {
		b.Reset()
		for i := range recs {
			b.Add(&recs[i], recs[i].Sides)
		}
		if _, err := d.Decode(b.Bytes()); err != nil {
			t.Fatal(err)
		}
	}
	run()
	if n := testing.AllocsPerRun(10, run); n > 0 {
		t.Errorf("%.1f allocations per batch of %d records", n, len(recs))
	}
}

// FuzzDecode: the decoder survives any bytes, and what it accepts encodes
// back to records it reads the same.
func FuzzDecode(f *testing.F) {
	var b Batch
	for _, r := range testRecords(4) {
		b.Add(&r, r.Sides)
	}
	b.AddLoss(Loss{At: time.Unix(1764756000, 0), Lost: 1, Received: 2})
	f.Add(b.Bytes())
	f.Add([]byte{})
	f.Add([]byte{0x08, 0x01})
	f.Add([]byte{0x08, 0x02, 0x12, 0x00})
	f.Fuzz(func(t *testing.T, value []byte) {
		var d Decoder
		recs, err := d.Decode(value)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrVersion) {
				t.Fatalf("error wraps neither ErrCorrupt nor ErrVersion: %v", err)
			}
			return
		}
		// What the decoder accepts, the generated code reads the same.
		var pb flowpb.FlowBatch
		if err := proto.Unmarshal(value, &pb); err != nil {
			t.Fatalf("accepted a value proto.Unmarshal refuses: %v", err)
		}
		if len(pb.Flows) != len(recs) {
			t.Fatalf("%d records, proto.Unmarshal reads %d flows", len(recs), len(pb.Flows))
		}
		for i := range recs {
			// Fields unknown to the schema are skipped by the decoder
			// and kept by the generated code.
			pb.Flows[i].ProtoReflect().SetUnknown(nil)
			if !proto.Equal(pb.Flows[i], toPB(recs[i])) {
				t.Fatalf("record %d: %+v, proto.Unmarshal reads %v", i, recs[i], pb.Flows[i])
			}
		}
		if len(pb.Losses) != len(d.Losses()) {
			t.Fatalf("%d losses, proto.Unmarshal reads %d", len(d.Losses()), len(pb.Losses))
		}
		for i, l := range d.Losses() {
			pl := pb.Losses[i]
			if uint64(l.Lost) != pl.Lost || uint64(l.Received) != pl.Received || (!l.At.IsZero() || pl.AtNs != 0) && l.At.UnixNano() != pl.AtNs {
				t.Fatalf("loss %d: %+v, proto.Unmarshal reads %v", i, l, pl)
			}
		}
		var again Batch
		for i := range recs {
			again.Add(&recs[i], recs[i].Sides)
		}
		var d2 Decoder
		back, err := d2.Decode(again.Bytes())
		if err != nil {
			t.Fatalf("re-encoded batch refused: %v", err)
		}
		if len(back) != len(recs) || (len(recs) > 0 && !reflect.DeepEqual(back, recs)) {
			t.Fatalf("round trip differs:\n got %+v\nwant %+v", back, recs)
		}
	})
}

func BenchmarkEncode(b *testing.B) {
	recs := testRecords(1000)
	var batch Batch
	b.ReportAllocs()
	for b.Loop() {
		batch.Reset()
		for i := range recs {
			batch.Add(&recs[i], recs[i].Sides)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(recs)), "ns/record")
	b.ReportMetric(float64(batch.Size())/float64(len(recs)), "bytes/record")
}

func BenchmarkDecode(b *testing.B) {
	recs := testRecords(1000)
	var batch Batch
	for i := range recs {
		batch.Add(&recs[i], recs[i].Sides)
	}
	var d Decoder
	b.ReportAllocs()
	for b.Loop() {
		if _, err := d.Decode(batch.Bytes()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(recs)), "ns/record")
}
