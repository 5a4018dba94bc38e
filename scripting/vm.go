package scripting

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync/atomic"
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
	// env is the check's environment (sandbox.go): its globals, libraries
	// and modules, private to it.
	env *lua.LTable
	// uni and refused are the reused results of the check's
	// getUnidirectionalTCPUDPFlowsStats and getRefusedTCPFlowsStats, l7One
	// that of its host.l7(name): per check, so that what one check does to
	// them is never seen by another.
	uni, refused *flowsStats
	l7One        *lua.LTable
}

// vm is one worker: a sandboxed Lua state with the checks loaded, and the
// host bound to the call in progress.
type vm struct {
	e      *Engine
	L      *lua.LState
	set    *scriptSet
	checks []vmCheck
	budget *budget
	lim    vmLimits

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
	// never need them, and caching them per host costs memory.
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
	// quiet: the bound host is warming up after a hand-over (Engine.Quiet).
	quiet  bool
	tValue int
	tMsg   string

	// l7All and l7Protos are the result of host.l7() in the check call in
	// progress and its protocol tables (parallel to snap.L7), nil until the
	// call asks for it: reused by the later host.l7() of the same call only.
	l7All    *lua.LTable
	l7Protos []*lua.LTable

	// events are the alert events of the host in progress, published once
	// its lock is released.
	events []alert.Event

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
	// steps sums the instructions used; nanos the wall time of the timed
	// calls (one in timeEvery), timed their number.
	steps, timed, nanos uint64
}

// vmLimits are the budgets of a VM's calls (see Configuration).
type vmLimits struct {
	// steps is the budget of one call, loadSteps that of loading a script.
	steps, loadSteps int64
	// memory is the ceiling of what one check keeps in a VM.
	memory int64
	// loadTimeout is the wall-clock budget of loading the scripts.
	loadTimeout time.Duration
}

// limits are the VM budgets of a configuration.
func (c Configuration) limits() vmLimits {
	return vmLimits{steps: c.MaxInstructions, loadSteps: loadStepsFactor * c.MaxInstructions,
		memory: c.MaxMemory, loadTimeout: max(c.CallTimeout, minLoadTimeout)}
}

// loadStepsFactor is how many call budgets loading a script may use:
// module-level code runs once per VM, off the tick.
const loadStepsFactor = 10

// newVM builds a sandboxed state and loads every check of set into it, each
// in its own environment. A check that fails to load, or keeps more than
// the memory ceiling once loaded, leaves a nil fn in this VM (and is
// reported).
func newVM(e *Engine, set *scriptSet, lim vmLimits) *vm {
	v := &vm{e: e, set: set, budget: newBudget(), lim: lim, keyIDs: map[string]uint16{}}
	v.L = lua.NewState(lua.Options{
		SkipOpenLibs:    true,
		CallStackSize:   200,
		RegistrySize:    1024,
		RegistryMaxSize: 256 * 1024,
	})
	v.openSandbox()
	v.L.SetContext(v.budget)
	v.checks = make([]vmCheck, len(set.checks))
	v.stats = make([]checkStats, len(set.checks))
	if len(set.checks) == 0 {
		return v
	}
	defer v.guardLoad()()
	for i, sc := range set.checks {
		if sc.disabled.Load() {
			continue
		}
		env := v.newEnv()
		_, fn, err := v.loadCheck(sc.file, env)
		if err != nil {
			e.logFailure(sc, "", fmt.Errorf("load: %w", err))
			continue
		}
		info := v.L.NewTable()
		info.RawSetString("params", paramsTable(v.L, sc.cfg.Params))
		info.Metatable = v.infoMeta()
		vc := &v.checks[i]
		*vc = vmCheck{fn: fn, info: info, env: env, uni: newFlowsStats(v.L), refused: newFlowsStats(v.L),
			l7One: v.L.CreateTable(0, 5)}
		vc.newScratch(v.L)
		if n := vc.memory(lim.memory); n > lim.memory {
			e.logFailure(sc, "", fmt.Errorf("load: the module keeps more than %d bytes (scripting.max_memory)", lim.memory))
			*vc = vmCheck{}
		}
	}
	return v
}

// guardLoad bounds module-level code like a call: loadSteps, and a
// watchdog for wall time (the load is off the tick) and allocation, until
// the function it returns is called.
func (v *vm) guardLoad() func() {
	stop := make(chan struct{})
	var walked atomic.Int64
	go watchdog(context.Background(), stop, []*budget{v.budget},
		watchLimits{cpu: v.lim.loadTimeout, memory: v.lim.memory}, &walked)
	return func() { close(stop) }
}

// close releases the state.
func (v *vm) close() { v.L.Close() }

// loadCheck runs a check module in env (within loadSteps, the load timeout
// and the memory ceiling) and returns it and its check function.
func (v *vm) loadCheck(f *scriptFile, env *lua.LTable) (*lua.LTable, *lua.LFunction, error) {
	L := v.L
	chunk := L.NewFunctionFromProto(f.proto)
	chunk.Env = env
	L.Push(chunk)
	L.Push(lua.LString(f.name))
	v.budget.arm(v.lim.loadSteps)
	err := L.PCall(1, 1, nil)
	v.budget.disarm()
	if err != nil {
		return nil, nil, err
	}
	ret := L.Get(-1)
	L.Pop(1)
	mod, ok := ret.(*lua.LTable)
	if !ok {
		return nil, nil, fmt.Errorf("%s: module returned %s, not a table", f.path, ret.Type())
	}
	fn, ok := mod.RawGetString("check").(*lua.LFunction)
	if !ok {
		return nil, nil, fmt.Errorf("%s: module has no check function", f.path)
	}
	// Like require, remember the module, so that require(own name) gets
	// this instance.
	if pkg, ok := env.RawGetString("package").(*lua.LTable); ok {
		if loaded, ok := pkg.RawGetString("loaded").(*lua.LTable); ok {
			loaded.RawSetString(f.name, mod)
		}
	}
	return mod, fn, nil
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

// newVMs builds one VM per worker of cfg for a set.
func (e *Engine) newVMs(set *scriptSet, cfg Configuration) []*vm {
	vms := make([]*vm, cfg.workers())
	for i := range vms {
		vms[i] = newVM(e, set, cfg.limits())
	}
	return vms
}
