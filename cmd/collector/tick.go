package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flowcheck/flowcheck/clock"
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
	Tick(ctx context.Context, now time.Time, paced bool) scripting.TickStats
}

// heldTicker is role check's engine: no tick runs while held says so (a
// partition rebuilding, or the group rebalancing), so that no alert comes
// from a partial host state. The scheduler logs a held tick as one of no
// host; it is not counted as skipped (the engine was not late).
type heldTicker struct {
	ticker
	held func() bool
	// after runs after each tick that ran: the alert checkpoints.
	after func(ctx context.Context)
}

// Tick runs the engine's tick unless held.
func (h heldTicker) Tick(ctx context.Context, now time.Time, paced bool) scripting.TickStats {
	if h.held() {
		return scripting.TickStats{}
	}
	st := h.ticker.Tick(ctx, now, paced)
	h.after(ctx)
	return st
}

// scheduler moves the pipeline's time forward: the one piece of code that
// decides reply windows, host expiry and ticks, live and in replay. Only one
// goroutine calls advance (the live loop, or the replay loop).
type scheduler struct {
	table  advancer
	engine ticker
	clock  clock.Clock
	log    *slog.Logger
	m      *tickMetrics
	// async runs ticks in the background (live), so that a slow tick never
	// delays expiry; a tick due while the previous runs is skipped. Replay
	// runs them inline, in capture time, so results are deterministic.
	async bool
	// ctx is the ticks' context, cancelled by Stop.
	ctx    context.Context
	cancel context.CancelFunc
	// loopDone is closed when the live loop returns (nil without one).
	loopDone chan struct{}

	next    time.Time
	running atomic.Bool
	wg      sync.WaitGroup
}

func newScheduler(table advancer, engine ticker, clk clock.Clock, async bool, log *slog.Logger, reg prometheus.Registerer) (*scheduler, error) {
	m, err := newTickMetrics(reg)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &scheduler{table: table, engine: engine, clock: clk, log: log, m: m, async: async, ctx: ctx, cancel: cancel}, nil
}

// Start starts live time (async): every second the table decides reply
// windows and expires idle hosts, and the tick runs when due. In replay the
// capture's loop calls advance and Start does nothing.
func (s *scheduler) Start(context.Context) error {
	if !s.async {
		return nil
	}
	s.loopDone = make(chan struct{})
	go func() {
		defer close(s.loopDone)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-s.ctx.Done():
				return
			case <-t.C:
				s.advance(s.clock.Now())
			}
		}
	}()
	return nil
}

// Stop stops live time and cuts a running tick short (the checks not yet
// run on a host do not run), waiting for it until ctx ends.
func (s *scheduler) Stop(ctx context.Context) error {
	s.cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		if s.loopDone != nil {
			<-s.loopDone
		}
		s.wait()
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("a tick still running: %w", ctx.Err())
	}
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
		s.tick(now, false)
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
		s.tick(now, true)
	}()
}

// finish waits for a running tick, moves the table to now and runs a last
// tick, so that conversations decided at the end are checked.
func (s *scheduler) finish(now time.Time) {
	s.wg.Wait()
	s.table.Advance(now)
	s.tick(now, false)
}

// wait returns when no tick is running.
func (s *scheduler) wait() { s.wg.Wait() }

// tick runs one tick; a live one is paced (see scripting.TickSpread).
func (s *scheduler) tick(now time.Time, paced bool) {
	st := s.engine.Tick(s.ctx, now, paced)
	level := slog.LevelDebug
	// Warn when the tick ran past half of the time left after its pacing:
	// the checks are then close to not fitting in the interval.
	if st.Errors > 0 || st.Duration > st.Paced+(s.engine.Interval()-st.Paced)/2 {
		level = slog.LevelWarn
	}
	s.log.Log(s.ctx, level, "tick", "time", now.UTC().Format(time.RFC3339Nano), "duration", st.Duration,
		"hosts", st.Hosts, "calls", st.Calls, "errors", st.Errors, "timeouts", st.Timeouts)
}

// tickMetrics are the scheduler's metrics. What a tick did (runs, duration,
// hosts, calls, errors) is the engine's to count; only a tick that never ran
// is the scheduler's, counted in the same family
// (flowcheck_scripting_ticks_skipped_total beside ticks_total).
type tickMetrics struct {
	skipped prometheus.Counter
}

func newTickMetrics(reg prometheus.Registerer) (*tickMetrics, error) {
	m := &tickMetrics{
		skipped: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "flowcheck", Subsystem: "scripting", Name: "ticks_skipped_total",
			Help: "Ticks skipped because the previous one was still running."}),
	}
	if err := reg.Register(m.skipped); err != nil {
		return nil, err
	}
	return m, nil
}
