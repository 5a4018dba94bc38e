package cluster

import (
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	ingest := func(f func(*Configuration)) Configuration {
		c := DefaultConfiguration()
		c.Role, c.Brokers = RoleIngest, []string{"127.0.0.1:9092"}
		f(&c)
		return c
	}
	for _, tc := range []struct {
		name string
		cfg  Configuration
		want string // "" valid
	}{
		{"defaults", DefaultConfiguration(), ""},
		{"all ignores Kafka keys", func() Configuration { c := DefaultConfiguration(); c.Partitions = 0; return c }(), ""},
		{"unknown role", func() Configuration { c := DefaultConfiguration(); c.Role = "both"; return c }(), `role: "both" is not all, ingest or check`},
		{"ingest", ingest(func(*Configuration) {}), ""},
		{"no brokers", ingest(func(c *Configuration) { c.Brokers = nil }), "brokers: must not be empty with role ingest"},
		{"bad broker", ingest(func(c *Configuration) { c.Brokers = []string{"kafka"} }), `brokers[0]: "kafka" is not host:port`},
		{"no topic", ingest(func(c *Configuration) { c.FlowsTopic = "" }), "flows_topic: must not be empty"},
		{"no partitions", ingest(func(c *Configuration) { c.Partitions = 0 }), "partitions: must be > 0"},
		{"replication 0", ingest(func(c *Configuration) { c.ReplicationFactor = 0 }), "replication_factor: must be > 0 or -1"},
		{"tls cert alone", ingest(func(c *Configuration) { c.TLS.Enabled, c.TLS.CertFile = true, "c.pem" }), "tls.cert_file: cert_file and key_file go together"},
		{"sasl", ingest(func(c *Configuration) { c.SASL.Mechanism = "gssapi" }), `sasl.mechanism: "gssapi" is not`},
		{"flush too large", ingest(func(c *Configuration) { c.Publish.FlushBytes = 2 << 20 }), "publish.flush_bytes: must be between 1024 and"},
		{"buffer too small", ingest(func(c *Configuration) { c.Publish.BufferBytes = c.Publish.FlushBytes }), "publish.buffer_bytes: must be ≥ 2 × partitions × flush_bytes (33554432)"},
		{"buffer too small for the partitions", ingest(func(c *Configuration) { c.Partitions = 256 }), "publish.buffer_bytes: must be ≥ 2 × partitions × flush_bytes"},
		{"many partitions, smaller batches", ingest(func(c *Configuration) { c.Partitions, c.Publish.FlushBytes = 256, 128<<10 }), ""},
		{"no interval", ingest(func(c *Configuration) { c.Publish.FlushInterval = 0 }), "publish.flush_interval: must be > 0"},
		{"acks", ingest(func(c *Configuration) { c.Publish.Acks = "some" }), `publish.acks: "some" is not all, one or none`},
		{"backoff", ingest(func(c *Configuration) { c.Publish.RetryBackoffMax = time.Millisecond }), "publish.retry_backoff_max: must be ≥ retry_backoff_min"},
		{"check format", ingest(func(c *Configuration) { c.Role, c.InputFormat = RoleCheck, "netflow" }), `input_format: "netflow" is not flowcheck or goflow2`},
		{"check group", ingest(func(c *Configuration) { c.Role, c.Group = RoleCheck, "" }), "group: must not be empty with role check"},
		{"check window", ingest(func(c *Configuration) { c.Role, c.RebuildWindow = RoleCheck, -time.Second }), "rebuild_window: must be ≥ 0"},
	} {
		err := tc.cfg.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
}
