package scripting

import (
	"unsafe"

	lua "github.com/yuin/gopher-lua"
)

// Lua memory.
//
// gopher-lua has no allocator hook, so what a check holds is bounded three
// ways. The built-ins that make big strings refuse results over maxString
// (sandbox.go). The watchdog stops a call that allocates more than
// max_memory (budget.go): that catches `..` in a loop. And what a check
// keeps between calls — its environment, its modules, its closures — is
// measured by a bounded walk (memory below): after every max_memory
// allocated by the process (the watchdog asks), so that a check's memory
// grows by at most about max_memory between two measures, and once after
// loading. A check over the ceiling is disabled at once, and the next tick
// rebuilds the VMs that held it, which frees its memory. host_info.state is bounded per host (maxStateBytes).

const (
	// maxStateBytes caps one host's host_info.state of one check, measured
	// like a check's memory.
	maxStateBytes = 64 << 10
	// Estimated costs of Lua values, in bytes (gopher-lua's structures,
	// measured: see state.go).
	tableCost = 200
	entryCost = 40
	funcCost  = 120
	valueCost = 16
)

// walker estimates the memory reachable from some Lua values, stopping once
// it passes limit.
type walker struct {
	limit, bytes int64
	seen         map[unsafe.Pointer]struct{}
	stack        []lua.LValue
}

// visit counts lv and queues what it references; false once over limit.
func (w *walker) visit(lv lua.LValue) bool {
	switch x := lv.(type) {
	case lua.LString:
		n := int64(len(x)) + valueCost
		// Large strings are counted once however often they are referenced.
		if len(x) >= 64 {
			p := unsafe.Pointer(unsafe.StringData(string(x)))
			if _, ok := w.seen[p]; ok {
				return true
			}
			w.seen[p] = struct{}{}
		}
		w.bytes += n
	case *lua.LTable:
		if w.mark(unsafe.Pointer(x)) {
			w.bytes += tableCost
			w.stack = append(w.stack, x)
		}
	case *lua.LFunction:
		if !x.IsG && w.mark(unsafe.Pointer(x)) {
			w.bytes += funcCost
			w.stack = append(w.stack, x)
		}
	case *lua.LUserData:
		if w.mark(unsafe.Pointer(x)) {
			w.bytes += tableCost
			if x.Metatable != nil {
				w.stack = append(w.stack, x.Metatable)
			}
		}
	case lua.LNumber, lua.LBool:
		w.bytes += valueCost
	}
	return w.bytes <= w.limit
}

// mark records p; false when it was already seen.
func (w *walker) mark(p unsafe.Pointer) bool {
	if _, ok := w.seen[p]; ok {
		return false
	}
	w.seen[p] = struct{}{}
	return true
}

// measure returns the estimated bytes reachable from roots, or a number
// over limit as soon as it passes it.
func measure(limit int64, roots ...lua.LValue) int64 {
	w := &walker{limit: limit, seen: map[unsafe.Pointer]struct{}{}}
	for _, r := range roots {
		if r != nil && !w.visit(r) {
			return w.bytes
		}
	}
	for len(w.stack) > 0 {
		lv := w.stack[len(w.stack)-1]
		w.stack = w.stack[:len(w.stack)-1]
		switch x := lv.(type) {
		case *lua.LTable:
			if x.Metatable != nil && !w.visit(x.Metatable) {
				return w.bytes
			}
			// Next, not ForEach: the walk must stop at the limit, not
			// after the whole of a huge table.
			for k, val := x.Next(lua.LNil); k != lua.LNil; k, val = x.Next(k) {
				w.bytes += entryCost
				if !w.visit(k) || !w.visit(val) {
					return w.bytes
				}
			}
		case *lua.LFunction:
			if x.Env != nil && !w.visit(x.Env) {
				return w.bytes
			}
			for _, uv := range x.Upvalues {
				if uv != nil && !w.visit(uv.Value()) {
					return w.bytes
				}
			}
		}
	}
	return w.bytes
}

// memory estimates what the check keeps in its VM (its environment, its
// modules and closures, host_info), over limit as soon as it passes it.
func (vc *vmCheck) memory(limit int64) int64 {
	return measure(limit, vc.env, vc.fn, vc.info)
}

// measureChecks measures what each check loaded in the VM keeps, and
// disables (and frees) those over the ceiling. The watchdog asks for it
// (budget.walk) every max_memory the process allocates.
func (v *vm) measureChecks(set *scriptSet) {
	v.budget.walk.Store(false)
	for i := range v.checks {
		vc := &v.checks[i]
		if vc.fn == nil {
			continue
		}
		if n := vc.memory(v.lim.memory); n > v.lim.memory {
			// Disabled: the next tick rebuilds the VM without it.
			v.e.overMemory(set.checks[i], n)
		}
	}
}

// holdsDisabled reports whether the VM has a check loaded that is now
// disabled. Such a VM is rebuilt without it: only a new state frees what
// the check kept, since gopher-lua's stack and call frames keep stale
// references to the values of past calls.
func (v *vm) holdsDisabled(set *scriptSet) bool {
	for i, sc := range set.checks {
		if v.checks[i].fn != nil && sc.disabled.Load() {
			return true
		}
	}
	return false
}

// stateTooBig reports whether a host_info.state is over maxStateBytes.
// Frozen states are cheap to check (their strings); only a live table is
// walked.
func stateTooBig(t *lua.LTable) bool {
	return measure(maxStateBytes, t) > maxStateBytes
}
