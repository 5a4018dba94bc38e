package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
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
