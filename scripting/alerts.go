package scripting

import (
	"encoding/binary"
	"encoding/hex"
	"hash/fnv"
	"net/netip"
	"sort"
	"strconv"
	"sync"
	"time"

	lua "github.com/yuin/gopher-lua"

	"github.com/flowcheck/flowcheck/aggregate"
	"github.com/flowcheck/flowcheck/alert"
)

// hostEntry is the engine's per-host state. There is one per host of the
// table, so it is kept to 80 bytes: what every host has (the key, which
// checks have run, the frozen host_info.state of its checks) is inline, and
// what few hosts have (engaged alerts, the score and the identity their
// events carry, skips, state tables that cannot be frozen) is in ext, nil
// otherwise. The identity the Lua functions return is converted per call
// from the bound snapshot (vm.hostIP and friends), not cached per host.
//
// mu is held by the worker that evaluates the host, and by HostExpired,
// Score and Engaged; seenTick is guarded by the host map's shard lock.
type hostEntry struct {
	mu sync.Mutex
	// addr and vlan are the key (key()), split so that vlan, dead and
	// seenTick fill what would be the padding of an aggregate.HostKey.
	addr netip.Addr
	vlan uint16
	dead bool
	// seenTick is the last tick whose host list named this host, modulo
	// 2^32 (wrapping takes 4000 years of 30 s ticks).
	seenTick uint32
	// ran has bit i set once check slot i completed a run (isFirstCheckRun);
	// slots from 64 on keep theirs in ext.
	ran uint64
	// fields is the frozen host_info.state of the host's checks, grouped by
	// slot (see state.go).
	fields []stateField
	ext    *hostExt
}

// hostExt is the part of a host's state that most hosts do not have.
type hostExt struct {
	// score is the sum of the values of the engaged alerts.
	score int
	// host is the identity stamped on the host's events, set when an alert
	// engages and refreshed from every snapshot while set (host.IP != "");
	// mac, name and local are the snapshot values it was built from.
	host  alert.Host
	mac   aggregate.MAC
	name  string
	local bool
	// slots is indexed by the check's slot number, stable per check name
	// across reloads.
	slots []slotExt
}

// slotExt is one check's state for one host, beyond its frozen fields.
type slotExt struct {
	// skipUntil suppresses the check while now < skipUntil (Unix seconds).
	skipUntil int64
	// state is host_info.state kept as a live table, when it could not be
	// frozen (see state.go).
	state *lua.LTable
	// strs are the string values of the slot's frozen fields.
	strs []string
	// alert is the engaged alert, nil when none.
	alert *engagedAlert
	// ran is hostEntry.ran for slots from 64 on.
	ran bool
}

// empty reports whether the slot holds nothing.
func (x *slotExt) empty() bool {
	return x.skipUntil == 0 && x.state == nil && len(x.strs) == 0 && x.alert == nil && !x.ran
}

// engagedAlert is an alert currently engaged for (check, host).
type engagedAlert struct {
	id        string
	value     int
	message   string
	firstSeen time.Time
	lastSeen  time.Time
}

// newHostEntry returns an entry with nothing recorded yet.
func newHostEntry(key aggregate.HostKey) *hostEntry {
	return &hostEntry{addr: key.Addr, vlan: key.VLAN}
}

// key is the entry's host key.
func (h *hostEntry) key() aggregate.HostKey {
	return aggregate.HostKey{Addr: h.addr, VLAN: h.vlan}
}

// score is the sum of the values of the host's engaged alerts.
func (h *hostEntry) score() int {
	if h.ext == nil {
		return 0
	}
	return h.ext.score
}

// hasRun reports whether check slot i completed a run on the host.
func (h *hostEntry) hasRun(i int) bool {
	if i < 64 {
		return h.ran&(1<<i) != 0
	}
	x := h.peek(i)
	return x != nil && x.ran
}

