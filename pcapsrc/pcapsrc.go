// Package pcapsrc reads the UDP datagrams out of a pcap or pcapng capture,
// so that captured flow exports can be run through the collector's decode
// path (collector decode, collector replay, golden tests and fuzzing).
//
// It understands the link types an operator's capture of export traffic
// realistically has: Ethernet (with 802.1Q/802.1ad tags), Linux cooked v1
// and v2, raw IP and BSD loopback. IPv4 and IPv6 are both handled; fragments
// other than complete datagrams are skipped and counted.
package pcapsrc

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"os"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// Datagram is one UDP datagram found in the capture.
type Datagram struct {
	// Time is the capture timestamp.
	Time time.Time
	// Src and Dst are the UDP endpoints.
	Src, Dst netip.AddrPort
	// Payload is the UDP payload. It aliases the reader's buffer and is only
	// valid until the next call to Next.
	Payload []byte
}

// Stats counts what the reader saw.
type Stats struct {
	// Frames is the number of frames read from the capture.
	Frames uint64
	// Datagrams is the number of UDP datagrams returned by Next.
	Datagrams uint64
	// Skipped counts frames that were not a complete UDP datagram (other
	// protocols, fragments, truncated frames, other destination ports).
	Skipped uint64
	// Ports counts the complete UDP datagrams by destination port, those
	// of ports SetPort filtered out included: it tells where a capture's
	// UDP traffic went when none of it was what was looked for.
	Ports map[uint16]uint64
}

// packetSource is what pcapgo's two readers have in common.
type packetSource interface {
	ReadPacketData() ([]byte, gopacket.CaptureInfo, error)
}

// Reader yields the UDP datagrams of a capture, in capture order.
type Reader struct {
	src      packetSource
	linkType layers.LinkType
	closer   io.Closer
	port     uint16
	stats    Stats
}

// Link types without a gopacket constant we rely on.
const (
	// linkTypeSLL2 is LINKTYPE_LINUX_SLL2 (276) as gopacket v1.1.19 sees
	// it: its LinkType is a uint8, so pcapgo truncates 276 to 20, a value
	// no other link type uses.
	linkTypeSLL2  layers.LinkType = 276 & 0xff
	linkTypeIPv4  layers.LinkType = 228
	linkTypeIPv6  layers.LinkType = 229
	linkTypeRaw12 layers.LinkType = 12 // DLT_RAW on OpenBSD-style systems
	linkTypeRaw14 layers.LinkType = 14 // DLT_RAW on other BSDs
)

// pcapng's section header block type, which is also its file magic.
const pcapngMagic = 0x0A0D0D0A

// Open opens a pcap or pcapng file. The format is detected from its magic.
func Open(path string) (*Reader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	r, err := NewReader(f)
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	r.closer = f
	return r, nil
}

// NewReader reads a pcap or pcapng stream. The format is detected from its
// magic.
func NewReader(in io.Reader) (*Reader, error) {
	br := bufio.NewReaderSize(in, 1<<16)
	magic, err := br.Peek(4)
	if err != nil {
		return nil, fmt.Errorf("not a capture: %w", err)
	}
	r := &Reader{}
	if binary.BigEndian.Uint32(magic) == pcapngMagic {
		ng, err := pcapgo.NewNgReader(br, pcapgo.NgReaderOptions{})
		if err != nil {
			return nil, fmt.Errorf("pcapng: %w", err)
		}
		r.src, r.linkType = ng, ng.LinkType()
	} else {
		pr, err := pcapgo.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("pcap: %w", err)
		}
		r.src, r.linkType = pr, pr.LinkType()
	}
	switch r.linkType {
	case layers.LinkTypeEthernet, layers.LinkTypeLinuxSLL, linkTypeSLL2,
		layers.LinkTypeRaw, linkTypeRaw12, linkTypeRaw14, linkTypeIPv4, linkTypeIPv6,
		layers.LinkTypeNull, layers.LinkTypeLoop:
	default:
		return nil, fmt.Errorf("unsupported link type %d (%s)", r.linkType, r.linkType)
	}
	return r, nil
}

// SetPort keeps only datagrams sent to UDP port p (0 keeps all).
func (r *Reader) SetPort(p uint16) { r.port = p }

// Stats returns what the reader saw so far.
func (r *Reader) Stats() Stats {
	st := r.stats
	st.Ports = maps.Clone(r.stats.Ports)
	return st
}

// Close closes the file opened by Open.
func (r *Reader) Close() error {
	if r.closer == nil {
		return nil
	}
	return r.closer.Close()
}

// Next returns the next UDP datagram, or io.EOF at the end of the capture.
// A capture truncated in the middle of a record ends with
// io.ErrUnexpectedEOF.
func (r *Reader) Next() (Datagram, error) {
	for {
		data, ci, err := r.src.ReadPacketData()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return Datagram{}, io.EOF
			}
			return Datagram{}, err
		}
		r.stats.Frames++
		d, ok := parseFrame(r.linkType, data)
		if ok {
			if r.stats.Ports == nil {
				r.stats.Ports = make(map[uint16]uint64)
			}
			r.stats.Ports[d.Dst.Port()]++
		}
		if !ok || (r.port != 0 && d.Dst.Port() != r.port) {
			r.stats.Skipped++
			continue
		}
		d.Time = ci.Timestamp.UTC()
		r.stats.Datagrams++
		return d, nil
	}
}

