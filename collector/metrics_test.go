package collector

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"

	"github.com/flowcheck/flowcheck/flow"
	"github.com/prometheus/client_golang/prometheus"
)

// series returns the label sets of a metric family, as "k=v,k=v" strings
// with their values.
func series(t *testing.T, reg *prometheus.Registry, name string) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			key := ""
			for _, l := range m.GetLabel() {
				key += l.GetName() + "=" + l.GetValue() + ","
			}
			out[key] = m.GetCounter().GetValue()
		}
	}
	return out
}

// TestSeriesAtZero checks that the labelled counters alert rules need
// exist at zero: by reason from start-up, by exporter and reason from the
// exporter's first datagram.
func TestSeriesAtZero(t *testing.T) {
	reg := prometheus.NewRegistry()
	c, err := New(DefaultConfiguration(), Dependencies{Registerer: reg, Flows: func([]flow.Record) {}})
	if err != nil {
		t.Fatal(err)
	}
	c.HandleDatagram(exp1, v5Msg(10000, 1000, 0, v5Record("10.0.0.1", "10.0.0.2", 1, 2, 6, 2, 120, 9000, 9500)), t0)
	// Label sets as series renders them: sorted by label name.
	byReason := func(w string) string { return "reason=" + w + "," }
	const exporter = "exporter=192.0.2.10,"
	for _, tc := range []struct {
		name string
		want []string
		key  func(string) string
	}{
		{"flowcheck_collector_drops_total", dropReasons[:], byReason},
		{"flowcheck_collector_exporter_evictions_total", evictionReasons[:], byReason},
		{"flowcheck_collector_decode_errors_total", decodeErrorReasons[:], func(w string) string { return exporter + byReason(w) }},
		{"flowcheck_collector_template_events_total", templateEventNames[:], func(w string) string { return "event=" + w + "," + exporter }},
		{"flowcheck_collector_datagrams_total", []string{"netflow9", "ipfix", "sflow5"}, func(w string) string { return exporter + "version=" + w + "," }},
	} {
		got := series(t, reg, tc.name)
		for _, w := range tc.want {
			if v, ok := got[tc.key(w)]; !ok || v != 0 {
				t.Errorf("%s{%s} = %v (present: %v), want 0; have %v", tc.name, tc.key(w), v, ok, got)
			}
		}
	}
	if v := series(t, reg, "flowcheck_collector_datagrams_total")[exporter+"version=netflow5,"]; v != 1 {
		t.Errorf("%v NetFlow v5 datagrams counted, want 1", v)
	}
}

// TestDecodeErrorReasonsListed checks that every reason the code counts
// is in decodeErrorReasons, so that none is missing at zero.
func TestDecodeErrorReasonsListed(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	used := regexp.MustCompile(`decodeError\(e, "([a-z_]+)"|return "(template_[a-z_]+)"`)
	found := 0
	for _, f := range files {
		if filepath.Ext(f) != ".go" || regexp.MustCompile(`_test\.go$`).MatchString(f) {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range used.FindAllStringSubmatch(string(src), -1) {
			reason := m[1] + m[2]
			found++
			if !slices.Contains(decodeErrorReasons[:], reason) {
				t.Errorf("%s: decode error reason %q not in decodeErrorReasons", f, reason)
			}
		}
	}
	if found < len(decodeErrorReasons) {
		t.Errorf("found %d uses of decode error reasons, fewer than the %d listed", found, len(decodeErrorReasons))
	}
}
