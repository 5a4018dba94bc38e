package server

import (
	"encoding/json"
	"math"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/flowcheck/flowcheck/alert"
	"github.com/flowcheck/flowcheck/collector"
	"github.com/flowcheck/flowcheck/scripting"
	"github.com/prometheus/client_golang/prometheus"
)

// ingestMetrics are the families the overview reads, as the components
// name them.
type ingestMetrics struct {
	flows, dgrams, decodeErrs, drops *prometheus.CounterVec
	flowBytes, shed                  prometheus.Counter
	engaged                          *prometheus.GaugeVec
	hosts, exporters                 prometheus.Gauge
	tick                             prometheus.Histogram
}

func newIngestMetrics(reg *prometheus.Registry) *ingestMetrics {
	m := &ingestMetrics{
		flows:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: mFlows}, []string{"exporter"}),
		dgrams:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: mDatagrams}, []string{"exporter", "version"}),
		decodeErrs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: mDecodeErrs}, []string{"exporter", "reason"}),
		drops:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: mDrops}, []string{"reason"}),
		flowBytes:  prometheus.NewCounter(prometheus.CounterOpts{Name: mFlowBytes}),
		shed:       prometheus.NewCounter(prometheus.CounterOpts{Name: mShed}),
		engaged:    prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: mEngaged}, []string{"severity"}),
		hosts:      prometheus.NewGauge(prometheus.GaugeOpts{Name: mHosts}),
		exporters:  prometheus.NewGauge(prometheus.GaugeOpts{Name: mExporters}),
		tick:       prometheus.NewHistogram(prometheus.HistogramOpts{Name: mTick}),
	}
	reg.MustRegister(m.flows, m.dgrams, m.decodeErrs, m.drops, m.flowBytes, m.shed, m.engaged, m.hosts, m.exporters, m.tick)
	return m
}