// ParseFrame extracts the UDP datagram from one captured frame of the given
// link type. It never panics on malformed input.
func ParseFrame(linkType layers.LinkType, frame []byte) (Datagram, bool) {
	return parseFrame(linkType, frame)
}

func parseFrame(lt layers.LinkType, b []byte) (Datagram, bool) {
	var etherType uint16
	switch lt {
	case layers.LinkTypeEthernet:
		if len(b) < 14 {
			return Datagram{}, false
		}
		etherType, b = binary.BigEndian.Uint16(b[12:14]), b[14:]
		// 802.1Q / 802.1ad tags, possibly stacked.
		for (etherType == 0x8100 || etherType == 0x88a8 || etherType == 0x9100) && len(b) >= 4 {
			etherType, b = binary.BigEndian.Uint16(b[2:4]), b[4:]
		}
	case layers.LinkTypeLinuxSLL:
		if len(b) < 16 {
			return Datagram{}, false
		}
		etherType, b = binary.BigEndian.Uint16(b[14:16]), b[16:]
	case linkTypeSLL2:
		if len(b) < 20 {
			return Datagram{}, false
		}
		etherType, b = binary.BigEndian.Uint16(b[0:2]), b[20:]
	case layers.LinkTypeNull, layers.LinkTypeLoop:
		if len(b) < 4 {
			return Datagram{}, false
		}
		// The family is in the writer's byte order (NULL) or network
		// order (LOOP); accept both. 2 is AF_INET everywhere; AF_INET6
		// is 10, 24, 28 or 30 depending on the OS.
		fam := binary.LittleEndian.Uint32(b[:4])
		if fam > 0xffff {
			fam = binary.BigEndian.Uint32(b[:4])
		}
		b = b[4:]
		switch fam {
		case 2:
			etherType = 0x0800
		case 10, 24, 28, 30:
			etherType = 0x86dd
		default:
			return Datagram{}, false
		}
	default: // raw IP: the version nibble says which.
		if len(b) < 1 {
			return Datagram{}, false
		}
		switch b[0] >> 4 {
		case 4:
			etherType = 0x0800
		case 6:
			etherType = 0x86dd
		default:
			return Datagram{}, false
		}
	}
	switch etherType {
	case 0x0800:
		return parseIPv4(b)
	case 0x86dd:
		return parseIPv6(b)
	}
	return Datagram{}, false
}

func parseIPv4(b []byte) (Datagram, bool) {
	if len(b) < 20 || b[0]>>4 != 4 {
		return Datagram{}, false
	}
	ihl := int(b[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(b[2:4]))
	if ihl < 20 || total < ihl || len(b) < total {
		return Datagram{}, false
	}
	// Only whole datagrams: no more-fragments flag, zero offset.
	if binary.BigEndian.Uint16(b[6:8])&0x3fff != 0 || b[9] != 17 {
		return Datagram{}, false
	}
	src := netip.AddrFrom4([4]byte(b[12:16]))
	dst := netip.AddrFrom4([4]byte(b[16:20]))
	return parseUDP(src, dst, b[ihl:total])
}

func parseIPv6(b []byte) (Datagram, bool) {
	if len(b) < 40 || b[0]>>4 != 6 {
		return Datagram{}, false
	}
	plen := int(binary.BigEndian.Uint16(b[4:6]))
	next := b[6]
	src := netip.AddrFrom16([16]byte(b[8:24]))
	dst := netip.AddrFrom16([16]byte(b[24:40]))
	b = b[40:]
	if plen > len(b) {
		return Datagram{}, false
	}
	b = b[:plen]
	for {
		switch next {
		case 17:
			return parseUDP(src, dst, b)
		case 0, 43, 60: // hop-by-hop, routing, destination options
			if len(b) < 8 {
				return Datagram{}, false
			}
			l := (int(b[1]) + 1) * 8
			if l > len(b) {
				return Datagram{}, false
			}
			next, b = b[0], b[l:]
		case 44: // fragment: only an atomic fragment is a whole datagram
			if len(b) < 8 || binary.BigEndian.Uint16(b[2:4])&0xfff9 != 0 {
				return Datagram{}, false
			}
			next, b = b[0], b[8:]
		default:
			return Datagram{}, false
		}
	}
}

func parseUDP(src, dst netip.Addr, b []byte) (Datagram, bool) {
	if len(b) < 8 {
		return Datagram{}, false
	}
	l := int(binary.BigEndian.Uint16(b[4:6]))
	if l < 8 || l > len(b) {
		return Datagram{}, false
	}
	return Datagram{
		Src:     netip.AddrPortFrom(src, binary.BigEndian.Uint16(b[0:2])),
		Dst:     netip.AddrPortFrom(dst, binary.BigEndian.Uint16(b[2:4])),
		Payload: b[8:l],
	}, true
}
