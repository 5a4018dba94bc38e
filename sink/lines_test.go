package sink

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowcheck/flowcheck/alert"
)

// syncBuffer is a bytes.Buffer safe for the sink goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func ids(t *testing.T, text string) []string {
	t.Helper()
	var out []string
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		var ev alert.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("bad line %q: %v", sc.Text(), err)
		}
		if ev.Schema != 1 {
			t.Fatalf("schema %d", ev.Schema)
		}
		out = append(out, ev.ID)
	}
	return out
}

func wantIDs(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("ev-%05d", i))
	}
	return out
}

func TestStdoutDefault(t *testing.T) {
	var out syncBuffer
	cfg := DefaultConfiguration()
	c, err := New(cfg, Dependencies{Registerer: prometheus.NewRegistry(), Stdout: &out})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Sinks()) != 1 || c.Sinks()[0].Name() != "stdout" {
		t.Fatalf("default sinks: %v", c.Sinks())
	}
	if err := c.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !c.Ready() {
		t.Fatal("not ready")
	}
	for i := range 100 {
		c.Publish(event(i))
	}
	if err := c.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := ids(t, out.String()); !slices.Equal(got, wantIDs(0, 100)) {
		t.Fatalf("stdout ids %v", got)
	}
	if got := counter(c, c.metrics.delivered, "stdout", ""); got != 100 {
		t.Fatalf("delivered = %v", got)
	}
}

func TestStdoutSwitch(t *testing.T) {
	cases := []struct {
		enabled Switch
		brokers []string
		want    bool
	}{
		{SwitchAuto, nil, true},
		{SwitchAuto, []string{"127.0.0.1:1"}, false},
		{SwitchTrue, []string{"127.0.0.1:1"}, true},
		{"1", nil, true},
		{SwitchFalse, nil, false},
		{"0", nil, false},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s-%d", tc.enabled, len(tc.brokers)), func(t *testing.T) {
			cfg := DefaultConfiguration()
			cfg.Stdout.Enabled = tc.enabled
			cfg.Kafka.Brokers = tc.brokers
			cfg.Kafka.Spool.Dir = t.TempDir()
			c, err := New(cfg, Dependencies{Registerer: prometheus.NewRegistry(), Stdout: &syncBuffer{}})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Stop(context.Background())
			got := slices.ContainsFunc(c.Sinks(), func(s AlertSink) bool { return s.Name() == "stdout" })
			if got != tc.want {
				t.Fatalf("stdout enabled = %v, want %v", got, tc.want)
			}
		})
	}
}

// blockingWriter blocks every write until released, to fill the queue.
type blockingWriter struct{ release chan struct{} }

func (b blockingWriter) Write(p []byte) (int, error) {
	<-b.release
	return len(p), nil
}

func TestStdoutQueueFullCounted(t *testing.T) {
	w := blockingWriter{release: make(chan struct{})}
	cfg := DefaultConfiguration()
	cfg.Stdout.QueueSize = 10
	c, err := New(cfg, Dependencies{Registerer: prometheus.NewRegistry(), Stdout: w})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	const n = 100
	for i := range n {
		c.Publish(event(i))
	}
	close(w.release)
	if err := c.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	delivered := counter(c, c.metrics.delivered, "stdout", "")
	dropped := counter(c, c.metrics.dropped, "stdout", "", "queue_full")
	if dropped == 0 || delivered+dropped != n {
		t.Fatalf("delivered %v + dropped %v != %d", delivered, dropped, n)
	}
}

func TestFileRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "alerts.jsonl")
	cfg := DefaultConfiguration()
	cfg.Stdout.Enabled = SwitchFalse
	cfg.File = FileConfiguration{Enabled: true, Path: path, MaxBytes: 4 << 10, MaxFiles: 3, QueueSize: 1000}
	c, err := New(cfg, Dependencies{Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	const n = 200 // ~80 KiB: many rotations
	for i := range n {
		c.Publish(event(i))
	}
	if err := c.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	var all []string
	for _, name := range []string{path + ".3", path + ".2", path + ".1", path} {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatalf("read %s: %v", name, err)
		}
		if len(b) > 4<<10 {
			t.Fatalf("%s is %d bytes, above max_bytes", name, len(b))
		}
		all = append(all, ids(t, string(b))...)
	}
	if _, err := os.Stat(path + ".4"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s.4 should not exist: %v", path, err)
	}
	// The kept files hold the newest alerts, contiguous and in order.
	if want := wantIDs(n-len(all), n); !slices.Equal(all, want) {
		t.Fatalf("files hold %v, want %v", all, want)
	}
}

func TestValidate(t *testing.T) {
	if err := DefaultConfiguration().Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	cases := []struct {
		name   string
		mutate func(*Configuration)
		want   string
	}{
		{"stdout switch", func(c *Configuration) { c.Stdout.Enabled = "maybe" }, "stdout.enabled:"},
		{"grace", func(c *Configuration) { c.ShutdownGrace = 0 }, "shutdown_grace:"},
		{"file path", func(c *Configuration) { c.File.Enabled = true; c.File.Path = "" }, "file.path:"},
		{"broker", func(c *Configuration) { c.Kafka.Brokers = []string{"nohost"} }, "kafka.brokers[0]:"},
		{"acks", func(c *Configuration) { c.Kafka.Brokers = []string{"h:9092"}; c.Kafka.Acks = "two" }, "kafka.acks:"},
		{"compression", func(c *Configuration) { c.Kafka.Brokers = []string{"h:9092"}; c.Kafka.Compression = "brotli" }, "kafka.compression:"},
		{"route", func(c *Configuration) {
			c.Kafka.Brokers = []string{"h:9092"}
			c.Kafka.Routes = []Route{{Topic: "x"}}
		}, "kafka.routes[0]:"},
		{"route severity", func(c *Configuration) {
			c.Kafka.Brokers = []string{"h:9092"}
			c.Kafka.Routes = []Route{{Severity: "fatal", Topic: "x"}}
		}, "kafka.routes[0].severity:"},
		{"sasl", func(c *Configuration) { c.Kafka.Brokers = []string{"h:9092"}; c.Kafka.SASL.Mechanism = "gssapi" }, "kafka.sasl.mechanism:"},
		{"sasl user", func(c *Configuration) { c.Kafka.Brokers = []string{"h:9092"}; c.Kafka.SASL.Mechanism = "plain" }, "kafka.sasl.username:"},
		{"spool", func(c *Configuration) { c.Kafka.Brokers = []string{"h:9092"}; c.Kafka.Spool.MaxBytes = 10 }, "kafka.spool.max_bytes:"},
		{"fsync", func(c *Configuration) { c.Kafka.Brokers = []string{"h:9092"}; c.Kafka.Spool.Fsync = "sometimes" }, "kafka.spool.fsync:"},
		{"intake size", func(c *Configuration) { c.Kafka.Brokers = []string{"h:9092"}; c.Kafka.Spool.IntakeSize = 0 }, "kafka.spool.intake_size:"},
		{"intake wait", func(c *Configuration) { c.Kafka.Brokers = []string{"h:9092"}; c.Kafka.Spool.IntakeWait = -1 }, "kafka.spool.intake_wait:"},
		{"backoff", func(c *Configuration) { c.Kafka.Brokers = []string{"h:9092"}; c.Kafka.RetryBackoffMax = 1 }, "kafka.retry_backoff_max:"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfiguration()
			tc.mutate(&c)
			err := c.Validate()
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want prefix %q", err, tc.want)
			}
		})
	}
}