// TestOverview takes samples by hand over a few seconds of made-up ingest:
// rates per second, tick means (null when no tick ended), alerts by
// severity, `since`, and the exporters' rates and decode errors.
func TestOverview(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := newIngestMetrics(reg)
	m.engaged.WithLabelValues("critical").Set(2)
	m.engaged.WithLabelValues("info").Set(1)
	srv, err := New(DefaultConfiguration(), Dependencies{Gatherer: reg, Registerer: reg, Hosts: fakeHosts{},
		Exporters: exporterList{{Address: netip.MustParseAddr("192.0.2.1")}}})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	t0 := time.Unix(1_800_000_000, 0)
	srv.takeSample(t0)
	for i := 1; i <= 12; i++ {
		m.flows.WithLabelValues("192.0.2.1").Add(100)
		m.dgrams.WithLabelValues("192.0.2.1", "netflow9").Add(4)
		m.flowBytes.Add(1e6)
		m.drops.WithLabelValues("queue_full").Add(2)
		m.shed.Add(3)
		m.hosts.Set(float64(10 * i))
		m.exporters.Set(1)
		if i == 3 {
			m.tick.Observe(0.5)
			m.tick.Observe(1.5)
		}
		srv.takeSample(t0.Add(time.Duration(i) * time.Second))
	}
	m.decodeErrs.WithLabelValues("192.0.2.1", "truncated").Add(7)
	m.decodeErrs.WithLabelValues("192.0.2.1", "bad_version")
	srv.takeSample(t0.Add(14 * time.Second)) // a missed second: the rate spans two
	var ov struct {
		Current struct {
			RecordsPerSecond float64          `json:"records_per_second"`
			Hosts            float64          `json:"hosts"`
			Alerts           map[string]int32 `json:"alerts"`
			TickSeconds      *float64         `json:"tick_seconds"`
		}
		Series struct {
			Time             []int64
			RecordsPerSecond []float64  `json:"records_per_second"`
			BytesPerSecond   []float64  `json:"bytes_per_second"`
			DropsPerSecond   []float64  `json:"drops_per_second"`
			ShedPerSecond    []float64  `json:"shed_per_second"`
			AlertsCritical   []int32    `json:"alerts_critical"`
			TickSeconds      []*float64 `json:"tick_seconds"`
		}
	}
	_, body := get(t, ts, "/api/v1/overview")
	if err := json.Unmarshal([]byte(body), &ov); err != nil {
		t.Fatal(err)
	}
	s := ov.Series
	if len(s.Time) != 13 || s.Time[0] != t0.Unix()+1 || s.Time[12] != t0.Unix()+14 {
		t.Fatalf("times %v", s.Time)
	}
	if s.RecordsPerSecond[0] != 100 || s.BytesPerSecond[5] != 1e6 || s.DropsPerSecond[11] != 2 || s.ShedPerSecond[1] != 3 || s.RecordsPerSecond[12] != 0 {
		t.Fatalf("rates %v %v %v %v", s.RecordsPerSecond, s.BytesPerSecond, s.DropsPerSecond, s.ShedPerSecond)
	}
	if s.TickSeconds[0] != nil || s.TickSeconds[2] == nil || *s.TickSeconds[2] != 1 {
		t.Fatalf("tick means %v", s.TickSeconds)
	}
	if s.AlertsCritical[0] != 2 || ov.Current.Alerts["critical"] != 2 || ov.Current.Alerts["info"] != 1 || ov.Current.Alerts["error"] != 0 {
		t.Fatalf("alerts %v %v", s.AlertsCritical, ov.Current.Alerts)
	}
	if ov.Current.Hosts != 120 || ov.Current.TickSeconds != nil {
		t.Fatalf("current %+v", ov.Current)
	}
	// since keeps the later samples only.
	_, body = get(t, ts, "/api/v1/overview?since=1800000010")
	if !strings.Contains(body, `"time": [`) || strings.Count(body, "18000000") != 3 {
		t.Fatalf("since: %s", body)
	}
	for _, bad := range []string{"since=x", "since=-1", "since=1.5"} {
		if code, body := get(t, ts, "/api/v1/overview?"+bad); code != 400 || !strings.Contains(body, "since must be") {
			t.Errorf("%s: %d %s", bad, code, body)
		}
	}
	// The exporter's rates span the last 11 samples kept (t0+2 to t0+14: 12 s).
	var ex pageOf[struct {
		Address            string            `json:"address"`
		RecordsPerSecond   float64           `json:"records_per_second"`
		DatagramsPerSecond float64           `json:"datagrams_per_second"`
		DecodeErrors       map[string]uint64 `json:"decode_errors"`
	}]
	_, body = get(t, ts, "/api/v1/exporters")
	if err := json.Unmarshal([]byte(body), &ex); err != nil || len(ex.Items) != 1 {
		t.Fatalf("%v: %s", err, body)
	}
	e := ex.Items[0]
	if math.Abs(e.RecordsPerSecond-1000.0/12) > 1e-9 || math.Abs(e.DatagramsPerSecond-40.0/12) > 1e-9 ||
		len(e.DecodeErrors) != 1 || e.DecodeErrors["truncated"] != 7 {
		t.Fatalf("exporter %+v", e)
	}
}

// TestOverviewEmpty: before any sample, every series is an empty array.
func TestOverviewEmpty(t *testing.T) {
	ts, _ := serve(t, DefaultConfiguration(), Dependencies{Hosts: fakeHosts{}})
	code, body := get(t, ts, "/api/v1/overview")
	if code != 200 || !strings.Contains(body, `"tick_seconds": []`) || !strings.Contains(body, `"tick_seconds": null`) ||
		strings.Contains(body, "[]int") {
		t.Fatalf("%d %s", code, body)
	}
}

