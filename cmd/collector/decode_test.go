package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestRunDecode(t *testing.T) {
	cases := []struct {
		name    string
		args    []string
		status  int
		records int
		packets uint64
		bytes   uint64
	}{
		{"v9", []string{"--pcap", "../../testdata/softflowd-v9.pcap"}, 0, 4856, 5623, 2302590},
		{"ipfix port", []string{"--pcap", "../../testdata/pmacctd-ipfix.pcap", "--port", "2055"}, 0, 4856, 5623, 2302590},
		{"other port", []string{"--pcap", "../../testdata/pmacctd-ipfix.pcap", "--port", "9995"}, 0, 0, 0, 0},
		{"bidir", []string{"--pcap=../../testdata/softflowd-filtered-ipfix-bidir.pcap"}, 0, 758, 876, 80904},
		{"no pcap", nil, 2, 0, 0, 0},
		{"extra arg", []string{"--pcap", "x", "y"}, 2, 0, 0, 0},
		{"bad port", []string{"--pcap", "x", "--port", "70000"}, 2, 0, 0, 0},
		{"unknown flag", []string{"--bogus"}, 2, 0, 0, 0},
		{"missing file", []string{"--pcap", "../../testdata/nope.pcap"}, 1, 0, 0, 0},
		{"not a capture", []string{"--pcap", "decode.go"}, 1, 0, 0, 0},
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
			if s := stderr.String(); strings.Count(s, "\n") != 1 || !strings.Contains(s, "flow records") {
				t.Errorf("summary line: %q", s)
			}
		})
	}
}
