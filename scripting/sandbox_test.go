package scripting

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/flowcheck/flowcheck/aggregate"
)

// goodCheck alerts on every host, every call: it must keep doing so beside
// any hostile check.
const goodCheck = `return { check = function(info)
	host.triggerAlert(10, "good " .. string.format("%s", host.ip()) .. (string.find("abc", "b") and "" or "?"))
end }`

// hostileScripts are checks that tried to take the engine down (issue 12):
// each must be stopped, counted and disabled (or made harmless) while the
// good check keeps alerting. They are also the robustness suite's seeds.
var hostileScripts = []struct {
	name string
	src  string
	// disabled: the check must end up disabled; otherwise it must merely
	// not affect the good check.
	disabled bool
}{
	{"backtracking_pattern", `return { check = function(info)
		string.find(string.rep("a", 30), "(.-)(.-)(.-)(.-)(.-)(.-)b")
	end }`, true},
	{"backtracking_method", `return { check = function(info)
		local s = string.rep("a", 40)
		s:match("^(a-)(a-)(a-)(a-)(a-)(a-)(a-)$b")
	end }`, true},
	{"gsub_backtracking", `return { check = function(info)
		string.gsub(string.rep("a", 30), "(.-)(.-)(.-)(.-)(.-)(.-)b", "x")
	end }`, true},
	{"gmatch_backtracking", `return { check = function(info)
		for x in string.gmatch(string.rep("a", 30), "(.-)(.-)(.-)(.-)(.-)(.-)b") do end
	end }`, true},
	{"unpack_1e7", `return { check = function(info) unpack({}, 1, 1e7) end }`, true},
	{"endless_loop", `return { check = function(info) while true do end end }`, true},
	{"pcall_endless_loop", `return { check = function(info)
		while true do pcall(function() while true do end end) end
	end }`, true},
	{"concat_loop", `return { check = function(info)
		local s = "" for i = 1, 1e7 do s = s .. "x" end
	end }`, true},
	{"table_concat_huge", `return { check = function(info)
		local t = {} for i = 1, 100 do t[i] = string.rep("x", 1e5) end
		for i = 1, 100 do table.concat(t) end
	end }`, true},
	{"sort_comparator", `return { check = function(info)
		local t = {} for i = 1, 5000 do t[i] = (i * 7919) % 5003 end
		for i = 1, 1000 do table.sort(t, function(a, b) return a > b end) end
	end }`, true},
	{"string_doubling", `return { check = function(info)
		local s = "x" while true do s = s .. s end
	end }`, true},
	{"keep_1mib_per_call", `local keep = {}
	return { check = function(info)
		keep[#keep + 1] = string.rep("x", 1048576)
	end }`, true},
	{"keep_1mib_per_call_concat", `local keep, big = {}, string.rep("x", 1048575)
	return { check = function(info)
		keep[#keep + 1] = big .. #keep
	end }`, true},
	{"state_grows", `return { check = function(info)
		info.state.s = (info.state.s or "") .. string.rep("y", 10000)
	end }`, false},
	{"replace_trigger_alert", `host.triggerAlert = function() end
	rawset(host, "triggerAlert", function() end)
	package.loaded.host.triggerAlert = nil
	_G.string.find = function() return nil end
	string.format = nil
	pcall(function() getmetatable("").__index.find = function() return nil end end)
	pcall(function() setfenv(0, {}) end)
	return { check = function(info)
		host.triggerAlert = nil
		pairs, ipairs, type = nil, nil, nil
	end }`, false},
}

