package server

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/flowcheck/flowcheck/aggregate"
	"github.com/flowcheck/flowcheck/alert"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

type fakeHosts map[aggregate.HostKey]aggregate.HostSnapshot

func (f fakeHosts) AppendKeys(dst []aggregate.HostKey) []aggregate.HostKey {
	for k := range f {
		dst = append(dst, k)
	}
	return dst
}

func (f fakeHosts) Snapshot(k aggregate.HostKey, dst *aggregate.HostSnapshot) bool {
	s, ok := f[k]
	if ok {
		*dst = s
	}
	return ok
}

type fakeAlerts struct {
	events []alert.Event
	scores map[aggregate.HostKey]int
}

func (f fakeAlerts) Engaged() []alert.Event        { return f.events }
func (f fakeAlerts) Score(k aggregate.HostKey) int { return f.scores[k] }

func key(s string, vlan uint16) aggregate.HostKey {
	return aggregate.HostKey{Addr: netip.MustParseAddr(s), VLAN: vlan}
}

func newTestServer(t *testing.T, ready *bool) *httptest.Server {
	t.Helper()
	a, b, c := key("10.99.0.10", 0), key("10.99.0.20", 0), key("8.8.8.8", 0)
	hosts := fakeHosts{
		a: {Key: a, Local: true, BytesSent: 61854, BytesRcvd: 1898834, NoReply: aggregate.ContactCounts{PeersAsClient: 1, ServerPorts: 3},
			Refused: aggregate.ContactCounts{PeersAsClient: 21, ServerPorts: 1001}, Unidirectional: aggregate.UnidirectionalStats{EgressUDP: 6},
			L7: []aggregate.L7Stat{{Name: "HTTP", BytesSent: 9842, Flows: 14}}},
		b:                    {Key: b, Local: true, BytesSent: 2148826, BytesRcvd: 144484},
		c:                    {Key: c, BytesSent: 10},
		key("10.99.0.10", 7): {Key: key("10.99.0.10", 7), Local: true, BytesSent: 1},
	}
	alerts := fakeAlerts{
		events: []alert.Event{{Schema: 1, State: alert.Engaged, Check: "scan", Host: alert.Host{IP: "10.99.0.10"}, Value: 80}},
		scores: map[aggregate.HostKey]int{a: 80},
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector())
	srv, err := New(Configuration{Listen: "127.0.0.1:0", MaxConcurrent: 2, RequestTimeout: time.Second}, Dependencies{
		Gatherer: reg, Registerer: reg, Hosts: hosts, Alerts: alerts,
		Exporters: exporterList{{Address: netip.MustParseAddr("127.0.0.1")}},
		Ready:     []ReadyCheck{{Name: "collector", Ready: func() bool { return *ready }}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return ts
}

func get(t *testing.T, ts *httptest.Server, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(ts.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestRoutes(t *testing.T) {
	ready := true
	ts := newTestServer(t, &ready)
	cases := []struct {
		path     string
		code     int
		contains []string
	}{
		{"/healthz", 200, []string{`"ok"`}},
		{"/readyz", 200, []string{`"collector": true`}},
		{"/metrics", 200, []string{"go_goroutines", "flowcheck_http_requests_total"}},
		{"/api/v1/alerts", 200, []string{`"check": "scan"`}},
		{"/api/v1/exporters", 200, []string{`"address": "127.0.0.1"`}},
		{"/api/v1/hosts/10.99.0.10", 200, []string{`"noreply_ports": 3`, `"server_ports": 1001`, `"egress_udp": 6`, `"name": "HTTP"`, `"score": 80`, `"check": "scan"`}},
		{"/api/v1/hosts/10.99.0.10?vlan=7", 200, []string{`"vlan": 7`, `"alerts": []`}},
		{"/api/v1/hosts/10.99.0.99", 404, []string{"unknown host"}},
		{"/api/v1/hosts/nope", 400, []string{"not an IP"}},
		{"/api/v1/hosts/10.99.0.10?vlan=5000", 400, []string{"vlan"}},
		{"/api/v1/hosts?sort=size", 400, []string{"sort must be"}},
		{"/api/v1/hosts?limit=0", 400, []string{"limit"}},
		{"/api/v1/hosts?limit=1001", 400, []string{"limit must be an integer between 1 and 1000"}},
		{"/api/v1/hosts?cursor=nope", 400, []string{"cursor"}},
		{"/api/v1/alerts?offset=-1", 400, []string{"offset"}},
		{"/api/v1/alerts?limit=5000", 400, []string{"limit"}},
		{"/api/v1/alerts?offset=7", 200, []string{`"total": 1`, `"items": []`, `"next": null`}},
		{"/api/v1/hosts?local=maybe", 400, []string{"local"}},
		{"/nothing", 404, nil},
	}
	for _, tc := range cases {
		t.Run(tc.path, func(t *testing.T) {
			code, body := get(t, ts, tc.path)
			if code != tc.code {
				t.Fatalf("code %d, want %d: %s", code, tc.code, body)
			}
			for _, s := range tc.contains {
				if !strings.Contains(body, s) {
					t.Errorf("body lacks %q:\n%s", s, body)
				}
			}
		})
	}
}

func TestHostsSortAndFilter(t *testing.T) {
	ready := true
	ts := newTestServer(t, &ready)
	cases := []struct {
		query string
		want  []string
	}{
		{"", []string{"10.99.0.20", "10.99.0.10", "8.8.8.8", "10.99.0.10"}},
		{"?sort=bytes&limit=2", []string{"10.99.0.20", "10.99.0.10"}},
		{"?sort=score&limit=1", []string{"10.99.0.10"}},
		{"?sort=noreply_ports&limit=1", []string{"10.99.0.10"}},
		{"?local=true&sort=bytes", []string{"10.99.0.20", "10.99.0.10", "10.99.0.10"}},
	}
	for _, tc := range cases {
		t.Run(tc.query, func(t *testing.T) {
			code, body := get(t, ts, "/api/v1/hosts"+tc.query)
			if code != 200 {
				t.Fatalf("code %d: %s", code, body)
			}
			var got struct{ Items []hostSummary }
			if err := json.Unmarshal([]byte(body), &got); err != nil {
				t.Fatal(err)
			}
			var ips []string
			for _, h := range got.Items {
				ips = append(ips, h.IP)
			}
			if strings.Join(ips, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("hosts %v, want %v", ips, tc.want)
			}
		})
	}
}

func TestReadyzNotReady(t *testing.T) {
	ready := false
	ts := newTestServer(t, &ready)
	code, body := get(t, ts, "/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, `"collector": false`) {
		t.Fatalf("readyz = %d %s", code, body)
	}
}

func TestStartStop(t *testing.T) {
	reg := prometheus.NewRegistry()
	srv, err := New(DefaultConfiguration(), Dependencies{Gatherer: reg, Registerer: reg, Hosts: fakeHosts{}, Alerts: fakeAlerts{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + srv.Addr().String() + "/api/v1/hosts")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `"total": 0`) || !strings.Contains(string(body), `"items": []`) {
		t.Fatalf("empty table answers %q", body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		listen, err string
	}{
		{"127.0.0.1:9740", ""}, {"", ""}, {"[::1]:0", ""},
		{"localhost", "listen: must be host:port"}, {"127.0.0.1:http", "listen: port must be"}, {"127.0.0.1:70000", "listen: port must be"},
	} {
		c := DefaultConfiguration()
		c.Listen = tc.listen
		err := c.Validate()
		if err == nil {
			for _, bad := range []Configuration{{Listen: tc.listen, MaxConcurrent: 0, RequestTimeout: time.Second}, {Listen: tc.listen, MaxConcurrent: 1}} {
				if bad.Validate() == nil {
					t.Errorf("Validate(%+v) accepted", bad)
				}
			}
		}
		if (err == nil) != (tc.err == "") || (err != nil && !strings.HasPrefix(err.Error(), tc.err)) {
			t.Errorf("Validate(%q) = %v, want %q", tc.listen, err, tc.err)
		}
	}
}

// BenchmarkHosts lists the top 100 of 100,000 hosts by bytes.
func BenchmarkHosts(b *testing.B) {
	hosts := fakeHosts{}
	for i := range 100_000 {
		k := aggregate.HostKey{Addr: netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})}
		hosts[k] = aggregate.HostSnapshot{Key: k, BytesSent: uint64(i * 7919 % 100_003)}
	}
	reg := prometheus.NewRegistry()
	srv, err := New(Configuration{MaxConcurrent: 1, RequestTimeout: time.Minute}, Dependencies{Gatherer: reg, Registerer: reg, Hosts: hosts, Alerts: fakeAlerts{}})
	if err != nil {
		b.Fatal(err)
	}
	h := srv.Handler()
	req := httptest.NewRequest("GET", "/api/v1/hosts?sort=bytes&limit=100", nil)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatal(w.Code)
		}
	}
}

// TestSeriesAtZero checks that the labelled counters alert rules need exist
// at zero before any request.
func TestSeriesAtZero(t *testing.T) {
	_, reg := serve(t, DefaultConfiguration(), Dependencies{Hosts: fakeHosts{}})
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			labels := []string{}
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			if m.GetCounter().GetValue() == 0 {
				got[f.GetName()+"{"+strings.Join(labels, ",")+"}"] = true
			}
		}
	}
	for _, want := range []string{
		"flowcheck_http_requests_total{code=200,handler=readyz}",
		"flowcheck_http_requests_total{code=200,handler=exporters}",
		"flowcheck_http_rejected_total{handler=hosts}",
		"flowcheck_http_rejected_total{handler=alerts}",
		"flowcheck_http_timeouts_total{handler=host}",
		"flowcheck_http_timeouts_total{handler=exporters}",
	} {
		if !got[want] {
			t.Errorf("%s missing at zero", want)
		}
	}
}

// TestStartErrors checks that Start's errors do not carry the prefix the
// caller adds ("http: "), so that the operator reads it once.
func TestStartErrors(t *testing.T) {
	reg := prometheus.NewRegistry()
	first, err := New(Configuration{Listen: "127.0.0.1:0", MaxConcurrent: 1, RequestTimeout: time.Second},
		Dependencies{Gatherer: reg, Registerer: reg, Hosts: fakeHosts{}, Alerts: fakeAlerts{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { first.Stop(context.Background()) })
	second, err := New(Configuration{Listen: first.Addr().String(), MaxConcurrent: 1, RequestTimeout: time.Second},
		Dependencies{Gatherer: reg, Registerer: reg, Hosts: fakeHosts{}, Alerts: fakeAlerts{}})
	if err != nil {
		t.Fatal(err)
	}
	err = second.Start(context.Background())
	if err == nil {
		second.Stop(context.Background())
		t.Fatal("a second server on the same port started")
	}
	if strings.HasPrefix(err.Error(), "http") || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("Start: %q, want the bind error without a prefix", err)
	}
	if _, err := New(DefaultConfiguration(), Dependencies{}); err == nil || strings.HasPrefix(err.Error(), "server:") {
		t.Fatalf("New without dependencies: %v, want an error without a prefix", err)
	}
}

// TestJSONGzip: API answers are gzipped for a client that accepts it, and
// plain for one that does not or refuses it with q=0.
func TestJSONGzip(t *testing.T) {
	cases := []struct {
		accept string
		gzip   bool
	}{
		{"", false},
		{"gzip", true},
		{"deflate, gzip;q=0.5", true},
		{"GZIP", true},
		{"gzip;q=0", false},
		{"gzip; q=0.0", false},
		{"br, identity", false},
	}
	for _, tc := range cases {
		t.Run(tc.accept, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/api/v1/hosts", nil)
			if tc.accept != "" {
				r.Header.Set("Accept-Encoding", tc.accept)
			}
			w := httptest.NewRecorder()
			writeJSON(w, r, http.StatusOK, map[string]string{"status": "ok"})
			body := w.Body.Bytes()
			if got := w.Header().Get("Content-Encoding") == "gzip"; got != tc.gzip {
				t.Fatalf("gzipped = %v, want %v", got, tc.gzip)
			}
			if tc.gzip {
				zr, err := gzip.NewReader(bytes.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				if body, err = io.ReadAll(zr); err != nil {
					t.Fatal(err)
				}
			}
			if string(body) != "{\n  \"status\": \"ok\"\n}\n" {
				t.Fatalf("body = %q", body)
			}
		})
	}
}
