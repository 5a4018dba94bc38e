package sink

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// TestSeriesAtZero checks that the drop and broker error series alert
// rules watch exist at zero as soon as the sinks are built.
func TestSeriesAtZero(t *testing.T) {
	cases := []struct {
		name   string
		cfg    func(c *Configuration, dir string)
		drops  []string // sink/topic/reason
		errors []string // sink/kind
	}{
		{"stdout", func(c *Configuration, _ string) { c.Stdout.Enabled = SwitchTrue }, []string{
			"stdout//encode", "stdout//queue_full", "stdout//stopped", "stdout//write_error",
		}, nil},
		{"file", func(c *Configuration, dir string) {
			c.Stdout.Enabled, c.File.Enabled, c.File.Path = SwitchFalse, true, filepath.Join(dir, "alerts.json")
		}, []string{
			"file//encode", "file//queue_full", "file//stopped", "file//write_error",
		}, nil},
		{"kafka with a route", func(c *Configuration, dir string) {
			c.Stdout.Enabled = SwitchFalse
			c.Kafka.Brokers, c.Kafka.Spool.Dir = []string{"127.0.0.1:9"}, filepath.Join(dir, "spool")
			c.Kafka.Routes = []Route{{Check: "scan_detection", Topic: "scans"}, {Severity: "critical", Topic: "scans"}}
		}, []string{
			"kafka//corrupt", "kafka//encode", "kafka//spool_ceiling", "kafka//spool_corrupt", "kafka//stopped",
			"kafka/flowcheck.alerts/spool_error", "kafka/flowcheck.alerts/spool_slow", "kafka/flowcheck.alerts/stopped", "kafka/flowcheck.alerts/too_large",
			"kafka/scans/spool_error", "kafka/scans/spool_slow", "kafka/scans/stopped", "kafka/scans/too_large",
		}, []string{
			"kafka/canceled", "kafka/connection_refused", "kafka/network", "kafka/other", "kafka/timeout",
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfiguration()
			tc.cfg(&cfg, t.TempDir())
			reg := prometheus.NewRegistry()
			c, err := New(cfg, Dependencies{Registerer: reg})
			if err != nil {
				t.Fatal(err)
			}
			defer stop(t, c)
			families, err := reg.Gather()
			if err != nil {
				t.Fatal(err)
			}
			series := map[string][]string{}
			for _, f := range families {
				for _, m := range f.GetMetric() {
					if v := m.GetCounter().GetValue(); v != 0 {
						t.Errorf("%s %v = %v at start", f.GetName(), m.GetLabel(), v)
					}
					series[f.GetName()] = append(series[f.GetName()], labels(m, "sink", "topic", "kind", "reason"))
				}
			}
			var waits []string // Kafka's only
			if tc.errors != nil {
				waits = []string{"kafka"}
			}
			for name, want := range map[string][]string{
				"flowcheck_sink_alerts_dropped_total": tc.drops,
				"flowcheck_sink_broker_errors_total":  tc.errors,
				"flowcheck_sink_spool_waits_total":    waits,
			} {
				got := series[name]
				slices.Sort(got)
				if !slices.Equal(got, want) {
					t.Errorf("%s series %q, want %q", name, got, want)
				}
			}
		})
	}
}

// labels joins the values of a series' labels named, in that order, with
// "/" (a name the series does not have is left out).
func labels(m *dto.Metric, names ...string) string {
	var parts []string
	for _, name := range names {
		for _, l := range m.GetLabel() {
			if l.GetName() == name {
				parts = append(parts, l.GetValue())
			}
		}
	}
	return strings.Join(parts, "/")
}