// metric reads a per-check counter.
func metric(t *testing.T, c *prometheus.CounterVec, check string) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.WithLabelValues(check).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// TestHostileScripts runs each hostile check (named so that it runs
// before the good one on every host) beside the good check, on unpaced
// ticks like replay's: the good check must alert on every host at every
// tick, and the hostile one be stopped, counted and disabled.
func TestHostileScripts(t *testing.T) {
	for _, hs := range hostileScripts {
		t.Run(hs.name, func(t *testing.T) {
			hosts := newFakeHosts()
			const nHosts = 6
			for i := range nHosts {
				hosts.put(aggregate.HostSnapshot{Key: key(fmt.Sprintf("10.0.0.%d", i+1)), BytesSent: 100})
			}
			h := newHarness(t, map[string]string{"a_hostile": hs.src, "good": goodCheck}, hosts, func(c *Configuration) {
				c.MaxFailures = 2
				c.MaxMemory = 16 << 20
				c.MaxInstructions = 200_000
			})
			before := heapAlloc()
			for tick := range 8 {
				st := h.tick()
				good := 0
				for _, ev := range h.pub.take() {
					if ev.Check == "good" && ev.State == "engaged" {
						good++
					}
				}
				// The good check engages once per host, at the first tick.
				if tick == 0 && good != nHosts {
					t.Fatalf("tick %d: %d good alerts engaged, want %d (stats %+v)", tick, good, nHosts, st)
				}
				if tick > 0 && good != 0 {
					t.Fatalf("tick %d: good alerts engaged again: %d", tick, good)
				}
				if st.Duration > 30*time.Second {
					t.Fatalf("tick %d took %v", tick, st.Duration)
				}
			}
			// Still engaged: nothing released them.
			for i := range nHosts {
				hk := h.e.hosts.get(key(fmt.Sprintf("10.0.0.%d", i+1)))
				if hk == nil || hk.score() != 10 {
					t.Fatalf("host %d: good alert not engaged", i+1)
				}
			}
			sc := h.e.set.checks[0]
			if sc.name != "a_hostile" {
				t.Fatalf("first check %s", sc.name)
			}
			errs := metric(t, h.e.metrics.errors, "a_hostile")
			if hs.disabled {
				if !sc.disabled.Load() {
					t.Fatalf("hostile check not disabled (errors %v)", errs)
				}
				if errs == 0 || metric(t, h.e.metrics.disabled, "a_hostile") != 1 {
					t.Fatalf("hostile check not counted: errors %v disabled %v", errs,
						metric(t, h.e.metrics.disabled, "a_hostile"))
				}
				// Whatever it kept is freed.
				for range 2 {
					h.tick()
				}
				if grown := heapAlloc() - before; grown > 8<<20 {
					t.Fatalf("heap grew by %d bytes after the check was disabled", grown)
				}
			}
			if metric(t, h.e.metrics.errors, "good") != 0 {
				t.Fatalf("good check failed")
			}
		})
	}
}

// TestStateBounded: a host_info.state over maxStateBytes is emptied and the
// call fails.
func TestStateBounded(t *testing.T) {
	hosts := newFakeHosts(aggregate.HostSnapshot{Key: key("10.0.0.1")})
	h := newHarness(t, map[string]string{"s": hostileScripts[13].src}, hosts, func(c *Configuration) { c.MaxFailures = 0 })
	if hostileScripts[13].name != "state_grows" {
		t.Fatal("wrong script")
	}
	var errs int
	for range 10 {
		errs += h.tick().Errors
	}
	if errs == 0 {
		t.Fatal("state grew past maxStateBytes without an error")
	}
	he := h.e.hosts.get(key("10.0.0.1"))
	lo, hi := he.fieldRange(h.e.set.checks[0].slot)
	size := 0
	if x := he.peek(h.e.set.checks[0].slot); x != nil {
		for _, s := range x.strs {
			size += len(s)
		}
	}
	if hi-lo > 1 || size > maxStateBytes {
		t.Fatalf("state kept %d bytes", size)
	}
}

