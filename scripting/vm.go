package scripting

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	lua "github.com/yuin/gopher-lua"

	"github.com/flowcheck/flowcheck/aggregate"
	"github.com/flowcheck/flowcheck/alert"
)

// InstallDir is what ntop.getDirs().installdir returns. It is a virtual
// path: require() resolves installdir.."/scripts/lua/modules/?.lua" to the
// files of the script directories, and nothing else of the filesystem is
// reachable from Lua.
const InstallDir = "/flowcheck"

// modulePrefix is the virtual directory that holds every script as a module.
const modulePrefix = InstallDir + "/scripts/lua/modules/"

// defaultPackagePath is package.path when a VM starts, so that require works
// with or without ntopng's boilerplate.
const defaultPackagePath = modulePrefix + "?.lua"

// minLoadTimeout is the least budget of loading a script: module-level code
// runs once per VM, off the tick, and must not be cut short by a busy machine.
const minLoadTimeout = 2 * time.Second

// maxStringRep bounds string.rep results, so that one call cannot exhaust
// memory before the budget stops it.
const maxStringRep = 1 << 20

// vmCheck is one check as loaded in one VM.
type vmCheck struct {
	// fn is the module's check function; nil when the module failed to load
	// in this VM.
	fn *lua.LFunction
	// info is the host_info table handed to every call, reused.
	info *lua.LTable
	// cur is the table info holds as its raw "state" field: the scratch, or
	// the live state of the host of an earlier call. A raw field costs a
	// table write per call that changes it; serving state from __index
	// would allocate on every access (gopher-lua boxes the key for the
	// metamethod).
	cur *lua.LTable
	// scratch is host_info.state of the calls whose state is frozen
	// (state.go); held are the keys it holds (those of the last host),
	// scratchKeys has bit k set for every key number it ever held,
	// nScratchKeys counts them.
	scratch      *lua.LTable
	held         []uint16
	scratchKeys  [maxStateKeys / 64]uint64
	nScratchKeys int
}

// vm is one worker: a sandboxed Lua state with the checks loaded, and the
// host bound to the call in progress.
type vm struct {
	e      *Engine
	L      *lua.LState
	set    *scriptSet
	checks []vmCheck
	budget *budget
	// loadTimeout is the budget of loading a script.
	loadTimeout time.Duration

	// The binding of the call in progress; snap is nil outside a host, and
	// check nil outside a call (slot is then meaningless).
	snap    *aggregate.HostSnapshot
	snapBuf aggregate.HostSnapshot
	entry   *hostEntry
	check   *vmCheck
	slot    int
	now     time.Time
	// ipLV, macLV and nameLV are the bound host's identity as Lua values,
	// converted on first use for the host (nil until then): most hosts
	// never need them, and caching them per host cost ~100 bytes each.
	ipLV, macLV, nameLV lua.LValue

	// keyIDs and keyNames are this VM's copy of the engine's stateKeys;
	// fieldBuf and strBuf are freeze's buffers.
	keyIDs   map[string]uint16
	keyNames []string
	fieldBuf []stateField
	strBuf   []string

	// triggered, tValue and tMsg are what triggerAlert recorded during the
	// call in progress (the last call wins).
	triggered bool
	tValue    int
	tMsg      string

	// uniStats and refusedStats are the reused results of
	// getUnidirectionalTCPUDPFlowsStats and getRefusedTCPFlowsStats.
	uniStats, refusedStats *flowsStats
	// l7One is the reused result of host.l7(name).
	l7One *lua.LTable
	// l7All and l7Protos are the result of host.l7() in the check call in
	// progress and its protocol tables (parallel to snap.L7), nil until the
	// call asks for it: reused by the later host.l7() of the same call only.
	l7All    *lua.LTable
	l7Protos []*lua.LTable

	// stats counts this tick's calls per check, flushed after the tick.
	stats []checkStats
	// missing collects the hosts of this tick the host table no longer has.
	missing []*hostEntry
	// seen counts the hosts this VM resolved during the tick.
	seen int64
}

// checkStats are one worker's per-check counters for a tick.
type checkStats struct {
	calls, errors, timeouts uint64
}

