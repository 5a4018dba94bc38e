package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowcheck/flowcheck/pcapsrc"
	"github.com/google/gopacket/pcapgo"
)

// withoutTemplates writes a copy of a NetFlow v9 capture without the
// datagrams that carry templates, as a capture started after the exporter
// sent them would be, and returns its path.
func withoutTemplates(t *testing.T, path string) string {
	t.Helper()
	in, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	r, err := pcapgo.NewReader(in)
	if err != nil {
		t.Fatal(err)
	}
	outPath := filepath.Join(t.TempDir(), "no-templates.pcap")
	out, err := os.Create(outPath)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	w := pcapgo.NewWriter(out)
	if err := w.WriteFileHeader(r.Snaplen(), r.LinkType()); err != nil {
		t.Fatal(err)
	}
	kept := 0
	for {
		frame, ci, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		d, ok := pcapsrc.ParseFrame(r.LinkType(), frame)
		if !ok || hasV9Template(d.Payload) {
			continue
		}
		if err := w.WritePacket(ci, frame); err != nil {
			t.Fatal(err)
		}
		kept++
	}
	if kept == 0 {
		t.Fatal("no datagram without templates")
	}
	return outPath
}

// hasV9Template tells whether a NetFlow v9 datagram carries a template or
// options template flowset.
func hasV9Template(b []byte) bool {
	for b = b[min(len(b), 20):]; len(b) >= 4; {
		id, n := binary.BigEndian.Uint16(b), int(binary.BigEndian.Uint16(b[2:]))
		if id <= 1 {
			return true
		}
		if n < 4 || n > len(b) {
			return false
		}
		b = b[n:]
	}
	return false
}

func TestRunDecode(t *testing.T) {
	cases := []struct {
		name    string
		args    []string
		status  int
		records int
		packets uint64
		bytes   uint64
		why     string // in the summary when nothing was decoded
	}{
		{"v9", []string{"--pcap", "../../testdata/softflowd-v9.pcap"}, 0, 4856, 5623, 2302590, ""},
		{"ipfix port", []string{"--pcap", "../../testdata/pmacctd-ipfix.pcap", "--port", "2055"}, 0, 4856, 5623, 2302590, ""},
		{"other port", []string{"--pcap", "../../testdata/pmacctd-ipfix.pcap", "--port", "9995"}, 0, 0, 0, 0,
			"no flow record: no UDP datagram to port 9995; ports seen: 2055 (634)"},
		{"raw traffic", []string{"--pcap", "../../testdata/scan-mix.pcap"}, 0, 0, 0, 0,
			"no flow record: no NetFlow/IPFIX/sFlow in the capture's 48 UDP datagrams (is it a capture of raw traffic rather than of flow exports?); ports seen: "},
		{"raw traffic on a port", []string{"--pcap", "../../testdata/scan-mix.pcap", "--port", "53"}, 0, 0, 0, 0,
			"no flow record: no NetFlow/IPFIX/sFlow on UDP port 53"},
		{"exports without their templates", []string{"--pcap", withoutTemplates(t, "../../testdata/softflowd-v9.pcap")}, 0, 0, 0, 0,
			"145 export datagrams, 0 decode errors, 194448 bytes of data sets left waiting for their templates: NetFlow v9/IPFIX data cannot be decoded without its templates"},
		{"bidir", []string{"--pcap=../../testdata/softflowd-filtered-ipfix-bidir.pcap"}, 0, 758, 876, 80904, ""},
		{"no pcap", nil, 2, 0, 0, 0, ""},
		{"extra arg", []string{"--pcap", "x", "y"}, 2, 0, 0, 0, ""},
		{"bad port", []string{"--pcap", "x", "--port", "70000"}, 2, 0, 0, 0, ""},
		{"unknown flag", []string{"--bogus"}, 2, 0, 0, 0, ""},
		{"missing file", []string{"--pcap", "../../testdata/nope.pcap"}, 1, 0, 0, 0, ""},
		{"not a capture", []string{"--pcap", "decode.go"}, 1, 0, 0, 0, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if got := runDecode(tc.args, &stdout, &stderr); got != tc.status {
				t.Fatalf("status %d, want %d; stderr: %s", got, tc.status, stderr.String())
			}
			if tc.status != 0 {
				if stderr.Len() == 0 {
					t.Error("no message on stderr")
				}
				return
			}
			var n int
			var pkts, byts uint64
			sc := bufio.NewScanner(&stdout)
			for sc.Scan() {
				var rec map[string]any
				if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
					t.Fatalf("line %d: %v", n+1, err)
				}
				for _, k := range []string{"exporter", "src_addr", "dst_addr", "src_port", "dst_port", "proto", "tcp_flags",
					"bytes", "packets", "reverse_bytes", "reverse_packets", "start", "end", "sampling_rate",
					"src_mac", "dst_mac", "vlan", "in_if", "out_if", "app"} {
					if _, ok := rec[k]; !ok {
						t.Fatalf("line %d lacks %q: %s", n+1, k, sc.Text())
					}
				}
				n++
				pkts += uint64(rec["packets"].(float64) + rec["reverse_packets"].(float64))
				byts += uint64(rec["bytes"].(float64) + rec["reverse_bytes"].(float64))
			}
			if n != tc.records || pkts != tc.packets || byts != tc.bytes {
				t.Errorf("%d records, %d packets, %d bytes; want %d, %d, %d", n, pkts, byts, tc.records, tc.packets, tc.bytes)
			}
			lines := 1
			if tc.records == 0 {
				lines = 2 // and why nothing was decoded
			}
			if s := stderr.String(); strings.Count(s, "\n") != lines || !strings.Contains(s, "flow records") || !strings.Contains(s, tc.why) {
				t.Errorf("summary: %q, want %d lines, with %q", s, lines, tc.why)
			}
		})
	}
}