// TestTickCancelInBuiltin: cancelling a tick stops a call that is inside a
// built-in and would otherwise run for good, and Tick returns.
func TestTickCancelInBuiltin(t *testing.T) {
	hosts := newFakeHosts()
	for i := range 200 {
		hosts.put(aggregate.HostSnapshot{Key: key(fmt.Sprintf("10.0.%d.%d", i/250, i%250+1))})
	}
	h := newHarness(t, map[string]string{"slow": `return { check = function(info)
		while true do string.find(string.rep("a", 40), "(.-)(.-)(.-)(.-)(.-)(.-)(.-)(.-)b") end
	end }`}, hosts, func(c *Configuration) {
		c.MaxInstructions = 1 << 50
		c.MaxFailures = 0
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan TickStats)
	go func() { done <- h.e.Tick(ctx, t0, false) }()
	// Cancel once every worker is in a call (its budget's seq is odd).
	for busy := 0; busy < len(h.e.vms); {
		busy = 0
		for _, v := range h.e.vms {
			busy += int(v.budget.seq.Load() & 1)
		}
		runtime.Gosched()
	}
	cancel()
	select {
	case st := <-done:
		if st.Calls > 2*h.e.cfg.workers() {
			t.Fatalf("%d calls after cancel, want at most one per worker", st.Calls)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Tick did not return after cancel")
	}
}

// TestIsolation: what one check does to its globals, libraries and modules
// is not seen by another.
func TestIsolation(t *testing.T) {
	hosts := newFakeHosts(aggregate.HostSnapshot{Key: key("10.0.0.1")})
	h := newHarness(t, map[string]string{
		"a": `shared = "a"
			local hc = require("helper")
			hc.value = "changed by a"
			string.len = function() return -1 end
			return { check = function(info)
				local st = host.getUnidirectionalTCPUDPFlowsStats()
				st.extra = "a"
				setmetatable(st, { __index = function() return "a" end })
			end }`,
		"b": `local hc = require("helper")
			return { check = function(info)
				local st = host.getUnidirectionalTCPUDPFlowsStats()
				if shared ~= nil then error("sees a's global") end
				if hc.value ~= "original" then error("sees a's module change: " .. tostring(hc.value)) end
				if string.len("xy") ~= 2 then error("sees a's string.len") end
				if ("xy"):len() ~= 2 then error("string methods changed") end
				if st.extra ~= nil or getmetatable(st) ~= nil or st.nothing ~= nil then error("sees a's changes of the stats table") end
				if getmetatable("") ~= false then error("string metatable reachable") end
				if getfenv or setfenv then error("getfenv/setfenv available") end
				host.triggerAlert(1, "ok")
			end }`,
		"helper": `return { value = "original" }`,
	}, hosts, nil)
	for range 2 {
		st := h.tick()
		if st.Errors != 0 {
			t.Fatalf("errors: %+v", st)
		}
	}
	if he := h.e.hosts.get(key("10.0.0.1")); he.score() != 1 {
		t.Fatalf("b did not alert")
	}
}

// TestLoad: load and loadstring compile source, in the caller's own
// environment, within the budget.
func TestLoad(t *testing.T) {
	hosts := newFakeHosts(aggregate.HostSnapshot{Key: key("10.0.0.1")})
	h := newHarness(t, map[string]string{
		"a": `return { check = function(info)
			local f = assert(load("return 1 + 1"))
			if f() ~= 2 then error("load") end
			local g = assert(loadstring("x_from_load = 5"))
			g()
			if x_from_load ~= 5 then error("load env") end
			local parts, i = {"return ", "40 ", "+ 2"}, 0
			local h = assert(load(function() i = i + 1 return parts[i] end))
			if h() ~= 42 then error("load reader") end
			local bad, msg = load("return +")
			if bad ~= nil or type(msg) ~= "string" then error("load syntax error") end
			if pcall(load("while true do end")) then error("budget") end
			host.triggerAlert(1, "ok")
		end }`,
		"b": `return { check = function(info)
			if x_from_load ~= nil then error("sees a's loaded chunk globals") end
		end }`,
	}, hosts, func(c *Configuration) { c.MaxInstructions = 100_000 })
	st := h.tick()
	if st.Errors != 1 || st.Timeouts != 1 {
		// a: pcall cannot swallow the budget, so a fails once; b is fine.
		t.Fatalf("stats %+v, want the one timeout of a's endless chunk", st)
	}
}

// TestInstructionBudgetDeterministic: the budget is counted in
// instructions: a call just under it passes and one just over fails, on
// every run, whatever the machine's speed or load.
func TestInstructionBudgetDeterministic(t *testing.T) {
	hosts := newFakeHosts(aggregate.HostSnapshot{Key: key("10.0.0.1")})
	for _, n := range []int{100, 1_000_000} {
		for range 3 {
			h := newHarness(t, map[string]string{"loop": fmt.Sprintf(`return { check = function(info)
				local x = 0 for i = 1, %d do x = x + i end
			end }`, n)}, hosts, func(c *Configuration) { c.MaxInstructions = 50_000 })
			st := h.tick()
			want := 0
			if n > 10_000 {
				want = 1
			}
			if st.Timeouts != want {
				t.Fatalf("loop of %d: %d timeouts, want %d", n, st.Timeouts, want)
			}
		}
	}
}

// TestMemoryFreedAfterDisable: a table kept across calls is freed once its
// check is disabled for memory.
func TestMemoryFreedAfterDisable(t *testing.T) {
	hosts := newFakeHosts()
	for i := range 8 {
		hosts.put(aggregate.HostSnapshot{Key: key(fmt.Sprintf("10.0.0.%d", i+1))})
	}
	before := heapAlloc()
	h := newHarness(t, map[string]string{"keep": hostileScripts[11].src}, hosts, func(c *Configuration) {
		c.MaxMemory = 16 << 20
	})
	var peak int64
	for range 10 {
		h.tick()
		peak = max(peak, heapAlloc()-before)
	}
	if !h.e.set.checks[0].disabled.Load() {
		t.Fatal("not disabled")
	}
	after := heapAlloc() - before
	t.Logf("kept at most %d MiB, %d MiB after disable", peak>>20, after>>20)
	if peak > 64<<20 {
		t.Fatalf("peak %d bytes: the ceiling of 16 MiB did not hold", peak)
	}
	if after > 8<<20 {
		t.Fatalf("%d bytes still held after disable", after)
	}
	runtime.KeepAlive(h)
}

// TestSandboxLibraries: what the sandbox offers and refuses.
func TestSandboxLibraries(t *testing.T) {
	cases := []struct{ expr, want string }{
		{`string.rep("ab", 3)`, "ababab"},
		{`select("#", unpack({1, 2, 3}))`, "3"},
		{`table.concat({1, "a", 2}, ",")`, "1,a,2"},
		{`string.format("%5.2f|%s", 3.14159, "x")`, " 3.14|x"},
		{`pcall(string.format, "%100d", 1)`, "false"},
		{`pcall(string.rep, "x", 2^21)`, "false"},
		{`pcall(unpack, {}, 1, 1e7)`, "false"},
		{`select("#", string.byte("abc", 1, -1))`, "3"},
		{`(string.gsub("hello world", "o", "0"))`, "hell0 w0rld"},
		{`(string.gsub("abc", "%w", "%0%0"))`, "aabbcc"},
		{`(string.gsub("abc", "(b)", {b = "B"}))`, "aBc"},
		{`(string.gsub("abc", "%w", function(c) return c:upper() end))`, "ABC"},
		{`select(2, string.gsub("aaa", "a", "b", 2))`, "2"},
		{`string.match("key=val", "(%w+)=(%w+)")`, "key"},
		{`select(2, string.find("abc", "(b)()"))`, "2"},
		{`select(4, string.find("abc", "(b)()"))`, "3"},
		{`string.match("THE (quick) fox", "%((%a+)%)")`, "quick"},
		{`string.match("x = [[a]] y", "%b[]")`, "[[a]]"},
		{`string.find("THE (quick) fox", "%f[%a]%a+", 5)`, "6"},
		{`string.find("a.b", ".", 1, true)`, "2"},
		{`string.find("abc", "c", 10)`, "nil"},
		{`type(os.execute)`, "nil"},
		{`type(io)`, "nil"},
		{`type(debug)`, "nil"},
		{`type(string.dump)`, "nil"},
		{`pcall(string.find, "a", "[a")`, "false"},
		// Found by FuzzPatternDifferential: a back-reference to a position
		// capture sliced out of range.
		{`string.find("[[00", "%[()%100")`, "nil"},
	}
	for _, c := range cases {
		t.Run(c.expr, func(t *testing.T) {
			hosts := newFakeHosts(aggregate.HostSnapshot{Key: key("10.0.0.1")})
			h := newHarness(t, map[string]string{"c": `return { check = function(info)
				host.triggerAlert(1, tostring(` + c.expr + `))
			end }`}, hosts, nil)
			h.tick()
			evs := h.pub.take()
			if len(evs) != 1 || evs[0].Message != c.want {
				t.Fatalf("got %+v, want message %q", evs, c.want)
			}
		})
	}
}

// TestHostileSeedsCompile keeps the hostile scripts valid Lua (they seed
// the robustness suite).
func TestHostileSeedsCompile(t *testing.T) {
	for _, hs := range hostileScripts {
		f := &scriptFile{name: hs.name, path: hs.name + ".lua", src: []byte(hs.src)}
		if err := compile(f); err != nil {
			t.Errorf("%s: %v", hs.name, err)
		}
		if strings.TrimSpace(hs.src) == "" {
			t.Errorf("%s: empty", hs.name)
		}
	}
}
