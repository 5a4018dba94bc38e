package scripting

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowcheck/flowcheck/aggregate"
	"github.com/flowcheck/flowcheck/alert"
)

func TestSandbox(t *testing.T) {
	forbidden := map[string]string{
		"os_execute":  `os.execute("true")`,
		"os_remove":   `require("os").remove("/tmp/x")`,
		"os_exit":     `os.exit(1)`,
		"os_getenv":   `os.getenv("HOME")`,
		"io_open":     `io.open("/etc/passwd")`,
		"dofile":      `dofile("/etc/passwd")`,
		"loadfile":    `loadfile("/etc/passwd")`,
		"debug":       `debug.getinfo(1)`,
		"string_dump": `string.dump(function() end)`,
		"require_io":  `require("io")`,
		"big_rep":     `string.rep("x", 1e9)`,
		"coroutine":   `coroutine.create(function() end)`,
	}
	files := map[string]string{
		"allowed": `return { check = function()
			local t = os.time(); local c = os.clock(); local d = os.date("%Y", t)
			local f = loadstring("return 1 + 1")
			assert(f() == 2 and math.max(1, 2) == 2 and table.concat({"a","b"}) == "ab" and #string.rep("x", 3) == 3)
			host.triggerAlert(1, d .. " " .. t)
		end }`,
	}
	for name, call := range forbidden {
		files[name] = `return { check = function() ` + call + ` host.triggerAlert(99, "escaped") end }`
	}
	h := newHarness(t, files, newFakeHosts(hostA()), nil)
	st := h.tick()
	if st.Errors != len(forbidden) {
		t.Errorf("errors = %d, want %d", st.Errors, len(forbidden))
	}
	evs := h.pub.take()
	if len(evs) != 1 || evs[0].Check != "allowed" || evs[0].Message != fmt.Sprintf("2026 %d", h.now.Unix()) {
		t.Fatalf("events %+v", evs)
	}
}

func TestEndlessLoopAndErrorIsolation(t *testing.T) {
	hosts := newFakeHosts(hostA(), aggregate.HostSnapshot{Key: key("10.0.0.7")})
	h := newHarness(t, map[string]string{
		"a_loop":  `return { check = function() while true do end end }`,
		"b_error": `return { check = function() local x = nil; return x.field end }`,
		"c_good":  `return { check = function() host.triggerAlert(10, "ok " .. host.ip()) end }`,
		"d_pcall": `return { check = function() pcall(function() while true do end end); host.triggerAlert(1, "escaped") end }`,
	}, hosts, func(c *Configuration) { c.CallTimeout = 200 * time.Millisecond })
	st := h.tick()
	if st.Calls != 8 || st.Errors != 6 || st.Timeouts != 4 {
		t.Errorf("stats %+v, want 8 calls, 6 errors, 4 timeouts", st)
	}
	evs := h.pub.take()
	if len(evs) != 2 || evs[0].Check != "c_good" || evs[1].Check != "c_good" {
		t.Fatalf("events %+v", evs)
	}
	// The VMs are usable after a stopped call.
	st = h.tick()
	if st.Calls != 8 || st.Timeouts != 4 {
		t.Errorf("second tick stats %+v", st)
	}
}

func TestDisableAfterFailures(t *testing.T) {
	h := newHarness(t, map[string]string{
		"bad":  `return { check = function() error("boom") end }`,
		"good": `return { check = function() end }`,
	}, newFakeHosts(hostA()), func(c *Configuration) { c.MaxFailures = 3 })
	for i := 0; i < 3; i++ {
		h.tick()
	}
	st := h.tick()
	if st.Calls != 1 || st.Errors != 0 {
		t.Errorf("after 3 failures: stats %+v, want only the good check", st)
	}
	// Fixing the file re-enables it.
	writeScripts(t, h.dir, map[string]string{"bad": `return { check = function() end }`})
	if err := h.e.Reload(); err != nil {
		t.Fatal(err)
	}
	if st := h.tick(); st.Calls != 2 || st.Errors != 0 {
		t.Errorf("after fix: stats %+v", st)
	}
}