// setRun records a completed run of check slot i.
func (h *hostEntry) setRun(i int) {
	if i < 64 {
		h.ran |= 1 << i
		return
	}
	h.extSlot(i).ran = true
}

// peek returns the extra state of slot i, nil when there is none.
func (h *hostEntry) peek(i int) *slotExt {
	if h.ext == nil || i >= len(h.ext.slots) {
		return nil
	}
	return &h.ext.slots[i]
}

// extSlot returns the extra state of slot i, creating it.
func (h *hostEntry) extSlot(i int) *slotExt {
	if h.ext == nil {
		h.ext = &hostExt{}
	}
	if i >= len(h.ext.slots) {
		grown := make([]slotExt, i+1)
		copy(grown, h.ext.slots)
		h.ext.slots = grown
	}
	return &h.ext.slots[i]
}

// compact drops ext once it holds nothing (the last alert released, the
// last skip over), so that a host that once alerted goes back to the size
// of the others.
func (h *hostEntry) compact() {
	if h.ext == nil {
		return
	}
	for i := range h.ext.slots {
		if !h.ext.slots[i].empty() {
			return
		}
	}
	h.ext = nil
}

// setIdentity makes the identity of the host's events that of s, when it
// is not already.
func (x *hostExt) setIdentity(s *aggregate.HostSnapshot) {
	if x.host.IP != "" && x.mac == s.MAC && x.name == s.Name && x.local == s.Local {
		return
	}
	x.mac, x.name, x.local = s.MAC, s.Name, s.Local
	x.host = eventHost(s)
}

// alertID is stable for one engaged alert: a hash of the collector, check,
// host and first-seen time.
func alertID(instance, check string, key aggregate.HostKey, first time.Time) string {
	h := fnv.New64a()
	h.Write([]byte(instance))
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
// snap: a new alert publishes an engaged event; an engaged one is updated
// silently. Called with h.mu held.
func (e *Engine) engage(h *hostEntry, snap *aggregate.HostSnapshot, i int, check string, value int, msg string, now time.Time) {
	s := h.extSlot(i)
	if a := s.alert; a != nil {
		h.ext.score += value - a.value
		a.value, a.message, a.lastSeen = value, msg, now
		return
	}
	h.ext.setIdentity(snap)
	a := &engagedAlert{
		id:        alertID(e.instance, check, h.key(), now),
		value:     value,
		message:   msg,
		firstSeen: now,
		lastSeen:  now,
	}
	s.alert = a
	h.ext.score += value
	e.publish(e.event(h, check, a, alert.Engaged, "", now))
}

// release ends the engaged alert of check slot i, if any, for reason.
// Called with h.mu held.
func (e *Engine) release(h *hostEntry, i int, check string, reason alert.Reason, now time.Time) {
	s := h.peek(i)
	if s == nil || s.alert == nil {
		return
	}
	a := s.alert
	s.alert = nil
	h.ext.score -= a.value
	e.publish(e.event(h, check, a, alert.Released, reason, now))
}

// releaseAll releases every alert of an entry (host expiry, shutdown).
// Called with h.mu held.
func (e *Engine) releaseAll(h *hostEntry, reason alert.Reason, now time.Time) {
	if h.ext == nil {
		return
	}
	for i := range h.ext.slots {
		if h.ext.slots[i].alert != nil {
			e.release(h, i, e.slotName(i), reason, now)
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

// publish hands an event to the publisher and counts it; the engaged
// alerts changed, so the state file is due for a write (see checkpoint).
func (e *Engine) publish(ev alert.Event) {
	e.metrics.events.WithLabelValues(ev.Check, string(ev.State)).Inc()
	if ev.State == alert.Released {
		e.metrics.released.WithLabelValues(ev.Check, string(ev.Reason)).Inc()
	}
	e.store.dirty.Store(true)
	e.deps.Alerts.Publish(ev)
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
	h.mu.Lock()
	defer h.mu.Unlock()
	h.dead = true
	e.releaseAll(h, alert.HostExpired, e.now())
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
