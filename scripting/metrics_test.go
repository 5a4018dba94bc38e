package scripting

import (
	"maps"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowcheck/flowcheck/aggregate"
	"github.com/flowcheck/flowcheck/alert"
)

// TestSeriesAtZero: the labelled counters that alert rules use exist at
// zero from start-up, for every loaded check, and for a check a reload
// adds.
func TestSeriesAtZero(t *testing.T) {
	h := newHarness(t, map[string]string{"a": `return { check = function() end }`}, newFakeHosts(), nil)
	m := h.e.metrics
	cases := []struct {
		name string
		c    prometheus.Collector
		want int
	}{
		{"reloads_total by result", m.reloads, 3},
		{"alert_state_errors_total by op", m.stateErrors, 2},
		{"disabled_total by check", m.disabled, 1},
		{"errors_total by check", m.errors, 1},
		{"timeouts_total by check", m.timeouts, 1},
		{"events_total by check and state", m.events, 2},
		{"released_total by check and reason", m.released, 5},
	}
	for _, tc := range cases {
		if n := countSeries(tc.c); n != tc.want {
			t.Errorf("%s: %d series, want %d", tc.name, n, tc.want)
		}
	}
	writeScripts(t, h.dir, map[string]string{"b": `return { check = function() end }`})
	if err := h.e.Reload(); err != nil {
		t.Fatal(err)
	}
	if n := countSeries(m.disabled); n != 2 {
		t.Errorf("disabled_total after a reload that adds a check: %d series, want 2", n)
	}
	if v := counterValue(m.disabled.WithLabelValues("b")); v != 0 {
		t.Errorf("disabled_total{check=b} = %v, want 0", v)
	}
}

// TestErrorsNotPrefixed: the engine's errors do not name the package, so
// that the caller's prefix is not repeated ("scripting: scripting: ...").
func TestErrorsNotPrefixed(t *testing.T) {
	cfg := DefaultConfiguration()
	cfg.Dirs = []string{t.TempDir()}
	writeScripts(t, cfg.Dirs[0], map[string]string{"broken": "return {"})
	for name, deps := range map[string]Dependencies{
		"no hosts":          {Alerts: &capture{}},
		"no alerts":         {Hosts: newFakeHosts()},
		"no check compiles": {Hosts: newFakeHosts(), Alerts: &capture{}},
	} {
		_, err := New(cfg, deps)
		if err == nil || strings.HasPrefix(err.Error(), "scripting:") {
			t.Errorf("%s: %v, want an error without the package's prefix", name, err)
		}
	}
}

// countSeries is the number of series a collector has.
func countSeries(c prometheus.Collector) int {
	ch := make(chan prometheus.Metric)
	go func() {
		c.Collect(ch)
		close(ch)
	}()
	n := 0
	for range ch {
		n++
	}
	return n
}

// TestAlertsEngagedMetric: flowcheck_scripting_alerts_engaged counts the
// engaged alerts by severity band, every band at zero before any alert,
// through a change of band, a release, a host expiry and a hand-over.
func TestAlertsEngagedMetric(t *testing.T) {
	h := newHarness(t, map[string]string{
		"crit": `return { check = function() host.triggerAlert(90, "c") end }`,
		// 30 (warning) on the first run, 60 (error) on the second, then
		// cleared.
		"warn": `return { check = function(info)
			info.state.n = (info.state.n or 0) + 1
			if host.ip() == "10.0.0.7" and info.state.n <= 2 then host.triggerAlert(30 * info.state.n, "w") end
		end }`,
	}, newFakeHosts(hostA(), aggregate.HostSnapshot{Key: key("10.0.0.7")}), nil)
	reg := h.e.deps.Registerer.(*prometheus.Registry)
	engaged := func() map[string]float64 {
		families, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]float64{}
		for _, f := range families {
			if f.GetName() != "flowcheck_scripting_alerts_engaged" {
				continue
			}
			for _, m := range f.GetMetric() {
				out[m.GetLabel()[0].GetValue()] = m.GetGauge().GetValue()
			}
		}
		return out
	}
	if got, want := engaged(), map[string]float64{"info": 0, "warning": 0, "error": 0, "critical": 0}; !maps.Equal(got, want) {
		t.Fatalf("before any tick: %v, want %v", got, want)
	}
	h.tick()
	if got, want := engaged(), map[string]float64{"info": 0, "warning": 1, "error": 0, "critical": 2}; !maps.Equal(got, want) {
		t.Fatalf("after a tick: %v, want %v", got, want)
	}
	h.tick()
	if got, want := engaged(), map[string]float64{"info": 0, "warning": 0, "error": 1, "critical": 2}; !maps.Equal(got, want) {
		t.Fatalf("after a change of band: %v, want %v", got, want)
	}
	h.tick()
	if got, want := engaged(), map[string]float64{"info": 0, "warning": 0, "error": 0, "critical": 2}; !maps.Equal(got, want) {
		t.Fatalf("after a release: %v, want %v", got, want)
	}
	h.e.HostExpired(key("10.0.0.7"))
	h.e.Forget([]aggregate.HostKey{hostA().Key})
	if got, want := engaged(), map[string]float64{"info": 0, "warning": 0, "error": 0, "critical": 0}; !maps.Equal(got, want) {
		t.Fatalf("after an expiry and a hand-over: %v, want %v", got, want)
	}
	if n := len(h.e.Engaged()); n != 0 {
		t.Fatalf("%d engaged, the gauges say none", n)
	}
	// An adopted (or resumed) alert counts from the moment it is restored.
	if n := h.e.Adopt([]alert.Event{{State: alert.Engaged, ID: "00000000000000aa", Check: "warn",
		Host: alert.Host{IP: "10.0.0.8"}, Value: 60, FirstSeen: t0, LastSeen: t0}}); n != 1 {
		t.Fatalf("adopted %d", n)
	}
	if got, want := engaged(), map[string]float64{"info": 0, "warning": 0, "error": 1, "critical": 0}; !maps.Equal(got, want) {
		t.Fatalf("after an adoption: %v, want %v", got, want)
	}
}
