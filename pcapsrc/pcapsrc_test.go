package pcapsrc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

func TestCaptures(t *testing.T) {
	cases := []struct {
		file      string
		port      uint16
		datagrams uint64
	}{
		{"softflowd-v5", 0, 162},
		{"softflowd-v9", 2055, 155},
		{"pmacctd-ipfix", 0, 634},
		{"softflowd-ipfix-bidir", 0, 93},
		{"softflowd-v9", 9995, 0},
	}
	for _, tc := range cases {
		r, err := Open("../testdata/" + tc.file + ".pcap")
		if err != nil {
			t.Fatal(err)
		}
		r.SetPort(tc.port)
		for {
			d, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if d.Dst.Port() != 2055 || len(d.Payload) == 0 || d.Time.IsZero() || !d.Src.Addr().IsLoopback() {
				t.Fatalf("%s: bad datagram %v -> %v (%d bytes)", tc.file, d.Src, d.Dst, len(d.Payload))
			}
		}
		st := r.Stats()
		if st.Datagrams != tc.datagrams {
			t.Errorf("%s port %d: %d datagrams, want %d (%+v)", tc.file, tc.port, st.Datagrams, tc.datagrams, st)
		}
		// Every datagram of these captures goes to port 2055, filtered
		// out or not.
		if len(st.Ports) != 1 || st.Ports[2055] == 0 || (tc.port == 2055 && st.Ports[2055] != tc.datagrams) {
			t.Errorf("%s port %d: ports seen %v", tc.file, tc.port, st.Ports)
		}
		_ = r.Close()
	}
}

// udp4 builds an IPv4/UDP packet.
func udp4(payload []byte) []byte {
	ipb := []byte{0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2}
	binary.BigEndian.PutUint16(ipb[2:], uint16(20+8+len(payload)))
	u := binary.BigEndian.AppendUint16(nil, 1234)
	u = binary.BigEndian.AppendUint16(u, 2055)
	u = binary.BigEndian.AppendUint16(u, uint16(8+len(payload)))
	u = append(u, 0, 0)
	return append(append(ipb, u...), payload...)
}

// udp6 builds an IPv6/UDP packet with a destination options header.
func udp6(payload []byte) []byte {
	h := make([]byte, 40)
	h[0] = 0x60
	h[6] = 60 // destination options
	h[8], h[9], h[23] = 0x20, 0x01, 1
	h[24], h[25], h[39] = 0x20, 0x01, 2
	opts := []byte{17, 0, 1, 4, 0, 0, 0, 0}
	u := binary.BigEndian.AppendUint16(nil, 1234)
	u = binary.BigEndian.AppendUint16(u, 2055)
	u = binary.BigEndian.AppendUint16(u, uint16(8+len(payload)))
	u = append(append(u, 0, 0), payload...)
	binary.BigEndian.PutUint16(h[4:], uint16(len(opts)+len(u)))
	return append(append(h, opts...), u...)
}

