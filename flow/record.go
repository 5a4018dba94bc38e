// Package flow holds the one flow record type that ingest produces and the
// host table consumes. It is a leaf package so that producers and consumers
// meet on a type, not on each other.
package flow

import (
	"net/netip"
	"time"
)

// Record is one flow as an exporter reported it, already scaled by the
// sampling rate. It is a value type copied out of the packet buffer: nothing in
// it aliases the datagram it was decoded from.
//
// For a biflow (RFC 5103) record, Src is the exporter's forward side (which is
// not necessarily the initiator: softflowd puts the lower address first) and
// the Reverse* fields count what went from Dst to Src.
type Record struct {
	// Exporter is the address the export datagram came from.
	Exporter netip.Addr
	// ObservationDomain is the v9 source ID or IPFIX observation domain ID.
	ObservationDomain uint32

	SrcAddr, DstAddr netip.Addr
	SrcPort, DstPort uint16
	// Proto is the IP protocol number (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6).
	Proto uint8
	// TCPFlags is the cumulative OR of the TCP flags from Src to Dst.
	TCPFlags uint8
	// ClientTCPFlags and ServerTCPFlags are nProbe's per-role flags
	// (35632.78 / 35632.79) when the exporter sends them, else zero.
	ClientTCPFlags, ServerTCPFlags uint8
	// ReverseTCPFlags is the cumulative OR of the TCP flags from Dst to Src
	// in a biflow record.
	ReverseTCPFlags uint8

	// Bytes and Packets went from Src to Dst, scaled by SamplingRate.
	Bytes, Packets uint64
	// ReverseBytes and ReversePackets went from Dst to Src (biflow only),
	// scaled by SamplingRate.
	ReverseBytes, ReversePackets uint64
	// Biflow is true when the record carries reverse counters (RFC 5103
	// reverse IEs or IEs 23/24/231/232), so that zero reverse packets means
	// "no reply" rather than "unknown".
	Biflow bool

	// Start and End are the first and last packet times, in UTC.
	Start, End time.Time

	SrcMAC, DstMAC [6]byte
	VLAN           uint16
	InIf, OutIf    uint32

	// SamplingRate is the 1-in-N rate applied to Bytes and Packets; 0 means
	// the rate is unknown (counters are then left unscaled).
	SamplingRate uint32

	// AppID is the exporter's application id: IE 95 applicationId, or nProbe
	// L7_PROTO (an nDPI protocol id). Zero when absent.
	AppID uint32
	// AppName is nProbe's L7_PROTO_NAME when present (e.g. "TLS.Google").
	AppName string

	// Sides says which of the record's two hosts this copy accounts for,
	// when a cluster's ingest published it once per host's partition.
	// Zero means both: a record decoded in this process.
	Sides Side
}

// Side names the host(s) of a record that a copy accounts for.
type Side uint8

// The sides of a record; SideSrc|SideDst is a copy for both hosts.
const (
	SideSrc Side = 1 << iota
	SideDst
)

// HasSrc tells whether the copy accounts for the source host (zero: both).
func (s Side) HasSrc() bool { return s == 0 || s&SideSrc != 0 }

// HasDst tells whether the copy accounts for the destination host (zero:
// both).
func (s Side) HasDst() bool { return s == 0 || s&SideDst != 0 }

// Proto numbers used across the project.
const (
	ProtoICMP   = 1
	ProtoTCP    = 6
	ProtoUDP    = 17
	ProtoICMPv6 = 58
)

// TCP flag bits as they appear in NetFlow/IPFIX tcpControlBits.
const (
	TCPFin = 0x01
	TCPSyn = 0x02
	TCPRst = 0x04
	TCPPsh = 0x08
	TCPAck = 0x10
	TCPUrg = 0x20
)

// Handler receives batches of records. The batch slice is reused once the
// call returns, so a handler that keeps records must copy them.
type Handler func(batch []Record)
