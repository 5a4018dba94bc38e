package aggregate

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"strings"
)

// netClass classifies addresses: local networks, directed broadcasts, static
// names and blacklist. It is immutable once built; Reload swaps a new one in.
type netClass struct {
	local []netip.Prefix
	// broadcast holds the network and broadcast addresses of the IPv4
	// local networks of /30 or larger.
	broadcast map[netip.Addr]struct{}
	names     map[netip.Addr]string
	black     *prefixSet
}

// newNetClass builds the classifier from a validated configuration. The
// blacklist is passed in because it is loaded (and reloaded) separately.
func newNetClass(cfg Configuration, black *prefixSet) (*netClass, error) {
	nc := &netClass{
		broadcast: make(map[netip.Addr]struct{}),
		names:     make(map[netip.Addr]string, len(cfg.Names)),
		black:     black,
	}
	for i, s := range cfg.LocalNetworks {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("local_networks[%d]: invalid CIDR %q", i, s)
		}
		p = p.Masked()
		nc.local = append(nc.local, p)
		if p.Addr().Is4() && p.Bits() <= 30 {
			nc.broadcast[p.Addr()] = struct{}{}
			nc.broadcast[lastAddr(p)] = struct{}{}
		}
	}
	for s, name := range cfg.Names {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("names: invalid IP address %q", s)
		}
		nc.names[a.Unmap()] = name
	}
	return nc, nil
}

// lastAddr returns the highest address of an IPv4 prefix.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v |= ^uint32(0) >> p.Bits()
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

var limitedBroadcast = netip.AddrFrom4([4]byte{255, 255, 255, 255})

// hostFlags are the address-derived flags of a host.
type hostFlags uint8

const (
	flagLocal hostFlags = 1 << iota
	flagMulticast
	flagBroadcast
	flagBlacklisted
)

// classify returns the flags of an address.
func (nc *netClass) classify(a netip.Addr) hostFlags {
	var f hostFlags
	for _, p := range nc.local {
		if p.Contains(a) {
			f |= flagLocal
			break
		}
	}
	if a.IsMulticast() {
		f |= flagMulticast
	}
	if a == limitedBroadcast {
		f |= flagBroadcast
	} else if _, ok := nc.broadcast[a]; ok {
		f |= flagBroadcast
	}
	if nc.black.contains(a) {
		f |= flagBlacklisted
	}
	return f
}

// prefixSet is a set of addresses and prefixes with a lookup per distinct
// prefix length.
type prefixSet struct {
	byBits map[int]map[netip.Prefix]struct{}
	// bits lists the keys of byBits, longest first.
	bits []int
	n    int
}

func newPrefixSet() *prefixSet {
	return &prefixSet{byBits: make(map[int]map[netip.Prefix]struct{})}
}

func (s *prefixSet) add(p netip.Prefix) {
	p = p.Masked()
	m, ok := s.byBits[p.Bits()]
	if !ok {
		m = make(map[netip.Prefix]struct{})
		s.byBits[p.Bits()] = m
		s.bits = append(s.bits, p.Bits())
		slices.Sort(s.bits)
		slices.Reverse(s.bits)
	}
	if _, dup := m[p]; !dup {
		m[p] = struct{}{}
		s.n++
	}
}

// contains reports whether a is one of the addresses or inside one of the
// prefixes. A nil set contains nothing.
func (s *prefixSet) contains(a netip.Addr) bool {
	if s == nil || s.n == 0 {
		return false
	}
	for _, b := range s.bits {
		if b > a.BitLen() {
			continue
		}
		p, err := a.Prefix(b)
		if err != nil {
			continue
		}
		if _, ok := s.byBits[b][p]; ok {
			return true
		}
	}
	return false
}

// Len is the number of entries.
func (s *prefixSet) Len() int { return s.n }

// lineError is a bad blacklist line, reported as file:line.
type lineError struct {
	File string
	Line int
	Text string
}

func (e lineError) Error() string {
	return fmt.Sprintf("%s:%d: invalid address or CIDR %q", e.File, e.Line, e.Text)
}

// loadBlacklists reads every file into one set. A bad line is skipped and
// reported in bad; a file that cannot be read is an error.
func loadBlacklists(files []string) (set *prefixSet, bad []lineError, err error) {
	set = newPrefixSet()
	for i, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return nil, nil, fmt.Errorf("blacklists[%d]: %w", i, err)
		}
		b, err := parseBlacklist(f, name, set)
		f.Close()
		if err != nil {
			return nil, nil, fmt.Errorf("blacklists[%d]: %s: %w", i, name, err)
		}
		bad = append(bad, b...)
	}
	return set, bad, nil
}

// parseBlacklist adds the entries read from r to set. Each line holds one
// IP or CIDR; "#" starts a comment; blank lines are ignored.
func parseBlacklist(r io.Reader, name string, set *prefixSet) ([]lineError, error) {
	var bad []lineError
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		if i := strings.IndexByte(text, '#'); i >= 0 {
			text = text[:i]
		}
		text = strings.TrimSpace(text)
		if text == "" {
			continue
		}
		p, err := parsePrefixOrAddr(text)
		if err != nil {
			bad = append(bad, lineError{File: name, Line: line, Text: text})
			continue
		}
		set.add(p)
	}
	if err := sc.Err(); err != nil {
		return bad, err
	}
	return bad, nil
}

func parsePrefixOrAddr(s string) (netip.Prefix, error) {
	if strings.IndexByte(s, '/') >= 0 {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		if p.Addr().Is4In6() {
			return netip.Prefix{}, errors.New("IPv4-mapped prefix")
		}
		return p, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	if a.Zone() != "" {
		return netip.Prefix{}, errors.New("zoned address")
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}
