package sink

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/flowcheck/flowcheck/internal/kafkaconn"
	"github.com/flowcheck/flowcheck/sink/spool"
)

// Configuration is the `sinks` section.
type Configuration struct {
	// Stdout writes alerts as JSON lines on standard output.
	Stdout StdoutConfiguration `mapstructure:"stdout"`
	// File writes alerts as JSON lines in a size-rotated file.
	File FileConfiguration `mapstructure:"file"`
	// Kafka publishes alerts to Kafka topics, spooling on outage.
	Kafka KafkaConfiguration `mapstructure:"kafka"`
	// ShutdownGrace bounds how long Stop flushes before spooling the rest.
	ShutdownGrace time.Duration `mapstructure:"shutdown_grace"`
}

// Switch is a three-way enable flag: "auto", "true" or "false". YAML
// booleans are accepted as well (a weakly typed decoder turns them into
// "1"/"0").
type Switch string

// The canonical Switch values.
const (
	SwitchAuto  Switch = "auto"
	SwitchTrue  Switch = "true"
	SwitchFalse Switch = "false"
)

// resolve tells whether the switch is on, auto meaning fallback.
func (s Switch) resolve(fallback bool) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(string(s))) {
	case "auto", "":
		return fallback, nil
	case "true", "1", "yes", "on":
		return true, nil
	case "false", "0", "no", "off":
		return false, nil
	}
	return false, fmt.Errorf("%q is not auto, true or false", string(s))
}

// StdoutConfiguration configures the stdout sink.
type StdoutConfiguration struct {
	// Enabled is auto (on when no Kafka broker is configured), true or false.
	Enabled Switch `mapstructure:"enabled"`
	// QueueSize bounds the alerts waiting to be written.
	QueueSize int `mapstructure:"queue_size"`
}

// FileConfiguration configures the file sink.
type FileConfiguration struct {
	Enabled bool `mapstructure:"enabled"`
	// Path of the current file; rotated files get ".1", ".2"… suffixes.
	Path string `mapstructure:"path"`
	// MaxBytes is the size at which the file is rotated.
	MaxBytes int64 `mapstructure:"max_bytes"`
	// MaxFiles is how many rotated files are kept besides the current one.
	MaxFiles  int `mapstructure:"max_files"`
	QueueSize int `mapstructure:"queue_size"`
}

// Route sends the alerts matching Check and/or Severity (an empty field
// matches anything) to Topic. The first matching route wins.
type Route struct {
	Check    string `mapstructure:"check"`
	Severity string `mapstructure:"severity"`
	Topic    string `mapstructure:"topic"`
}

// CreateTopicsConfiguration configures topic creation at start and after
// each reconnection.
type CreateTopicsConfiguration struct {
	Enabled           bool `mapstructure:"enabled"`
	Partitions        int  `mapstructure:"partitions"`
	ReplicationFactor int  `mapstructure:"replication_factor"`
}

// SpoolConfiguration configures the on-disk spool of the Kafka sink.
type SpoolConfiguration struct {
	Dir          string            `mapstructure:"dir"`
	MaxBytes     int64             `mapstructure:"max_bytes"`
	SegmentBytes int64             `mapstructure:"segment_bytes"`
	Fsync        spool.FsyncPolicy `mapstructure:"fsync"`
	// IntakeSize bounds the alerts waiting for the spool writer, the one
	// goroutine that appends to the spool, so that publishing never waits
	// for the disk.
	IntakeSize int `mapstructure:"intake_size"`
	// IntakeWait is how long a publisher waits for room in a full intake
	// (a disk slower than the alerts) before the alert is dropped, counted
	// as spool_slow.
	IntakeWait time.Duration `mapstructure:"intake_wait"`
}

