package main

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flowcheck/flowcheck/scripting"
	"github.com/prometheus/client_golang/prometheus"
)

// advancer is the host table's clock input (aggregate.HostTable).
type advancer interface {
	Advance(now time.Time)
}

// ticker is the check engine's tick input (scripting.Engine).
type ticker interface {
	Interval() time.Duration
	Tick(ctx context.Context, now time.Time) scripting.TickStats
}

// scheduler moves the pipeline's time forward: the one piece of code that
// decides reply windows, host expiry and ticks, live and in replay. Only one
// goroutine calls advance (the live loop, or the replay loop).
type scheduler struct {
	table  advancer
	engine ticker
	log    *slog.Logger
	m      *tickMetrics
	// async runs ticks in the background (live), so that a slow tick never
	// delays expiry; a tick due while the previous runs is skipped. Replay
	// runs them inline, in capture time, so results are deterministic.
	async bool
	ctx   context.Context

	next    time.Time
	running atomic.Bool
	wg      sync.WaitGroup
}

func newScheduler(ctx context.Context, table advancer, engine ticker, async bool, log *slog.Logger, reg prometheus.Registerer) (*scheduler, error) {
	m, err := newTickMetrics(reg)
	if err != nil {
		return nil, err
	}
	return &scheduler{table: table, engine: engine, log: log, m: m, async: async, ctx: ctx}, nil
}

// advance moves the table to now and runs a tick when one is due. The first
// tick is due one interval after the first call.
func (s *scheduler) advance(now time.Time) {
	s.table.Advance(now)
	if s.next.IsZero() {
		s.next = now.Add(s.engine.Interval())
		return
	}
	if now.Before(s.next) {
		return
	}
	// The next tick is one interval from now, not from the missed slot, so
	// that a stalled clock does not cause a burst of catch-up ticks.
	s.next = now.Add(s.engine.Interval())
	if !s.async {
		s.tick(now)
		return
	}
	if !s.running.CompareAndSwap(false, true) {
		s.m.skipped.Inc()
		s.log.Warn("tick skipped: the previous one is still running", "interval", s.engine.Interval())
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer s.running.Store(false)
		s.tick(now)
	}()
}

// finish waits for a running tick, moves the table to now and runs a last
// tick, so that conversations decided at the end are checked.
func (s *scheduler) finish(now time.Time) {
	s.wg.Wait()
	s.table.Advance(now)
	s.tick(now)
}

// wait returns when no tick is running.
func (s *scheduler) wait() { s.wg.Wait() }

func (s *scheduler) tick(now time.Time) {
	st := s.engine.Tick(s.ctx, now)
	s.m.ticks.Inc()
	s.m.duration.Observe(st.Duration.Seconds())
	s.m.hosts.Set(float64(st.Hosts))
	s.m.calls.Add(float64(st.Calls))
	s.m.errors.Add(float64(st.Errors))
	s.m.timeouts.Add(float64(st.Timeouts))
	level := slog.LevelDebug
	if st.Errors > 0 || st.Duration > s.engine.Interval()/2 {
		level = slog.LevelWarn
	}
	s.log.Log(s.ctx, level, "tick", "time", now.UTC().Format(time.RFC3339Nano), "duration", st.Duration,
		"hosts", st.Hosts, "calls", st.Calls, "errors", st.Errors, "timeouts", st.Timeouts)
}

// tickMetrics are the scheduler's metrics.
type tickMetrics struct {
	ticks, skipped, calls, errors, timeouts prometheus.Counter
	hosts                                   prometheus.Gauge
	duration                                prometheus.Histogram
}

func newTickMetrics(reg prometheus.Registerer) (*tickMetrics, error) {
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: "flowcheck", Subsystem: "tick", Name: name, Help: help})
	}
	m := &tickMetrics{
		ticks:    counter("runs_total", "Ticks run."),
		skipped:  counter("skipped_total", "Ticks skipped because the previous one was still running."),
		calls:    counter("script_calls_total", "check(host_info) calls made by ticks."),
		errors:   counter("script_errors_total", "check(host_info) calls that failed (timeouts included)."),
		timeouts: counter("script_timeouts_total", "check(host_info) calls stopped by the call budget."),
		hosts: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "flowcheck", Subsystem: "tick", Name: "hosts",
			Help: "Hosts visited by the last tick."}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "flowcheck", Subsystem: "tick", Name: "duration_seconds",
			Help: "Wall time of a tick.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 10)}),
	}
	for _, c := range []prometheus.Collector{m.ticks, m.skipped, m.calls, m.errors, m.timeouts, m.hosts, m.duration} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
