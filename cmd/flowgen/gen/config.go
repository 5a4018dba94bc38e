// Package gen is flowcheck's synthetic flow-export generator: a deterministic
// host population, small NetFlow v5 / v9 / IPFIX encoders and a paced UDP
// sender. cmd/flowgen wraps it; tests elsewhere may use the encoders to build
// datagrams without a capture file.
package gen

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Export versions understood by the encoders (the value in the datagram's
// version field).
const (
	V5    = 5
	V9    = 9
	IPFIX = 10
)

// MaxExporters is how many simulated exporters fit on 127.0.0.2–127.0.0.9.
const MaxExporters = 8

// maxDatagram keeps every datagram inside one Ethernet frame (1500 - 20 - 8)
// so that a remote run does not fragment.
const maxDatagram = 1472

// Mix is the relative weight of each application in new conversations. The
// weights need not sum to anything; only their ratios matter.
type Mix struct {
	HTTP       float64 `mapstructure:"http"`
	TLS        float64 `mapstructure:"tls"`
	DNS        float64 `mapstructure:"dns"`
	SSH        float64 `mapstructure:"ssh"`
	BitTorrent float64 `mapstructure:"bittorrent"`
}

// weights returns the mix in app order (appHTTP..appBitTorrent).
func (m Mix) weights() [numApps]float64 {
	return [numApps]float64{m.HTTP, m.TLS, m.DNS, m.SSH, m.BitTorrent}
}

// ParseMix reads "http=30,tls=40,dns=20,ssh=5,bittorrent=5". Applications not
// named get weight 0.
func ParseMix(s string) (Mix, error) {
	var m Mix
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, val, ok := strings.Cut(part, "=")
		if !ok {
			return Mix{}, fmt.Errorf("mix: %q: want name=weight", part)
		}
		w, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil || !finiteNonNegative(w) {
			return Mix{}, fmt.Errorf("mix: %q: weight must be a number >= 0", part)
		}
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "http":
			m.HTTP = w
		case "tls", "https":
			m.TLS = w
		case "dns":
			m.DNS = w
		case "ssh":
			m.SSH = w
		case "bittorrent", "bt":
			m.BitTorrent = w
		default:
			return Mix{}, fmt.Errorf("mix: unknown application %q (http, tls, dns, ssh, bittorrent)", name)
		}
	}
	return m, nil
}

// String renders the mix in the form ParseMix reads.
func (m Mix) String() string {
	f := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	return "http=" + f(m.HTTP) + ",tls=" + f(m.TLS) + ",dns=" + f(m.DNS) +
		",ssh=" + f(m.SSH) + ",bittorrent=" + f(m.BitTorrent)
}

// PopulationConfiguration describes the hosts and conversations behind the
// generated records.
type PopulationConfiguration struct {
	// Seed makes the population (and so the record stream) reproducible.
	Seed uint64 `mapstructure:"seed"`
	// Hosts is the number of distinct host addresses in the stream.
	Hosts int `mapstructure:"hosts"`
	// Conversations is the number of distinct conversations the stream
	// cycles through: 0 (max(Hosts, 1024)) or at least Hosts.
	Conversations int `mapstructure:"conversations"`
	// LocalShare is the share of hosts in 10.0.0.0/8 (the rest are public
	// addresses in 20.0.0.0/8).
	LocalShare float64 `mapstructure:"local_share"`
	// OneSidedShare is the share of conversations that get no reverse
	// record (a SYN with no answer, a UDP query with no reply).
	OneSidedShare float64 `mapstructure:"one_sided_share"`
	// ReplyDelay is how many records of the cycle come between a
	// conversation's forward record and its reverse one. 0 sends the reply
	// right after the request, as exporters that expire both directions
	// together do (softflowd, pmacctd); a router's flow cache expires them
	// apart, which a few thousand records of delay imitates.
	ReplyDelay int `mapstructure:"reply_delay"`
	// Mix is the application mix, recognisable by server port.
	Mix Mix `mapstructure:"mix"`
}

// DefaultPopulationConfiguration is 10 000 hosts, half local, 10 % one-sided
// conversations, a web-heavy mix.
func DefaultPopulationConfiguration() PopulationConfiguration {
	return PopulationConfiguration{
		Seed:          1,
		Hosts:         10000,
		LocalShare:    0.5,
		OneSidedShare: 0.1,
		Mix:           Mix{HTTP: 30, TLS: 40, DNS: 20, SSH: 5, BitTorrent: 5},
	}
}

// Validate checks the population parameters.
func (c PopulationConfiguration) Validate() error {
	switch {
	case c.Hosts < 2:
		return errors.New("hosts: must be >= 2")
	case c.Hosts > 1<<24:
		return errors.New("hosts: must be <= 16777216")
	case c.Conversations < 0:
		return errors.New("conversations: must be >= 0")
	case c.Conversations > 0 && c.Conversations < c.Hosts:
		// Each host starts one conversation, so that all of them appear.
		return errors.New("conversations: must be 0 or >= hosts")
	case c.Conversations > 1<<24:
		return errors.New("conversations: must be <= 16777216")
	case !(c.LocalShare >= 0 && c.LocalShare <= 1): // also refuses NaN
		return errors.New("local_share: must be within [0, 1]")
	case !(c.OneSidedShare >= 0 && c.OneSidedShare <= 1):
		return errors.New("one_sided_share: must be within [0, 1]")
	case c.ReplyDelay < 0 || c.ReplyDelay > 1<<24:
		return errors.New("reply_delay: must be within [0, 16777216]")
	}
	sum := 0.0
	for _, w := range c.Mix.weights() {
		if !finiteNonNegative(w) {
			return errors.New("mix: weights must be finite numbers >= 0")
		}
		sum += w
	}
	if sum <= 0 {
		return errors.New("mix: at least one weight must be > 0")
	}
	return nil
}

