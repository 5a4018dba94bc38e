package aggregate

import (
	"fmt"
	"net/netip"
	"slices"
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
