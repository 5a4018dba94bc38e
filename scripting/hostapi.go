package scripting

import (
	"math"

	lua "github.com/yuin/gopher-lua"

	"github.com/flowcheck/flowcheck/aggregate"
)

// smallInts holds the LValues of 0..255, so that the common small counters
// are pushed without an allocation.
var smallInts = func() (t [256]lua.LValue) {
	for i := range t {
		t[i] = lua.LNumber(i)
	}
	return t
}()

// lnum converts a counter to a Lua number.
func lnum(u uint64) lua.LValue {
	if u < uint64(len(smallInts)) {
		return smallInts[u]
	}
	return lua.LNumber(u)
}

// hostTable builds the host table of a VM, once: every function reads the
// host bound to the VM for the call in progress (v.snap), and answers nil
// (false for the predicates) when no host is bound, as ntopng does outside a
// host check.
func (v *vm) hostTable() *lua.LTable {
	L := v.L
	t := L.CreateTable(0, 32)
	num := func(get func(s *aggregate.HostSnapshot) uint64) lua.LGFunction {
		return func(L *lua.LState) int {
			if v.snap == nil {
				L.Push(lua.LNil)
				return 1
			}
			L.Push(lnum(get(v.snap)))
			return 1
		}
	}
	flag := func(get func(s *aggregate.HostSnapshot) bool) lua.LGFunction {
		return func(L *lua.LState) int {
			L.Push(lua.LBool(v.snap != nil && get(v.snap)))
			return 1
		}
	}
	ident := func(get func() lua.LValue) lua.LGFunction {
		return func(L *lua.LState) int {
			if v.snap == nil {
				L.Push(lua.LNil)
				return 1
			}
			L.Push(get())
			return 1
		}
	}
	fns := map[string]lua.LGFunction{
		// Identity.
		"ip":      ident(v.hostIP),
		"mac":     ident(v.hostMAC),
		"name":    ident(v.hostName),
		"vlan_id": ident(func() lua.LValue { return lnum(uint64(v.snap.Key.VLAN)) }),
		// Address flags.
		"is_local":       flag(func(s *aggregate.HostSnapshot) bool { return s.Local }),
		"is_unicast":     flag(func(s *aggregate.HostSnapshot) bool { return s.Unicast() }),
		"is_multicast":   flag(func(s *aggregate.HostSnapshot) bool { return s.Multicast }),
		"is_broadcast":   flag(func(s *aggregate.HostSnapshot) bool { return s.Broadcast }),
		"is_blacklisted": flag(func(s *aggregate.HostSnapshot) bool { return s.Blacklisted }),
		"is_rx_only":     flag(func(s *aggregate.HostSnapshot) bool { return s.RxOnly }),
		// Traffic.
		"bytes":      num(func(s *aggregate.HostSnapshot) uint64 { return s.BytesSent + s.BytesRcvd }),
		"bytes_sent": num(func(s *aggregate.HostSnapshot) uint64 { return s.BytesSent }),
		"bytes_rcvd": num(func(s *aggregate.HostSnapshot) uint64 { return s.BytesRcvd }),
		"l7":         v.luaL7,
		// Peer contacts (no reply).
		"getNumContactedPeersAsClientTCPUDPNoTX":    num(func(s *aggregate.HostSnapshot) uint64 { return s.NoReply.PeersAsClient }),
		"getNumContactsFromPeersAsServerTCPUDPNoTX": num(func(s *aggregate.HostSnapshot) uint64 { return s.NoReply.PeersAsServer }),
		"getNumContactedTCPUDPServerPortsNoTX":      num(func(s *aggregate.HostSnapshot) uint64 { return s.NoReply.ServerPorts }),
		"getUnidirectionalTCPUDPFlowsStats":         v.luaUnidirectional,
		"resetHostContacts":                         v.luaResetContacts,
		// Extensions: refused (answered only by RST) TCP conversations.
		"getNumContactedPeersAsClientTCPRefused":    num(func(s *aggregate.HostSnapshot) uint64 { return s.Refused.PeersAsClient }),
		"getNumContactedTCPServerPortsRefused":      num(func(s *aggregate.HostSnapshot) uint64 { return s.Refused.ServerPorts }),
		"getNumContactsFromPeersAsServerTCPRefused": num(func(s *aggregate.HostSnapshot) uint64 { return s.Refused.PeersAsServer }),
		"getRefusedTCPFlowsStats":                   v.luaRefusedFlows,
		// Extension: how the no-reply and refused figures were obtained.
		"getSamplingInfo": v.luaSamplingInfo,
		// Score and alerts.
		"score":        v.luaScore,
		"triggerAlert": v.luaTriggerAlert,
		// Script control.
		"isFirstCheckRun": v.luaFirstRun,
		"skipVisitedHost": v.luaSkip,
	}
	for name, fn := range fns {
		t.RawSetString(name, L.NewFunction(fn))
	}
	return t
}

