package cluster

import (
	"errors"
	"fmt"
	"time"

	flowpb "github.com/netsampler/goflow2/v2/pb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/flowcheck/flowcheck/flow"
)

// goflow2Decoder reads the values of goflow2 v2's Kafka output with
// -format bin: each a FlowMessage (github.com/netsampler/goflow2/v2/pb)
// preceded by its length as a varint (protodelim, goflow2's
// ProtoProducerMessage.MarshalBinary), one per Kafka message; a value
// holding several in a row is read whole. It reuses one FlowMessage: not
// safe for concurrent use.
type goflow2Decoder struct {
	msg flowpb.FlowMessage
}

// errGoflow2Length is a length prefix that overruns the value.
var errGoflow2Length = fmt.Errorf("%w: goflow2 length prefix overruns the message", ErrCorrupt)

// decode appends the records of value to dst. An error wraps ErrCorrupt,
// and then dst is returned as it was: a value is applied whole or not at
// all, as a FlowBatch.
func (d *goflow2Decoder) decode(value []byte, dst []flow.Record) ([]flow.Record, error) {
	n0 := len(dst)
	for len(value) > 0 {
		n, l := protowire.ConsumeVarint(value)
		if l < 0 {
			return dst[:n0], corrupt("goflow2 length prefix", l)
		}
		value = value[l:]
		if n > uint64(len(value)) {
			return dst[:n0], errGoflow2Length
		}
		d.msg.Reset()
		if err := proto.Unmarshal(value[:n], &d.msg); err != nil {
			return dst[:n0], fmt.Errorf("%w: goflow2: %v", ErrCorrupt, err)
		}
		value = value[n:]
		r, err := goflow2Record(&d.msg)
		if err != nil {
			return dst[:n0], err
		}
		dst = append(dst, r)
	}
	return dst, nil
}

// goflow2Record converts one goflow2 flow into a record. goflow2 reports
// the sampled counts and the rate; a record carries counts scaled by it.
// goflow2 has no biflow, reverse counters or L7 fields: its flows are
// unidirectional, and the copy names both hosts (Sides zero).
func goflow2Record(m *flowpb.FlowMessage) (flow.Record, error) {
	exp, err1 := addrOf(m.SamplerAddress)
	src, err2 := addrOf(m.SrcAddr)
	dst, err3 := addrOf(m.DstAddr)
	if err := errors.Join(err1, err2, err3); err != nil {
		return flow.Record{}, err
	}
	r := flow.Record{
		Exporter:          exp,
		ObservationDomain: m.ObservationDomainId,
		SrcAddr:           src,
		DstAddr:           dst,
		SrcPort:           uint16(m.SrcPort),
		DstPort:           uint16(m.DstPort),
		Proto:             uint8(m.Proto),
		TCPFlags:          uint8(m.TcpFlags),
		Bytes:             m.Bytes,
		Packets:           m.Packets,
		SrcMAC:            uintToMAC(m.SrcMac),
		DstMAC:            uintToMAC(m.DstMac),
		VLAN:              uint16(m.VlanId),
		InIf:              m.InIf,
		OutIf:             m.OutIf,
	}
	if r.VLAN == 0 {
		r.VLAN = uint16(m.SrcVlan)
	}
	if m.SamplingRate > 0 {
		r.SamplingRate = uint32(min(m.SamplingRate, 1<<32-1))
		if m.SamplingRate > 1 {
			r.Bytes *= m.SamplingRate
			r.Packets *= m.SamplingRate
		}
	}
	if m.TimeFlowStartNs != 0 {
		r.Start = time.Unix(0, int64(m.TimeFlowStartNs)).UTC()
	}
	if m.TimeFlowEndNs != 0 {
		r.End = time.Unix(0, int64(m.TimeFlowEndNs)).UTC()
	}
	return r, nil
}