// counterScript triggers value v with the number of runs kept in state.
func counterScript(v string) string {
	return `return { check = function(info)
		info.state.runs = (info.state.runs or 0) + 1
		host.triggerAlert(` + v + `, "runs " .. info.state.runs)
	end }`
}

func TestReload(t *testing.T) {
	h := newHarness(t, map[string]string{"c": counterScript("10")}, newFakeHosts(hostA()), nil)
	h.tick()
	if evs := h.pub.take(); len(evs) != 1 || evs[0].Value != 10 {
		t.Fatalf("tick 1: %+v", evs)
	}
	// A broken edit keeps the old version.
	writeScripts(t, h.dir, map[string]string{"c": `return { check = function( end }`})
	if err := h.e.Reload(); err == nil {
		t.Error("Reload of a broken script did not report it")
	}
	h.tick()
	eng := h.e.Engaged()
	if len(eng) != 1 || eng[0].Value != 10 || eng[0].Message != "runs 2" {
		t.Fatalf("after broken edit: %+v", eng)
	}
	// A good edit takes effect at the next tick, with the per-host state.
	writeScripts(t, h.dir, map[string]string{"c": counterScript("20")})
	if err := h.e.Reload(); err != nil {
		t.Fatal(err)
	}
	h.tick()
	eng = h.e.Engaged()
	if len(eng) != 1 || eng[0].Value != 20 || eng[0].Message != "runs 3" {
		t.Fatalf("after good edit: %+v", eng)
	}
	if evs := h.pub.take(); len(evs) != 0 {
		t.Errorf("an update published %+v", evs)
	}
	// A script that errors at load keeps the old version too.
	writeScripts(t, h.dir, map[string]string{"c": `error("no")`})
	_ = h.e.Reload()
	h.tick()
	if eng = h.e.Engaged(); len(eng) != 1 || eng[0].Message != "runs 4" {
		t.Fatalf("after load error: %+v", eng)
	}
	// Removing the script releases its alert.
	os.Remove(filepath.Join(h.dir, "c.lua"))
	writeScripts(t, h.dir, map[string]string{"other": `return { check = function() end }`})
	if err := h.e.Reload(); err != nil {
		t.Fatal(err)
	}
	h.tick()
	if evs := h.pub.take(); len(evs) != 1 || evs[0].State != alert.Released || evs[0].Check != "c" {
		t.Fatalf("after removal: %+v", evs)
	}
}

func TestReloadOnFileChange(t *testing.T) {
	h := newHarness(t, map[string]string{"c": counterScript("10")}, newFakeHosts(hostA()), nil)
	if err := h.e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	before := counterValue(h.e.metrics.reloads.WithLabelValues("ok"))
	writeScripts(t, h.dir, map[string]string{"c": counterScript("30")})
	waitReload(t, h, before)
	h.tick()
	if eng := h.e.Engaged(); len(eng) != 1 || eng[0].Value != 30 {
		t.Fatalf("after the reload: %+v, want one alert of value 30", eng)
	}
}

func TestCompileErrorAtStart(t *testing.T) {
	dir := t.TempDir()
	writeScripts(t, dir, map[string]string{"broken": "local x = \n\nreturn {", "ok": `return { check = function() end }`})
	cfg := DefaultConfiguration()
	cfg.Dirs = []string{dir}
	var logs strings.Builder
	e, err := New(cfg, Dependencies{Hosts: newFakeHosts(), Alerts: &capture{}, Logger: newTextLogger(&logs)})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Stop(context.Background())
	if !strings.Contains(logs.String(), "broken.lua:3:") {
		t.Errorf("log does not name file:line: %s", logs.String())
	}
	writeScripts(t, dir, map[string]string{"ok": `return {`})
	if _, err := New(cfg, Dependencies{Hosts: newFakeHosts(), Alerts: &capture{}}); err == nil {
		t.Error("New with no loadable check did not fail")
	}
}

