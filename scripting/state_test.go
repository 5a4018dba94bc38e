package scripting

import (
	"fmt"
	"os"
	"testing"

	"github.com/flowcheck/flowcheck/aggregate"
)

// TestStateKinds checks that host_info.state keeps what a check writes,
// per host, across ticks and VMs (two workers), whether it is frozen into
// the host's entry (plain string keys with numbers, booleans, strings) or
// kept as a live table (nested tables, a metatable, other keys, too many
// fields), and that a state moves between the two.
func TestStateKinds(t *testing.T) {
	a, b := key("10.99.0.10"), key("10.99.0.11")
	cases := []struct {
		name, body string
		// want is the message on a and b after three ticks; live whether
		// a's state is then a live table.
		wantA, wantB string
		live         bool
	}{
		{"scalars", `st.n = (st.n or 0) + 1; st.b = not st.b; st.s = (st.s or "") .. "x"; st.f = st.n / 2
			st.ip = st.ip or info.ip
			if info.ip == "10.99.0.10" then st.only_a = true end
			msg = string.format("%d %s %s %.1f %s %s", st.n, tostring(st.b), st.s, st.f, st.ip, tostring(st.only_a))`,
			"3 true xxx 1.5 10.99.0.10 true", "3 true xxx 1.5 10.99.0.11 nil", false},
		{"big numbers", `st.big = (st.big or 2^53) - 1; st.neg = (st.neg or 0) - 0.25; msg = string.format("%.0f %.2f", st.big, st.neg)`,
			"9007199254740989 -0.75", "9007199254740989 -0.75", false},
		{"nested table", `st.h = st.h or {}; st.h[#st.h + 1] = info.ip; msg = #st.h .. " " .. st.h[1]`,
			"3 10.99.0.10", "3 10.99.0.11", true},
		{"metatable", `if getmetatable(st) == nil then setmetatable(st, {__index = function() return 7 end}) end
			st.n = (rawget(st, "n") or 0) + 1; msg = st.n .. " " .. st.missing`, "3 7", "3 7", true},
		{"integer key", `st[1] = (st[1] or 0) + 1; msg = tostring(st[1])`, "3", "3", true},
		{"too many fields", `for i = 1, 70 do st["k" .. i] = (st["k" .. i] or 0) + i end; msg = st.k1 .. " " .. st.k70`,
			"3 210", "3 210", true},
		{"live then plain", `st.n = (st.n or 0) + 1; if st.n == 1 then st.t = {} else st.t = nil end
			msg = st.n .. " " .. tostring(st.t)`, "3 nil", "3 nil", false},
		{"error keeps writes", `st.n = (st.n or 0) + 1; if st.n == 2 then error("boom") end; msg = tostring(st.n)`,
			"3", "3", false},
		{"nothing written", `msg = tostring(st.n) .. tostring(next(st))`, "nilnil", "nilnil", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := `return { check = function(info)
				local st = info.state
				local msg
				` + tc.body + `
				host.triggerAlert(1, msg)
			end }`
			h := newHarness(t, map[string]string{"c": src}, newFakeHosts(hostA(), func() aggregate.HostSnapshot {
				s := hostA()
				s.Key = b
				return s
			}()), nil)
			for range 3 {
				h.tick()
			}
			got := map[string]string{}
			for _, ev := range h.e.Engaged() {
				got[ev.Host.IP] = ev.Message
			}
			if got[a.Addr.String()] != tc.wantA || got[b.Addr.String()] != tc.wantB {
				t.Errorf("messages %q, want %q and %q", got, tc.wantA, tc.wantB)
			}
			e := h.e.hosts.get(a)
			x := e.peek(h.e.set.checks[0].slot)
			if live := x != nil && x.state != nil; live != tc.live {
				t.Errorf("live state %v, want %v (%d frozen fields)", live, tc.live, len(e.fields))
			}
			if tc.live && len(e.fields) != 0 {
				t.Errorf("live state and %d frozen fields", len(e.fields))
			}
		})
	}
}

// TestStateExpiry checks that an expired host starts over: no state, first
// run again, nothing kept in the engine.
func TestStateExpiry(t *testing.T) {
	h := newHarness(t, map[string]string{"c": `return { check = function(info)
		info.state.n = (info.state.n or 0) + 1
		host.triggerAlert(1, info.state.n .. " " .. tostring(host.isFirstCheckRun()))
	end }`}, newFakeHosts(hostA()), nil)
	h.tick()
	h.tick()
	if eng := h.e.Engaged(); len(eng) != 1 || eng[0].Message != "2 false" {
		t.Fatalf("before expiry: %+v", eng)
	}
	h.e.HostExpired(key("10.99.0.10"))
	if n := h.e.hosts.count(); n != 0 {
		t.Fatalf("%d entries after expiry", n)
	}
	h.tick()
	if eng := h.e.Engaged(); len(eng) != 1 || eng[0].Message != "1 true" {
		t.Fatalf("after expiry: %+v", eng)
	}
}