// newVM builds a sandboxed state, creates the host and ntop tables once and
// loads every check of set into it. A check that fails to load leaves a nil
// fn in this VM (and is reported).
func newVM(e *Engine, set *scriptSet, callTimeout time.Duration) *vm {
	v := &vm{e: e, set: set, budget: newBudget(), loadTimeout: max(callTimeout, minLoadTimeout),
		keyIDs: map[string]uint16{}}
	v.L = lua.NewState(lua.Options{
		SkipOpenLibs:    true,
		CallStackSize:   200,
		RegistrySize:    1024,
		RegistryMaxSize: 256 * 1024,
	})
	v.openSandbox()
	v.L.SetContext(v.budget)
	v.uniStats, v.refusedStats = newFlowsStats(v.L), newFlowsStats(v.L)
	v.l7One = v.L.CreateTable(0, 5)
	v.checks = make([]vmCheck, len(set.checks))
	v.stats = make([]checkStats, len(set.checks))
	for i, sc := range set.checks {
		fn, err := v.loadCheck(sc.file)
		if err != nil {
			e.logFailure(sc, "", fmt.Errorf("load: %w", err))
			continue
		}
		info := v.L.NewTable()
		info.RawSetString("params", paramsTable(v.L, sc.cfg.Params))
		info.Metatable = v.infoMeta()
		v.checks[i] = vmCheck{fn: fn, info: info}
		v.checks[i].newScratch(v.L)
	}
	return v
}

// close releases the state.
func (v *vm) close() { v.L.Close() }

// loadCheck runs a check module (within the call budget, at least
// minLoadTimeout) and returns its
// check function.
func (v *vm) loadCheck(f *scriptFile) (*lua.LFunction, error) {
	L := v.L
	ctx, cancel := context.WithTimeout(context.Background(), v.loadTimeout)
	defer cancel()
	L.SetContext(ctx)
	defer L.SetContext(v.budget)
	L.Push(L.NewFunctionFromProto(f.proto))
	L.Push(lua.LString(f.name))
	if err := L.PCall(1, 1, nil); err != nil {
		return nil, err
	}
	ret := L.Get(-1)
	L.Pop(1)
	mod, ok := ret.(*lua.LTable)
	if !ok {
		return nil, fmt.Errorf("%s: module returned %s, not a table", f.path, ret.Type())
	}
	fn, ok := mod.RawGetString("check").(*lua.LFunction)
	if !ok {
		return nil, fmt.Errorf("%s: module has no check function", f.path)
	}
	// Like require, remember the module so that require(name) in another
	// script gets this instance.
	if loaded, ok := L.GetField(L.Get(lua.RegistryIndex), "_LOADED").(*lua.LTable); ok {
		loaded.RawSetString(f.name, mod)
	}
	return fn, nil
}

// infoMeta is host_info's metatable. params and state are raw fields (state
// set by each call, see stateFor); ip, vlan, mac, name and is_local are
// served by __index from the host bound to the call, so that a call costs no
// table writes for fields the check never reads.
func (v *vm) infoMeta() *lua.LTable {
	mt := v.L.NewTable()
	mt.RawSetString("__index", v.L.NewFunction(func(L *lua.LState) int {
		k, _ := L.Get(2).(lua.LString)
		if v.snap == nil {
			L.Push(lua.LNil)
			return 1
		}
		switch k {
		case "ip":
			L.Push(v.hostIP())
		case "vlan":
			L.Push(lnum(uint64(v.snap.Key.VLAN)))
		case "mac":
			L.Push(v.hostMAC())
		case "name":
			L.Push(v.hostName())
		case "is_local":
			L.Push(lua.LBool(v.snap.Local))
		default:
			L.Push(lua.LNil)
		}
		return 1
	}))
	return mt
}

// hostIP is the bound host's address as a Lua string.
func (v *vm) hostIP() lua.LValue {
	if v.ipLV == nil {
		v.ipLV = lua.LString(v.snap.Key.Addr.String())
	}
	return v.ipLV
}

// hostMAC is the bound host's MAC address as a Lua string.
func (v *vm) hostMAC() lua.LValue {
	if v.macLV == nil {
		v.macLV = lua.LString(v.snap.MAC.String())
	}
	return v.macLV
}

// hostName is the bound host's name, its address when it has none (as in
// its events, see eventHost).
func (v *vm) hostName() lua.LValue {
	if v.nameLV == nil {
		if v.snap.Name == "" {
			v.nameLV = v.hostIP()
		} else {
			v.nameLV = lua.LString(v.snap.Name)
		}
	}
	return v.nameLV
}

