package scripting

import (
	"math/bits"
	"strings"

	lua "github.com/yuin/gopher-lua"
)

// Isolation and bounded built-ins.
//
// Each check runs in an environment of its own (env): its globals, _G, its
// own copies of the library tables (string, table, math, os, ntop, host),
// its own package.loaded and require (a module it requires is loaded again
// for it). Replacing host.triggerAlert, string.find or a global therefore
// changes what this check calls and nothing else. What stays shared in a VM
// is out of reach: the Go functions themselves (immutable; setfenv and
// getfenv are not available), and the strings' metatable, whose __index is
// a private copy of the string library and which getmetatable("") does not
// return (its __metatable field is false).

const (
	// maxString caps the strings the built-ins build (string.rep,
	// table.concat, string.gsub, string.format, load's source): one call
	// cannot make a huge string in one step.
	maxString = 1 << 20
	// maxResults caps the values unpack and string.byte push (Lua's own
	// C stack limit is 8000).
	maxResults = 8000
	// bytesPerStep is how many bytes a built-in copies for one step of the
	// budget (about the time of one Lua instruction).
	bytesPerStep = 64
)

// baseNames are the base functions a check sees.
var baseNames = []string{"assert", "error", "ipairs", "next", "pairs", "pcall", "rawequal", "rawget", "rawset",
	"select", "setmetatable", "getmetatable", "tonumber", "tostring", "type", "xpcall", "_VERSION"}

// libNames are the library tables each environment gets a copy of.
var libNames = []string{"string", "table", "math", "os", "ntop", "host"}

// openSandbox opens base, table, string and math, a reduced os, ntop and
// host into the VM's global table, which serves only as the template of the
// checks' environments (newEnv): no check can reach it.
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
	// collectgarbage would stop the world of the whole process.
	g.RawSetString("collectgarbage", L.NewFunction(func(L *lua.LState) int { L.Push(lua.LNumber(0)); return 1 }))
	g.RawSetString("print", L.NewFunction(v.luaPrint))
	g.RawSetString("unpack", L.NewFunction(v.luaUnpack))

	str := L.GetField(g, "string").(*lua.LTable)
	strTab := L.CreateTable(0, 16)
	for _, name := range []string{"len", "lower", "upper", "reverse", "sub", "char", "byte", "format", "rep"} {
		strTab.RawSetString(name, str.RawGetString(name))
	}
	strTab.RawSetString("find", L.NewFunction(func(L *lua.LState) int { return v.strFindAux(L, true) }))
	strTab.RawSetString("match", L.NewFunction(func(L *lua.LState) int { return v.strFindAux(L, false) }))
	strTab.RawSetString("gmatch", L.NewFunction(v.strGmatch))
	strTab.RawSetString("gsub", L.NewFunction(v.strGsub))
	v.wrapSized(strTab, "rep", func(L *lua.LState) int {
		s, n := len(L.CheckString(1)), L.CheckInt(2)
		switch {
		case n <= 0 || s == 0:
			return 0
		case n > maxString/s:
			return maxString + 1
		}
		return s * n
	})
	for _, name := range []string{"lower", "upper", "reverse"} {
		v.wrapSized(strTab, name, func(L *lua.LState) int { return len(L.CheckString(1)) })
	}
	v.wrapSized(strTab, "format", v.formatSize)
	strTab.RawSetString("byte", L.NewFunction(v.strByte))
	g.RawSetString("string", strTab)
	// The strings' metatable: its own copy of the library, out of reach.
	mt := L.CreateTable(0, 2)
	mt.RawSetString("__index", copyTable(L, strTab))
	mt.RawSetString("__metatable", lua.LFalse)
	L.SetMetatable(lua.LString(""), mt)

	tab := L.GetField(g, "table").(*lua.LTable)
	tab.RawSetString("concat", L.NewFunction(v.tableConcat))
	sortFn := tab.RawGetString("sort").(*lua.LFunction)
	tab.RawSetString("sort", L.NewFunction(func(L *lua.LState) int {
		// The comparisons of a Lua comparator count as instructions;
		// those of the default order are charged here.
		n := L.CheckTable(1).Len()
		v.budget.charge(L, n*bits.Len(uint(n)))
		return callGo(L, sortFn)
	}))

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
	g.RawSetString("host", v.hostTable())
}

