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
)

// AlertSink is one destination of alert events.
type AlertSink interface {
	// Name is the sink's name in logs and metric labels.
	Name() string
	// Start starts delivery (and, for Kafka, the spool replay).
	Start() error
	// Enqueue hands one event and its JSON encoding to the sink. It never
	// blocks on I/O to the destination; an event it cannot keep is counted
	// and logged.
	Enqueue(ev *alert.Event, value []byte)
	// Ready tells whether the sink is delivering or safely spooling.
	Ready() bool
	// Close stops intake, flushes what it can before ctx expires, keeps
	// the rest durable when it can (Kafka spool) and returns.
	Close(ctx context.Context) error
}

// Dependencies are what the component needs from the outside.
type Dependencies struct {
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Stdout is where the stdout sink writes; main passes os.Stdout.
	Stdout io.Writer
}

// Component fans alert events out to the configured sinks.
type Component struct {
	config  Configuration
	log     *slog.Logger
	metrics *metrics
	sinks   []AlertSink
	stopped atomic.Bool
	limiter *logLimiter
	stop    sync.Once
}

// New builds the sinks the configuration enables. The Kafka spool is opened
// (and checked) here, so that a bad spool directory fails at start-up.
func New(config Configuration, deps Dependencies) (*Component, error) {
	if err := config.Validate(); err != nil {
		return nil, err
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Registerer == nil {
		deps.Registerer = prometheus.NewRegistry()
	}
	if deps.Stdout == nil {
		deps.Stdout = os.Stdout
	}
	m, err := newMetrics(deps.Registerer)
	if err != nil {
		return nil, fmt.Errorf("sinks: metrics: %w", err)
	}
	c := &Component{
		config:  config,
		log:     deps.Logger.With("component", "sinks"),
		metrics: m,
		limiter: newLogLimiter(10 * time.Second),
	}
	kafkaOn := len(config.Kafka.Brokers) > 0
	stdoutOn, _ := config.Stdout.Enabled.resolve(!kafkaOn)
	if stdoutOn {
		c.sinks = append(c.sinks, newLineSink("stdout", writerLines{deps.Stdout},
			config.Stdout.QueueSize, m, c.log, c.limiter))
	}
	if config.File.Enabled {
		f, err := openRotating(config.File.Path, config.File.MaxBytes, config.File.MaxFiles)
		if err != nil {
			return nil, fmt.Errorf("sinks: file.path: %w", err)
		}
		c.sinks = append(c.sinks, newLineSink("file", f, config.File.QueueSize, m, c.log, c.limiter))
	}
	if kafkaOn {
		k, err := newKafkaSink(config.Kafka, m, c.log, c.limiter)
		if err != nil {
			for _, s := range c.sinks {
				_ = s.Close(context.Background())
			}
			return nil, fmt.Errorf("sinks: kafka: %w", err)
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
func (c *Component) Start() error {
	for _, s := range c.sinks {
		if err := s.Start(); err != nil {
			return fmt.Errorf("sinks: %s: %w", s.Name(), err)
		}
	}
	return nil
}

// Publish hands ev to every sink. It never blocks on the network: the Kafka
// sink spools when its queue is full or the brokers are unreachable; stdout
// and file count a drop and log when theirs is full.
func (c *Component) Publish(ev alert.Event) {
	if c.stopped.Load() || len(c.sinks) == 0 {
		for _, s := range c.sinks {
			c.metrics.dropped.WithLabelValues(s.Name(), "", "stopped").Inc()
		}
		if ok, n := c.limiter.allow("publish-stopped"); ok {
			c.log.Warn("alert published after shutdown or without sink, dropped",
				"id", ev.ID, "check", ev.Check, "suppressed", n)
		}
		return
	}
	value, err := json.Marshal(&ev)
	if err != nil {
		// Only a broken time value can fail here; keep a trace of it.
		for _, s := range c.sinks {
			c.metrics.dropped.WithLabelValues(s.Name(), "", "encode").Inc()
		}
		if ok, n := c.limiter.allow("encode"); ok {
			c.log.Error("cannot encode alert, dropped", "id", ev.ID, "error", err, "suppressed", n)
		}
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
				if e := s.Close(ctx); e != nil {
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

// logLimiter lets one message per key through per interval and counts the
// ones it held back, so that a per-alert problem cannot flood the log. Keys
// are a small fixed set (reasons), so its maps stay small.
type logLimiter struct {
	interval   time.Duration
	mu         sync.Mutex
	last       map[string]time.Time
	suppressed map[string]int
}

func newLogLimiter(interval time.Duration) *logLimiter {
	return &logLimiter{interval: interval, last: map[string]time.Time{}, suppressed: map[string]int{}}
}

// allow tells whether to log now, and how many messages were held back
// since the last one.
func (l *logLimiter) allow(key string) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if last, ok := l.last[key]; ok && now.Sub(last) < l.interval {
		l.suppressed[key]++
		return false, 0
	}
	n := l.suppressed[key]
	l.last[key] = now
	l.suppressed[key] = 0
	return true, n
}
