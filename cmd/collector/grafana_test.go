package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flowcheck/flowcheck/clock"
	"github.com/flowcheck/flowcheck/pcapsrc"
	"github.com/flowcheck/flowcheck/server"
)

// dashboardPanel is what the test reads of a Grafana panel.
type dashboardPanel struct {
	ID      int    `json:"id"`
	Title   string `json:"title"`
	Type    string `json:"type"`
	GridPos struct {
		X, Y, W, H int
	} `json:"gridPos"`
	Targets []struct {
		Expr       string `json:"expr"`
		Datasource struct {
			UID string `json:"uid"`
		} `json:"datasource"`
	} `json:"targets"`
	Panels []dashboardPanel `json:"panels"`
}

var (
	metricName = regexp.MustCompile(`\bflowcheck_[a-z0-9_]+`)
	// byClause and matcher find the label names an expression uses.
	byClause = regexp.MustCompile(`\b(?:by|without)\s*\(([^)]*)\)`)
	matcher  = regexp.MustCompile(`([a-z_][a-z0-9_]*)\s*(?:=~|!~|!=|=)\s*"`)
)

// scrapeLabels are added by Prometheus when it scrapes, not by the daemon;
// le is a histogram's bucket label.
var scrapeLabels = map[string]bool{"instance": true, "job": true, "le": true}

// TestGrafanaDashboard parses deploy/grafana/flowcheck.json and checks that
// every metric its queries name is one the daemon exports, with the labels
// the query groups or filters by; that every query reads the dashboard's
// data source variable; and that panels have their own ids and do not
// overlap on the grid. The registry is the daemon's own
// (build), with the Kafka sink configured and a capture fed to the
// collector, so that the series born with an exporter or a sink exist.
func TestGrafanaDashboard(t *testing.T) {
	b, err := os.ReadFile("../../deploy/grafana/flowcheck.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID        string           `json:"uid"`
		Panels     []dashboardPanel `json:"panels"`
		Templating struct {
			List []struct {
				Name string `json:"name"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("flowcheck.json: %v", err)
	}
	if dash.UID == "" {
		t.Error("the dashboard has no uid")
	}

	variables := map[string]bool{}
	for _, v := range dash.Templating.List {
		variables[v.Name] = true
	}
	if !variables["datasource"] || !variables["instance"] {
		t.Errorf("variables %v, want datasource and instance", variables)
	}

	labels := daemonMetrics(t)
	var walk func([]dashboardPanel)
	queries := 0
	ids := map[int]string{}
	// cells are the grid's cells taken, so that no panel hides another.
	cells := map[[2]int]string{}
	walk = func(panels []dashboardPanel) {
		for _, p := range panels {
			walk(p.Panels)
			if other, dup := ids[p.ID]; dup {
				t.Errorf("panels %q and %q share the id %d", p.Title, other, p.ID)
			}
			ids[p.ID] = p.Title
			g := p.GridPos
			if g.W < 1 || g.H < 1 || g.X < 0 || g.X+g.W > 24 {
				t.Errorf("panel %q: gridPos %+v is off the 24-column grid", p.Title, g)
			}
			for x := g.X; x < g.X+g.W; x++ {
				for y := g.Y; y < g.Y+g.H; y++ {
					if other, taken := cells[[2]int{x, y}]; taken {
						t.Errorf("panel %q overlaps %q at %d,%d", p.Title, other, x, y)
					}
					cells[[2]int{x, y}] = p.Title
				}
			}
			if p.Type != "row" && len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			for _, target := range p.Targets {
				queries++
				if target.Datasource.UID != "${datasource}" {
					t.Errorf("panel %q: a query's data source is %q, not the dashboard's variable", p.Title, target.Datasource.UID)
				}
				checkQuery(t, p.Title, target.Expr, labels)
			}
		}
	}
	walk(dash.Panels)
	if queries < 20 {
		t.Fatalf("%d queries read; the dashboard's panels were not found", queries)
	}
}

// checkQuery reports a metric or a label of expr the daemon does not
// export.
func checkQuery(t *testing.T, panel, expr string, families map[string]map[string]bool) {
	t.Helper()
	names := metricName.FindAllString(expr, -1)
	if len(names) == 0 {
		t.Errorf("panel %q: query %q names no flowcheck metric", panel, expr)
		return
	}
	known := map[string]bool{}
	for _, name := range names {
		family, ok := families[name]
		if !ok {
			// A histogram's series are its family's name plus a suffix.
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if f, found := families[strings.TrimSuffix(name, suffix)]; found && strings.HasSuffix(name, suffix) {
					family, ok = f, true
				}
			}
		}
		if !ok {
			t.Errorf("panel %q: metric %s is not exported by the daemon", panel, name)
			continue
		}
		for l := range family {
			known[l] = true
		}
	}
	var used []string
	for _, m := range byClause.FindAllStringSubmatch(expr, -1) {
		for _, l := range strings.Split(m[1], ",") {
			used = append(used, strings.TrimSpace(l))
		}
	}
	for _, m := range matcher.FindAllStringSubmatch(expr, -1) {
		used = append(used, m[1])
	}
	for _, l := range used {
		if l != "" && !scrapeLabels[l] && !known[l] {
			t.Errorf("panel %q: label %q is on none of %v", panel, l, names)
		}
	}
}

// daemonMetrics builds the daemon's pipeline, feeds it an export, and
// returns every metric family with its label names.
func daemonMetrics(t *testing.T) map[string]map[string]bool {
	t.Helper()
	cfg, err := loadConfig("", noEnv)
	if err != nil {
		t.Fatal(err)
	}
	// An unreachable broker: the Kafka sink's series exist from its
	// creation, and nothing is sent (the pipeline is not started).
	cfg.Sinks.Kafka.Brokers = []string{"127.0.0.1:1"}
	cfg.Sinks.Kafka.Spool.Dir = t.TempDir()
	p, err := build(cfg, clock.NewManual(time.Now()), slog.New(slog.DiscardHandler), io.Discard, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.engine.Stop(context.Background()) })
	src, err := pcapsrc.Open("../../testdata/softflowd-v9.pcap")
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	for {
		dg, err := src.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		p.collector.HandleDatagram(dg.Src, dg.Payload, dg.Time)
	}
	families, err := p.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]bool{}
	for _, f := range families {
		ls := map[string]bool{}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				ls[l.GetName()] = true
			}
		}
		out[f.GetName()] = ls
	}
	if len(out["flowcheck_collector_flows_total"]) == 0 {
		names := make([]string, 0, len(out))
		for n := range out {
			names = append(names, n)
		}
		slices.Sort(names)
		t.Fatalf("no per-exporter series after feeding the capture: %v", names)
	}
	return out
}

// TestOverviewMetrics checks that the daemon exports the families, with
// the labels, that the HTTP API's overview reads (server.OverviewMetrics).
func TestOverviewMetrics(t *testing.T) {
	families := daemonMetrics(t)
	for name, labels := range server.OverviewMetrics {
		family, ok := families[name]
		if !ok {
			t.Errorf("%s: not exported by the daemon", name)
			continue
		}
		for _, l := range labels {
			if !family[l] {
				t.Errorf("%s: no label %s", name, l)
			}
		}
	}
}