// openSandbox opens base, table, string and math, a reduced os, a package
// table with the engine's require, ntop.getDirs and the host table.
func (v *vm) openSandbox() {
	L := v.L
	for _, lib := range []struct {
		name string
		fn   lua.LGFunction
	}{
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
		{lua.StringLibName, lua.OpenString},
		{lua.MathLibName, lua.OpenMath},
		{lua.OsLibName, lua.OpenOs},
	} {
		L.Push(L.NewFunction(lib.fn))
		L.Push(lua.LString(lib.name))
		L.Call(1, 0)
	}
	g := L.G.Global
	// Files and bytecode are out of reach; collectgarbage would stop the
	// world of the whole process.
	for _, name := range []string{"dofile", "loadfile", "module", "newproxy", "_printregs"} {
		g.RawSetString(name, lua.LNil)
	}
	g.RawSetString("collectgarbage", L.NewFunction(func(L *lua.LState) int { L.Push(lua.LNumber(0)); return 1 }))
	g.RawSetString("print", L.NewFunction(v.luaPrint))
	g.RawSetString("require", L.NewFunction(v.luaRequire))

	strlib := L.GetField(g, "string").(*lua.LTable)
	rep := strlib.RawGetString("rep").(*lua.LFunction)
	strlib.RawSetString("rep", L.NewFunction(func(L *lua.LState) int {
		s := L.CheckString(1)
		n := L.CheckInt(2)
		if n > 0 && len(s) > 0 && n > maxStringRep/len(s) {
			L.RaiseError("string.rep: result longer than %d bytes", maxStringRep)
		}
		return callGo(L, rep)
	}))
	strlib.RawSetString("dump", lua.LNil)

	loaded := L.GetField(L.Get(lua.RegistryIndex), "_LOADED").(*lua.LTable)
	full := L.GetField(g, "os").(*lua.LTable)
	osTab := L.NewTable()
	osTime := full.RawGetString("time").(*lua.LFunction)
	osDate := full.RawGetString("date").(*lua.LFunction)
	osTab.RawSetString("clock", full.RawGetString("clock"))
	osTab.RawSetString("difftime", full.RawGetString("difftime"))
	// os.time() and os.date(fmt) read the engine's clock, so that replay of
	// a capture sees capture time, as skipVisitedHost's deadline does.
	osTab.RawSetString("time", L.NewFunction(func(L *lua.LState) int {
		if L.GetTop() == 0 || L.Get(1) == lua.LNil {
			L.Push(lua.LNumber(v.e.now().Unix()))
			return 1
		}
		return callGo(L, osTime)
	}))
	osTab.RawSetString("date", L.NewFunction(func(L *lua.LState) int {
		if L.GetTop() < 2 {
			f := L.OptString(1, "%c")
			L.SetTop(0)
			L.Push(lua.LString(f))
			L.Push(lua.LNumber(v.e.now().Unix()))
		}
		return callGo(L, osDate)
	}))
	g.RawSetString("os", osTab)
	loaded.RawSetString("os", osTab)

	pkg := L.NewTable()
	pkg.RawSetString("path", lua.LString(defaultPackagePath))
	pkg.RawSetString("cpath", lua.LString(""))
	pkg.RawSetString("loaded", loaded)
	pkg.RawSetString("preload", L.NewTable())
	g.RawSetString("package", pkg)
	loaded.RawSetString("package", pkg)

	ntop := L.NewTable()
	ntop.RawSetString("getDirs", L.NewFunction(func(L *lua.LState) int {
		t := L.NewTable()
		t.RawSetString("installdir", lua.LString(InstallDir))
		t.RawSetString("scriptdir", lua.LString(InstallDir+"/scripts"))
		t.RawSetString("workingdir", lua.LString(InstallDir+"/data"))
		L.Push(t)
		return 1
	}))
	g.RawSetString("ntop", ntop)
	loaded.RawSetString("ntop", ntop)

	host := v.hostTable()
	g.RawSetString("host", host)
	loaded.RawSetString("host", host)
}

// callGo calls a Go-implemented Lua function with the current arguments and
// returns its results.
func callGo(L *lua.LState, fn *lua.LFunction) int {
	n := L.GetTop()
	L.Insert(fn, 1)
	L.Call(n, lua.MultRet)
	return L.GetTop()
}

// luaPrint sends print() to the debug log.
func (v *vm) luaPrint(L *lua.LState) int {
	parts := make([]string, L.GetTop())
	for i := range parts {
		parts[i] = L.ToStringMeta(L.Get(i + 1)).String()
	}
	v.e.logger.Debug("lua print", "msg", strings.Join(parts, "\t"))
	return 0
}

