package server

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/flowcheck/flowcheck/alert"
)

type fakeHistory []alert.Event

func (f fakeHistory) Released() []alert.Event { return f }

// TestAlertsParams is one row per parameter of /api/v1/alerts and its bad
// values: the alerts answered (check@host/state), in order.
func TestAlertsParams(t *testing.T) {
	ev := func(check, ip string, vlan uint16, value int, state alert.State, reason alert.Reason) alert.Event {
		return alert.Event{Schema: 1, State: state, Reason: reason, Check: check, Host: alert.Host{IP: ip, VLAN: vlan},
			Value: value, Severity: alert.Severity(value)}
	}
	engaged := []alert.Event{
		ev("scan", "10.0.0.1", 0, 80, alert.Engaged, ""),
		ev("p2p", "10.0.0.1", 0, 30, alert.Engaged, ""),
		ev("scan", "10.0.0.2", 0, 10, alert.Engaged, ""),
		ev("scan", "10.0.0.1", 5, 60, alert.Engaged, ""),
	}
	released := fakeHistory{ // newest first
		ev("scan", "10.0.0.3", 0, 90, alert.Released, alert.Cleared),
		ev("p2p", "10.0.0.1", 0, 40, alert.Released, alert.HostExpired),
	}
	ts, _ := serve(t, DefaultConfiguration(), Dependencies{Hosts: fakeHosts{}, Alerts: fakeAlerts{events: engaged}, History: released})
	cases := []struct {
		query string
		code  int
		want  string
	}{
		{"", 200, "p2p@10.0.0.1/engaged scan@10.0.0.1/engaged scan@10.0.0.1@5/engaged scan@10.0.0.2/engaged"},
		{"state=engaged&check=scan", 200, "scan@10.0.0.1/engaged scan@10.0.0.1@5/engaged scan@10.0.0.2/engaged"},
		{"state=released", 200, "scan@10.0.0.3/released:cleared p2p@10.0.0.1/released:host_expired"},
		{"state=all&check=p2p", 200, "p2p@10.0.0.1/engaged p2p@10.0.0.1/released:host_expired"},
		{"state=all&host=10.0.0.1", 200, "p2p@10.0.0.1/engaged scan@10.0.0.1/engaged p2p@10.0.0.1/released:host_expired"},
		{"host=10.0.0.1@5", 200, "scan@10.0.0.1@5/engaged"},
		{"host=::ffff:10.0.0.2", 200, "scan@10.0.0.2/engaged"},
		{"severity=critical&state=all", 200, "scan@10.0.0.1/engaged scan@10.0.0.3/released:cleared"},
		{"severity=error", 200, "scan@10.0.0.1@5/engaged"},
		{"severity=info&check=scan", 200, "scan@10.0.0.2/engaged"},
		{"check=nothing", 200, ""},
		{"state=all&offset=5&limit=1", 200, "p2p@10.0.0.1/released:host_expired"},
		{"state=open", 400, "state must be engaged, released or all"},
		{"severity=high", 400, "severity must be info, warning, error or critical"},
		{"host=10.0.0", 400, "host must be an IP address"},
		{"host=10.0.0.1@4096", 400, "host must be"},
		{"host=10.0.0.1@x", 400, "host must be"},
		{"offset=-3", 400, "offset must be"},
		{"limit=0", 400, "limit must be"},
	}
	for _, tc := range cases {
		t.Run(tc.query, func(t *testing.T) {
			code, body := get(t, ts, "/api/v1/alerts?"+tc.query)
			if code != tc.code {
				t.Fatalf("code %d, want %d: %s", code, tc.code, body)
			}
			if code != 200 {
				var e struct{ Error string }
				if err := json.Unmarshal([]byte(body), &e); err != nil || !strings.Contains(e.Error, tc.want) {
					t.Fatalf("error %q (%v), want it to hold %q", e.Error, err, tc.want)
				}
				return
			}
			var p pageOf[alert.Event]
			if err := json.Unmarshal([]byte(body), &p); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range p.Items {
				s := e.Check + "@" + e.Host.IP
				if e.Host.VLAN != 0 {
					s += "@5"
				}
				s += "/" + string(e.State)
				if e.Reason != "" {
					s += ":" + string(e.Reason)
				}
				got = append(got, s)
			}
			if strings.Join(got, " ") != tc.want {
				t.Fatalf("alerts %q, want %q", strings.Join(got, " "), tc.want)
			}
		})
	}
	// The host page shows the host's engaged and recent alerts.
	hosts := fakeHosts{key("10.0.0.1", 0): {Key: key("10.0.0.1", 0)}}
	ts2, _ := serve(t, DefaultConfiguration(), Dependencies{Hosts: hosts, Alerts: fakeAlerts{events: engaged}, History: released})
	_, body := get(t, ts2, "/api/v1/hosts/10.0.0.1")
	var d struct {
		Alerts       []alert.Event `json:"alerts"`
		RecentAlerts []alert.Event `json:"recent_alerts"`
	}
	if err := json.Unmarshal([]byte(body), &d); err != nil || len(d.Alerts) != 2 || len(d.RecentAlerts) != 1 || d.RecentAlerts[0].Reason != alert.HostExpired {
		t.Fatalf("host alerts %+v (%v)", d, err)
	}
}
