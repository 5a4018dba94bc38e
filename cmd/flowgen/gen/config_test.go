package gen

import (
	"math"
	"net/netip"
	"strings"
	"testing"
)

func TestCheckTarget(t *testing.T) {
	for _, tc := range []struct {
		target string
		remote bool
		ok     bool
	}{
		{"127.0.0.1:2055", false, true},
		{"127.3.4.5:9", false, true},
		{"[::1]:2055", false, true},
		{"[::ffff:127.0.0.1]:2055", false, true},
		{"10.0.0.1:2055", false, false},
		{"192.0.2.1:2055", false, false},
		{"[2001:db8::1]:2055", false, false},
		{"0.0.0.0:2055", false, false},
		{"192.0.2.1:2055", true, true},
		{"127.0.0.1:0", false, false},
		{"127.0.0.1:0", true, false},
	} {
		err := CheckTarget(netip.MustParseAddrPort(tc.target), tc.remote)
		if (err == nil) != tc.ok {
			t.Errorf("CheckTarget(%s, remote=%v) = %v", tc.target, tc.remote, err)
		}
		if err != nil && !strings.HasPrefix(err.Error(), "target: ") {
			t.Errorf("error %q does not name the key", err)
		}
	}
	if CheckTarget(netip.AddrPort{}, true) == nil {
		t.Error("zero target accepted")
	}
}

func TestValidate(t *testing.T) {
	if err := DefaultConfiguration().Validate(); err != nil {
		t.Fatalf("default configuration: %v", err)
	}
	for _, tc := range []struct {
		key    string
		modify func(*Configuration)
	}{
		{"target:", func(c *Configuration) { c.Target = netip.MustParseAddrPort("198.51.100.1:2055") }},
		{"version:", func(c *Configuration) { c.Version = 8 }},
		{"rate:", func(c *Configuration) { c.Rate = -1 }},
		{"rate:", func(c *Configuration) { c.Rate = math.NaN() }},
		{"rate:", func(c *Configuration) { c.Rate = math.Inf(1) }},
		{"duration:", func(c *Configuration) { c.Duration = -1 }},
		{"duration:", func(c *Configuration) { c.Duration, c.Count = 0, 0 }},
		{"exporters:", func(c *Configuration) { c.Exporters = 0 }},
		{"exporters:", func(c *Configuration) { c.Exporters = 9 }},
		{"records_per_packet:", func(c *Configuration) { c.RecordsPerPacket = 0 }},
		{"records_per_packet:", func(c *Configuration) { c.Version, c.RecordsPerPacket = V5, 31 }},
		{"records_per_packet:", func(c *Configuration) { c.Version, c.RecordsPerPacket = IPFIX, 40 }},
		{"template_refresh:", func(c *Configuration) { c.TemplateRefresh = 0 }},
		{"send_buffer:", func(c *Configuration) { c.SendBuffer = -1 }},
		{"batch:", func(c *Configuration) { c.Batch = 0 }},
		{"batch:", func(c *Configuration) { c.Batch = 1025 }},
		{"population.hosts:", func(c *Configuration) { c.Population.Hosts = 1 }},
		{"population.conversations:", func(c *Configuration) { c.Population.Conversations = -1 }},
		{"population.conversations:", func(c *Configuration) { c.Population.Conversations = c.Population.Hosts - 1 }},
		{"population.local_share:", func(c *Configuration) { c.Population.LocalShare = 1.5 }},
		{"population.one_sided_share:", func(c *Configuration) { c.Population.OneSidedShare = -0.1 }},
		{"population.local_share:", func(c *Configuration) { c.Population.LocalShare = math.NaN() }},
		{"population.mix:", func(c *Configuration) { c.Population.Mix = Mix{HTTP: math.Inf(1)} }},
		{"population.mix:", func(c *Configuration) { c.Population.Mix = Mix{} }},
		{"population.mix:", func(c *Configuration) { c.Population.Mix = Mix{HTTP: -1, TLS: 2} }},
	} {
		c := DefaultConfiguration()
		tc.modify(&c)
		err := c.Validate()
		if err == nil || !strings.HasPrefix(err.Error(), tc.key) {
			t.Errorf("want error starting %q, got %v", tc.key, err)
		}
	}
	c := DefaultConfiguration()
	c.Duration, c.Count = 0, 10
	if err := c.Validate(); err != nil {
		t.Errorf("count without duration: %v", err)
	}
}

func TestMaxRecordsPerPacket(t *testing.T) {
	for _, v := range []int{V5, V9, IPFIX} {
		if n := MaxRecordsPerPacket(v); n < 25 || n > 32 {
			t.Errorf("version %d: %d records per datagram", v, n)
		}
	}
	if MaxRecordsPerPacket(8) != 0 {
		t.Error("unknown version has a size")
	}
}