// Configuration is everything a generator run needs.
type Configuration struct {
	// Target is the collector's UDP address.
	Target netip.AddrPort `mapstructure:"target"`
	// AllowRemote permits a non-loopback target.
	AllowRemote bool `mapstructure:"allow_remote"`
	// Version is the export format: 5, 9 or 10 (IPFIX).
	Version int `mapstructure:"version"`
	// Rate is the target records per second; 0 sends as fast as possible.
	Rate float64 `mapstructure:"rate"`
	// Duration stops the run after this long; 0 means no time limit.
	Duration time.Duration `mapstructure:"duration"`
	// Count stops the run after this many records; 0 means no limit.
	Count uint64 `mapstructure:"count"`
	// Exporters is the number of simulated exporters (1–8), each with its
	// own socket, sequence numbers and templates.
	Exporters int `mapstructure:"exporters"`
	// RecordsPerPacket is the number of flow records per datagram.
	RecordsPerPacket int `mapstructure:"records_per_packet"`
	// TemplateRefresh resends the v9/IPFIX template every this many
	// datagrams of an exporter (the first datagram always carries it).
	TemplateRefresh int `mapstructure:"template_refresh"`
	// Batch is the number of datagrams handed to the kernel in one
	// sendmmsg(2) call (Linux on 64-bit; elsewhere one call each). When
	// pacing, a batch never exceeds about 1 ms of records.
	Batch int `mapstructure:"batch"`
	// SendBuffer sets SO_SNDBUF on each socket when > 0.
	SendBuffer int `mapstructure:"send_buffer"`
	// Population describes the hosts and conversations.
	Population PopulationConfiguration `mapstructure:"population"`
}

// DefaultConfiguration sends NetFlow v9 to 127.0.0.1:2055 as fast as
// possible for 10 s from one exporter.
func DefaultConfiguration() Configuration {
	return Configuration{
		Target:           netip.MustParseAddrPort("127.0.0.1:2055"),
		Version:          V9,
		Duration:         10 * time.Second,
		Exporters:        1,
		RecordsPerPacket: 25,
		TemplateRefresh:  20,
		Batch:            16,
		Population:       DefaultPopulationConfiguration(),
	}
}

// Validate checks the configuration, including the loopback guard.
func (c Configuration) Validate() error {
	if err := CheckTarget(c.Target, c.AllowRemote); err != nil {
		return err
	}
	switch {
	case c.Version != V5 && c.Version != V9 && c.Version != IPFIX:
		return errors.New("version: must be 5, 9 or 10 (ipfix)")
	case !finiteNonNegative(c.Rate):
		return errors.New("rate: must be a finite number >= 0")
	case c.Duration < 0:
		return errors.New("duration: must be >= 0")
	case c.Duration == 0 && c.Count == 0:
		return errors.New("duration: set a duration or a count")
	case c.Exporters < 1 || c.Exporters > MaxExporters:
		return fmt.Errorf("exporters: must be within [1, %d]", MaxExporters)
	case c.RecordsPerPacket < 1:
		return errors.New("records_per_packet: must be >= 1")
	case c.RecordsPerPacket > MaxRecordsPerPacket(c.Version):
		return fmt.Errorf("records_per_packet: must be <= %d for version %d", MaxRecordsPerPacket(c.Version), c.Version)
	case c.TemplateRefresh < 1:
		return errors.New("template_refresh: must be >= 1")
	case c.Batch < 1 || c.Batch > 1024:
		return errors.New("batch: must be within [1, 1024]")
	case c.SendBuffer < 0:
		return errors.New("send_buffer: must be >= 0")
	}
	if err := c.Population.Validate(); err != nil {
		return fmt.Errorf("population.%w", err)
	}
	return nil
}

// finiteNonNegative is false for negative numbers, NaN and infinities, which
// strconv.ParseFloat and flag parsing both accept.
func finiteNonNegative(v float64) bool { return v >= 0 && !math.IsInf(v, 1) }

// CheckTarget refuses a target that is not a loopback address unless
// allowRemote is set: a load generator pointed at a real network by a typo
// is a denial of service.
func CheckTarget(target netip.AddrPort, allowRemote bool) error {
	if !target.IsValid() || target.Port() == 0 {
		return errors.New("target: must be an address:port with a non-zero port")
	}
	if !allowRemote && !target.Addr().Unmap().IsLoopback() {
		return fmt.Errorf("target: %s is not a loopback address (allow_remote to override)", target.Addr())
	}
	return nil
}
