package collector

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"time"
)

// Configuration is the collector section of the configuration file.
type Configuration struct {
	// Listeners are the UDP sockets flow exports arrive on.
	Listeners []ListenerConfiguration `mapstructure:"listeners"`
	// Workers is the number of decode workers. Datagrams are sharded to
	// them by exporter address, so one exporter is decoded in order, until
	// its worker is backlogged: its datagrams then spill over to the least
	// loaded worker.
	Workers int `mapstructure:"workers"`
	// QueueSize is the number of datagrams each worker's queue holds;
	// datagrams beyond it are dropped and counted, never blocking a socket.
	QueueSize int `mapstructure:"queue_size"`
	// ShedBacklog is the share of a worker's queue past which it hands
	// its records to the cheaper path (Dependencies.Shed: the host table
	// then accounts traffic but skips conversation stitching) until the
	// backlog is back under three quarters of that share, so that an
	// overloaded worker catches up instead of its queue dropping whole
	// datagrams. Below it the queue absorbs bursts (a tick of the checks)
	// with every record stitched. 0 disables it.
	ShedBacklog float64 `mapstructure:"shed_backlog"`
	// ReadPause is how long a socket's reader waits after a read that
	// emptied the socket before it reads again, so that datagrams arriving
	// meanwhile are read, decoded and handed to the host table together:
	// at tens of thousands of datagrams a second the reader and workers
	// then wake up about once per pause instead of once or twice per
	// datagram. A full read (32 datagrams) never waits. 0 reads at once.
	ReadPause time.Duration `mapstructure:"read_pause"`
	// Exporters controls who may send and how many exporters are tracked.
	Exporters ExportersConfiguration `mapstructure:"exporters"`
	// Sampling sets default and forced sampling rates.
	Sampling SamplingConfiguration `mapstructure:"sampling"`
	// Templates bounds the NetFlow v9/IPFIX template state.
	Templates TemplatesConfiguration `mapstructure:"templates"`
}

// ListenerConfiguration is one listening address.
type ListenerConfiguration struct {
	// URL is scheme://ip:port, the scheme one of netflow (v5, v9 and
	// IPFIX), ipfix (IPFIX only), sflow (sFlow v5 only) or auto (all).
	URL string `mapstructure:"url"`
	// Sockets is the number of SO_REUSEPORT sockets bound to the address,
	// each read by its own goroutine (Linux; one socket elsewhere).
	Sockets int `mapstructure:"sockets"`
	// ReceiveBuffer is the SO_RCVBUF size asked for each socket, in bytes.
	ReceiveBuffer int `mapstructure:"rcvbuf"`
}

// ExportersConfiguration controls who may send.
type ExportersConfiguration struct {
	// Allow lists the CIDR prefixes exporters may send from. Empty allows
	// any source (and start-up warns if a listener is not on loopback).
	// Datagrams from elsewhere are dropped, counted and logged: one line
	// per sender every 10 s with the count left untold, for at most 64
	// senders told apart (the others together).
	Allow []string `mapstructure:"allow"`
	// Max caps the number of exporters tracked. At the cap, a new
	// exporter takes the place of the least recently seen exporter silent
	// for longer than templates.lifetime (whose templates have all
	// expired, so little is lost); when there is none, its datagrams are
	// dropped and counted (exporter_cap).
	Max int `mapstructure:"max"`
	// IdleTimeout is how long an exporter may stay silent before it is
	// forgotten with its templates, sampling rates and pending sets
	// (counted and logged). It runs on receive time, as template expiry
	// does, and is at least templates.lifetime.
	IdleTimeout time.Duration `mapstructure:"idle_timeout"`
}

// SamplingConfiguration sets sampling rates when exporters do not, or
// overrides them.
type SamplingConfiguration struct {
	// Default is the rate used when an exporter does not tell its rate. 0
	// keeps it unknown (counters unscaled, counted as sampling_unknown).
	Default uint32 `mapstructure:"default"`
	// Overrides set per-exporter defaults and forced rates; the first
	// matching prefix wins.
	Overrides []SamplingOverride `mapstructure:"overrides"`
}

// SamplingOverride sets the rates of the exporters in one prefix.
type SamplingOverride struct {
	// Prefix is the exporters' CIDR prefix.
	Prefix string `mapstructure:"prefix"`
	// Default replaces sampling.default for these exporters (0: inherit).
	Default uint32 `mapstructure:"default"`
	// Override, when non-zero, replaces whatever rate the exporter says.
	Override uint32 `mapstructure:"override"`
}

// TemplatesConfiguration bounds the NetFlow v9/IPFIX template state.
type TemplatesConfiguration struct {
	// Max is the number of templates kept per exporter. Expired templates
	// do not count. At the cap a new template is accepted in place of
	// another: one neither used by data nor re-sent first, taken from the
	// observation domain holding the most, the least recently used first
	// (counted as evicted, logged).
	Max int `mapstructure:"max"`
	// Lifetime is how long a template lives without being refreshed.
	Lifetime time.Duration `mapstructure:"lifetime"`
	// PendingBytes bounds, per exporter, the data sets kept while waiting
	// for their template.
	PendingBytes int `mapstructure:"pending_bytes"`
	// PendingTTL is how long a data set waits for its template.
	PendingTTL time.Duration `mapstructure:"pending_ttl"`
}

