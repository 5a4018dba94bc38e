package server

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/flowcheck/flowcheck/alert"
	"github.com/prometheus/client_golang/prometheus"
)

// FuzzAPIQuery sends any query string to the list endpoints: the answer is
// a page (200) or a JSON error (400; 404 for a host on another VLAN), never
// a panic or another status.
func FuzzAPIQuery(f *testing.F) {
	for _, q := range []string{"", "sort=refused_ports&order=asc&limit=2", "q=10.0.0.0/8&local=false&vlan=7",
		"cidr=2001:db8::/32&offset=3", "cursor=5_10.0.0.1_0", "state=all&check=scan&severity=critical&host=10.0.0.1@5",
		"since=1800000000", "limit=%zz", "q=::ffff:10.0.0.2", "offset=9999&limit=1"} {
		f.Add(q)
	}
	hosts, scores := filterHosts()
	engaged := []alert.Event{{State: alert.Engaged, Check: "scan", Host: alert.Host{IP: "10.0.0.1"}, Severity: "critical"}}
	srv, err := New(DefaultConfiguration(), Dependencies{Gatherer: prometheus.NewRegistry(), Hosts: hosts,
		Alerts: fakeAlerts{events: engaged, scores: scores}, History: fakeHistory(engaged)})
	if err != nil {
		f.Fatal(err)
	}
	h := srv.Handler()
	f.Fuzz(func(t *testing.T, query string) {
		for _, path := range []string{"/api/v1/hosts", "/api/v1/alerts", "/api/v1/checks", "/api/v1/overview", "/api/v1/hosts/10.0.0.1"} {
			req := httptest.NewRequest(http.MethodGet, path, nil)
			req.URL.RawQuery = query
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			notFound := w.Code == http.StatusNotFound && strings.HasPrefix(path, "/api/v1/hosts/") // another VLAN
			if w.Code != http.StatusOK && w.Code != http.StatusBadRequest && !notFound {
				t.Fatalf("%s?%s: %d %s", path, query, w.Code, w.Body)
			}
			var v map[string]any
			if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
				t.Fatalf("%s?%s: not JSON: %v", path, query, err)
			}
			if _, ok := v["error"]; ok != (w.Code != http.StatusOK) {
				t.Fatalf("%s?%s: %d with %s", path, query, w.Code, w.Body)
			}
		}
	})
}

// FuzzUsers parses any users file: an error, or users whose names have no
// colon and no surrounding space.
func FuzzUsers(f *testing.F) {
	f.Add([]byte("# ops\nalice:sha256:" + sha("wonderland") + "\n\nbob:sha256:" + sha("builder") + "\n"))
	f.Add([]byte("alice:wonderland\n"))
	f.Add([]byte(":sha256:\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		users, err := parseUsers("users", b)
		if err != nil {
			return
		}
		if len(users) == 0 {
			t.Fatal("no user and no error")
		}
		for name := range users {
			if name == "" || strings.Contains(name, ":") || strings.TrimSpace(name) != name {
				t.Fatalf("user %q", name)
			}
		}
	})
}
