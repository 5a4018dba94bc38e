package scripting

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flowcheck/flowcheck/alert"
)

// TickStats summarises one tick.
type TickStats struct {
	// Hosts is the number of hosts evaluated.
	Hosts int
	// Calls, Errors and Timeouts count check(host_info) calls; Timeouts are
	// also counted in Errors.
	Calls, Errors, Timeouts int
	// Duration is the wall time the tick took.
	Duration time.Duration
	// Paced is the time the walk over the hosts was spread over (see
	// Configuration.TickSpread); 0 when the tick ran flat out.
	Paced time.Duration
}

// tickChunk is how many hosts a worker takes at a time.
const tickChunk = 64

// Tick runs every due check on every host, split across the VMs, and
// publishes the resulting events. It returns when all hosts are done (or ctx
// is cancelled). A paced tick (live) spreads its walk over the hosts across
// TickSpread of the interval, by wall time; an unpaced one (replay, the
// last tick at shutdown) runs flat out.
func (e *Engine) Tick(ctx context.Context, now time.Time, paced bool) TickStats {
	start := time.Now()
	e.runMu.Lock()
	defer e.runMu.Unlock()
	if len(e.vms) == 0 {
		return TickStats{}
	}
	var over time.Duration
	if paced {
		over = time.Duration(float64(e.Interval()) * e.cfg.TickSpread)
	}
	e.tickNo++
	tick := e.tickNo
	set := e.set

	e.keys = e.deps.Hosts.AppendKeys(e.keys[:0])
	e.hosts.expiredSeen.Store(0)
	e.hosts.tick.Store(tick)
	defer e.hosts.tick.Store(0)

	due := make([]bool, len(set.checks))
	for i, sc := range set.checks {
		due[i] = sc.cfg.Enabled && (tick-1)%uint64(sc.cfg.Every) == 0
	}

	budgets := make([]*budget, len(e.vms))
	for i, v := range e.vms {
		if v.holdsDisabled(set) {
			v.close()
			v = newVM(e, set, e.cfg.limits())
			e.vms[i] = v
		}
		budgets[i] = v.budget
	}
	// The CPU-time backstop applies to live (paced) ticks only: replay
	// counts instructions alone, and gives the same result on any machine.
	lim := watchLimits{memory: e.cfg.MaxMemory}
	if paced {
		lim.cpu = e.cfg.CallTimeout
	}
	wdStop, wdDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(wdDone)
		watchdog(ctx, wdStop, budgets, lim, &e.walked)
	}()

	var next atomic.Int64
	var wg sync.WaitGroup
	n := int64(len(e.keys))
	walkStart := time.Now()
	for _, v := range e.vms {
		v.missing = v.missing[:0]
		v.seen = 0
		wg.Add(1)
		go func() {
			defer wg.Done()
			// The watchdog reads the CPU clock of this thread.
			v.budget.tid.Store(pinThread())
			defer func() {
				v.budget.tid.Store(0)
				unpinThread()
			}()
			for ctx.Err() == nil {
				i := next.Add(tickChunk) - tickChunk
				if i >= n {
					return
				}
				if over > 0 {
					// The chunk at i starts no earlier than its
					// share of the spread.
					at := walkStart.Add(time.Duration(float64(over) * float64(i) / float64(n)))
					if !sleepUntil(ctx, at) {
						return
					}
				}
				for _, k := range e.keys[i:min(i+tickChunk, n)] {
					if ctx.Err() != nil {
						return
					}
					h := e.hosts.seen(k, tick)
					v.seen++
					if !v.runHost(set, h, due, now) {
						v.missing = append(v.missing, h)
					}
				}
			}
		}()
	}
	wg.Wait()
	close(wdStop)
	<-wdDone
	for _, v := range e.vms {
		if v.budget.walk.Load() {
			v.measureChecks(set)
		}
	}

	// Hosts the table no longer has: release their alerts, drop their state.
	e.missing = e.missing[:0]
	seen := int64(0)
	for _, v := range e.vms {
		e.missing = append(e.missing, v.missing...)
		seen += v.seen
	}
	// The keys are distinct, so the map holds entries of hosts the table no
	// longer has only when it is larger than the entries of this tick still
	// in it: most ticks skip the walk. A cancelled tick did not see every
	// host and removes nothing.
	if ctx.Err() == nil && int64(e.hosts.count()) > seen-e.hosts.expiredSeen.Load() {
		e.missing = e.hosts.removeStale(tick, e.missing)
	}
	for _, h := range e.missing {
		e.hosts.drop(h)
	}
	var evs []alert.Event
	for _, h := range e.missing {
		h.mu.Lock()
		if !h.dead {
			h.dead = true
			e.releaseAll(h, alert.HostExpired, now, &evs)
		}
		h.mu.Unlock()
	}
	e.publish(evs)
	e.quiet.tick()
	e.afterTick(ctx, now, set)

	stats := TickStats{Hosts: int(seen)}
	for i, sc := range set.checks {
		var c checkStats
		for _, v := range e.vms {
			c.calls += v.stats[i].calls
			c.errors += v.stats[i].errors
			c.timeouts += v.stats[i].timeouts
			c.steps += v.stats[i].steps
			c.timed += v.stats[i].timed
			c.nanos += v.stats[i].nanos
			v.stats[i] = checkStats{}
		}
		stats.Calls += int(c.calls)
		stats.Errors += int(c.errors)
		stats.Timeouts += int(c.timeouts)
		e.metrics.calls.WithLabelValues(sc.name).Add(float64(c.calls))
		e.metrics.errors.WithLabelValues(sc.name).Add(float64(c.errors))
		e.metrics.timeouts.WithLabelValues(sc.name).Add(float64(c.timeouts))
		e.read.add(sc.name, c)
	}
	stats.Duration, stats.Paced = time.Since(start), over
	e.metrics.ticks.Inc()
	e.metrics.tickSeconds.Observe(stats.Duration.Seconds())
	e.metrics.hosts.Set(float64(stats.Hosts))
	return stats
}

// sleepUntil waits until t; it returns false when ctx ends first.
func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return true
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}