func TestLifecycle(t *testing.T) {
	hosts := newFakeHosts(hostA())
	h := newHarness(t, map[string]string{
		"value": `return { check = function(info)
			local v = info.params.values[(info.state.i or 0) + 1]
			info.state.i = (info.state.i or 0) + 1
			if v then host.triggerAlert(v, "value " .. v) end
		end }`,
		"fixed": `return { check = function() host.triggerAlert(5, "fixed " .. tostring(host.isFirstCheckRun())) end }`,
	}, hosts, func(c *Configuration) {
		c.Checks["value"] = CheckConfiguration{Enabled: true, Params: map[string]any{"values": []any{30, 60}}}
	})
	// Tick 1: both engage; the score is 5 after "fixed", then 35.
	h.tick()
	evs := h.pub.take()
	if len(evs) != 2 || evs[0].Check != "fixed" || evs[0].Score != 5 || evs[0].Message != "fixed true" ||
		evs[1].Check != "value" || evs[1].State != alert.Engaged || evs[1].Value != 30 || evs[1].Score != 35 ||
		evs[1].Severity != "warning" {
		t.Fatalf("tick 1: %+v", evs)
	}
	ev := evs[1]
	if ev.Schema != 1 || ev.ID == "" || ev.Collector != "test-collector" || ev.Host.IP != "10.99.0.10" ||
		ev.Host.Name != "host-a" || !ev.Host.IsLocal || ev.Host.MAC != "02:00:0a:63:00:0a" ||
		!ev.FirstSeen.Equal(h.now) || !ev.LastSeen.Equal(h.now) || !ev.Time.Equal(h.now) {
		t.Errorf("event fields: %+v", ev)
	}
	first, id := h.now, ev.ID
	// Tick 2: value goes to 60 without a new event; the score follows.
	h.tick()
	if evs := h.pub.take(); len(evs) != 0 {
		t.Fatalf("tick 2 published %+v", evs)
	}
	if s := h.e.Score(key("10.99.0.10")); s != 65 {
		t.Errorf("tick 2 score = %d, want 65", s)
	}
	// Tick 3: no trigger releases, with the same id and first-seen time.
	h.tick()
	evs = h.pub.take()
	if len(evs) != 1 || evs[0].State != alert.Released || evs[0].ID != id || evs[0].Value != 60 ||
		!evs[0].FirstSeen.Equal(first) || !evs[0].LastSeen.Equal(first.Add(h.e.Interval())) ||
		!evs[0].Time.Equal(h.now) || evs[0].Score != 5 || evs[0].Severity != "error" {
		t.Fatalf("tick 3: %+v", evs)
	}
	// Expiry releases the rest and forgets the host: it starts over.
	h.e.HostExpired(key("10.99.0.10"))
	evs = h.pub.take()
	if len(evs) != 1 || evs[0].Check != "fixed" || evs[0].State != alert.Released || evs[0].Score != 0 {
		t.Fatalf("expiry: %+v", evs)
	}
	h.tick()
	evs = h.pub.take()
	if len(evs) != 2 || evs[0].Message != "fixed true" || evs[1].Value != 30 {
		t.Fatalf("after expiry: %+v", evs)
	}
	// A host that leaves the host table without notice is released too.
	hosts.remove(key("10.99.0.10"))
	h.tick()
	if evs := h.pub.take(); len(evs) != 2 || evs[0].State != alert.Released || evs[1].State != alert.Released {
		t.Fatalf("after removal: %+v", evs)
	}
	if n := len(h.e.Engaged()); n != 0 {
		t.Errorf("%d alerts still engaged", n)
	}
}

