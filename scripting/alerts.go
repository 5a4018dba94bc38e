package scripting

import (
	"encoding/binary"
	"encoding/hex"
	"hash/fnv"
	"sort"
	"strconv"
	"time"

	"github.com/flowcheck/flowcheck/aggregate"
	"github.com/flowcheck/flowcheck/alert"
)

// alertID is stable for one engaged alert: a hash of the scope (the
// collector, or a cluster's consumer group: Configuration.AlertScope),
// check, host and first-seen time.
func alertID(scope, check string, key aggregate.HostKey, first time.Time) string {
	h := fnv.New64a()
	h.Write([]byte(scope))
	h.Write([]byte{0})
	h.Write([]byte(check))
	h.Write([]byte{0})
	h.Write([]byte(key.String()))
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(first.UnixNano()))
	h.Write(b[:])
	return hex.EncodeToString(h.Sum(nil))
}

// event builds an event of one of the entry's alerts (check name check);
// the entry has an ext, since it has an alert. reason is empty for an
// engaged event.
func (e *Engine) event(h *hostEntry, check string, a *engagedAlert, state alert.State, reason alert.Reason, now time.Time) alert.Event {
	return alert.Event{
		Schema:    alert.SchemaVersion,
		ID:        a.id,
		State:     state,
		Reason:    reason,
		Check:     check,
		Host:      h.ext.host,
		Value:     a.value,
		Severity:  alert.Severity(a.value),
		Score:     h.ext.score,
		Message:   a.message,
		FirstSeen: a.firstSeen,
		LastSeen:  a.lastSeen,
		Time:      now,
		Collector: e.instance,
	}
}

// engage records a triggered run of check slot i on the host of snapshot
// snap: a new alert appends an engaged event to evs; an engaged one is
// updated silently. Called with h.mu held; the caller publishes evs once it
// is released, so that no host waits for the sinks.
func (e *Engine) engage(h *hostEntry, snap *aggregate.HostSnapshot, i int, check string, value int, msg string, now time.Time, evs *[]alert.Event) {
	s := h.extSlot(i)
	if a := s.alert; a != nil {
		h.ext.score += value - a.value
		if was, is := band(a.value), band(value); was != is {
			e.metrics.engaged[was].Dec()
			e.metrics.engaged[is].Inc()
		}
		a.value, a.message, a.lastSeen = value, msg, now
		return
	}
	h.ext.setIdentity(snap)
	a := &engagedAlert{
		id:        alertID(e.scope, check, h.key(), now),
		value:     value,
		message:   msg,
		firstSeen: now,
		lastSeen:  now,
	}
	s.alert = a
	h.ext.score += value
	e.metrics.engaged[band(value)].Inc()
	*evs = append(*evs, e.event(h, check, a, alert.Engaged, "", now))
}

// release ends the engaged alert of check slot i, if any, for reason, and
// appends its released event to evs. Called with h.mu held.
func (e *Engine) release(h *hostEntry, i int, check string, reason alert.Reason, now time.Time, evs *[]alert.Event) {
	s := h.peek(i)
	if s == nil || s.alert == nil {
		return
	}
	a := s.alert
	s.alert = nil
	h.ext.score -= a.value
	e.metrics.engaged[band(a.value)].Dec()
	*evs = append(*evs, e.event(h, check, a, alert.Released, reason, now))
}

// uncount takes the engaged alerts of an entry handed to another engine
// (not released) out of the engaged gauges. Called with h.mu held.
func (e *Engine) uncount(h *hostEntry) {
	if h.ext == nil {
		return
	}
	for i := range h.ext.slots {
		if a := h.ext.slots[i].alert; a != nil {
			e.metrics.engaged[band(a.value)].Dec()
		}
	}
}

// releaseAll releases every alert of an entry (host expiry, shutdown).
// Called with h.mu held.
func (e *Engine) releaseAll(h *hostEntry, reason alert.Reason, now time.Time, evs *[]alert.Event) {
	if h.ext == nil {
		return
	}
	for i := range h.ext.slots {
		if h.ext.slots[i].alert != nil {
			e.release(h, i, e.slotName(i), reason, now, evs)
		}
	}
}