// TestOverviewRing fills the ring past its size: it keeps the last hour.
func TestOverviewRing(t *testing.T) {
	reg := prometheus.NewRegistry()
	srv, err := New(DefaultConfiguration(), Dependencies{Gatherer: reg, Hosts: fakeHosts{}, Alerts: fakeAlerts{}})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1_800_000_000, 0)
	for i := range historySamples + 100 {
		srv.takeSample(t0.Add(time.Duration(i) * time.Second))
	}
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	var ov struct{ Series struct{ Time []int64 } }
	_, body := get(t, ts, "/api/v1/overview")
	if err := json.Unmarshal([]byte(body), &ov); err != nil {
		t.Fatal(err)
	}
	n := len(ov.Series.Time)
	if n != historySamples || ov.Series.Time[n-1] != t0.Unix()+historySamples+99 || ov.Series.Time[0] != t0.Unix()+100 {
		t.Fatalf("%d samples from %d to %d", n, ov.Series.Time[0], ov.Series.Time[n-1])
	}
}

type fakeChecks []scripting.CheckInfo

func (f fakeChecks) Checks() []scripting.CheckInfo { return f }

// TestChecks lists the checks with their figures and engaged alerts.
func TestChecks(t *testing.T) {
	at := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	checks := fakeChecks{
		{Name: "broken", File: "scripts/broken.lua", Enabled: true, Disabled: true, Every: 1, Calls: 10, Errors: 10,
			LastError: &scripting.CheckError{Message: "scripts/broken.lua:3: boom", File: "scripts/broken.lua", Line: 3, Time: at}},
		{Name: "scan", File: "scripts/scan.lua", Enabled: true, Every: 1, Calls: 100, SecondsPerCall: 1e-5, InstructionsPerCall: 250},
		{Name: "off", File: "scripts/off.lua", Every: 1},
	}
	engaged := []alert.Event{{Check: "scan", Host: alert.Host{IP: "10.0.0.1"}}, {Check: "scan", Host: alert.Host{IP: "10.0.0.2"}}}
	ts, _ := serve(t, DefaultConfiguration(), Dependencies{Hosts: fakeHosts{}, Alerts: fakeAlerts{events: engaged}, Checks: checks,
		Exporters: exporterList{{Address: netip.MustParseAddr("192.0.2.9"), Templates: []collector.TemplateInfo{{Version: 9, ID: 256}}}}})
	p := getPage[checkJSON](t, ts, "/api/v1/checks")
	if p.Total != 3 || len(p.Items) != 3 {
		t.Fatalf("page %+v", p)
	}
	b, s, o := p.Items[0], p.Items[1], p.Items[2]
	if !b.Disabled || b.Failures != 10 || b.LastError == nil || b.LastError.Line != 3 || b.LastError.File != "scripts/broken.lua" || !b.LastError.Time.Equal(at) {
		t.Fatalf("broken %+v", b)
	}
	if s.Engaged != 2 || s.Runs != 100 || s.SecondsPerCall != 1e-5 || s.InstructionsPerCall != 250 || s.LastError != nil {
		t.Fatalf("scan %+v", s)
	}
	if o.Enabled || o.Engaged != 0 {
		t.Fatalf("off %+v", o)
	}
	if q := getPage[checkJSON](t, ts, "/api/v1/checks?offset=2&limit=1"); len(q.Items) != 1 || q.Items[0].Name != "off" {
		t.Fatalf("offset page %+v", q)
	}
	if code, body := get(t, ts, "/api/v1/checks?limit=0"); code != 400 || !strings.Contains(body, "limit") {
		t.Fatalf("bad limit: %d %s", code, body)
	}
	// Before any sample, an exporter has zero rates and no decode error.
	_, body := get(t, ts, "/api/v1/exporters")
	if !strings.Contains(body, `"records_per_second": 0`) || !strings.Contains(body, `"decode_errors": {}`) || !strings.Contains(body, `"id": 256`) {
		t.Fatalf("exporters %s", body)
	}
}
