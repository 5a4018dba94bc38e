package scripting

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowcheck/flowcheck/alert"
)

// paramScript triggers params.v with the number of runs kept in state.
const paramScript = `return { check = function(info)
	info.state.runs = (info.state.runs or 0) + 1
	host.triggerAlert(info.params.v, "runs " .. info.state.runs)
end }`

// reloadHarness runs paramScript as check "c" with v=10 on a local and a
// remote host.
func reloadHarness(t *testing.T) *harness {
	t.Helper()
	remote := hostA()
	remote.Key, remote.Name, remote.Local = key("192.0.2.7"), "remote", false
	return newHarness(t, map[string]string{"c": paramScript}, newFakeHosts(hostA(), remote), func(c *Configuration) {
		c.Checks = map[string]CheckConfiguration{"c": {Enabled: true, Params: map[string]any{"v": 10}}}
	})
}

// withCheck returns the engine's configuration with check c replaced.
func withCheck(h *harness, cc CheckConfiguration) Configuration {
	cfg := h.e.Configuration()
	cfg.Checks = map[string]CheckConfiguration{"c": cc}
	return cfg
}

// engagedBy returns the engaged alerts of check c by host address.
func engagedBy(h *harness) map[string]alert.Event {
	out := map[string]alert.Event{}
	for _, ev := range h.e.Engaged() {
		if ev.Check == "c" {
			out[ev.Host.IP] = ev
		}
	}
	return out
}

func TestReloadConfigChecks(t *testing.T) {
	local, remote := "10.99.0.10", "192.0.2.7"
	type want struct {
		calls    int
		engaged  map[string]int // ip → value
		runs     string         // message of the local host's alert
		released int
	}
	cases := []struct {
		name  string
		check CheckConfiguration
		want  want
	}{
		// The starting point is v=10 on both hosts, after one tick.
		{"new threshold applies, state and alert kept", CheckConfiguration{Enabled: true, Params: map[string]any{"v": 20}},
			want{calls: 2, engaged: map[string]int{local: 20, remote: 20}, runs: "runs 2"}},
		{"disabled releases", CheckConfiguration{Enabled: false, Params: map[string]any{"v": 10}},
			want{calls: 0, engaged: map[string]int{}, released: 2}},
		{"local_only releases the remote host's alert", CheckConfiguration{Enabled: true, LocalOnly: true, Params: map[string]any{"v": 10}},
			want{calls: 1, engaged: map[string]int{local: 10}, runs: "runs 2", released: 1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := reloadHarness(t)
			h.tick()
			if evs := h.pub.take(); len(evs) != 2 {
				t.Fatalf("tick 1: %+v", evs)
			}
			if err := h.e.ReloadConfig(withCheck(h, tc.check)); err != nil {
				t.Fatal(err)
			}
			st := h.tick()
			if st.Calls != tc.want.calls {
				t.Errorf("calls %d, want %d", st.Calls, tc.want.calls)
			}
			eng := engagedBy(h)
			if len(eng) != len(tc.want.engaged) {
				t.Errorf("engaged %+v, want %v", eng, tc.want.engaged)
			}
			for ip, v := range tc.want.engaged {
				if eng[ip].Value != v {
					t.Errorf("%s: value %d, want %d", ip, eng[ip].Value, v)
				}
			}
			if tc.want.runs != "" && eng[local].Message != tc.want.runs {
				t.Errorf("message %q, want %q (per-host state lost?)", eng[local].Message, tc.want.runs)
			}
			released := 0
			for _, ev := range h.pub.take() {
				if ev.State != alert.Released {
					t.Errorf("unexpected event %+v", ev)
				}
				released++
			}
			if released != tc.want.released {
				t.Errorf("%d released events, want %d", released, tc.want.released)
			}
			if s := h.e.Score(key(remote)); s != tc.want.engaged[remote] {
				t.Errorf("remote score %d, want %d", s, tc.want.engaged[remote])
			}
		})
	}
}