// inactiveReason is the reason to release an alert of a slot whose check
// does not run on the host (see scriptSet.active): its script is gone, or
// it is disabled (by configuration, after failures, or local_only).
func (s *scriptSet) inactiveReason(slot int) alert.Reason {
	if slot >= len(s.bySlot) || s.bySlot[slot] == nil {
		return alert.CheckRemoved
	}
	return alert.CheckDisabled
}

// publish hands events to the publisher, in order, and counts them; the
// engaged alerts changed, so the state file is due for a write (afterTick).
// Never called with a host's lock held: the publisher may be slow.
func (e *Engine) publish(evs []alert.Event) {
	if len(evs) == 0 {
		return
	}
	for i := range evs {
		ev := &evs[i]
		e.metrics.events.WithLabelValues(ev.Check, string(ev.State)).Inc()
		if ev.State == alert.Released {
			e.metrics.released.WithLabelValues(ev.Check, string(ev.Reason)).Inc()
		}
	}
	e.store.dirty.Store(true)
	e.read.keep(evs)
	for i := range evs {
		e.deps.Alerts.Publish(evs[i])
	}
}

// HostExpired releases the engaged alerts of a host that left the host table
// (publishing released events, reason host_expired) and drops its
// per-check state, so that a host coming back starts over. It is safe to
// call concurrently with Tick.
func (e *Engine) HostExpired(key aggregate.HostKey) {
	h := e.hosts.remove(key)
	if h == nil {
		// A host that came back after a restart and left again before a
		// tick adopted its resumed alerts.
		if h = e.hosts.pending.take(key); h == nil {
			return
		}
	}
	var evs []alert.Event
	h.mu.Lock()
	h.dead = true
	e.releaseAll(h, alert.HostExpired, e.now(), &evs)
	h.mu.Unlock()
	e.publish(evs)
}

// Score returns the host's score: the sum of the values of its engaged
// alerts (0 for an unknown host).
func (e *Engine) Score(key aggregate.HostKey) int {
	h := e.hosts.get(key)
	if h == nil {
		if h = e.hosts.pending.get(key); h == nil {
			return 0
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.score()
}

// Engaged returns the currently engaged alerts as engaged events (Time is
// the last-seen time), sorted by host then check. Resumed alerts whose host
// has not come back yet are included: they are still engaged for the
// consumers.
func (e *Engine) Engaged() []alert.Event {
	hosts := e.hosts.pending.appendTo(e.hosts.all(nil))
	var out []alert.Event
	for _, h := range hosts {
		h.mu.Lock()
		if h.ext != nil {
			for i := range h.ext.slots {
				if a := h.ext.slots[i].alert; a != nil {
					out = append(out, e.event(h, e.slotName(i), a, alert.Engaged, "", a.lastSeen))
				}
			}
		}
		h.mu.Unlock()
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Host.IP != out[j].Host.IP {
			return out[i].Host.IP < out[j].Host.IP
		}
		if out[i].Host.VLAN != out[j].Host.VLAN {
			return out[i].Host.VLAN < out[j].Host.VLAN
		}
		return out[i].Check < out[j].Check
	})
	return out
}

// slotName returns the check name of a slot.
func (e *Engine) slotName(i int) string {
	e.slotMu.Lock()
	defer e.slotMu.Unlock()
	if i < len(e.slotNames) {
		return e.slotNames[i]
	}
	return "slot" + strconv.Itoa(i)
}

// slotFor returns the stable slot number of a check name.
func (e *Engine) slotFor(name string) int {
	e.slotMu.Lock()
	defer e.slotMu.Unlock()
	if i, ok := e.slots[name]; ok {
		return i
	}
	i := len(e.slotNames)
	e.slots[name] = i
	e.slotNames = append(e.slotNames, name)
	return i
}
