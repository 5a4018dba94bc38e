package scripting

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/flowcheck/flowcheck/alert"
)

// runHost runs the due checks of one host, then publishes their events
// (after the host's lock is released). It returns false when the host table
// no longer has the host.
func (v *vm) runHost(set *scriptSet, h *hostEntry, due []bool, now time.Time) bool {
	h.mu.Lock()
	ok := v.runChecks(set, h, due, now, &v.events)
	h.mu.Unlock()
	v.e.publish(v.events)
	clear(v.events) // the sinks have them; keep no strings alive
	v.events = v.events[:0]
	return ok
}

// runChecks is runHost with h.mu held; the events go to evs.
func (v *vm) runChecks(set *scriptSet, h *hostEntry, due []bool, now time.Time, evs *[]alert.Event) bool {
	if h.dead {
		return true
	}
	if !v.e.deps.Hosts.Snapshot(h.key(), &v.snapBuf) {
		return false
	}
	if h.ext != nil && h.ext.host.IP != "" {
		h.ext.setIdentity(&v.snapBuf)
	}
	v.entry, v.snap, v.now = h, &v.snapBuf, now
	v.ipLV, v.macLV, v.nameLV = nil, nil, nil
	v.quiet = v.e.quiet.has(h.key())
	unix := now.Unix()
	for i, sc := range set.checks {
		if !due[i] || (sc.cfg.LocalOnly && !v.snapBuf.Local) {
			continue
		}
		vc := &v.checks[i]
		if sc.disabled.Load() {
			// A disabled check's states are freed.
			h.dropState(sc.slot)
			continue
		}
		if vc.fn == nil {
			continue
		}
		if x := h.peek(sc.slot); x != nil && x.skipUntil != 0 {
			if unix < x.skipUntil {
				continue
			}
			x.skipUntil = 0
		}
		v.call(sc, vc, h, i, evs)
	}
	// A check that was removed or disabled, or no longer runs on this host
	// (local_only), leaves no engaged alert behind.
	if h.ext != nil {
		for i := range h.ext.slots {
			if h.ext.slots[i].alert != nil && !set.active(i, v.snapBuf.Local) {
				v.e.release(h, i, v.e.slotName(i), set.inactiveReason(i), now, evs)
			}
		}
		h.compact()
	}
	v.entry, v.snap, v.check = nil, nil, nil
	v.ipLV, v.macLV, v.nameLV = nil, nil, nil
	return true
}

// call runs check(host_info) for the bound host and applies the alert
// lifecycle: a triggering run engages or updates the alert, a run that does
// not trigger releases it, a failed run leaves it as it was (what it wrote
// in its state is kept either way, as a live table's would be).
func (v *vm) call(sc *script, vc *vmCheck, h *hostEntry, i int, evs *[]alert.Event) {
	L := v.L
	v.slot, v.check = sc.slot, vc
	v.triggered = false
	if v.l7All != nil {
		// The previous call's host.l7() result is the script's now.
		v.l7All = nil
		clear(v.l7Protos)
		v.l7Protos = v.l7Protos[:0]
	}
	state := v.stateFor(h, sc.slot, vc)
	L.Push(vc.fn)
	L.Push(vc.info)
	st := &v.stats[i]
	timed := st.calls%timeEvery == 0
	var start time.Time
	if timed {
		start = time.Now()
	}
	v.budget.arm(v.lim.steps)
	err := L.PCall(1, 0, nil)
	stopped := v.budget.disarm()
	if timed {
		st.timed++
		st.nanos += uint64(time.Since(start))
	}
	st.steps += uint64(v.budget.steps)
	if !v.freeze(h, sc.slot, vc, state) && err == nil {
		err = fmt.Errorf("host_info.state larger than %d bytes: emptied", maxStateBytes)
	}
	h.setRun(sc.slot)
	st.calls++
	if v.budget.walk.Load() {
		v.measureChecks(v.set)
	}
	if err != nil {
		st.errors++
		if stopped != stopNone {
			st.timeouts++
		}
		if stopped == stopMemory {
			v.e.overMemory(sc, -1)
		}
		v.e.failed(sc, h, err, stopped != stopNone)
		return
	}
	if sc.fails.Load() != 0 {
		sc.fails.Store(0)
	}
	switch {
	case v.quiet:
		// A warm-up run (Engine.Quiet): an adopted alert is updated,
		// nothing is engaged or released.
		if x := h.peek(sc.slot); v.triggered && x != nil && x.alert != nil {
			v.e.engage(h, v.snap, sc.slot, sc.name, v.tValue, v.tMsg, v.now, evs)
		}
		v.tMsg = ""
	case v.triggered:
		v.e.engage(h, v.snap, sc.slot, sc.name, v.tValue, v.tMsg, v.now, evs)
		v.tMsg = ""
	default:
		v.e.release(h, sc.slot, sc.name, alert.Cleared, v.now, evs)
	}
}

// failed counts a failed call, logs it (rate-limited per check) and disables
// the check after MaxFailures consecutive failures.
func (e *Engine) failed(sc *script, h *hostEntry, err error, stopped bool) {
	n := sc.fails.Add(1)
	e.read.failed(sc.name, err, e.now())
	what := "error"
	if stopped {
		what = "timeout"
	}
	e.logs.Log(slog.LevelWarn, sc.name, "host check failed", "check", sc.name, "host", h.key().String(), "kind", what,
		"consecutive", n, "error", err)
	if e.cfg.MaxFailures > 0 && n >= int64(e.cfg.MaxFailures) && sc.disabled.CompareAndSwap(false, true) {
		e.metrics.disabled.WithLabelValues(sc.name).Inc()
		e.logger.Error("host check disabled after consecutive failures; fix the script to re-enable it",
			"check", sc.name, "file", sc.file.path, "failures", n)
	}
}

// overMemory disables a check that went over the memory ceiling, at once:
// the next tick rebuilds the VMs that held it (holdsDisabled), which frees
// its memory, and frees its host states (runHost). n is its measured size, -1 when a call allocated
// too much.
func (e *Engine) overMemory(sc *script, n int64) {
	if n >= 0 {
		// Found by a measure, outside the call's own accounting.
		e.metrics.errors.WithLabelValues(sc.name).Inc()
	}
	if sc.disabled.CompareAndSwap(false, true) {
		e.metrics.disabled.WithLabelValues(sc.name).Inc()
		e.logger.Error("host check disabled: over the memory ceiling (scripting.max_memory); fix the script to re-enable it",
			"check", sc.name, "file", sc.file.path, "bytes", n, "max_memory", e.cfg.MaxMemory)
	}
}

// logFailure logs a problem of a check outside a call (rate-limited).
func (e *Engine) logFailure(sc *script, host string, err error) {
	e.logs.Log(slog.LevelWarn, sc.name, "host check failed", "check", sc.name, "host", host, "error", err)
}
