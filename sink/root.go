// Package sink delivers alert events to their destinations: Kafka topics
// (with an on-disk spool so that an outage loses nothing), standard output
// and a size-rotated file. Several sinks run at once, each behind its own
// bounded queue so that a slow one does not hold the others.
package sink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowcheck/flowcheck/alert"
	"github.com/flowcheck/flowcheck/clock"
	"github.com/flowcheck/flowcheck/internal/defaults"
	"github.com/flowcheck/flowcheck/internal/ratelog"
)

// AlertSink is one destination of alert events.
type AlertSink interface {
	// Name is the sink's name in logs and metric labels.
	Name() string
	// Start starts delivery (and, for Kafka, the spool replay) without
	// waiting for the destination.
	Start(ctx context.Context) error
	// Enqueue hands one event and its JSON encoding to the sink. It never
	// writes to the destination or to a spool, and waits a bounded time
	// if at all; an event it cannot keep is counted and logged.
	Enqueue(ev *alert.Event, value []byte)
	// Ready tells whether the sink is delivering or safely spooling.
	Ready() bool
	// Stop stops intake, flushes what it can before ctx expires, keeps
	// the rest durable when it can (Kafka spool) and returns.
	Stop(ctx context.Context) error
}

// Dependencies are what the component needs from the outside.
type Dependencies struct {
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Stdout is where the stdout sink writes; main passes os.Stdout.
	Stdout io.Writer
	// Clock paces the rate-limited log lines; nil is the wall clock.
	Clock clock.Clock
}

// Component fans alert events out to the configured sinks.
type Component struct {
	config  Configuration
	log     *slog.Logger
	metrics *metrics
	sinks   []AlertSink
	stopped atomic.Bool
	logs    *ratelog.Logger[logKey]
	stop    sync.Once
}

// New builds the sinks the configuration enables. The Kafka spool is opened
// (and checked) here, so that a bad spool directory fails at start-up.
func New(config Configuration, deps Dependencies) (*Component, error) {
	if err := config.Validate(); err != nil {
		return nil, err
	}
	deps.Logger = defaults.Logger(deps.Logger)
	deps.Registerer = defaults.Registerer(deps.Registerer)
	deps.Clock = defaults.Clock(deps.Clock)
	if deps.Stdout == nil {
		deps.Stdout = os.Stdout
	}
	m, err := newMetrics(deps.Registerer)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	c := &Component{
		config:  config,
		log:     deps.Logger.With("component", "sinks"),
		metrics: m,
	}
	c.logs = newLogs(c.log, deps.Clock)
	kafkaOn := len(config.Kafka.Brokers) > 0
	stdoutOn, _ := config.Stdout.Enabled.resolve(!kafkaOn)
	if stdoutOn {
		c.sinks = append(c.sinks, newLineSink("stdout", writerLines{deps.Stdout},
			config.Stdout.QueueSize, m, c.log, deps.Clock))
	}
	if config.File.Enabled {
		f, err := openRotating(config.File.Path, config.File.MaxBytes, config.File.MaxFiles)
		if err != nil {
			return nil, fmt.Errorf("file.path: %w", err)
		}
		c.sinks = append(c.sinks, newLineSink("file", f, config.File.QueueSize, m, c.log, deps.Clock))
	}
	if kafkaOn {
		k, err := newKafkaSink(config.Kafka, m, c.log, deps.Clock)
		if err != nil {
			for _, s := range c.sinks {
				_ = s.Stop(context.Background())
			}
			return nil, fmt.Errorf("kafka: %w", err)
		}
		c.sinks = append(c.sinks, k)
	}
	if len(c.sinks) == 0 {
		c.log.Warn("no alert sink enabled: alerts are counted as dropped")
	}
	return c, nil
}

// Sinks returns the configured sinks (for tests and diagnostics).
func (c *Component) Sinks() []AlertSink { return c.sinks }

// Start starts every sink; the Kafka sink begins by replaying its spool.
// Nothing in it waits: ctx only stops a start already cancelled.
func (c *Component) Start(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, s := range c.sinks {
		if err := s.Start(ctx); err != nil {
			return fmt.Errorf("%s: %w", s.Name(), err)
		}
	}
	return nil
}

// Publish hands ev to every sink. It never writes to a destination or a
// spool itself: the Kafka sink spools (through its spool writer) when its
// queue is full or the brokers are unreachable; stdout and file count a
// drop and log when theirs is full. It waits only when the Kafka spool
// writer is behind by intake_size alerts, and at most intake_wait (see
// toTail).
func (c *Component) Publish(ev alert.Event) {
	if c.stopped.Load() || len(c.sinks) == 0 {
		for _, s := range c.sinks {
			c.metrics.dropped.WithLabelValues(s.Name(), "", "stopped").Inc()
		}
		c.logs.Log(slog.LevelWarn, logKey{event: "publish-stopped"},
			"alert published after shutdown or without sink, dropped", "id", ev.ID, "check", ev.Check)
		return
	}
	value, err := json.Marshal(&ev)
	if err != nil {
		// Only a broken time value can fail here; keep a trace of it.
		for _, s := range c.sinks {
			c.metrics.dropped.WithLabelValues(s.Name(), "", "encode").Inc()
		}
		c.logs.Log(slog.LevelError, logKey{event: "encode"}, "cannot encode alert, dropped", "id", ev.ID, "error", err)
		return
	}
	for _, s := range c.sinks {
		s.Enqueue(&ev, value)
	}
}

// Stop stops intake, lets every sink flush for at most shutdown_grace (or
// until ctx ends), spools what Kafka did not acknowledge and returns.
func (c *Component) Stop(ctx context.Context) error {
	var err error
	c.stop.Do(func() {
		c.stopped.Store(true)
		ctx, cancel := context.WithTimeout(ctx, c.config.ShutdownGrace)
		defer cancel()
		errs := make([]error, len(c.sinks))
		var wg sync.WaitGroup
		for i, s := range c.sinks {
			wg.Go(func() {
				if e := s.Stop(ctx); e != nil {
					errs[i] = fmt.Errorf("%s: %w", s.Name(), e)
				}
			})
		}
		wg.Wait()
		err = errors.Join(errs...)
	})
	return err
}

// Ready tells whether every sink is delivering or safely spooling.
func (c *Component) Ready() bool {
	if c.stopped.Load() {
		return false
	}
	for _, s := range c.sinks {
		if !s.Ready() {
			return false
		}
	}
	return true
}

// logKey names a rate-limited log line: an event and, for some, its reason
// or kind. A struct rather than a joined string, so that a line held back
// allocates nothing.
type logKey struct{ event, detail string }

// newLogs returns the rate-limited logger of a sink or of the component:
// one line per key every 10 s. Its keys are events × a bounded set of
// reasons and error kinds.
func newLogs(log *slog.Logger, clk clock.Clock) *ratelog.Logger[logKey] {
	return ratelog.New[logKey](log, clk, 10*time.Second, 64)
}