// DefaultConfiguration returns the defaults: one auto-detecting listener on
// loopback port 2055, so that a fresh machine runs without exposing a port.
func DefaultConfiguration() Configuration {
	return Configuration{
		Listeners: []ListenerConfiguration{{
			URL:           "auto://127.0.0.1:2055",
			Sockets:       1,
			ReceiveBuffer: 32 << 20,
		}},
		Workers:     2,
		QueueSize:   16384,
		ShedBacklog: 0.9,
		ReadPause:   time.Millisecond,
		Exporters:   ExportersConfiguration{Max: 1000, IdleTimeout: time.Hour},
		Templates: TemplatesConfiguration{
			Max:          1024,
			Lifetime:     30 * time.Minute,
			PendingBytes: 256 << 10,
			PendingTTL:   10 * time.Second,
		},
	}
}

// Validate checks the configuration. Error messages start with the key,
// relative to the collector section.
func (c Configuration) Validate() error {
	var errs []error
	if len(c.Listeners) == 0 {
		errs = append(errs, errors.New("listeners: at least one listener is needed"))
	}
	for i, l := range c.Listeners {
		if _, _, err := parseListenURL(l.URL); err != nil {
			errs = append(errs, fmt.Errorf("listeners[%d].url: %w", i, err))
		}
		if l.Sockets < 1 || l.Sockets > 64 {
			errs = append(errs, fmt.Errorf("listeners[%d].sockets: must be between 1 and 64", i))
		}
		if l.ReceiveBuffer < 0 || l.ReceiveBuffer > 1<<30 {
			errs = append(errs, fmt.Errorf("listeners[%d].rcvbuf: must be between 0 (system default) and 1 GiB", i))
		}
	}
	if c.Workers < 1 || c.Workers > 1024 {
		errs = append(errs, errors.New("workers: must be between 1 and 1024"))
	}
	if c.ShedBacklog < 0 || c.ShedBacklog > 1 {
		errs = append(errs, errors.New("shed_backlog: must be between 0 and 1"))
	}
	if c.ReadPause < 0 || c.ReadPause > 100*time.Millisecond {
		errs = append(errs, errors.New("read_pause: must be between 0 and 100ms"))
	}
	if c.QueueSize < 1 || c.QueueSize > 1<<20 {
		errs = append(errs, errors.New("queue_size: must be between 1 and 1048576"))
	}
	for i, p := range c.Exporters.Allow {
		if _, err := netip.ParsePrefix(p); err != nil {
			errs = append(errs, fmt.Errorf("exporters.allow[%d]: %q is not a CIDR prefix", i, p))
		}
	}
	if c.Exporters.Max < 1 {
		errs = append(errs, errors.New("exporters.max: must be > 0"))
	}
	if c.Exporters.IdleTimeout < c.Templates.Lifetime {
		errs = append(errs, fmt.Errorf("exporters.idle_timeout: must be >= templates.lifetime (%s)", c.Templates.Lifetime))
	}
	for i, o := range c.Sampling.Overrides {
		if _, err := netip.ParsePrefix(o.Prefix); err != nil {
			errs = append(errs, fmt.Errorf("sampling.overrides[%d].prefix: %q is not a CIDR prefix", i, o.Prefix))
		}
	}
	if c.Templates.Max < 1 || c.Templates.Max > 65536 {
		errs = append(errs, errors.New("templates.max: must be between 1 and 65536"))
	}
	if c.Templates.Lifetime <= 0 {
		errs = append(errs, errors.New("templates.lifetime: must be > 0"))
	}
	if c.Templates.PendingBytes < 0 {
		errs = append(errs, errors.New("templates.pending_bytes: must be >= 0 (0 disables)"))
	}
	if c.Templates.PendingTTL < 0 {
		errs = append(errs, errors.New("templates.pending_ttl: must be >= 0"))
	}
	return errors.Join(errs...)
}

// listenKind says which export protocols a listener accepts.
type listenKind uint8

const (
	kindAuto listenKind = iota
	kindNetFlow
	kindIPFIX
	kindSFlow
)

func (k listenKind) String() string {
	switch k {
	case kindNetFlow:
		return "netflow"
	case kindIPFIX:
		return "ipfix"
	case kindSFlow:
		return "sflow"
	}
	return "auto"
}

func parseListenURL(s string) (listenKind, netip.AddrPort, error) {
	u, err := url.Parse(s)
	if err != nil {
		return 0, netip.AddrPort{}, fmt.Errorf("%q: %v", s, err)
	}
	var k listenKind
	switch u.Scheme {
	case "auto":
		k = kindAuto
	case "netflow":
		k = kindNetFlow
	case "ipfix":
		k = kindIPFIX
	case "sflow":
		k = kindSFlow
	default:
		return 0, netip.AddrPort{}, fmt.Errorf("%q: scheme must be netflow, ipfix, sflow or auto", s)
	}
	if u.Path != "" || u.RawQuery != "" || u.User != nil {
		return 0, netip.AddrPort{}, fmt.Errorf("%q: want scheme://ip:port and nothing else", s)
	}
	host, port := u.Hostname(), u.Port()
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return 0, netip.AddrPort{}, fmt.Errorf("%q: %q is not an IP address", s, host)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return 0, netip.AddrPort{}, fmt.Errorf("%q: port must be 0-65535", s)
	}
	return k, netip.AddrPortFrom(addr, uint16(p)), nil
}
