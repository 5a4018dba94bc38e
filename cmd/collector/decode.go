package main

import (
	"bufio"
	"cmp"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/flowcheck/flowcheck/collector"
	"github.com/flowcheck/flowcheck/flow"
	"github.com/flowcheck/flowcheck/pcapsrc"
	"github.com/prometheus/client_golang/prometheus"
)

// runDecode implements `collector decode --pcap FILE [--port N]`: it runs
// every UDP datagram of a capture through the collector's decode path and
// prints one JSON object per flow record on stdout, then a summary line on
// stderr. It returns the exit status: 0 done, 1 the capture could not be
// read, 2 bad usage.
func runDecode(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("decode", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("pcap", "", "capture `file` of export packets (pcap or pcapng)")
	port := fs.Uint("port", 0, "only decode UDP datagrams sent to this `port` (0: every UDP datagram)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: collector decode --pcap FILE [--port N]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *path == "" || fs.NArg() != 0 || *port > 65535 {
		fs.Usage()
		return 2
	}
	r, err := pcapsrc.Open(*path)
	if err != nil {
		fmt.Fprintf(stderr, "collector decode: %v\n", err)
		return 1
	}
	defer r.Close()
	r.SetPort(uint16(*port))

	out := bufio.NewWriterSize(stdout, 1<<16)
	enc := json.NewEncoder(out)
	var records, packets, bytes uint64
	var writeErr error
	c, err := collector.New(collector.DefaultConfiguration(), collector.Dependencies{
		Registerer: prometheus.NewRegistry(),
		Flows: func(batch []flow.Record) {
			for i := range batch {
				records++
				packets += batch[i].Packets + batch[i].ReversePackets
				bytes += batch[i].Bytes + batch[i].ReverseBytes
				if writeErr == nil {
					writeErr = enc.Encode(jsonRecordOf(&batch[i]))
				}
			}
		},
	})
	if err != nil {
		fmt.Fprintf(stderr, "collector decode: %v\n", err)
		return 1
	}
	var readErr error
	for {
		d, err := r.Next()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				readErr = err
			}
			break
		}
		c.HandleDatagram(d.Src, d.Payload, d.Time)
	}
	if err := out.Flush(); writeErr == nil {
		writeErr = err
	}
	var decodeErrors uint64
	exporters := c.Exporters()
	for _, e := range exporters {
		decodeErrors += e.Errors
	}
	st := r.Stats()
	fmt.Fprintf(stderr, "collector decode: %d frames, %d UDP datagrams, %d exporters, %d flow records, %d packets, %d bytes, %d decode errors\n",
		st.Frames, st.Datagrams, len(exporters), records, packets, bytes, decodeErrors)
	if records == 0 && readErr == nil {
		fmt.Fprintf(stderr, "collector decode: no flow record: %s\n", whyNothing(st, uint16(*port), exporters))
	}
	if readErr != nil {
		fmt.Fprintf(stderr, "collector decode: %s: %v (stopped there)\n", *path, readErr)
		return 1
	}
	if writeErr != nil {
		fmt.Fprintf(stderr, "collector decode: writing output: %v\n", writeErr)
		return 1
	}
	return 0
}

// whyNothing says why a capture yielded no flow record: no UDP, nothing
// on the port asked for, no export protocol in the UDP datagrams (a
// capture of raw traffic), or exports whose data could not be decoded.
func whyNothing(st pcapsrc.Stats, port uint16, exporters []collector.ExporterInfo) string {
	var exports, decodeErrors uint64
	pending := 0
	for _, e := range exporters {
		exports += e.Packets // datagrams of a known export protocol
		decodeErrors += e.Errors
		pending += e.PendingBytes
	}
	switch {
	case len(st.Ports) == 0:
		return fmt.Sprintf("no UDP datagram in the capture's %d frames (flow exports travel over UDP)", st.Frames)
	case port != 0 && st.Ports[port] == 0:
		return fmt.Sprintf("no UDP datagram to port %d; ports seen: %s", port, portsSeen(st.Ports))
	case exports == 0 && port != 0:
		return fmt.Sprintf("no NetFlow/IPFIX/sFlow on UDP port %d (is it a capture of raw traffic rather than of flow exports?); ports seen: %s",
			port, portsSeen(st.Ports))
	case exports == 0:
		return fmt.Sprintf("no NetFlow/IPFIX/sFlow in the capture's %d UDP datagrams (is it a capture of raw traffic rather than of flow exports?); ports seen: %s",
			st.Datagrams, portsSeen(st.Ports))
	}
	return fmt.Sprintf("%d export datagrams, %d decode errors, %d bytes of data sets left waiting for their templates: NetFlow v9/IPFIX data cannot be decoded without its templates, which a capture that starts after the exporter sent them lacks (exporters re-send them every few minutes)",
		exports, decodeErrors, pending)
}

