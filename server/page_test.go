package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flowcheck/flowcheck/aggregate"
	"github.com/flowcheck/flowcheck/alert"
	"github.com/flowcheck/flowcheck/collector"
	"github.com/prometheus/client_golang/prometheus"
)

// pageOf is a page as a client reads it.
type pageOf[T any] struct {
	Total int     `json:"total"`
	Limit int     `json:"limit"`
	Next  *string `json:"next"`
	Items []T     `json:"items"`
}

func serve(t *testing.T, cfg Configuration, deps Dependencies) (*httptest.Server, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	deps.Gatherer, deps.Registerer = reg, reg
	if deps.Alerts == nil {
		deps.Alerts = fakeAlerts{}
	}
	srv, err := New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return ts, reg
}

func getPage[T any](t *testing.T, ts *httptest.Server, path string) pageOf[T] {
	t.Helper()
	code, body := get(t, ts, path)
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, code, body)
	}
	var p pageOf[T]
	if err := json.Unmarshal([]byte(body), &p); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return p
}

// walkPages follows next from path and returns every item.
func walkPages[T any](t *testing.T, ts *httptest.Server, path string, wantTotal int) []T {
	t.Helper()
	var all []T
	for n := 0; ; n++ {
		if n > 10_000 {
			t.Fatal("next never ends")
		}
		p := getPage[T](t, ts, path)
		if p.Total != wantTotal {
			t.Fatalf("GET %s: total %d, want %d", path, p.Total, wantTotal)
		}
		all = append(all, p.Items...)
		if p.Next == nil {
			return all
		}
		path = *p.Next
	}
}

// TestHostsPaging follows the cursor of /api/v1/hosts through a table with
// many ties: every host comes exactly once, in order.
func TestHostsPaging(t *testing.T) {
	hosts := fakeHosts{}
	scores := map[aggregate.HostKey]int{}
	for i := range 2500 {
		k := aggregate.HostKey{Addr: netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), VLAN: uint16(i % 3)}
		hosts[k] = aggregate.HostSnapshot{Key: k, Local: i%2 == 0, BytesSent: uint64(i % 17), NoReply: aggregate.ContactCounts{ServerPorts: uint64(i % 5)}}
		scores[k] = i%7 - 3 // negative scores sort below zero
	}
	ts, _ := serve(t, DefaultConfiguration(), Dependencies{Hosts: hosts, Alerts: fakeAlerts{scores: scores}})
	cases := []struct {
		query string
		total int
		value func(h hostSummary) int64
	}{
		{"sort=bytes&limit=97", 2500, func(h hostSummary) int64 { return int64(h.BytesSent) }},
		{"sort=score&limit=1000", 2500, func(h hostSummary) int64 { return int64(h.Score) }},
		{"sort=noreply_ports&local=true&limit=333", 1250, func(h hostSummary) int64 { return int64(h.NoReplyPorts) }},
		{"", 2500, func(h hostSummary) int64 { return int64(h.BytesSent) }},
	}
	for _, tc := range cases {
		t.Run(tc.query, func(t *testing.T) {
			all := walkPages[hostSummary](t, ts, "/api/v1/hosts?"+tc.query, tc.total)
			if len(all) != tc.total {
				t.Fatalf("%d hosts over the pages, want %d", len(all), tc.total)
			}
			seen := map[string]bool{}
			for i, h := range all {
				id := fmt.Sprintf("%s@%d", h.IP, h.VLAN)
				if seen[id] {
					t.Fatalf("host %s twice", id)
				}
				seen[id] = true
				if i > 0 && tc.value(all[i-1]) < tc.value(h) {
					t.Fatalf("hosts out of order at %d: %+v before %+v", i, all[i-1], h)
				}
			}
		})
	}
}

// TestAlertsPaging pages through many engaged alerts: a default page of
// 100, offsets that meet, and the same alerts as one big list.
func TestAlertsPaging(t *testing.T) {
	var events []alert.Event
	for i := range 2345 {
		events = append(events, alert.Event{Schema: 1, State: alert.Engaged, Check: fmt.Sprintf("c%d", i%4),
			Host: alert.Host{IP: fmt.Sprintf("10.0.%d.%d", i/4/250, i/4%250)}, Message: strings.Repeat("x", 200)})
	}
	ts, _ := serve(t, DefaultConfiguration(), Dependencies{Hosts: fakeHosts{}, Alerts: fakeAlerts{events: slices.Clone(events)}})
	first := getPage[alert.Event](t, ts, "/api/v1/alerts")
	if len(first.Items) != defaultPageLimit || first.Limit != defaultPageLimit || first.Next == nil || *first.Next != "/api/v1/alerts?limit=100&offset=100" {
		t.Fatalf("first page: %d items, limit %d, next %v", len(first.Items), first.Limit, first.Next)
	}
	all := walkPages[alert.Event](t, ts, "/api/v1/alerts?limit=1000", len(events))
	if len(all) != len(events) {
		t.Fatalf("%d alerts over the pages, want %d", len(all), len(events))
	}
	for i := 1; i < len(all); i++ {
		a, b := all[i-1], all[i]
		if a.Host.IP > b.Host.IP || (a.Host.IP == b.Host.IP && a.Check >= b.Check) {
			t.Fatalf("alerts out of order at %d: %s/%s then %s/%s", i, a.Host.IP, a.Check, b.Host.IP, b.Check)
		}
	}
	// The detail of one host finds its alerts in the same snapshot.
	code, body := get(t, ts, "/api/v1/hosts/10.0.0.1")
	if code != http.StatusNotFound {
		t.Fatalf("unknown host: %d %s", code, body)
	}
}