// luaL7 is host.l7(): { [proto] = { bytes_sent=, bytes_rcvd=, packets_sent=,
// packets_rcvd=, flows= } }, nil when the host has no L7 stats.
//
// As on ntopng, the table a check call gets is its own: a script may keep
// it (in its state, in a module variable) and it never changes under it.
// So it is built on the call's first host.l7(), and only the later
// host.l7() of the same check call get it again, refilled (a script that
// loops over protocols with (host.l7() or {})[name], as on ntopng, builds
// it once per check call instead of once per protocol).
//
// As a flowcheck extension, host.l7(name) returns only that protocol's
// table (nil when the host has none), without building the others; like
// flowsStats, that table is one per check and VM, refilled by every call.
func (v *vm) luaL7(L *lua.LState) int {
	if v.snap == nil || len(v.snap.L7) == 0 {
		L.Push(lua.LNil)
		return 1
	}
	l7 := v.snap.L7
	if name, ok := L.Get(1).(lua.LString); ok {
		for i := range l7 {
			if l7[i].Name == string(name) {
				var one *lua.LTable
				if v.check != nil {
					one = v.check.l7One
				} else {
					one = L.CreateTable(0, 5)
				}
				L.Push(fillL7(one, &l7[i]))
				return 1
			}
		}
		L.Push(lua.LNil)
		return 1
	}
	if v.l7All != nil {
		L.Push(v.refillL7())
		return 1
	}
	t := L.CreateTable(0, len(l7))
	for i := range l7 {
		p := l7Table(L, &l7[i])
		t.RawSetString(l7[i].Name, p)
		v.l7Protos = append(v.l7Protos, p)
	}
	v.l7All = t
	L.Push(t)
	return 1
}

// refillL7 puts back into v.l7All what host.l7() returned earlier in the
// check call: every protocol's table with its counters, and nothing else
// (what the script changed or added in between is undone).
func (v *vm) refillL7() *lua.LTable {
	t, l7 := v.l7All, v.snap.L7
	for i := range l7 {
		t.RawSetString(l7[i].Name, fillL7(v.l7Protos[i], &l7[i]))
	}
	// Every protocol is there: more keys means the script added some.
	n := 0
	for k, _ := t.Next(lua.LNil); k != lua.LNil; k, _ = t.Next(k) {
		n++
	}
	if n == len(l7) {
		return t
	}
	var extra []lua.LValue
	for k, _ := t.Next(lua.LNil); k != lua.LNil; k, _ = t.Next(k) {
		if s, ok := k.(lua.LString); !ok || !hasL7(l7, string(s)) {
			extra = append(extra, k)
		}
	}
	for _, k := range extra {
		t.RawSet(k, lua.LNil)
	}
	return t
}

// hasL7 reports whether l7 has a protocol called name.
func hasL7(l7 []aggregate.L7Stat, name string) bool {
	for i := range l7 {
		if l7[i].Name == name {
			return true
		}
	}
	return false
}

// l7Table is one protocol's entry of host.l7().
func l7Table(L *lua.LState, s *aggregate.L7Stat) *lua.LTable {
	return fillL7(L.CreateTable(0, 5), s)
}

// fillL7 writes one protocol's counters into p.
func fillL7(p *lua.LTable, s *aggregate.L7Stat) *lua.LTable {
	p.RawSetString("bytes_sent", lnum(s.BytesSent))
	p.RawSetString("bytes_rcvd", lnum(s.BytesRcvd))
	p.RawSetString("packets_sent", lnum(s.PacketsSent))
	p.RawSetString("packets_rcvd", lnum(s.PacketsRcvd))
	p.RawSetString("flows", lnum(s.Flows))
	return p
}

// flowsStats is the result table of getUnidirectionalTCPUDPFlowsStats or
// getRefusedTCPFlowsStats, { num_egress=, num_ingress=, as_client={tcp=,udp=},
// as_server={tcp=,udp=} }. Each check keeps one per function and refills it on
// every call: building three fresh tables cost about 26 allocations per call,
// most of a tick's garbage. A script that keeps the table across calls sees
// it change (documented in docs/lua-api.md: copy the fields you keep).
type flowsStats struct {
	root, client, server *lua.LTable
}

// newFlowsStats creates the tables of a VM's flowsStats.
func newFlowsStats(L *lua.LState) *flowsStats {
	return &flowsStats{root: L.CreateTable(0, 4), client: L.CreateTable(0, 2), server: L.CreateTable(0, 2)}
}

// fill writes u into the tables and returns the root. Every field is
// rewritten, including the nested tables, so that a script that changed the
// table in an earlier call does not see its change again; setting existing
// keys allocates nothing.
func (f *flowsStats) fill(u aggregate.UnidirectionalStats) *lua.LTable {
	t := f.root
	t.RawSetString("num_egress", lnum(u.Egress()))
	t.RawSetString("num_ingress", lnum(u.Ingress()))
	f.client.RawSetString("tcp", lnum(u.EgressTCP))
	f.client.RawSetString("udp", lnum(u.EgressUDP))
	t.RawSetString("as_client", f.client)
	f.server.RawSetString("tcp", lnum(u.IngressTCP))
	f.server.RawSetString("udp", lnum(u.IngressUDP))
	t.RawSetString("as_server", f.server)
	return t
}