// oldGrowth is host_consts.growth as it was, with its history in an array.
const oldGrowth = `local function old_growth(state, key, value, ticks)
  local hist = state[key]
  if hist == nil then hist = {}; state[key] = hist end
  local n = #hist
  local base = 0
  if n >= ticks then base = hist[1] end
  if value < base then base = 0 end
  if n >= ticks then
    for i = 1, ticks - 1 do hist[i] = hist[i + 1] end
    hist[ticks] = value
  else
    hist[n + 1] = value
  end
  return value - base
end
`

// TestGrowthEquivalent checks that host_consts.growth, which keeps its
// history in flat fields and skips zeros, returns what the array version
// returned, on random counters (steady, growing, reset, back to 0) and
// windows of 1 to 3, from the first run or after taking over a history
// the array version left in the state.
func TestGrowthEquivalent(t *testing.T) {
	src := `local host_consts = require("host_consts")
` + oldGrowth + `
return { check = function(info)
  local seed = 7
  local function rnd(n) seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n end
  local bad = "ok"
  for trial = 1, 400 do
    local ticks = 1 + rnd(3)
    -- Odd trials run both from the first step; even ones hand the array
    -- history over to growth at a random step.
    local handover = 1
    if trial % 2 == 0 then handover = 1 + rnd(8) end
    local a, b = {}, nil
    local v = 0
    for step = 1, 15 do
      local r = rnd(10)
      if r < 3 then v = v
      elseif r < 5 then v = 0
      elseif r < 6 then v = math.max(0, v - rnd(5))
      else v = v + rnd(50) end
      if step == handover then
        b = {}
        if a.x then
          b.x = {}
          for i = 1, #a.x do b.x[i] = a.x[i] end
        end
      end
      local want = old_growth(a, "x", v, ticks)
      if b then
        local got = host_consts.growth(b, "x", v, ticks)
        if got ~= want and bad == "ok" then
          bad = string.format("trial %d step %d ticks %d value %d: %d, want %d", trial, step, ticks, v, got, want)
        end
        for k, x in pairs(b) do
          if type(x) ~= "number" or x == 0 then bad = "non-number or zero field " .. k end
        end
      end
    end
  end
  host.triggerAlert(1, bad)
end }`
	consts, err := os.ReadFile("../scripts/host_consts.lua")
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, map[string]string{"c": src, "host_consts": string(consts)}, newFakeHosts(hostA()), nil)
	if st := h.tick(); st.Errors != 0 {
		t.Fatalf("tick: %+v", st)
	}
	if eng := h.e.Engaged(); len(eng) != 1 || eng[0].Message != "ok" {
		t.Fatalf("%+v", eng)
	}
}

// TestL7Reuse checks host.l7(): later calls in the same check call get the
// same table with its content put back, and a table a script keeps past
// its call is never changed by the VM afterwards.
func TestL7Reuse(t *testing.T) {
	a, b := hostA(), hostA()
	b.Key = key("10.99.0.11")
	b.L7 = append(b.L7, aggregate.L7Stat{Name: "DNS", Flows: 2})
	b.L7[0].Flows = 5
	h := newHarness(t, map[string]string{"c": `local kept
return { check = function(info)
	local t = host.l7()
	local msg
	if info.ip == "10.99.0.10" then
		local http = t.HTTP
		http.flows = -1; t.Fake = 1; t.HTTP = nil
		local u = host.l7()
		msg = string.format("same=%s http=%s flows=%d fake=%s", tostring(u == t), tostring(u.HTTP == http),
			u.HTTP.flows, tostring(u.Fake))
		http.flows = -2
		kept = t
	else
		local n = 0
		for _ in pairs(t) do n = n + 1 end
		msg = string.format("kept=%s flows=%d dns=%s mine=%d n=%d", tostring(kept == t), kept.HTTP.flows,
			tostring(kept.DNS), t.HTTP.flows, n)
	end
	host.triggerAlert(1, msg)
end }`}, newFakeHosts(a, b), func(c *Configuration) { c.Workers = 1 })
	checkMessages(t, h, map[string]string{
		"10.99.0.10": "same=true http=true flows=336 fake=nil",
		"10.99.0.11": "kept=false flows=-2 dns=nil mine=5 n=2",
	})
}

// TestStateScratchBounded checks that a check whose keys are data (one per
// host) neither grows its VM's scratch table without bound nor loses
// values, and that no host sees another's keys in the reused scratch.
func TestStateScratchBounded(t *testing.T) {
	var snaps []aggregate.HostSnapshot
	for i := range 200 {
		s := hostA()
		s.Key = key(fmt.Sprintf("10.99.1.%d", i))
		snaps = append(snaps, s)
	}
	h := newHarness(t, map[string]string{"c": `return { check = function(info)
		local st = info.state
		st[info.ip] = (st[info.ip] or 0) + 1
		local n = 0
		for _ in pairs(st) do n = n + 1 end
		host.triggerAlert(1, st[info.ip] .. " " .. n)
	end }`}, newFakeHosts(snaps...), func(c *Configuration) { c.Workers = 1 })
	h.tick()
	h.tick()
	for _, ev := range h.e.Engaged() {
		if ev.Message != "2 1" {
			t.Fatalf("%s: %q, want 2 1 (its own key only)", ev.Host.IP, ev.Message)
		}
	}
	if n := h.e.vms[0].checks[0].nScratchKeys; n > maxScratchKeys {
		t.Errorf("scratch held %d keys", n)
	}
}