func TestReloadConfigReEnableKeepsState(t *testing.T) {
	h := reloadHarness(t)
	h.tick()
	on := CheckConfiguration{Enabled: true, Every: 2, Params: map[string]any{"v": 10}}
	off := on
	off.Enabled = false
	for _, cc := range []CheckConfiguration{off, on} {
		if err := h.e.ReloadConfig(withCheck(h, cc)); err != nil {
			t.Fatal(err)
		}
		h.tick()
	}
	// every=2: the tick after re-enabling ran (tick 3), the next does not.
	if st := h.tick(); st.Calls != 0 {
		t.Errorf("every=2: %d calls on an off tick", st.Calls)
	}
	if eng := engagedBy(h); eng["10.99.0.10"].Message != "runs 2" {
		t.Errorf("after off/on: %+v, want runs 2 (state kept while disabled)", eng)
	}
}

func TestReloadConfigRefused(t *testing.T) {
	h := reloadHarness(t)
	h.tick()
	h.pub.take()
	before := h.e.Configuration()
	bad := []struct {
		name string
		edit func(*Configuration)
		want string
	}{
		{"negative every", func(c *Configuration) {
			c.Checks = map[string]CheckConfiguration{"c": {Enabled: false, Every: -1}}
		}, "checks.c.every"},
		{"missing dir", func(c *Configuration) { c.Dirs = []string{filepath.Join(t.TempDir(), "nope")} }, "dirs:"},
		{"zero interval", func(c *Configuration) { c.Interval = 0 }, "interval:"},
	}
	for _, tc := range bad {
		cfg := h.e.Configuration()
		cfg.Checks = map[string]CheckConfiguration{"c": {Enabled: false}}
		tc.edit(&cfg)
		err := h.e.ReloadConfig(cfg)
		if err == nil || errors.Is(err, ErrScriptsFailed) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one about %s", tc.name, err, tc.want)
		}
	}
	if st := h.tick(); st.Calls != 2 {
		t.Errorf("after refused reloads: %d calls, want 2", st.Calls)
	}
	if evs := h.pub.take(); len(evs) != 0 {
		t.Errorf("refused reloads changed alerts: %+v", evs)
	}
	if got := h.e.Configuration(); got.Checks["c"].Params["v"] != before.Checks["c"].Params["v"] || !got.Checks["c"].Enabled {
		t.Errorf("running configuration changed: %+v", got.Checks)
	}
}

func TestReloadConfigDirsAndInterval(t *testing.T) {
	h := reloadHarness(t)
	if err := h.e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.tick()
	h.pub.take()
	dir := t.TempDir()
	writeScripts(t, dir, map[string]string{
		"d": `return { check = function() host.triggerAlert(5, "from d") end }`,
		"c": `return { check = function() host.triggerAlert(1, "c moved") end }`,
	})
	cfg := h.e.Configuration()
	cfg.Dirs = []string{dir}
	cfg.Interval = time.Minute
	cfg.Checks = map[string]CheckConfiguration{}
	if err := h.e.ReloadConfig(cfg); err != nil {
		t.Fatal(err)
	}
	if h.e.Interval() != time.Minute {
		t.Errorf("interval %v, want 1m", h.e.Interval())
	}
	h.tick()
	for _, ev := range h.e.Engaged() {
		if ev.Host.IP == "10.99.0.10" && !(ev.Check == "c" && ev.Message == "c moved" || ev.Check == "d" && ev.Value == 5) {
			t.Errorf("after the dirs change: %+v", ev)
		}
	}
	if n := len(h.e.Engaged()); n != 4 {
		t.Errorf("%d engaged alerts, want c and d on both hosts", n)
	}
	// The new directory is watched: an edit there is picked up.
	before := counterValue(h.e.metrics.reloads.WithLabelValues("ok"))
	writeScripts(t, dir, map[string]string{"d": `return { check = function() host.triggerAlert(7, "edited") end }`})
	waitReload(t, h, before)
	h.tick()
	if v := valueOf(h, "d"); v != 7 {
		t.Errorf("after an edit in the new script directory: d has value %d, want 7", v)
	}
}

// valueOf returns the value of check's engaged alert on the local host.
func valueOf(h *harness, check string) int {
	for _, ev := range h.e.Engaged() {
		if ev.Host.IP == "10.99.0.10" && ev.Check == check {
			return ev.Value
		}
	}
	return -1
}
