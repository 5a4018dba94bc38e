package scripting

import (
	"fmt"
	"strings"
	"testing"

	"github.com/flowcheck/flowcheck/aggregate"
	"github.com/flowcheck/flowcheck/alert"
)

// TestReleasedHistory engages and releases alerts on more hosts than the
// ring holds: Released keeps the last ones, newest first, with their reason.
func TestReleasedHistory(t *testing.T) {
	var snaps []aggregate.HostSnapshot
	for i := range 5 {
		s := hostA()
		s.Key = key(fmt.Sprintf("10.0.0.%d", i+1))
		snaps = append(snaps, s)
	}
	hosts := newFakeHosts(snaps...)
	h := newHarness(t, map[string]string{
		// Triggers on the first run, clears on the second.
		"once": `return { check = function(info)
			info.state.n = (info.state.n or 0) + 1
			if info.state.n == 1 then host.triggerAlert(40, "first") end
		end }`,
	}, hosts, func(c *Configuration) { c.ReleasedHistory = 3 })
	h.tick()
	if got := h.e.Released(); len(got) != 0 {
		t.Fatalf("released before any release: %+v", got)
	}
	h.tick()
	got := h.e.Released()
	if len(got) != 3 {
		t.Fatalf("%d released kept, want 3 (the ring's size)", len(got))
	}
	for _, ev := range got {
		if ev.State != alert.Released || ev.Reason != alert.Cleared || ev.Check != "once" {
			t.Fatalf("released event %+v", ev)
		}
	}
	// A host leaving adds one more, newest first.
	h.e.HostExpired(key("10.0.0.1"))
	h.tick()
	if got := h.e.Released(); len(got) != 3 {
		t.Fatalf("%d released kept, want 3", len(got))
	}
}

// TestChecksInfo runs a check that fails on one host and one that works:
// Checks reports their calls, failures, the last error with file:line, and
// the mean instructions and time of a call.
func TestChecksInfo(t *testing.T) {
	b := hostA()
	b.Key = key("10.99.0.11")
	h := newHarness(t, map[string]string{
		"good": `return { check = function(info) local x = 0 for i = 1, 100 do x = x + i end end }`,
		"bad": `return { check = function(info)
			if info.ip == "10.99.0.11" then
				error("boom")
			end
		end }`,
	}, newFakeHosts(hostA(), b), func(c *Configuration) { c.MaxFailures = 0 })
	h.tick()
	h.tick()
	checks := h.e.Checks()
	if len(checks) != 2 || checks[0].Name != "bad" || checks[1].Name != "good" {
		t.Fatalf("checks %+v", checks)
	}
	bad, good := checks[0], checks[1]
	if bad.Calls != 4 || bad.Errors != 2 || bad.LastError == nil || bad.Disabled || !bad.Enabled {
		t.Fatalf("bad: %+v", bad)
	}
	if !strings.HasSuffix(bad.LastError.File, "bad.lua") || bad.LastError.Line != 3 || !strings.HasSuffix(bad.LastError.Message, "bad.lua:3: boom") {
		t.Fatalf("bad's last error: %+v", *bad.LastError)
	}
	if !strings.HasSuffix(bad.File, "bad.lua") {
		t.Fatalf("bad's file %q", bad.File)
	}
	if good.Calls != 4 || good.Errors != 0 || good.LastError != nil {
		t.Fatalf("good: %+v", good)
	}
	if good.InstructionsPerCall <= 100 || good.SecondsPerCall <= 0 {
		t.Fatalf("good: %v instructions and %v s per call", good.InstructionsPerCall, good.SecondsPerCall)
	}
}

func TestReleasedHistoryValidate(t *testing.T) {
	for _, n := range []int{-1, 100_001} {
		cfg := DefaultConfiguration()
		cfg.ReleasedHistory = n
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "released_history") {
			t.Errorf("released_history %d: %v", n, err)
		}
	}
}