// KafkaConfiguration configures the Kafka sink; it is enabled when Brokers
// is not empty.
type KafkaConfiguration struct {
	Brokers      []string                    `mapstructure:"brokers"`
	Topic        string                      `mapstructure:"topic"`
	Routes       []Route                     `mapstructure:"routes"`
	ClientID     string                      `mapstructure:"client_id"`
	Acks         string                      `mapstructure:"acks"`
	Compression  string                      `mapstructure:"compression"`
	BatchSize    int                         `mapstructure:"batch_size"`
	BatchBytes   int64                       `mapstructure:"batch_bytes"`
	BatchTimeout time.Duration               `mapstructure:"batch_timeout"`
	WriteTimeout time.Duration               `mapstructure:"write_timeout"`
	TLS          kafkaconn.TLSConfiguration  `mapstructure:"tls"`
	SASL         kafkaconn.SASLConfiguration `mapstructure:"sasl"`
	CreateTopics CreateTopicsConfiguration   `mapstructure:"create_topics"`
	QueueSize    int                         `mapstructure:"queue_size"`
	// SpoolAfter bounds how long an alert stays in memory only: a batch
	// the brokers have not acknowledged by then is written to the spool
	// while the write goes on (a hung broker holds it for minutes).
	SpoolAfter time.Duration      `mapstructure:"spool_after"`
	Spool      SpoolConfiguration `mapstructure:"spool"`
	// RetryBackoffMin and RetryBackoffMax bound the exponential wait
	// between delivery attempts while the brokers are unreachable.
	RetryBackoffMin time.Duration `mapstructure:"retry_backoff_min"`
	RetryBackoffMax time.Duration `mapstructure:"retry_backoff_max"`
}

// DefaultConfiguration returns the defaults of the `sinks` section: stdout
// on (auto, no broker configured), file and Kafka off.
func DefaultConfiguration() Configuration {
	return Configuration{
		Stdout: StdoutConfiguration{Enabled: SwitchAuto, QueueSize: 4096},
		File: FileConfiguration{
			Path:      "flowcheck-alerts.jsonl",
			MaxBytes:  100 << 20,
			MaxFiles:  5,
			QueueSize: 4096,
		},
		Kafka: KafkaConfiguration{
			Topic:        "flowcheck.alerts",
			ClientID:     "flowcheck",
			Acks:         "all",
			Compression:  "lz4",
			BatchSize:    1000,
			BatchBytes:   1 << 20,
			BatchTimeout: 5 * time.Millisecond,
			WriteTimeout: 10 * time.Second,
			CreateTopics: CreateTopicsConfiguration{Enabled: true, Partitions: 8, ReplicationFactor: -1},
			QueueSize:    8192,
			SpoolAfter:   time.Second,
			Spool: SpoolConfiguration{
				Dir:          "flowcheck-spool",
				MaxBytes:     1 << 30,
				SegmentBytes: 16 << 20,
				Fsync:        spool.FsyncBatch,
				IntakeSize:   8192,
				IntakeWait:   time.Second,
			},
			RetryBackoffMin: 100 * time.Millisecond,
			RetryBackoffMax: 5 * time.Second,
		},
		ShutdownGrace: 10 * time.Second,
	}
}

var compressions = []string{"none", "gzip", "snappy", "lz4", "zstd"}

