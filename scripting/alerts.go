package scripting

import (
	"encoding/binary"
	"encoding/hex"
	"hash/fnv"
	"sort"
	"strconv"
	"sync"
	"time"

	lua "github.com/yuin/gopher-lua"

	"github.com/flowcheck/flowcheck/aggregate"
	"github.com/flowcheck/flowcheck/alert"
)

// hostEntry is the engine's per-host state: cached identity values, the
// score and each check's per-host state. mu is held by the worker that
// evaluates the host, and by HostExpired, Score and Engaged.
type hostEntry struct {
	mu   sync.Mutex
	key  aggregate.HostKey
	dead bool
	// seenTick is the last tick whose host list named this host.
	seenTick uint64

	// Identity, converted to Lua values once (not per call).
	mac                         aggregate.MAC
	name                        string
	local                       bool
	ipLV, macLV, nameLV, vlanLV lua.LValue
	host                        alert.Host

	score int
	// slots is indexed by the check's slot number, stable per check name
	// across reloads.
	slots []slotState
}

// slotState is one check's state for one host.
type slotState struct {
	// runs counts completed runs; 0 means the next run is the first.
	runs uint64
	// skipUntil suppresses the check while now < skipUntil (Unix seconds).
	skipUntil int64
	// state is host_info.state, created on first access.
	state *lua.LTable
	// alert is the engaged alert, nil when none.
	alert *engagedAlert
}

// engagedAlert is an alert currently engaged for (check, host).
type engagedAlert struct {
	id        string
	value     int
	message   string
	firstSeen time.Time
	lastSeen  time.Time
}

// newHostEntry returns an entry with no identity yet.
func newHostEntry(key aggregate.HostKey) *hostEntry {
	return &hostEntry{key: key}
}

// bind refreshes the cached identity from a snapshot when it changed.
func (h *hostEntry) bind(s *aggregate.HostSnapshot) {
	if h.ipLV != nil && h.mac == s.MAC && h.name == s.Name && h.local == s.Local {
		return
	}
	h.mac, h.name, h.local = s.MAC, s.Name, s.Local
	h.host = eventHost(s)
	h.ipLV = lua.LString(h.host.IP)
	h.macLV = lua.LString(h.host.MAC)
	h.nameLV = lua.LString(h.host.Name)
	h.vlanLV = lnum(uint64(s.Key.VLAN))
}

// slot returns the state of check slot i, growing the slice as needed (to
// n slots at once, the number of slots known).
func (h *hostEntry) slot(i, n int) *slotState {
	if i >= len(h.slots) {
		grown := make([]slotState, max(i+1, n))
		copy(grown, h.slots)
		h.slots = grown
	}
	return &h.slots[i]
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

// event builds an event of the entry's alert in slot s (check name check).
func (e *Engine) event(h *hostEntry, check string, a *engagedAlert, state alert.State, now time.Time) alert.Event {
	return alert.Event{
		Schema:    alert.SchemaVersion,
		ID:        a.id,
		State:     state,
		Check:     check,
		Host:      h.host,
		Value:     a.value,
		Severity:  alert.Severity(a.value),
		Score:     h.score,
		Message:   a.message,
		FirstSeen: a.firstSeen,
		LastSeen:  a.lastSeen,
		Time:      now,
		Collector: e.instance,
	}
}

// engage records a triggered run: a new alert publishes an engaged event; an
// engaged one is updated silently. Called with h.mu held.
func (e *Engine) engage(h *hostEntry, s *slotState, check string, value int, msg string, now time.Time) {
	if a := s.alert; a != nil {
		h.score += value - a.value
		a.value, a.message, a.lastSeen = value, msg, now
		return
	}
	a := &engagedAlert{
		id:        alertID(e.instance, check, h.key, now),
		value:     value,
		message:   msg,
		firstSeen: now,
		lastSeen:  now,
	}
	s.alert = a
	h.score += value
	e.publish(e.event(h, check, a, alert.Engaged, now))
}

// release ends the engaged alert of slot s, if any. Called with h.mu held.
func (e *Engine) release(h *hostEntry, s *slotState, check string, now time.Time) {
	a := s.alert
	if a == nil {
		return
	}
	s.alert = nil
	h.score -= a.value
	e.publish(e.event(h, check, a, alert.Released, now))
}

// releaseAll releases every alert of an entry (host expiry). Called with
// h.mu held.
func (e *Engine) releaseAll(h *hostEntry, now time.Time) {
	for i := range h.slots {
		if h.slots[i].alert != nil {
			e.release(h, &h.slots[i], e.slotName(i), now)
		}
	}
}

// publish hands an event to the publisher and counts it.
func (e *Engine) publish(ev alert.Event) {
	e.metrics.events.WithLabelValues(ev.Check, string(ev.State)).Inc()
	e.deps.Alerts.Publish(ev)
}

// HostExpired releases the engaged alerts of a host that left the host table
// (publishing released events) and drops its per-check state, so that a
// host coming back starts over. It is safe to call concurrently with Tick.
func (e *Engine) HostExpired(key aggregate.HostKey) {
	h := e.hosts.remove(key)
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.dead = true
	e.releaseAll(h, e.now())
}

// Score returns the host's score: the sum of the values of its engaged
// alerts (0 for an unknown host).
func (e *Engine) Score(key aggregate.HostKey) int {
	h := e.hosts.get(key)
	if h == nil {
		return 0
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.score
}

// Engaged returns the currently engaged alerts as engaged events (Time is
// the last-seen time), sorted by host then check.
func (e *Engine) Engaged() []alert.Event {
	hosts := e.hosts.all(nil)
	var out []alert.Event
	for _, h := range hosts {
		h.mu.Lock()
		for i := range h.slots {
			if a := h.slots[i].alert; a != nil {
				out = append(out, e.event(h, e.slotName(i), a, alert.Engaged, a.lastSeen))
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
