package gen

import (
	"cmp"
	"math"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestPopulationShape(t *testing.T) {
	c := DefaultPopulationConfiguration()
	c.Hosts = 5000
	c.Conversations = 20000
	c.LocalShare = 0.3
	c.OneSidedShare = 0.25
	c.Mix = Mix{HTTP: 1, TLS: 1, DNS: 2, SSH: 0, BitTorrent: 0}
	p, err := NewPopulation(c)
	if err != nil {
		t.Fatal(err)
	}
	hosts := map[[4]byte]bool{}
	fwd, rev := map[[4]byte]int{}, 0
	ports := map[uint16]int{}
	for i, f := range p.Flows() {
		hosts[f.Src] = true
		hosts[f.Dst] = true
		a := netip.AddrFrom4(f.Src)
		if !a.IsPrivate() && f.Src[0] != 20 {
			t.Fatalf("record %d: unexpected address %s", i, a)
		}
		if f.Src == f.Dst {
			t.Fatalf("record %d talks to itself", i)
		}
		if f.Packets == 0 || f.Bytes < f.Packets {
			t.Fatalf("record %d: %d bytes in %d packets", i, f.Bytes, f.Packets)
		}
		// A reverse record follows its forward record, ports swapped.
		if i > 0 {
			prev := p.Flows()[i-1]
			if prev.Src == f.Dst && prev.Dst == f.Src && prev.SrcPort == f.DstPort && prev.DstPort == f.SrcPort {
				rev++
				continue
			}
		}
		fwd[f.Src]++
		ports[f.DstPort]++
	}
	if len(hosts) != c.Hosts {
		t.Errorf("%d distinct hosts, want %d", len(hosts), c.Hosts)
	}
	local := 0
	for h := range hosts {
		if h[0] == 10 {
			local++
		}
	}
	if local != 1500 {
		t.Errorf("%d local hosts, want 1500", local)
	}
	oneSided := 1 - float64(rev)/float64(c.Conversations)
	if math.Abs(oneSided-0.25) > 0.03 {
		t.Errorf("one-sided share %.3f, want about 0.25", oneSided)
	}
	if ports[22] != 0 || ports[6881] != 0 {
		t.Errorf("zero-weight applications present: %v", ports)
	}
	dns := float64(ports[53]) / float64(c.Conversations)
	if math.Abs(dns-0.5) > 0.03 {
		t.Errorf("DNS share %.3f, want about 0.5", dns)
	}
	if ports[80] == 0 || ports[443] == 0 {
		t.Errorf("HTTP/TLS missing: %v", ports)
	}
}

func TestPopulationOneSidedTCPIsSYNOnly(t *testing.T) {
	c := DefaultPopulationConfiguration()
	c.OneSidedShare = 1
	c.Mix = Mix{SSH: 1}
	p, err := NewPopulation(c)
	if err != nil {
		t.Fatal(err)
	}
	if p.Len() != max(c.Hosts, 1024) {
		t.Fatalf("%d records for %d one-sided conversations", p.Len(), c.Hosts)
	}
	for _, f := range p.Flows() {
		if f.TCPFlags != 0x02 || f.DstPort != 22 {
			t.Fatalf("one-sided SSH record %+v", f)
		}
	}
}

func TestPopulationDeterministic(t *testing.T) {
	c := DefaultPopulationConfiguration()
	a, _ := NewPopulation(c)
	b, _ := NewPopulation(c)
	c.Seed++
	d, _ := NewPopulation(c)
	if !slices.Equal(a.Flows(), b.Flows()) {
		t.Error("same seed, different cycles")
	}
	if slices.Equal(a.Flows(), d.Flows()) {
		t.Error("different seeds, same cycle")
	}
}

func TestPopulationFillWraps(t *testing.T) {
	c := DefaultPopulationConfiguration()
	c.Hosts, c.Conversations, c.OneSidedShare = 2, 3, 1
	p, err := NewPopulation(c)
	if err != nil {
		t.Fatal(err)
	}
	dst := make([]Flow, 7)
	pos := p.Fill(dst, 2)
	for i, f := range dst {
		if f != p.Flows()[(2+i)%p.Len()] {
			t.Fatalf("record %d differs", i)
		}
	}
	if pos != (2+7)%p.Len() {
		t.Errorf("next position %d", pos)
	}
}

func TestParseMix(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Mix
		err  string
	}{
		{in: "http=30,tls=40,dns=20,ssh=5,bittorrent=5", want: Mix{30, 40, 20, 5, 5}},
		{in: " HTTPS = 1 , bt=2,", want: Mix{TLS: 1, BitTorrent: 2}},
		{in: "", want: Mix{}},
		{in: "http", err: "want name=weight"},
		{in: "http=-1", err: ">= 0"},
		{in: "dns=NaN", err: ">= 0"},
		{in: "dns=+Inf", err: ">= 0"},
		{in: "ftp=1", err: "unknown application"},
	} {
		got, err := ParseMix(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseMix(%q) error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseMix(%q) = %+v, %v", tc.in, got, err)
		}
		if back, err := ParseMix(got.String()); err != nil || back != got {
			t.Errorf("round trip of %q: %+v, %v", got.String(), back, err)
		}
	}
}

