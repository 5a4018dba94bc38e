package scripting

import (
	"math"
	"sync"

	lua "github.com/yuin/gopher-lua"
)

// Frozen host_info.state.
//
// A gopher-lua table per (check, host) was most of the engine's memory
// (docs/performance.md, "Check engine internals"). So between calls a
// check's state is kept in the host's entry as frozen fields, and during a
// call it is one scratch table per (VM, check): thawed into before the
// call, frozen back after it. The scratch keeps the last host's keys until
// the next thaw overwrites them (hosts of one check mostly share keys).
//
// A state that cannot be frozen (a key that is not a string, a value that
// is a table or a function, a metatable, more than maxFrozenFields fields,
// a key beyond the engine's maxStateKeys) becomes a live table of its own,
// kept in the slot as before; a later call that leaves it plain freezes it
// again. A script that keeps host_info.state itself beyond the call (in a
// module-level variable) sees another host's state there: only what the
// table holds is per host (docs/lua-api.md).

const (
	// maxFrozenFields is the most fields a frozen state has; freezing
	// costs a pass over them after every call.
	maxFrozenFields = 64
	// maxStateKeys bounds the engine's key table (it is never shrunk): a
	// script that makes keys of data (addresses, names) keeps live tables
	// once it is full.
	maxStateKeys = 4096
	// maxScratchKeys is how many distinct keys a scratch table may have
	// held before it is replaced: gopher-lua never forgets a key a table
	// once held (its slice for next()), and a scratch that becomes a live
	// state takes them along.
	maxScratchKeys = 64
)

// fieldKind is the type of a frozen value.
type fieldKind uint8

const (
	fieldNumber fieldKind = iota
	fieldBool
	fieldString
)

// stateField is one frozen field of a check's host_info.state.
type stateField struct {
	// slot is the check's slot number.
	slot uint32
	// key is the field's key in the engine's stateKeys.
	key  uint16
	kind fieldKind
	// bits is the value: a number's float64 bits, 0 or 1 for a boolean, or
	// the index of a string in the slot's slotExt.strs.
	bits uint64
}

// value returns the field's Lua value (strs: the slot's string values).
func (f *stateField) value(strs []string) lua.LValue {
	switch f.kind {
	case fieldBool:
		return lua.LBool(f.bits != 0)
	case fieldString:
		return lua.LString(strs[f.bits])
	}
	return numLV(math.Float64frombits(f.bits))
}

// numLV converts a number to a Lua value, without an allocation for the
// small non-negative integers.
func numLV(f float64) lua.LValue {
	if f < float64(len(smallInts)) && f == math.Trunc(f) && !math.Signbit(f) {
		return smallInts[int(f)]
	}
	return lua.LNumber(f)
}

// stateKeys numbers the keys of frozen fields, engine-wide, so that any VM
// thaws what another froze. VMs keep their own copy (vm.keyID, vm.keyName)
// and take the lock only for a key they have not seen.
type stateKeys struct {
	mu    sync.Mutex
	ids   map[string]uint16
	names []string
}

// intern returns the number of key s; false when the table is full.
func (k *stateKeys) intern(s string) (uint16, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if id, ok := k.ids[s]; ok {
		return id, true
	}
	if len(k.names) >= maxStateKeys {
		return 0, false
	}
	if k.ids == nil {
		k.ids = map[string]uint16{}
	}
	id := uint16(len(k.names))
	k.ids[s] = id
	k.names = append(k.names, s)
	return id, true
}

// appendNames appends the keys numbered from len(dst) on to dst.
func (k *stateKeys) appendNames(dst []string) []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append(dst, k.names[len(dst):]...)
}

// keyID returns the number of key s; false when the engine's table is full.
func (v *vm) keyID(s string) (uint16, bool) {
	if id, ok := v.keyIDs[s]; ok {
		return id, true
	}
	id, ok := v.e.stateKeys.intern(s)
	if ok {
		v.keyIDs[s] = id
	}
	return id, ok
}

// keyName returns key number id.
func (v *vm) keyName(id uint16) string {
	if int(id) >= len(v.keyNames) {
		v.keyNames = v.e.stateKeys.appendNames(v.keyNames)
	}
	return v.keyNames[id]
}

// fieldRange returns the bounds of slot's fields in h.fields.
func (h *hostEntry) fieldRange(slot int) (lo, hi int) {
	s := uint32(slot)
	for lo < len(h.fields) && h.fields[lo].slot != s {
		lo++
	}
	hi = lo
	for hi < len(h.fields) && h.fields[hi].slot == s {
		hi++
	}
	return lo, hi
}

// setFields replaces slot's fields with fs. The slice is reallocated, to
// its exact size, only when the number of fields changes.
func (h *hostEntry) setFields(slot int, fs []stateField) {
	lo, hi := h.fieldRange(slot)
	if hi-lo == len(fs) {
		copy(h.fields[lo:hi], fs)
		return
	}
	n := len(h.fields) - (hi - lo) + len(fs)
	if n == 0 {
		h.fields = nil
		return
	}
	out := make([]stateField, 0, n)
	out = append(out, h.fields[:lo]...)
	out = append(out, h.fields[hi:]...)
	h.fields = append(out, fs...)
}

// newScratch gives the check a new, empty scratch table.
func (vc *vmCheck) newScratch(L *lua.LState) {
	vc.scratch = L.CreateTable(0, 4)
	clear(vc.scratchKeys[:])
	vc.nScratchKeys = 0
	vc.held = vc.held[:0]
}

