package scripting

import (
	"net/netip"
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
