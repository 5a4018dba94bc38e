package gen

import (
	"math/rand/v2"
	"net/netip"

	"github.com/flowcheck/flowcheck/flow"
)

// Applications of the L7 mix, each recognisable by its server port.
const (
	appHTTP = iota
	appTLS
	appDNS
	appSSH
	appBitTorrent
	numApps
)

// Flow is one generated flow record, in the compact form the encoders read.
// Time is not part of it: the encoder stamps each record when it sends it,
// so the stream is the same whatever the clock says.
type Flow struct {
	Src, Dst         [4]byte
	SrcPort, DstPort uint16
	Proto            uint8
	TCPFlags         uint8
	InIf, OutIf      uint16
	Bytes, Packets   uint32
	// DurationMs is how long before "now" the flow's first packet was.
	DurationMs uint32
}

// Record returns f as the collector decodes it, without times (the host
// table reads its clock, not record times): the benchmarks of the packages
// behind the decoder feed themselves flowgen's stream with it.
func (f Flow) Record() flow.Record {
	return flow.Record{
		SrcAddr: netip.AddrFrom4(f.Src), DstAddr: netip.AddrFrom4(f.Dst),
		SrcPort: f.SrcPort, DstPort: f.DstPort, Proto: f.Proto, TCPFlags: f.TCPFlags,
		Bytes: uint64(f.Bytes), Packets: uint64(f.Packets),
		InIf: uint32(f.InIf), OutIf: uint32(f.OutIf),
	}
}

// Population is the precomputed record cycle: every conversation's forward
// record, followed (right after, or ReplyDelay records later) by its reverse
// record unless it is one-sided. The sender
// walks it round and round, so the send loop does no random draws and no
// allocation.
type Population struct {
	flows []Flow
	// hosts is the number of distinct addresses, kept for reporting.
	hosts int
}

// NewPopulation builds the record cycle from the configuration. Equal
// configurations (seed included) give equal cycles.
func NewPopulation(c PopulationConfiguration) (*Population, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(c.Seed, c.Seed^0x9e3779b97f4a7c15))
	nLocal := int(float64(c.Hosts)*c.LocalShare + 0.5)
	addr := func(i int) [4]byte {
		if i < nLocal {
			// 10.0.0.1 upwards: sequential, so local hosts look like
			// a few dense subnets as in a real LAN.
			v := uint32(i) + 1
			return [4]byte{10, byte(v >> 16), byte(v >> 8), byte(v)}
		}
		// Public hosts: an odd multiplier is a bijection on 24 bits, so
		// distinct indexes give distinct, scattered 20.x.y.z addresses.
		v := (uint32(i-nLocal)*2654435761 + 0x5bd1e9) & 0xffffff
		return [4]byte{20, byte(v >> 16), byte(v >> 8), byte(v)}
	}

	convs := c.Conversations
	if convs == 0 {
		convs = max(c.Hosts, 1024)
	}
	weights := c.Mix.weights()
	total := 0.0
	for _, w := range weights {
		total += w
	}
	pickApp := func() int {
		x := rng.Float64() * total
		for app, w := range weights {
			if x < w {
				return app
			}
			x -= w
		}
		return appTLS
	}

	p := &Population{flows: make([]Flow, 0, convs*2), hosts: c.Hosts}
	// delayed holds the reverse records waiting for their place (with
	// ReplyDelay), each with the cycle position it is due at.
	type delayedFlow struct {
		f   Flow
		due int
	}
	var delayed []delayedFlow
	for i := range convs {
		// The first Hosts conversations each start from a different host,
		// so every address of the population appears in the cycle.
		client := i % c.Hosts
		if i >= c.Hosts {
			client = rng.IntN(c.Hosts)
		}
		server := rng.IntN(c.Hosts - 1)
		if server >= client {
			server++
		}
		oneSided := rng.Float64() < c.OneSidedShare
		n := len(p.flows)
		p.flows = appendConversation(p.flows, rng, pickApp(), addr(client), addr(server), oneSided)
		if c.ReplyDelay > 0 && len(p.flows) == n+2 {
			delayed = append(delayed, delayedFlow{p.flows[n+1], n + 1 + c.ReplyDelay})
			p.flows = p.flows[:n+1]
		}
		for len(delayed) > 0 && delayed[0].due <= len(p.flows) {
			p.flows = append(p.flows, delayed[0].f)
			delayed = delayed[1:]
		}
	}
	// The last replies close the cycle, a little early.
	for _, d := range delayed {
		p.flows = append(p.flows, d.f)
	}
	return p, nil
}