func TestLinkTypes(t *testing.T) {
	payload := []byte("export")
	eth := func(et uint16, p []byte) []byte {
		return append(append(make([]byte, 12), byte(et>>8), byte(et)), p...)
	}
	sll := func(et uint16, p []byte) []byte {
		h := make([]byte, 16)
		binary.BigEndian.PutUint16(h[14:], et)
		return append(h, p...)
	}
	sll2 := func(et uint16, p []byte) []byte {
		h := make([]byte, 20)
		binary.BigEndian.PutUint16(h[0:], et)
		return append(h, p...)
	}
	null := func(fam uint32, p []byte) []byte {
		return append(binary.LittleEndian.AppendUint32(nil, fam), p...)
	}
	cases := []struct {
		name  string
		lt    layers.LinkType
		frame []byte
		want  string
	}{
		{"ethernet v4", layers.LinkTypeEthernet, eth(0x0800, udp4(payload)), "192.0.2.1:1234"},
		{"ethernet vlan v6", layers.LinkTypeEthernet, eth(0x8100, append([]byte{0, 5, 0x86, 0xdd}, udp6(payload)...)), "[2001::1]:1234"},
		{"sll v4", layers.LinkTypeLinuxSLL, sll(0x0800, udp4(payload)), "192.0.2.1:1234"},
		{"sll2 v6", linkTypeSLL2, sll2(0x86dd, udp6(payload)), "[2001::1]:1234"},
		{"raw v4", layers.LinkTypeRaw, udp4(payload), "192.0.2.1:1234"},
		{"raw v6", linkTypeIPv6, udp6(payload), "[2001::1]:1234"},
		{"null v4", layers.LinkTypeNull, null(2, udp4(payload)), "192.0.2.1:1234"},
		{"loop v6", layers.LinkTypeLoop, append([]byte{0, 0, 0, 24}, udp6(payload)...), "[2001::1]:1234"},
		{"fragment", layers.LinkTypeRaw, func() []byte { p := udp4(payload); p[6] = 0x20; return p }(), ""},
		{"truncated", layers.LinkTypeRaw, udp4(payload)[:30], ""},
		{"tcp", layers.LinkTypeRaw, func() []byte { p := udp4(payload); p[9] = 6; return p }(), ""},
	}
	for _, tc := range cases {
		d, ok := ParseFrame(tc.lt, tc.frame)
		if tc.want == "" {
			if ok {
				t.Errorf("%s: parsed %+v", tc.name, d)
			}
			continue
		}
		if !ok || d.Src.String() != tc.want || string(d.Payload) != "export" || d.Dst.Port() != 2055 {
			t.Errorf("%s: %v %+v", tc.name, ok, d)
		}
	}
}

func TestPcapng(t *testing.T) {
	var buf bytes.Buffer
	w, err := pcapgo.NewNgWriter(&buf, layers.LinkTypeRaw)
	if err != nil {
		t.Fatal(err)
	}
	frame := udp4([]byte("ng"))
	ts := time.Date(2026, 11, 27, 1, 2, 3, 0, time.UTC)
	for range 3 {
		if err := w.WritePacket(ciOf(ts, frame), frame); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	r, err := NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		d, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if string(d.Payload) != "ng" || !d.Time.Equal(ts) {
			t.Fatalf("%+v", d)
		}
		n++
	}
	if n != 3 {
		t.Errorf("%d datagrams", n)
	}
	if _, err := NewReader(bytes.NewReader([]byte("nope, not a capture"))); err == nil {
		t.Error("garbage accepted")
	}
}

func FuzzReader(f *testing.F) {
	for _, name := range []string{"softflowd-v9", "pmacctd-v5"} {
		b, err := os.ReadFile("../testdata/" + name + ".pcap")
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b[:min(len(b), 4096)])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := NewReader(bytes.NewReader(b))
		if err != nil {
			return
		}
		for range 1000 {
			if _, err := r.Next(); err != nil {
				return
			}
		}
	})
}

func FuzzParseFrame(f *testing.F) {
	f.Add(uint8(layers.LinkTypeRaw), udp4([]byte("x")))
	f.Add(uint8(layers.LinkTypeRaw), udp6([]byte("x")))
	f.Add(uint8(layers.LinkTypeEthernet), append(make([]byte, 12), append([]byte{0x81, 0, 0, 5, 0x08, 0}, udp4(nil)...)...))
	f.Add(uint8(linkTypeSLL2), append([]byte{0x86, 0xdd}, make([]byte, 18)...))
	f.Fuzz(func(t *testing.T, lt uint8, frame []byte) {
		if d, ok := ParseFrame(layers.LinkType(lt), frame); ok && len(d.Payload) > len(frame) {
			t.Fatal("payload longer than the frame")
		}
	})
}

func ciOf(ts time.Time, frame []byte) gopacket.CaptureInfo {
	return gopacket.CaptureInfo{Timestamp: ts, CaptureLength: len(frame), Length: len(frame), InterfaceIndex: 0}
}