// portsSeen lists the busiest destination ports with their datagram
// counts: "53 (120), 443 (80) and 4 more".
func portsSeen(ports map[uint16]uint64) string {
	const shown = 8
	list := slices.Collect(maps.Keys(ports))
	slices.SortFunc(list, func(a, b uint16) int {
		if c := cmp.Compare(ports[b], ports[a]); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	var s strings.Builder
	for i, p := range list[:min(len(list), shown)] {
		if i > 0 {
			s.WriteString(", ")
		}
		fmt.Fprintf(&s, "%d (%d)", p, ports[p])
	}
	if len(list) > shown {
		fmt.Fprintf(&s, " and %d more", len(list)-shown)
	}
	return s.String()
}

// jsonRecord is the output form of a flow record.
type jsonRecord struct {
	Exporter          netip.Addr `json:"exporter"`
	ObservationDomain uint32     `json:"observation_domain"`
	SrcAddr           netip.Addr `json:"src_addr"`
	DstAddr           netip.Addr `json:"dst_addr"`
	SrcPort           uint16     `json:"src_port"`
	DstPort           uint16     `json:"dst_port"`
	Proto             uint8      `json:"proto"`
	TCPFlags          uint8      `json:"tcp_flags"`
	ReverseTCPFlags   uint8      `json:"reverse_tcp_flags,omitempty"`
	ClientTCPFlags    uint8      `json:"client_tcp_flags,omitempty"`
	ServerTCPFlags    uint8      `json:"server_tcp_flags,omitempty"`
	Bytes             uint64     `json:"bytes"`
	Packets           uint64     `json:"packets"`
	ReverseBytes      uint64     `json:"reverse_bytes"`
	ReversePackets    uint64     `json:"reverse_packets"`
	Biflow            bool       `json:"biflow"`
	Start             time.Time  `json:"start"`
	End               time.Time  `json:"end"`
	SamplingRate      uint32     `json:"sampling_rate"`
	SrcMAC            string     `json:"src_mac"`
	DstMAC            string     `json:"dst_mac"`
	VLAN              uint16     `json:"vlan"`
	InIf              uint32     `json:"in_if"`
	OutIf             uint32     `json:"out_if"`
	App               uint32     `json:"app"`
	AppName           string     `json:"app_name,omitempty"`
}

func jsonRecordOf(r *flow.Record) jsonRecord {
	return jsonRecord{
		Exporter: r.Exporter, ObservationDomain: r.ObservationDomain,
		SrcAddr: r.SrcAddr, DstAddr: r.DstAddr, SrcPort: r.SrcPort, DstPort: r.DstPort,
		Proto: r.Proto, TCPFlags: r.TCPFlags, ReverseTCPFlags: r.ReverseTCPFlags,
		ClientTCPFlags: r.ClientTCPFlags, ServerTCPFlags: r.ServerTCPFlags,
		Bytes: r.Bytes, Packets: r.Packets, ReverseBytes: r.ReverseBytes, ReversePackets: r.ReversePackets,
		Biflow: r.Biflow, Start: r.Start, End: r.End, SamplingRate: r.SamplingRate,
		SrcMAC: net.HardwareAddr(r.SrcMAC[:]).String(), DstMAC: net.HardwareAddr(r.DstMAC[:]).String(),
		VLAN: r.VLAN, InIf: r.InIf, OutIf: r.OutIf, App: r.AppID, AppName: r.AppName,
	}
}