func TestCheckOptions(t *testing.T) {
	remote := aggregate.HostSnapshot{Key: key("192.0.2.9")}
	h := newHarness(t, map[string]string{
		"local":    `return { check = function() host.triggerAlert(1, "l") end }`,
		"every3":   `return { check = function(info) info.state.n = (info.state.n or 0) + 1; host.triggerAlert(1, "n" .. info.state.n) end }`,
		"disabled": `return { check = function() host.triggerAlert(1, "d") end }`,
		"skip": `return { check = function(info)
			info.state.n = (info.state.n or 0) + 1
			if info.state.n == 1 then host.skipVisitedHost(true) end
			host.triggerAlert(1, "s" .. info.state.n)
		end }`,
	}, newFakeHosts(hostA(), remote), func(c *Configuration) {
		c.Checks["local"] = CheckConfiguration{Enabled: true, LocalOnly: true}
		c.Checks["every3"] = CheckConfiguration{Enabled: true, Every: 3}
		c.Checks["disabled"] = CheckConfiguration{Enabled: false}
	})
	calls := 0
	for i := 0; i < 4; i++ {
		calls += h.tick().Calls
	}
	// local: 4 ticks × 1 host; every3: ticks 1 and 4 × 2 hosts; skip: once
	// per host, then skipped forever.
	if want := 4 + 4 + 2; calls != want {
		t.Errorf("calls = %d, want %d", calls, want)
	}
	msgs := map[string]bool{}
	for _, ev := range h.e.Engaged() {
		msgs[ev.Host.IP+" "+ev.Check+" "+ev.Message] = true
	}
	for _, want := range []string{"10.99.0.10 local l", "192.0.2.9 every3 n2", "10.99.0.10 skip s1"} {
		if !msgs[want] {
			t.Errorf("missing engaged %q in %v", want, msgs)
		}
	}
}

func TestEmbeddedFallback(t *testing.T) {
	wd, _ := os.Getwd()
	t.Chdir(t.TempDir())
	cfg := DefaultConfiguration()
	e, err := New(cfg, Dependencies{Hosts: newFakeHosts(hostA()), Alerts: &capture{},
		EmbeddedScripts: os.DirFS(filepath.Join(wd, "../scripts"))})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Stop(context.Background())
	if n := len(e.set.checks); n != 7 {
		t.Errorf("%d embedded checks, want 7", n)
	}
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name   string
		tweak  func(*Configuration)
		prefix string
	}{
		{"default", func(*Configuration) {}, ""},
		{"interval", func(c *Configuration) { c.Interval = 0 }, "interval:"},
		{"workers", func(c *Configuration) { c.Workers = -1 }, "workers:"},
		{"timeout", func(c *Configuration) { c.CallTimeout = 0 }, "call_timeout:"},
		{"timeout long", func(c *Configuration) { c.CallTimeout = time.Minute }, "call_timeout:"},
		{"failures", func(c *Configuration) { c.MaxFailures = -1 }, "max_failures:"},
		{"dirs", func(c *Configuration) { c.Dirs = nil }, "dirs:"},
		{"every", func(c *Configuration) { c.Checks["x"] = CheckConfiguration{Every: -1} }, "checks.x.every:"},
		{"param", func(c *Configuration) {
			c.Checks["x"] = CheckConfiguration{Params: map[string]any{"p": struct{}{}}}
		}, "checks.x.params.p:"},
	}
	for _, c := range cases {
		cfg := DefaultConfiguration()
		c.tweak(&cfg)
		err := cfg.Validate()
		if c.prefix == "" && err != nil || c.prefix != "" && (err == nil || !strings.HasPrefix(err.Error(), c.prefix)) {
			t.Errorf("%s: Validate() = %v, want prefix %q", c.name, err, c.prefix)
		}
	}
}

func TestHostExpiredDuringTick(t *testing.T) {
	hosts := newFakeHosts()
	for i := 0; i < 2000; i++ {
		hosts.put(aggregate.HostSnapshot{Key: aggregate.HostKey{Addr: netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})}})
	}
	h := newHarness(t, map[string]string{
		"always": `return { check = function() host.triggerAlert(10, "x") end }`,
	}, hosts, nil)
	h.tick()
	if n := len(h.pub.take()); n != 2000 {
		t.Fatalf("%d engaged events, want 2000", n)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 2000; i += 2 {
			h.e.HostExpired(aggregate.HostKey{Addr: netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})})
			if i%200 == 0 {
				_ = h.e.Engaged()
				_ = h.e.Score(aggregate.HostKey{Addr: netip.AddrFrom4([4]byte{10, 0, 0, 1})})
			}
		}
	}()
	h.tick()
	<-done
	released := 0
	for _, ev := range h.pub.take() {
		if ev.State == alert.Released {
			released++
		}
	}
	// Each expired host is released once; it may re-engage if the tick
	// reached it after the expiry.
	if released != 1000 {
		t.Errorf("%d released events, want 1000", released)
	}
}