// Validate checks the section; errors name the offending key relative to
// `sinks`.
func (c Configuration) Validate() error {
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{key}, a...)...))
	}
	if _, err := c.Stdout.Enabled.resolve(false); err != nil {
		bad("stdout.enabled", "%v", err)
	}
	if c.Stdout.QueueSize <= 0 {
		bad("stdout.queue_size", "must be > 0")
	}
	if c.File.Enabled {
		if c.File.Path == "" {
			bad("file.path", "must not be empty")
		}
		if c.File.MaxBytes <= 0 {
			bad("file.max_bytes", "must be > 0")
		}
		if c.File.MaxFiles < 0 {
			bad("file.max_files", "must be ≥ 0")
		}
		if c.File.QueueSize <= 0 {
			bad("file.queue_size", "must be > 0")
		}
	}
	if c.ShutdownGrace <= 0 {
		bad("shutdown_grace", "must be > 0")
	}
	if k := c.Kafka; len(k.Brokers) > 0 {
		for i, b := range k.Brokers {
			if b == "" || !strings.Contains(b, ":") {
				bad(fmt.Sprintf("kafka.brokers[%d]", i), "%q is not host:port", b)
			}
		}
		if k.Topic == "" {
			bad("kafka.topic", "must not be empty")
		}
		for i, r := range k.Routes {
			if r.Topic == "" {
				bad(fmt.Sprintf("kafka.routes[%d].topic", i), "must not be empty")
			}
			if r.Check == "" && r.Severity == "" {
				bad(fmt.Sprintf("kafka.routes[%d]", i), "needs check or severity")
			}
			switch r.Severity {
			case "", "info", "warning", "error", "critical":
			default:
				bad(fmt.Sprintf("kafka.routes[%d].severity", i), "%q is not info, warning, error or critical", r.Severity)
			}
		}
		switch k.Acks {
		case "all", "one", "none":
		default:
			bad("kafka.acks", "%q is not all, one or none", k.Acks)
		}
		found := false
		for _, name := range compressions {
			found = found || k.Compression == name
		}
		if !found {
			bad("kafka.compression", "%q is not one of %s", k.Compression, strings.Join(compressions, ", "))
		}
		if k.BatchSize <= 0 {
			bad("kafka.batch_size", "must be > 0")
		}
		if k.BatchBytes <= 0 {
			bad("kafka.batch_bytes", "must be > 0")
		}
		if k.BatchTimeout <= 0 {
			bad("kafka.batch_timeout", "must be > 0")
		}
		if k.WriteTimeout <= 0 {
			bad("kafka.write_timeout", "must be > 0")
		}
		if err := k.TLS.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("kafka.tls.%w", err))
		}
		if err := k.SASL.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("kafka.sasl.%w", err))
		}
		if k.CreateTopics.Enabled {
			if k.CreateTopics.Partitions <= 0 && k.CreateTopics.Partitions != -1 {
				bad("kafka.create_topics.partitions", "must be > 0 or -1 (broker default)")
			}
			if k.CreateTopics.ReplicationFactor <= 0 && k.CreateTopics.ReplicationFactor != -1 {
				bad("kafka.create_topics.replication_factor", "must be > 0 or -1 (broker default)")
			}
		}
		if k.QueueSize <= 0 {
			bad("kafka.queue_size", "must be > 0")
		}
		if k.SpoolAfter <= 0 {
			bad("kafka.spool_after", "must be > 0")
		}
		if k.Spool.Dir == "" {
			bad("kafka.spool.dir", "must not be empty")
		}
		if k.Spool.SegmentBytes < 1024 {
			bad("kafka.spool.segment_bytes", "must be ≥ 1024")
		}
		if k.Spool.MaxBytes < 2*k.Spool.SegmentBytes {
			bad("kafka.spool.max_bytes", "must be ≥ 2 × segment_bytes")
		}
		switch k.Spool.Fsync {
		case spool.FsyncAlways, spool.FsyncBatch, spool.FsyncNever:
		default:
			bad("kafka.spool.fsync", "%q is not always, batch or never", k.Spool.Fsync)
		}
		if k.Spool.IntakeSize <= 0 {
			bad("kafka.spool.intake_size", "must be > 0")
		}
		if k.Spool.IntakeWait < 0 {
			bad("kafka.spool.intake_wait", "must be ≥ 0")
		}
		if k.RetryBackoffMin <= 0 {
			bad("kafka.retry_backoff_min", "must be > 0")
		}
		if k.RetryBackoffMax < k.RetryBackoffMin {
			bad("kafka.retry_backoff_max", "must be ≥ retry_backoff_min")
		}
	}
	return errors.Join(errs...)
}