// luaRequire is require(): package.loaded, then package.preload, then the
// patterns of package.path, resolved against the virtual module directory
// (see InstallDir). Nothing outside the script directories can be loaded.
func (v *vm) luaRequire(L *lua.LState) int {
	name := L.CheckString(1)
	loaded := L.GetField(L.Get(lua.RegistryIndex), "_LOADED").(*lua.LTable)
	if m := loaded.RawGetString(name); m != lua.LNil && m != lua.LFalse {
		L.Push(m)
		return 1
	}
	pkg, _ := L.GetGlobal("package").(*lua.LTable)
	var loader lua.LValue = lua.LNil
	tried := []string{}
	if pkg != nil {
		if pre, ok := pkg.RawGetString("preload").(*lua.LTable); ok {
			loader = pre.RawGetString(name)
		}
	}
	if loader == lua.LNil {
		path := defaultPackagePath
		if pkg != nil {
			if p, ok := pkg.RawGetString("path").(lua.LString); ok {
				path = string(p)
			}
		}
		file := strings.ReplaceAll(name, ".", "/")
		for _, pat := range strings.Split(path, ";") {
			if pat == "" {
				continue
			}
			cand := strings.ReplaceAll(pat, "?", file)
			if f, ok := v.set.modules[cand]; ok {
				loader = L.NewFunctionFromProto(f.proto)
				break
			}
			tried = append(tried, "\n\tno file '"+cand+"'")
		}
	}
	if loader == lua.LNil {
		L.RaiseError("module '%s' not found:%s", name, strings.Join(tried, ""))
	}
	L.Push(loader)
	L.Push(lua.LString(name))
	L.Call(1, 1)
	m := L.Get(-1)
	if m == lua.LNil {
		m = lua.LTrue
	}
	loaded.RawSetString(name, m)
	L.Push(m)
	return 1
}

// paramsTable converts configured params to a Lua table.
func paramsTable(L *lua.LState, params map[string]any) *lua.LTable {
	t := L.CreateTable(0, len(params))
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		t.RawSetString(k, toLua(L, params[k]))
	}
	return t
}

// toLua converts a configuration value; checkParam has validated it.
func toLua(L *lua.LState, x any) lua.LValue {
	switch x := x.(type) {
	case nil:
		return lua.LNil
	case bool:
		return lua.LBool(x)
	case string:
		return lua.LString(x)
	case int:
		return lua.LNumber(x)
	case int64:
		return lua.LNumber(x)
	case int32:
		return lua.LNumber(x)
	case uint64:
		return lua.LNumber(x)
	case uint32:
		return lua.LNumber(x)
	case uint:
		return lua.LNumber(x)
	case float64:
		return lua.LNumber(x)
	case float32:
		return lua.LNumber(x)
	case time.Duration:
		return lua.LNumber(x.Seconds())
	case []any:
		t := L.CreateTable(len(x), 0)
		for _, e := range x {
			t.Append(toLua(L, e))
		}
		return t
	case []string:
		t := L.CreateTable(len(x), 0)
		for _, e := range x {
			t.Append(lua.LString(e))
		}
		return t
	case map[string]any:
		return paramsTable(L, x)
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[fmt.Sprint(k)] = e
		}
		return paramsTable(L, m)
	}
	return lua.LNil
}

// checkParam reports a configuration value toLua cannot convert.
func checkParam(x any) error {
	switch x := x.(type) {
	case nil, bool, string, int, int64, int32, uint64, uint32, uint, float64, float32, time.Duration, []string:
		return nil
	case []any:
		for i, e := range x {
			if err := checkParam(e); err != nil {
				return fmt.Errorf("[%d]: %w", i, err)
			}
		}
		return nil
	case map[string]any:
		for k, e := range x {
			if err := checkParam(e); err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
		}
		return nil
	case map[any]any:
		for k, e := range x {
			if err := checkParam(e); err != nil {
				return fmt.Errorf("%v: %w", k, err)
			}
		}
		return nil
	}
	return fmt.Errorf("unsupported value type %T", x)
}

// eventHost is the alert.Host of an entry.
func eventHost(s *aggregate.HostSnapshot) alert.Host {
	name := s.Name
	if name == "" {
		name = s.Key.Addr.String()
	}
	return alert.Host{IP: s.Key.Addr.String(), VLAN: s.Key.VLAN, MAC: s.MAC.String(), Name: name, IsLocal: s.Local}
}