// stateFor returns the table that is host_info.state for a call of check vc
// on host h: the slot's live table, or the scratch with the slot's frozen
// fields thawed into it. It also makes it info's raw state field.
func (v *vm) stateFor(h *hostEntry, slot int, vc *vmCheck) *lua.LTable {
	t := vc.scratch
	x := h.peek(slot)
	if x != nil && x.state != nil {
		t = x.state
	}
	if vc.cur != t {
		vc.info.RawSetString("state", t)
		vc.cur = t
	}
	if t != vc.scratch {
		return t
	}
	lo, hi := h.fieldRange(slot)
	fs := h.fields[lo:hi]
	// Delete what the scratch holds from the last host and this one does
	// not have (nothing when both have the same keys in the same order).
	same := len(fs) == len(vc.held)
	for i := 0; same && i < len(fs); i++ {
		same = fs[i].key == vc.held[i]
	}
	if !same {
		for _, id := range vc.held {
			if !hasKey(fs, id) {
				t.RawSetString(v.keyName(id), lua.LNil)
			}
		}
	}
	var strs []string
	if x != nil {
		strs = x.strs
	}
	for i := range fs {
		t.RawSetString(v.keyName(fs[i].key), fs[i].value(strs))
	}
	return t
}

// hasKey reports whether fs has a field of key id.
func hasKey(fs []stateField, id uint16) bool {
	for i := range fs {
		if fs[i].key == id {
			return true
		}
	}
	return false
}

// freeze keeps t, host_info.state after a call of check vc on host h, in
// the slot: as frozen fields when it is plain, else as the slot's live
// table (the scratch then becomes the slot's, and vc gets a new one). A
// state larger than maxStateBytes is not kept: the slot's state is emptied
// and freeze reports false.
func (v *vm) freeze(h *hostEntry, slot int, vc *vmCheck, t *lua.LTable) bool {
	lo, hi := h.fieldRange(slot)
	fs, size, ok := v.collect(t, slot, h.fields[lo:hi])
	if ok && size > maxStateBytes || !ok && stateTooBig(t) {
		h.dropState(slot)
		clear(v.strBuf)
		if t == vc.scratch {
			vc.newScratch(v.L)
		}
		vc.info.RawSetString("state", vc.scratch)
		vc.cur = vc.scratch
		return false
	}
	if !ok {
		if t == vc.scratch {
			h.setFields(slot, nil)
			x := h.extSlot(slot)
			x.state, x.strs = t, nil
			vc.newScratch(v.L)
		}
		return true
	}
	if t == vc.scratch {
		vc.held = vc.held[:0]
		fresh := false
		for i := range fs {
			id := fs[i].key
			vc.held = append(vc.held, id)
			if w, bit := id/64, uint64(1)<<(id%64); vc.scratchKeys[w]&bit == 0 {
				vc.scratchKeys[w] |= bit
				vc.nScratchKeys++
				fresh = true
			}
		}
		if fresh && vc.nScratchKeys > maxScratchKeys {
			vc.newScratch(v.L)
		}
	}
	h.setFields(slot, fs)
	x := h.peek(slot)
	if x == nil && len(v.strBuf) == 0 {
		return true
	}
	if x == nil {
		x = h.extSlot(slot)
	}
	// A live table that froze is dropped: info still holds it until the
	// next call of the check in this VM, nothing else does.
	x.state = nil
	switch {
	case len(v.strBuf) == 0:
		x.strs = nil
	case len(x.strs) == len(v.strBuf):
		copy(x.strs, v.strBuf)
	default:
		x.strs = append([]string(nil), v.strBuf...)
	}
	return true
}

// dropState empties the slot's host_info.state.
func (h *hostEntry) dropState(slot int) {
	h.setFields(slot, nil)
	if x := h.peek(slot); x != nil {
		x.state, x.strs = nil, nil
	}
}

// collect returns the fields of t for slot, in v.fieldBuf (string values in
// v.strBuf), and their estimated size; false when t is not plain. prev
// are the slot's fields before the call: next() returns the keys thawed
// from them in their order, so most keys are found there without a lookup.
func (v *vm) collect(t *lua.LTable, slot int, prev []stateField) ([]stateField, int, bool) {
	if t.Metatable != lua.LNil {
		return nil, 0, false
	}
	size := 0
	fs, strs := v.fieldBuf[:0], v.strBuf[:0]
	for k, val := t.Next(lua.LNil); k != lua.LNil; k, val = t.Next(k) {
		ks, ok := k.(lua.LString)
		if !ok || len(fs) == maxFrozenFields {
			return nil, 0, false
		}
		var id uint16
		if i := len(fs); i < len(prev) && v.keyName(prev[i].key) == string(ks) {
			id = prev[i].key
		} else if id, ok = v.keyID(string(ks)); !ok {
			return nil, 0, false
		}
		f := stateField{slot: uint32(slot), key: id}
		switch x := val.(type) {
		case lua.LNumber:
			f.bits = math.Float64bits(float64(x))
		case lua.LBool:
			f.kind = fieldBool
			if x {
				f.bits = 1
			}
		case lua.LString:
			f.kind = fieldString
			f.bits = uint64(len(strs))
			strs = append(strs, string(x))
			size += len(x)
		default:
			return nil, 0, false
		}
		fs = append(fs, f)
	}
	v.fieldBuf, v.strBuf = fs, strs
	return fs, size, true
}
