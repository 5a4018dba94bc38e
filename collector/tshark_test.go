package collector

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flowcheck/flowcheck/flow"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// tsharkPackets are hand-built NetFlow v9 and IPFIX datagrams, templates
// and data, in the order an exporter would send them. Counters are
// unsampled: tshark shows them raw.
func tsharkPackets() [][]byte {
	v6Flow := []ie{{27, 0, 16}, {28, 0, 16}, {7, 0, 2}, {11, 0, 2}, {4, 0, 1}, {1, 0, 4}, {2, 0, 4}}
	return [][]byte{
		v9Msg(1, 10000, 1000,
			templateSet(9, 300, v4Flow...),
			dataSet(300, v4FlowRecord("10.0.0.1", "10.0.0.2", 1000, 80, 1500, 3),
				v4FlowRecord("10.0.0.2", "10.0.0.1", 80, 1000, 64000, 50)),
		),
		// Data only: the template of the previous datagram applies.
		v9Msg(1, 11000, 1001,
			dataSet(300, v4FlowRecord("172.16.1.1", "192.168.7.9", 53, 33000, 4294967296+7, 1)),
		),
		ipfixMsg(2, 1000,
			templateSet(10, 256, v4Flow...),
			dataSet(256, v4FlowRecord("10.1.0.1", "10.1.0.2", 443, 50000, 123456, 99)),
		),
		ipfixMsg(2, 1001,
			templateSet(10, 257, v6Flow...),
			dataSet(257, cat(ip("2001:db8::1"), ip("2001:db8::2"), be16(546), be16(547), []byte{17}, be32(4000), be32(4))),
		),
		// A variable-length field (applicationName) between fixed ones.
		ipfixMsg(2, 1002,
			templateSet(10, 258, ie{8, 0, 4}, ie{12, 0, 4}, ie{96, 0, 0xffff}, ie{7, 0, 2}, ie{11, 0, 2}, ie{1, 0, 8}, ie{2, 0, 8}),
			dataSet(258,
				cat(ip("10.2.0.1"), ip("10.2.0.2"), varLen([]byte("dns")), be16(5353), be16(53), be64(77), be64(1)),
				cat(ip("10.2.0.3"), ip("10.2.0.4"), varLen([]byte("https-long-name")), be16(40000), be16(443), be64(9000), be64(12)),
			),
		),
	}
}

// writeExportPcap writes datagrams as Ethernet/IPv4/UDP packets from
// exporter to 127.0.0.1:2055, with valid lengths and checksums.
func writeExportPcap(t *testing.T, path string, exporter netip.AddrPort, dgs [][]byte) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := pcapgo.NewWriter(f)
	if err := w.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	for i, dg := range dgs {
		eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2},
			EthernetType: layers.EthernetTypeIPv4}
		ip4 := &layers.IPv4{Version: 4, TTL: 64, Id: uint16(i + 1), Protocol: layers.IPProtocolUDP,
			SrcIP: exporter.Addr().AsSlice(), DstIP: net.IPv4(127, 0, 0, 1).To4()}
		udp := &layers.UDP{SrcPort: layers.UDPPort(exporter.Port()), DstPort: 2055}
		if err := udp.SetNetworkLayerForChecksum(ip4); err != nil {
			t.Fatal(err)
		}
		buf := gopacket.NewSerializeBuffer()
		opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
		if err := gopacket.SerializeLayers(buf, opts, eth, ip4, udp, gopacket.Payload(dg)); err != nil {
			t.Fatal(err)
		}
		ci := gopacket.CaptureInfo{Timestamp: t0.Add(time.Duration(i) * time.Millisecond), CaptureLength: len(buf.Bytes()), Length: len(buf.Bytes())}
		if err := w.WritePacket(ci, buf.Bytes()); err != nil {
			t.Fatal(err)
		}
	}
}

// TestTsharkCrossCheck checks the test encoder (and the decode) against
// Wireshark's independent NetFlow/IPFIX dissector: tshark must read the
// same addresses, ports, octets and packets from the hand-built datagrams
// as the collector decodes. It is a cross-check of the hand-built packets,
// not of the product, so it is skipped when tshark is missing, even under
// CI (which does not install Wireshark); every other test of the encoded
// packets runs without it.
func TestTsharkCrossCheck(t *testing.T) {
	tshark, err := exec.LookPath("tshark")
	if err != nil {
		t.Skip("tshark not installed: cross-check of the hand-built packets skipped")
	}
	exporter := netip.MustParseAddrPort("127.0.0.1:40000")
	dgs := tsharkPackets()
	path := filepath.Join(t.TempDir(), "handbuilt.pcap")
	writeExportPcap(t, path, exporter, dgs)

	// Our decode, through the differential harness.
	h := newHarness(t, nil)
	var ours []string
	for i, dg := range dgs {
		recs := h.send(exporter, t0.Add(time.Duration(i)*time.Millisecond), dg)
		if len(recs) == 0 {
			t.Fatalf("datagram %d: no records", i)
		}
		ours = append(ours, tsharkRows(recs)...)
	}

	cmd := exec.Command(tshark, "-r", path, "-d", "udp.port==2055,cflow", "-T", "fields",
		"-E", "separator=/t", "-E", "occurrence=a", "-E", "aggregator=,",
		"-e", "cflow.srcaddr", "-e", "cflow.srcaddrv6", "-e", "cflow.dstaddr", "-e", "cflow.dstaddrv6",
		"-e", "cflow.srcport", "-e", "cflow.dstport", "-e", "cflow.octets", "-e", "cflow.packets")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, stderr.String())
	}
	var theirs []string
	for line := range strings.Lines(string(out)) {
		f := strings.Split(strings.TrimRight(line, "\n"), "\t")
		if len(f) != 8 {
			t.Fatalf("tshark line %q", line)
		}
		col := func(v4, v6 int) []string {
			if f[v4] != "" {
				return strings.Split(f[v4], ",")
			}
			return strings.Split(f[v6], ",")
		}
		src, dst := col(0, 1), col(2, 3)
		sport, dport := strings.Split(f[4], ","), strings.Split(f[5], ",")
		octets, pkts := strings.Split(f[6], ","), strings.Split(f[7], ",")
		for i := range src {
			if i >= len(dst) || i >= len(sport) || i >= len(dport) || i >= len(octets) || i >= len(pkts) {
				t.Fatalf("tshark line with uneven fields %q", line)
			}
			theirs = append(theirs, strings.Join([]string{src[i], dst[i], sport[i], dport[i], octets[i], pkts[i]}, " "))
		}
	}
	t.Logf("tshark read %d records: %q", len(theirs), theirs)
	if !slices.Equal(ours, theirs) {
		t.Errorf("tshark disagrees:\n ours   %q\n tshark %q", ours, theirs)
	}
}

// tsharkRows renders records as the fields tshark is asked for.
func tsharkRows(recs []flow.Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, fmt.Sprintf("%s %s %d %d %d %d", r.SrcAddr, r.DstAddr, r.SrcPort, r.DstPort, r.Bytes, r.Packets))
	}
	return out
}