// wrapSized replaces lib[name] by a function that charges the size of its
// result (size reads the arguments) and refuses results over maxString.
func (v *vm) wrapSized(lib *lua.LTable, name string, size func(L *lua.LState) int) {
	fn := lib.RawGetString(name).(*lua.LFunction)
	lib.RawSetString(name, v.L.NewFunction(func(L *lua.LState) int {
		n := size(L)
		if n > maxString || n < 0 {
			L.RaiseError("string.%s: result longer than %d bytes", name, maxString)
		}
		v.budget.charge(L, n/bytesPerStep)
		return callGo(L, fn)
	}))
}

// formatSize bounds string.format's result: the format and the string
// arguments, plus what the conversions add (width and precision are at
// most two digits, as in Lua).
func (v *vm) formatSize(L *lua.LState) int {
	f := L.CheckString(1)
	n := len(f)
	for i := 0; i < len(f); i++ {
		if f[i] != '%' {
			continue
		}
		digits := 0
		for i++; i < len(f) && strings.IndexByte("-+ #0.123456789", f[i]) >= 0; i++ {
			if isdigit(f[i]) {
				digits++
			} else {
				digits = 0
			}
			if digits > 2 {
				L.RaiseError("invalid format (width or precision too long)")
			}
		}
		n += 100
	}
	for i := 2; i <= L.GetTop(); i++ {
		if s, ok := L.Get(i).(lua.LString); ok {
			n += len(s)
		}
	}
	return n
}

// strByte is string.byte, pushing at most maxResults values.
func (v *vm) strByte(L *lua.LState) int {
	s := L.CheckString(1)
	i := posrelat(L.OptInt(2, 1), len(s))
	j := posrelat(L.OptInt(3, i), len(s))
	i, j = max(i, 1), min(j, len(s))
	if i > j {
		return 0
	}
	if j-i+1 > maxResults {
		L.RaiseError("string.byte: string slice too long")
	}
	v.budget.charge(L, j-i+1)
	for k := i; k <= j; k++ {
		L.Push(lua.LNumber(s[k-1]))
	}
	return j - i + 1
}

// luaUnpack is unpack(t [, i [, j]]), refusing more than maxResults values
// at once instead of growing the stack towards them.
func (v *vm) luaUnpack(L *lua.LState) int {
	t := L.CheckTable(1)
	i := L.OptInt(2, 1)
	j := L.OptInt(3, t.Len())
	if i > j {
		return 0
	}
	n := j - i + 1
	if n <= 0 || n > maxResults { // n <= 0: overflow
		L.RaiseError("too many results to unpack")
	}
	v.budget.charge(L, n)
	for k := i; k <= j; k++ {
		L.Push(t.RawGetInt(k))
	}
	return n
}

// tableConcat is table.concat(t [, sep [, i [, j]]]), charged per element
// and byte, its result capped at maxString.
func (v *vm) tableConcat(L *lua.LState) int {
	t := L.CheckTable(1)
	sep := L.OptString(2, "")
	i := L.OptInt(3, 1)
	j := L.OptInt(4, t.Len())
	var b strings.Builder
	for k := i; k <= j; k++ {
		val := t.RawGetInt(k)
		switch val.(type) {
		case lua.LString, lua.LNumber:
		default:
			L.RaiseError("invalid value (at index %d) in table for 'concat'", k)
		}
		s := val.String()
		if b.Len()+len(s)+len(sep) > maxString {
			L.RaiseError("table.concat: result longer than %d bytes", maxString)
		}
		v.budget.charge(L, 1+(len(s)+len(sep))/bytesPerStep)
		b.WriteString(s)
		if k != j {
			b.WriteString(sep)
		}
	}
	L.Push(lua.LString(b.String()))
	return 1
}

// copyTable is a shallow copy of t.
func copyTable(L *lua.LState, t *lua.LTable) *lua.LTable {
	c := L.CreateTable(0, 32)
	t.ForEach(func(k, val lua.LValue) { c.RawSet(k, val) })
	return c
}