// FuzzParseMix: whatever the command line says, ParseMix never panics, and
// what it accepts renders back to the same mix.
func FuzzParseMix(f *testing.F) {
	for _, s := range []string{"http=30,tls=40,dns=20,ssh=5,bittorrent=5", "bt=1", "", "=", "http=1e308,dns=NaN", "tls=-0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseMix(s)
		if err != nil {
			return
		}
		back, err := ParseMix(m.String())
		if err != nil || back != m {
			t.Fatalf("ParseMix(%q) = %+v, round trip %+v, %v", s, m, back, err)
		}
	})
}

// TestPopulationReplyDelay checks that --reply-delay moves every reverse
// record that many records after its forward one (except the last ones,
// which close the cycle) and changes nothing else.
func TestPopulationReplyDelay(t *testing.T) {
	c := DefaultPopulationConfiguration()
	c.Hosts = 2000
	adjacent, err := NewPopulation(c)
	if err != nil {
		t.Fatal(err)
	}
	const delay = 300
	c.ReplyDelay = delay
	p, err := NewPopulation(c)
	if err != nil {
		t.Fatal(err)
	}
	type fkey struct {
		a, b   [4]byte
		pa, pb uint16
		proto  uint8
	}
	at := map[fkey]int{}
	replies, exact := 0, 0
	for i, f := range p.Flows() {
		if j, ok := at[fkey{f.Dst, f.Src, f.DstPort, f.SrcPort, f.Proto}]; ok {
			replies++
			if i-j-1 == delay {
				exact++
			} else if i < p.Len()-2*delay {
				t.Fatalf("reply at %d of a request at %d: %d records apart, want %d", i, j, i-j-1, delay)
			}
			continue
		}
		at[fkey{f.Src, f.Dst, f.SrcPort, f.DstPort, f.Proto}] = i
	}
	if replies == 0 || exact < replies*9/10 {
		t.Fatalf("%d replies, %d of them %d records after their request", replies, exact, delay)
	}
	sortFlows := func(fs []Flow) []Flow {
		fs = slices.Clone(fs)
		slices.SortFunc(fs, func(x, y Flow) int {
			return cmp.Or(slices.Compare(x.Src[:], y.Src[:]), slices.Compare(x.Dst[:], y.Dst[:]),
				cmp.Compare(x.SrcPort, y.SrcPort), cmp.Compare(x.DstPort, y.DstPort), cmp.Compare(x.Proto, y.Proto),
				cmp.Compare(x.Packets, y.Packets), cmp.Compare(x.Bytes, y.Bytes))
		})
		return fs
	}
	if !slices.Equal(sortFlows(adjacent.Flows()), sortFlows(p.Flows())) {
		t.Fatal("the delayed cycle does not hold the same records")
	}
}
