package cluster

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/flowcheck/flowcheck/internal/kafkaconn"
)

// Roles of a process in a cluster.
const (
	// RoleAll is one process doing everything, without Kafka (the default).
	RoleAll = "all"
	// RoleIngest receives and decodes exports and publishes the records to
	// the flows topic.
	RoleIngest = "ingest"
	// RoleCheck consumes the flows topic in a consumer group and runs the
	// host table, the checks and the sinks on its share of the hosts.
	RoleCheck = "check"
)

// Input formats of the flows topic.
const (
	// FormatFlowcheck is FlowBatch (cluster/flowpb/flows.proto), written
	// by flowcheck's ingest role.
	FormatFlowcheck = "flowcheck"
	// FormatGoflow2 is goflow2 v2's FlowMessage, one per Kafka message.
	FormatGoflow2 = "goflow2"
)

// Configuration is the `cluster` section.
type Configuration struct {
	// Role is all, ingest or check.
	Role string `mapstructure:"role"`
	// Brokers are the bootstrap brokers of the flows topic (host:port);
	// required by ingest and check.
	Brokers []string `mapstructure:"brokers"`
	// FlowsTopic is the topic ingest publishes to and check consumes.
	FlowsTopic string `mapstructure:"flows_topic"`
	// Group is the consumer group of the check workers.
	Group string `mapstructure:"group"`
	// Partitions is the partition count of FlowsTopic: flowcheck creates
	// the topic with it, and refuses a topic that has another count (the
	// partition of a host depends on it).
	Partitions int `mapstructure:"partitions"`
	// ReplicationFactor is used when flowcheck creates FlowsTopic; -1 is
	// the broker's default.
	ReplicationFactor int `mapstructure:"replication_factor"`
	// InputFormat is what check reads: flowcheck or goflow2.
	InputFormat string `mapstructure:"input_format"`
	// RebuildWindow is how far back a check worker re-reads a partition it
	// is given; 0 is the host idle timeout (the longer of
	// aggregate.idle_timeout.local and .remote), filled in at load.
	RebuildWindow time.Duration `mapstructure:"rebuild_window"`
	// ClientID names this process to the brokers.
	ClientID string `mapstructure:"client_id"`
	// TLS and SASL to the brokers, as for the alert sink.
	TLS  kafkaconn.TLSConfiguration  `mapstructure:"tls"`
	SASL kafkaconn.SASLConfiguration `mapstructure:"sasl"`
	// Publish tunes the ingest role's publisher.
	Publish PublishConfiguration `mapstructure:"publish"`
}

// PublishConfiguration is `cluster.publish`: how ingest batches and sends.
type PublishConfiguration struct {
	// FlushBytes is the size at which a partition's batch is sent; it
	// bounds a Kafka message (the brokers' limit is about 1 MiB).
	FlushBytes int `mapstructure:"flush_bytes"`
	// FlushInterval is the longest a record waits in a partition's batch.
	FlushInterval time.Duration `mapstructure:"flush_interval"`
	// BufferBytes bounds the memory of batches not yet acknowledged, all
	// partitions together; beyond it records are dropped and counted. At
	// least two batches per partition.
	BufferBytes int `mapstructure:"buffer_bytes"`
	// Acks is all, one or none.
	Acks string `mapstructure:"acks"`
	// WriteTimeout bounds one write to the brokers.
	WriteTimeout time.Duration `mapstructure:"write_timeout"`
	// RetryBackoffMin and RetryBackoffMax bound the exponential wait
	// between attempts while the brokers are unreachable.
	RetryBackoffMin time.Duration `mapstructure:"retry_backoff_min"`
	RetryBackoffMax time.Duration `mapstructure:"retry_backoff_max"`
}

// maxFlushBytes keeps a message under the brokers' default limit
// (message.max.bytes 1 MiB) with room for Kafka's own framing.
const maxFlushBytes = 1000 << 10

// DefaultConfiguration returns the defaults: role all, no Kafka.
func DefaultConfiguration() Configuration {
	return Configuration{
		Role:              RoleAll,
		Brokers:           []string{},
		FlowsTopic:        "flowcheck.flows",
		Group:             "flowcheck-check",
		Partitions:        32,
		ReplicationFactor: -1,
		InputFormat:       FormatFlowcheck,
		ClientID:          "flowcheck",
		Publish: PublishConfiguration{
			FlushBytes:      512 << 10,
			FlushInterval:   100 * time.Millisecond,
			BufferBytes:     64 << 20,
			Acks:            "all",
			WriteTimeout:    10 * time.Second,
			RetryBackoffMin: 100 * time.Millisecond,
			RetryBackoffMax: 5 * time.Second,
		},
	}
}

// Validate checks the section; errors name the key relative to `cluster`.
// Kafka settings are checked only for the roles that use Kafka.
func (c Configuration) Validate() error {
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{key}, a...)...))
	}
	switch c.Role {
	case RoleAll:
		return nil
	case RoleIngest, RoleCheck:
	default:
		return fmt.Errorf("role: %q is not all, ingest or check", c.Role)
	}
	if len(c.Brokers) == 0 {
		bad("brokers", "must not be empty with role %s", c.Role)
	}
	for i, b := range c.Brokers {
		if b == "" || !strings.Contains(b, ":") {
			bad(fmt.Sprintf("brokers[%d]", i), "%q is not host:port", b)
		}
	}
	if c.FlowsTopic == "" {
		bad("flows_topic", "must not be empty")
	}
	if c.Partitions <= 0 {
		bad("partitions", "must be > 0")
	}
	if c.ReplicationFactor <= 0 && c.ReplicationFactor != -1 {
		bad("replication_factor", "must be > 0 or -1 (broker default)")
	}
	if err := c.TLS.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("tls.%w", err))
	}
	if err := c.SASL.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("sasl.%w", err))
	}
	if c.Role == RoleCheck {
		if c.Group == "" {
			bad("group", "must not be empty with role check")
		}
		switch c.InputFormat {
		case FormatFlowcheck, FormatGoflow2:
		default:
			bad("input_format", "%q is not flowcheck or goflow2", c.InputFormat)
		}
		if c.RebuildWindow < 0 {
			bad("rebuild_window", "must be ≥ 0")
		}
	}
	if c.Role == RoleIngest {
		p := c.Publish
		if p.FlushBytes < 1024 || p.FlushBytes > maxFlushBytes {
			bad("publish.flush_bytes", "must be between 1024 and %d", maxFlushBytes)
		}
		if p.FlushInterval <= 0 {
			bad("publish.flush_interval", "must be > 0")
		}
		// Every partition fills a batch of its own, and one more may be
		// in flight for each: less would drop records with the brokers up.
		if c.Partitions > 0 && p.BufferBytes < 2*c.Partitions*p.FlushBytes {
			bad("publish.buffer_bytes", "must be ≥ 2 × partitions × flush_bytes (%d); or lower flush_bytes", 2*c.Partitions*p.FlushBytes)
		}
		switch p.Acks {
		case "all", "one", "none":
		default:
			bad("publish.acks", "%q is not all, one or none", p.Acks)
		}
		if p.WriteTimeout <= 0 {
			bad("publish.write_timeout", "must be > 0")
		}
		if p.RetryBackoffMin <= 0 {
			bad("publish.retry_backoff_min", "must be > 0")
		}
		if p.RetryBackoffMax < p.RetryBackoffMin {
			bad("publish.retry_backoff_max", "must be ≥ retry_backoff_min")
		}
	}
	return errors.Join(errs...)
}
