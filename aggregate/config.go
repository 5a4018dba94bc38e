package aggregate

import (
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// Configuration is the aggregate section of the configuration file.
type Configuration struct {
	// LocalNetworks lists the CIDRs whose hosts are local (host.is_local()).
	// The network and broadcast addresses of an IPv4 local network are
	// broadcast addresses (directed broadcast).
	LocalNetworks []string `mapstructure:"local_networks"`
	// Names maps an IP address to a display name (host.name()).
	Names map[string]string `mapstructure:"names"`
	// ReverseDNS resolves names of hosts not in Names, asynchronously.
	ReverseDNS ReverseDNSConfiguration `mapstructure:"reverse_dns"`
	// Blacklists are files of IPs and CIDRs, one a line, "#" comments.
	Blacklists []string `mapstructure:"blacklists"`
	// MaxHosts is the ceiling on the number of hosts held.
	MaxHosts int `mapstructure:"max_hosts"`
	// LocalReservePercent is the share of MaxHosts kept for local hosts:
	// new remote hosts are refused once the table holds
	// MaxHosts*(100-LocalReservePercent)/100 hosts.
	LocalReservePercent int `mapstructure:"local_reserve_percent"`
	// IdleTimeout is how long a host without traffic is kept.
	IdleTimeout IdleTimeoutConfiguration `mapstructure:"idle_timeout"`
	// ReplyWindow is how long a conversation seen in one direction waits
	// for a record of the other direction before it is one-sided.
	ReplyWindow time.Duration `mapstructure:"reply_window"`
	// MaxPending bounds the conversations waiting for a reply; at the
	// bound the oldest is decided early (and counted).
	MaxPending int `mapstructure:"max_pending"`
	// ExactSetSize is the number of members a contact set holds exactly
	// before it turns into a HyperLogLog sketch (0.81 % standard error).
	ExactSetSize int `mapstructure:"exact_set_size"`
	// MaxL7Protocols caps the distinct application names per host; more
	// are counted under "Other".
	MaxL7Protocols int `mapstructure:"max_l7_protocols"`
	// FoldRefusedIntoNoReply also counts refused conversations in the
	// standard (ntopng) no-reply sets and unidirectional counters.
	FoldRefusedIntoNoReply bool `mapstructure:"fold_refused_into_noreply"`
	// WithholdAfterIngestLoss keeps out of the contact sets the one-sided
	// conversations whose reply window overlapped a loss on ingest (a
	// full decode queue or socket buffer) above IngestLossTolerance: their
	// reply may have been in a lost datagram, and committing them would
	// raise no-reply (scan) alerts against hosts that did answer. They
	// are counted in conversations_withheld_total. Off, they are
	// committed as usual.
	WithholdAfterIngestLoss bool `mapstructure:"withhold_after_ingest_loss"`
	// IngestLossTolerance is the share of datagrams a socket reader may
	// lose in a second without its loss withholding verdicts: a loss of
	// share f turns about f of a host's answered conversations one-sided,
	// which at 0.1 % stays below any scan threshold but for hosts with
	// tens of thousands of conversations a window.
	IngestLossTolerance float64 `mapstructure:"ingest_loss_tolerance"`
	// Shards is the number of host-table and tracker shards (a power of 2).
	// Apply locks each shard its batch touches once; fewer shards mean
	// fewer lock round trips (each a memory fence that stalls the next
	// lookup's cache miss) per batch, more mean less contention between
	// ingest workers. 16 suits a handful of workers.
	Shards int `mapstructure:"shards"`
}

// IdleTimeoutConfiguration holds the idle timeouts of local and remote hosts.
type IdleTimeoutConfiguration struct {
	Local  time.Duration `mapstructure:"local"`
	Remote time.Duration `mapstructure:"remote"`
}

// ReverseDNSConfiguration configures the optional asynchronous reverse DNS.
type ReverseDNSConfiguration struct {
	Enabled bool `mapstructure:"enabled"`
	// Workers is the number of concurrent lookups.
	Workers int `mapstructure:"workers"`
	// QueueSize bounds the lookups waiting for a worker; overflow is
	// counted and the lookup skipped (retried when the host is seen again
	// after the cache forgets it).
	QueueSize int `mapstructure:"queue_size"`
	// CacheSize bounds the remembered answers (positive and negative).
	CacheSize int `mapstructure:"cache_size"`
	// Timeout bounds one lookup.
	Timeout time.Duration `mapstructure:"timeout"`
}

// DefaultConfiguration returns the defaults of the aggregate section.
func DefaultConfiguration() Configuration {
	return Configuration{
		LocalNetworks: []string{"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"},
		ReverseDNS: ReverseDNSConfiguration{
			Workers:   4,
			QueueSize: 1024,
			CacheSize: 65536,
			Timeout:   2 * time.Second,
		},
		MaxHosts:                1_000_000,
		LocalReservePercent:     10,
		IdleTimeout:             IdleTimeoutConfiguration{Local: 300 * time.Second, Remote: 60 * time.Second},
		ReplyWindow:             30 * time.Second,
		MaxPending:              1_000_000,
		ExactSetSize:            1024,
		MaxL7Protocols:          32,
		WithholdAfterIngestLoss: true,
		IngestLossTolerance:     0.001,
		Shards:                  16,
	}
}

// Validate checks the configuration; errors name the offending key relative
// to the aggregate section.
func (c Configuration) Validate() error {
	var errs []error
	for i, n := range c.LocalNetworks {
		if _, err := netip.ParsePrefix(n); err != nil {
			errs = append(errs, fmt.Errorf("local_networks[%d]: invalid CIDR %q", i, n))
		}
	}
	for ip := range c.Names {
		if _, err := netip.ParseAddr(ip); err != nil {
			errs = append(errs, fmt.Errorf("names: invalid IP address %q", ip))
		}
	}
	for i, f := range c.Blacklists {
		if f == "" {
			errs = append(errs, fmt.Errorf("blacklists[%d]: empty file name", i))
		}
	}
	if c.MaxHosts <= 0 {
		errs = append(errs, errors.New("max_hosts: must be > 0"))
	}
	if c.LocalReservePercent < 0 || c.LocalReservePercent > 100 {
		errs = append(errs, errors.New("local_reserve_percent: must be between 0 and 100"))
	}
	if c.IdleTimeout.Local <= 0 {
		errs = append(errs, errors.New("idle_timeout.local: must be > 0"))
	}
	if c.IdleTimeout.Remote <= 0 {
		errs = append(errs, errors.New("idle_timeout.remote: must be > 0"))
	}
	if c.ReplyWindow <= 0 {
		errs = append(errs, errors.New("reply_window: must be > 0"))
	}
	if c.MaxPending <= 0 {
		errs = append(errs, errors.New("max_pending: must be > 0"))
	}
	if c.ExactSetSize <= 0 {
		errs = append(errs, errors.New("exact_set_size: must be > 0"))
	}
	if c.MaxL7Protocols <= 0 {
		errs = append(errs, errors.New("max_l7_protocols: must be > 0"))
	}
	if c.IngestLossTolerance < 0 || c.IngestLossTolerance >= 1 {
		errs = append(errs, errors.New("ingest_loss_tolerance: must be at least 0 and below 1"))
	}
	if c.Shards <= 0 || c.Shards&(c.Shards-1) != 0 || c.Shards > 4096 {
		errs = append(errs, errors.New("shards: must be a power of 2 between 1 and 4096"))
	}
	if c.ReverseDNS.Enabled {
		if c.ReverseDNS.Workers <= 0 {
			errs = append(errs, errors.New("reverse_dns.workers: must be > 0"))
		}
		if c.ReverseDNS.QueueSize <= 0 {
			errs = append(errs, errors.New("reverse_dns.queue_size: must be > 0"))
		}
		if c.ReverseDNS.CacheSize <= 0 {
			errs = append(errs, errors.New("reverse_dns.cache_size: must be > 0"))
		}
		if c.ReverseDNS.Timeout <= 0 {
			errs = append(errs, errors.New("reverse_dns.timeout: must be > 0"))
		}
	}
	return errors.Join(errs...)
}