// exporterList is a fixed list of exporters.
type exporterList []collector.ExporterInfo

func (l exporterList) Exporters() []collector.ExporterInfo { return l }

// TestPageBytesBound checks that a page stops at maxPageBytes whatever the
// limit, and that next carries on where it stopped.
func TestPageBytesBound(t *testing.T) {
	// Exporters with many templates, about 50 KB of JSON each.
	list := make(exporterList, 60)
	for i := range list {
		list[i] = collector.ExporterInfo{Address: netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}),
			Templates: slices.Repeat([]collector.TemplateInfo{{Version: 10, ID: 256, Fields: 20}}, 500)}
	}
	ts, _ := serve(t, DefaultConfiguration(), Dependencies{Hosts: fakeHosts{}, Exporters: list})
	resp, err := http.Get(ts.URL + "/api/v1/exporters?limit=1000")
	if err != nil {
		t.Fatal(err)
	}
	var p pageOf[json.RawMessage]
	err = json.NewDecoder(resp.Body).Decode(&p)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	size := 0
	for _, it := range p.Items {
		size += len(it)
	}
	// Items come back indented; compact JSON is what is bounded.
	if len(p.Items) == 0 || len(p.Items) >= len(list) || p.Next == nil || p.Total != len(list) {
		t.Fatalf("%d items of %d (total %d), next %v: the page was not cut", len(p.Items), len(list), p.Total, p.Next)
	}
	if want := fmt.Sprintf("offset=%d", len(p.Items)); !strings.Contains(*p.Next, want) {
		t.Fatalf("next %q, want %s", *p.Next, want)
	}
	all := walkPages[collector.ExporterInfo](t, ts, "/api/v1/exporters?limit=1000", len(list))
	if len(all) != len(list) || all[len(all)-1].Address != list[len(list)-1].Address {
		t.Fatalf("%d exporters over the pages, want %d", len(all), len(list))
	}
}

// blockingHosts holds every AppendKeys until release is closed.
type blockingHosts struct {
	fakeHosts
	entered chan struct{}
	release chan struct{}
}

func (b blockingHosts) AppendKeys(dst []aggregate.HostKey) []aggregate.HostKey {
	b.entered <- struct{}{}
	<-b.release
	return b.fakeHosts.AppendKeys(dst)
}

// TestConcurrencyLimit checks that a request beyond http.max_concurrent is
// turned away at once with 503 and Retry-After, counted, while probes and
// metrics still answer.
func TestConcurrencyLimit(t *testing.T) {
	hosts := blockingHosts{fakeHosts: fakeHosts{}, entered: make(chan struct{}, 2), release: make(chan struct{})}
	cfg := DefaultConfiguration()
	cfg.MaxConcurrent = 2
	ts, reg := serve(t, cfg, Dependencies{Hosts: hosts})
	done := make(chan int, 2)
	for range 2 {
		go func() {
			resp, err := http.Get(ts.URL + "/api/v1/hosts")
			if err != nil {
				done <- 0
				return
			}
			resp.Body.Close()
			done <- resp.StatusCode
		}()
	}
	<-hosts.entered
	<-hosts.entered
	resp, err := http.Get(ts.URL + "/api/v1/alerts")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("third request: %d, Retry-After %q; want 503 and 1", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	for _, path := range []string{"/healthz", "/metrics"} {
		if code, _ := get(t, ts, path); code != http.StatusOK {
			t.Errorf("%s while the API is busy: %d", path, code)
		}
	}
	close(hosts.release)
	for range 2 {
		if code := <-done; code != http.StatusOK {
			t.Errorf("held request: %d", code)
		}
	}
	if code, _ := get(t, ts, "/api/v1/alerts"); code != http.StatusOK {
		t.Errorf("after release: %d", code)
	}
	if n := counter(t, reg, "flowcheck_http_rejected_total", "alerts"); n != 1 {
		t.Errorf("rejected_total{handler=alerts} = %v, want 1", n)
	}
}

// TestRequestTimeout checks that a walk past http.request_timeout answers
// 503 and is counted.
func TestRequestTimeout(t *testing.T) {
	hosts := fakeHosts{}
	for i := range 5000 {
		k := aggregate.HostKey{Addr: netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)})}
		hosts[k] = aggregate.HostSnapshot{Key: k}
	}
	cfg := DefaultConfiguration()
	cfg.RequestTimeout = time.Nanosecond
	ts, reg := serve(t, cfg, Dependencies{Hosts: hosts})
	code, body := get(t, ts, "/api/v1/hosts")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "timed out") {
		t.Fatalf("GET hosts: %d %s", code, body)
	}
	if n := counter(t, reg, "flowcheck_http_timeouts_total", "hosts"); n != 1 {
		t.Errorf("timeouts_total{handler=hosts} = %v, want 1", n)
	}
}

// counter reads one labelled series of a counter family in a registry.
func counter(t *testing.T, reg *prometheus.Registry, name, handler string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "handler" && l.GetValue() == handler {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s{handler=%q}", name, handler)
	return 0
}