// appendConversation appends the records of one conversation.
func appendConversation(flows []Flow, rng *rand.Rand, app int, client, server [4]byte, oneSided bool) []Flow {
	between := func(lo, hi int) uint32 { return uint32(lo + rng.IntN(hi-lo+1)) }
	ephemeral := uint16(between(32768, 60999))
	f := Flow{Src: client, Dst: server, SrcPort: ephemeral, Proto: 6, TCPFlags: 0x1b, InIf: 1, OutIf: 2}
	var fwdPkts, fwdSize, revPkts, revSize [2]int
	switch app {
	case appHTTP:
		f.DstPort = 80
		fwdPkts, fwdSize, revPkts, revSize = [2]int{4, 12}, [2]int{60, 600}, [2]int{4, 30}, [2]int{500, 1400}
	case appTLS:
		f.DstPort = 443
		fwdPkts, fwdSize, revPkts, revSize = [2]int{6, 20}, [2]int{60, 700}, [2]int{6, 60}, [2]int{600, 1400}
	case appDNS:
		f.DstPort, f.Proto, f.TCPFlags = 53, 17, 0
		fwdPkts, fwdSize, revPkts, revSize = [2]int{1, 1}, [2]int{60, 90}, [2]int{1, 1}, [2]int{90, 300}
	case appSSH:
		f.DstPort = 22
		fwdPkts, fwdSize, revPkts, revSize = [2]int{10, 200}, [2]int{80, 200}, [2]int{10, 200}, [2]int{80, 400}
	default: // BitTorrent: peer ports on both sides, TCP or UDP (uTP).
		f.SrcPort = uint16(between(10000, 65000))
		f.DstPort = uint16(between(6881, 6889))
		if rng.IntN(2) == 0 {
			f.Proto, f.TCPFlags = 17, 0
		}
		fwdPkts, fwdSize, revPkts, revSize = [2]int{5, 100}, [2]int{100, 1400}, [2]int{5, 100}, [2]int{100, 1400}
	}
	f.DurationMs = between(1, 60000)
	if app == appDNS {
		f.DurationMs = between(0, 50)
	}
	if oneSided && f.Proto == 6 {
		// An unanswered TCP connection: SYN retransmissions and nothing else.
		f.TCPFlags = 0x02
		f.Packets = between(1, 3)
		f.Bytes = f.Packets * 60
		return append(flows, f)
	}
	f.Packets = between(fwdPkts[0], fwdPkts[1])
	f.Bytes = f.Packets * between(fwdSize[0], fwdSize[1])
	flows = append(flows, f)
	if oneSided {
		return flows
	}
	r := Flow{
		Src: f.Dst, Dst: f.Src, SrcPort: f.DstPort, DstPort: f.SrcPort,
		Proto: f.Proto, TCPFlags: f.TCPFlags, InIf: f.OutIf, OutIf: f.InIf,
		DurationMs: f.DurationMs,
	}
	r.Packets = between(revPkts[0], revPkts[1])
	r.Bytes = r.Packets * between(revSize[0], revSize[1])
	return append(flows, r)
}

// Len is the number of records in one cycle.
func (p *Population) Len() int { return len(p.flows) }

// Hosts is the number of distinct addresses in the cycle.
func (p *Population) Hosts() int { return p.hosts }

// Flows returns the cycle itself; callers must not modify it.
func (p *Population) Flows() []Flow { return p.flows }

// Fill copies the records starting at cycle position pos into dst (wrapping
// around the cycle) and returns the position after the last one copied.
func (p *Population) Fill(dst []Flow, pos int) int {
	for i := 0; i < len(dst); {
		n := copy(dst[i:], p.flows[pos:])
		i += n
		pos += n
		if pos == len(p.flows) {
			pos = 0
		}
	}
	return pos
}
