package main

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/flowcheck/flowcheck/clock"
	"github.com/flowcheck/flowcheck/scripting"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

type fakeTable struct {
	mu       sync.Mutex
	advanced []time.Time
}

func (f *fakeTable) Advance(now time.Time) {
	f.mu.Lock()
	f.advanced = append(f.advanced, now)
	f.mu.Unlock()
}

type fakeEngine struct {
	interval time.Duration
	mu       sync.Mutex
	ticks    []time.Time
	paced    []bool
	block    chan struct{} // when set, Tick waits on it
}

func (f *fakeEngine) Interval() time.Duration { return f.interval }

func (f *fakeEngine) Tick(_ context.Context, now time.Time, paced bool) scripting.TickStats {
	if f.block != nil {
		<-f.block
	}
	f.mu.Lock()
	f.ticks = append(f.ticks, now)
	f.paced = append(f.paced, paced)
	f.mu.Unlock()
	return scripting.TickStats{Hosts: 3, Calls: 21, Duration: time.Millisecond}
}

func TestSchedulerCaptureTime(t *testing.T) {
	table, engine := &fakeTable{}, &fakeEngine{interval: 10 * time.Second}
	reg := prometheus.NewRegistry()
	s, err := newScheduler(table, engine, clock.NewManual(time.Time{}), false, slog.New(slog.DiscardHandler), reg)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 27, 19, 0, 0, 0, time.UTC)
	// Datagrams every 3 s for 31 s: ticks are due at t0+10 (first seen at
	// t0+12), then 10 s after each tick.
	for d := time.Duration(0); d <= 31*time.Second; d += 3 * time.Second {
		s.advance(t0.Add(d))
	}
	s.finish(t0.Add(40 * time.Second))
	want := []time.Duration{12 * time.Second, 24 * time.Second, 40 * time.Second}
	if len(engine.ticks) != len(want) {
		t.Fatalf("ticks at %v, want offsets %v", engine.ticks, want)
	}
	for i, w := range want {
		if got := engine.ticks[i].Sub(t0); got != w {
			t.Errorf("tick %d at +%v, want +%v", i, got, w)
		}
	}
	if n := len(table.advanced); n != 12 {
		t.Errorf("table advanced %d times, want 12 (11 datagrams + finish)", n)
	}
	// Replay ticks run flat out: pacing by wall time has no meaning there.
	for i, p := range engine.paced {
		if p {
			t.Errorf("replay tick %d paced", i)
		}
	}
}

func TestSchedulerSkipsOverlappingTicks(t *testing.T) {
	table, engine := &fakeTable{}, &fakeEngine{interval: time.Second, block: make(chan struct{})}
	s, err := newScheduler(table, engine, clock.NewManual(time.Time{}), true, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	s.advance(t0)                      // schedules the first tick
	s.advance(t0.Add(time.Second))     // starts a tick, which blocks
	s.advance(t0.Add(2 * time.Second)) // due, but overlaps: skipped
	s.advance(t0.Add(3 * time.Second)) // skipped too
	if got := value(s.m.skipped); got != 2 {
		t.Fatalf("skipped = %v, want 2", got)
	}
	close(engine.block)
	s.wait()
	s.advance(t0.Add(4 * time.Second)) // runs again
	s.wait()
	if got := len(engine.ticks); got != 2 {
		t.Fatalf("ticks run = %v, want 2", got)
	}
	s.finish(t0.Add(5 * time.Second))
	// Live ticks are paced; the last one, at shutdown, is not.
	if want := []bool{true, true, false}; !slices.Equal(engine.paced, want) {
		t.Fatalf("paced = %v, want %v", engine.paced, want)
	}
}

// value reads a counter or gauge.
func value(c prometheus.Metric) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return m.Gauge.GetValue()
}

// ctxEngine ticks until its context is cancelled, telling when it started.
type ctxEngine struct {
	started chan struct{}
	ignore  chan struct{} // when set, the tick waits on it instead
}

func (e *ctxEngine) Interval() time.Duration { return time.Second }

func (e *ctxEngine) Tick(ctx context.Context, _ time.Time, _ bool) scripting.TickStats {
	close(e.started)
	if e.ignore != nil {
		<-e.ignore
	} else {
		<-ctx.Done()
	}
	return scripting.TickStats{}
}

// TestSchedulerStop checks that Stop cuts a running tick short and waits for
// it, and that a tick that does not end is reported at Stop's deadline
// rather than waited for forever.
func TestSchedulerStop(t *testing.T) {
	for _, stuck := range []bool{false, true} {
		engine := &ctxEngine{started: make(chan struct{})}
		if stuck {
			engine.ignore = make(chan struct{})
			defer close(engine.ignore)
		}
		s, err := newScheduler(&fakeTable{}, engine, clock.NewManual(time.Time{}), true, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		// The test is the one goroutine advancing time (no Start).
		t0 := time.Now()
		s.advance(t0)
		s.advance(t0.Add(time.Second)) // starts the tick
		<-engine.started
		timeout := time.Minute
		if stuck {
			timeout = 10 * time.Millisecond
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		err = s.Stop(ctx)
		cancel()
		if stuck != (err != nil) {
			t.Fatalf("stuck %v: Stop = %v", stuck, err)
		}
	}
}