// luaUnidirectional is host.getUnidirectionalTCPUDPFlowsStats().
func (v *vm) luaUnidirectional(L *lua.LState) int {
	if v.snap == nil {
		L.Push(lua.LNil)
		return 1
	}
	var f *flowsStats
	if v.check != nil {
		f = v.check.uni
	} else {
		f = newFlowsStats(L)
	}
	L.Push(f.fill(v.snap.Unidirectional))
	return 1
}

// luaRefusedFlows is the extension host.getRefusedTCPFlowsStats(), shaped
// like getUnidirectionalTCPUDPFlowsStats() (udp is always 0).
func (v *vm) luaRefusedFlows(L *lua.LState) int {
	if v.snap == nil {
		L.Push(lua.LNil)
		return 1
	}
	var f *flowsStats
	if v.check != nil {
		f = v.check.refused
	} else {
		f = newFlowsStats(L)
	}
	L.Push(f.fill(v.snap.RefusedFlows))
	return 1
}

// luaSamplingInfo is the extension host.getSamplingInfo(): { exact=,
// rate=, samples= } tells whether the host's no-reply and refused figures
// are exact or estimated from sampled records, at which 1-in-N rate (the
// largest, 1 when exact), and from how many sampled verdicts. The table is
// the caller's: a fresh one each call.
func (v *vm) luaSamplingInfo(L *lua.LState) int {
	if v.snap == nil {
		return pushNil(L)
	}
	s := v.snap.Sampling
	t := L.CreateTable(0, 3)
	t.RawSetString("exact", lua.LBool(s.Exact()))
	t.RawSetString("rate", lnum(uint64(max(s.Rate, 1))))
	t.RawSetString("samples", lnum(s.Verdicts))
	L.Push(t)
	return 1
}

// luaResetContacts is host.resetHostContacts(): it clears the host's contact
// sets and unidirectional counters in the host table, and in the snapshot the
// later checks of this tick read.
func (v *vm) luaResetContacts(L *lua.LState) int {
	if v.snap == nil {
		return pushNil(L)
	}
	v.e.deps.Hosts.ResetContacts(v.snap.Key)
	v.snap.NoReply = aggregate.ContactCounts{}
	v.snap.Refused = aggregate.ContactCounts{}
	v.snap.Unidirectional = aggregate.UnidirectionalStats{}
	v.snap.RefusedFlows = aggregate.UnidirectionalStats{}
	v.snap.Sampling = aggregate.VerdictSampling{}
	return pushNil(L)
}

// luaScore is host.score(): the sum of the values of the host's engaged
// alerts at the time of the call.
func (v *vm) luaScore(L *lua.LState) int {
	if v.snap == nil {
		L.Push(lua.LNil)
		return 1
	}
	L.Push(lnum(uint64(v.entry.score())))
	return 1
}

// luaTriggerAlert is host.triggerAlert(value, msg). value must be a number
// (clamped to 0–255), msg a string; anything else is a Lua error. Outside a
// host it does nothing. The alert is engaged or updated when the call
// returns.
func (v *vm) luaTriggerAlert(L *lua.LState) int {
	n := L.CheckNumber(1)
	msg := L.CheckString(2)
	if v.snap == nil {
		return pushNil(L)
	}
	f := float64(n)
	switch {
	case math.IsNaN(f) || f < 0:
		f = 0
	case f > 255:
		f = 255
	}
	v.triggered = true
	v.tValue = int(f)
	v.tMsg = msg
	return pushNil(L)
}

// luaFirstRun is host.isFirstCheckRun().
func (v *vm) luaFirstRun(L *lua.LState) int {
	L.Push(lua.LBool(v.check != nil && !v.entry.hasRun(v.slot)))
	return 1
}

// luaSkip is host.skipVisitedHost([skip[, until]]): skip=true suppresses
// this check for this host until the Unix time until (forever without it);
// false or no argument re-enables it. ntopng compares the other way round;
// this follows the documented intent.
func (v *vm) luaSkip(L *lua.LState) int {
	skip := L.ToBool(1)
	var until int64 = math.MaxInt64
	if L.GetTop() >= 2 && L.Get(2) != lua.LNil {
		until = int64(L.CheckNumber(2))
	}
	if v.check == nil {
		return pushNil(L)
	}
	if !skip {
		if x := v.entry.peek(v.slot); x != nil {
			x.skipUntil = 0
		}
		return pushNil(L)
	}
	v.entry.extSlot(v.slot).skipUntil = until
	return pushNil(L)
}

// pushNil returns one nil, as ntopng's functions without a result do.
func pushNil(L *lua.LState) int {
	L.Push(lua.LNil)
	return 1
}