// newEnv builds the environment of one check: the base functions, copies of
// the libraries, and its own package, require, load and loadstring.
func (v *vm) newEnv() *lua.LTable {
	L := v.L
	g := L.G.Global
	env := L.CreateTable(0, 40)
	for _, name := range baseNames {
		env.RawSetString(name, g.RawGetString(name))
	}
	for _, name := range []string{"print", "unpack", "collectgarbage"} {
		env.RawSetString(name, g.RawGetString(name))
	}
	env.RawSetString("_G", env)
	loaded := L.CreateTable(0, 16)
	for _, name := range libNames {
		lib := copyTable(L, g.RawGetString(name).(*lua.LTable))
		env.RawSetString(name, lib)
		loaded.RawSetString(name, lib)
	}
	loaded.RawSetString("_G", env)
	pkg := L.NewTable()
	pkg.RawSetString("path", lua.LString(defaultPackagePath))
	pkg.RawSetString("cpath", lua.LString(""))
	pkg.RawSetString("loaded", loaded)
	pkg.RawSetString("preload", L.NewTable())
	env.RawSetString("package", pkg)
	loaded.RawSetString("package", pkg)
	env.RawSetString("require", L.NewFunction(func(L *lua.LState) int { return v.luaRequire(L, env) }))
	load := L.NewFunction(func(L *lua.LState) int { return v.luaLoad(L, env) })
	env.RawSetString("load", load)
	env.RawSetString("loadstring", load)
	return env
}

// luaLoad is load(chunk [, name]) and loadstring(s [, name]): chunk is the
// source or a function returning its pieces. It compiles source only
// (gopher-lua has no bytecode loader), within the call's budget, into a
// function of the calling check's environment.
func (v *vm) luaLoad(L *lua.LState, env *lua.LTable) int {
	var src string
	name := "=(load)"
	switch c := L.Get(1).(type) {
	case lua.LString:
		src, name = string(c), string(c)
	case *lua.LFunction:
		var b strings.Builder
		for {
			L.Push(c)
			L.Call(0, 1)
			piece := L.Get(-1)
			L.Pop(1)
			s, ok := piece.(lua.LString)
			if !ok || s == "" {
				if piece != lua.LNil && !ok {
					L.Push(lua.LNil)
					L.Push(lua.LString("reader function must return a string"))
					return 2
				}
				break
			}
			if b.Len()+len(s) > maxString {
				L.RaiseError("load: chunk longer than %d bytes", maxString)
			}
			b.WriteString(string(s))
		}
		src = b.String()
	default:
		L.ArgError(1, "string or function expected")
	}
	if len(src) > maxString {
		L.RaiseError("load: chunk longer than %d bytes", maxString)
	}
	if n, ok := L.Get(2).(lua.LString); ok {
		name = string(n)
	}
	v.budget.charge(L, len(src)/8)
	fn, err := L.Load(strings.NewReader(src), name)
	if err != nil {
		L.Push(lua.LNil)
		L.Push(lua.LString(err.Error()))
		return 2
	}
	fn.Env = env
	L.Push(fn)
	return 1
}

// luaRequire is require() of a check: its package.loaded, then its
// package.preload, then the patterns of its package.path, resolved against
// the virtual module directory (see InstallDir). Nothing outside the script
// directories can be loaded; a module is loaded into the check's own
// environment.
func (v *vm) luaRequire(L *lua.LState, env *lua.LTable) int {
	name := L.CheckString(1)
	pkg, _ := env.RawGetString("package").(*lua.LTable)
	if pkg == nil {
		L.RaiseError("require: package is not a table")
	}
	loaded, _ := pkg.RawGetString("loaded").(*lua.LTable)
	if loaded == nil {
		L.RaiseError("require: package.loaded is not a table")
	}
	if m := loaded.RawGetString(name); m != lua.LNil && m != lua.LFalse {
		L.Push(m)
		return 1
	}
	var loader lua.LValue = lua.LNil
	if pre, ok := pkg.RawGetString("preload").(*lua.LTable); ok {
		loader = pre.RawGetString(name)
	}
	var tried []string
	if loader == lua.LNil {
		path := defaultPackagePath
		if p, ok := pkg.RawGetString("path").(lua.LString); ok {
			path = string(p)
		}
		file := strings.ReplaceAll(name, ".", "/")
		for _, pat := range strings.Split(path, ";") {
			if pat == "" {
				continue
			}
			cand := strings.ReplaceAll(pat, "?", file)
			if f, ok := v.set.modules[cand]; ok {
				fn := L.NewFunctionFromProto(f.proto)
				fn.Env = env
				loader = fn
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
