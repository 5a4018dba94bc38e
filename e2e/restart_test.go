package e2e

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowcheck/flowcheck/alert"
	"github.com/flowcheck/flowcheck/pcapsrc"
)

// restartConfig is the daemon's configuration in the restart tests: alerts
// to a file (one stream across processes, as a consumer sees it), a 5 s
// tick so that a scan alert stays engaged for a few seconds after its
// traffic (it clears at the third tick), a 30 s host expiry, longer than
// that, and the state file when state is not empty.
func restartConfig(alerts, state string) string {
	return `instance: e2e
log:
  level: debug
  format: json
http:
  listen: 127.0.0.1:0
collector:
  listeners:
    - url: auto://127.0.0.1:0
      sockets: 1
      rcvbuf: 33554432
aggregate:
  reply_window: 2s
  idle_timeout:
    local: 30s
    remote: 30s
scripting:
  interval: 5s
  alert_state_file: "` + state + `"
sinks:
  stdout:
    enabled: false
  file:
    enabled: true
    path: "` + alerts + `"
`
}

// feed sends the export packets of a capture to the daemon over UDP.
func feed(t *testing.T, d *daemon, pcap string) {
	t.Helper()
	send(t, "", d.udp, pcap)
}

// send sends the export packets of a capture over UDP to the address to,
// from the loopback address from (any when empty), so that exports sent from
// distinct addresses are distinct exporters to the receiver.
func send(t *testing.T, from, to, pcap string) {
	t.Helper()
	r, err := pcapsrc.Open(pcap)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	raddr, err := net.ResolveUDPAddr("udp", to)
	if err != nil {
		t.Fatal(err)
	}
	var laddr *net.UDPAddr
	if from != "" {
		laddr = &net.UDPAddr{IP: net.ParseIP(from)}
	}
	conn, err := net.DialUDP("udp", laddr, raddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for {
		dg, err := r.Next()
		if err != nil {
			return
		}
		if _, err := conn.Write(dg.Payload); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Microsecond) // see TestSIGTERMFlushesAndExits
	}
}

// readAlerts reads the alert file (nothing when it does not exist yet).
func readAlerts(t *testing.T, path string) []alert.Event {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return parseAlerts(t, string(b))
}

// waitAlerts polls the alert file until ok accepts its events.
func waitAlerts(t *testing.T, path string, within time.Duration, what string, ok func([]alert.Event) bool) []alert.Event {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		evs := readAlerts(t, path)
		if ok(evs) {
			return evs
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %s; alerts:\n%s", what, within, describe(evs))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func describe(evs []alert.Event) string {
	var b strings.Builder
	for _, ev := range evs {
		b.WriteString(ev.Time.Format("15:04:05.000") + " " + ev.Collector + " " + ev.ID + " " + string(ev.State) + " " + string(ev.Reason) + " " + ev.Check + " " + ev.Host.Key() + "\n")
	}
	return b.String()
}

// scansEngaged reports whether both scanners of scan-mix have an engaged
// scan_detection alert.
func scansEngaged(evs []alert.Event) bool {
	e := engagedBy(evs)
	return e["10.99.0.10"]["scan_detection"] && e["10.99.0.30"]["scan_detection"]
}

// TestRestartResumesAlerts runs the daemon, has it engage the scan alerts of
// scan-mix, stops it with SIGTERM and starts a second process on the same
// state file. The second one continues the alerts: no alert engages twice,
// and each alert of the first process is released by the second, with the
// id it engaged with and a reason: cleared when the host comes back without
// scanning further, host_expired when it never comes back. Without a state
// file, SIGTERM releases every engaged alert with reason shutdown.
func TestRestartResumesAlerts(t *testing.T) {
	cases := []struct {
		name string
		// state keeps a state file; comeback feeds the capture again to
		// the second process.
		state, comeback bool
		// reason releases the first process's scan alerts.
		reason alert.Reason
	}{
		{"hosts come back", true, true, alert.Cleared},
		{"hosts never come back", true, false, alert.HostExpired},
		{"no state file", false, false, alert.Shutdown},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			alerts := filepath.Join(dir, "alerts.jsonl")
			state := ""
			if tc.state {
				state = filepath.Join(dir, "alerts.state")
			}
			config := restartConfig(alerts, state)

			first := startDaemon(t, config)
			feed(t, first, "../testdata/softflowd-ipfix.pcap")
			waitAlerts(t, alerts, 60*time.Second, "scan alerts from the first process", scansEngaged)
			if code := first.stop(t); code != 0 {
				t.Fatalf("first process: exit status %d", code)
			}
			before := readAlerts(t, alerts)
			// Alerts engaged and not released when the first process stopped.
			open := map[string]alert.Event{}
			var shutdown []alert.Event
			for _, ev := range before {
				switch {
				case ev.State == alert.Engaged:
					open[ev.ID] = ev
				case ev.Reason == alert.Shutdown:
					shutdown = append(shutdown, ev)
				default:
					delete(open, ev.ID)
				}
			}
			if !tc.state {
				// Every alert is released by the stop itself.
				for _, ev := range shutdown {
					if _, ok := open[ev.ID]; !ok {
						t.Errorf("shutdown release of an alert not engaged: %+v", ev)
					}
					delete(open, ev.ID)
				}
				if len(shutdown) == 0 || len(open) != 0 {
					t.Fatalf("after SIGTERM without a state file, %d shutdown releases and still engaged:\n%s\nall alerts:\n%s",
						len(shutdown), describe(mapValues(open)), describe(before))
				}
				return
			}
			if len(shutdown) != 0 {
				t.Fatalf("SIGTERM with a state file released alerts:\n%s", describe(shutdown))
			}
			if st, err := os.Stat(state); err != nil || st.Size() == 0 {
				t.Fatalf("no state file after SIGTERM: %v", err)
			}
			scans := 0
			for _, ev := range open {
				if ev.Check == "scan_detection" {
					scans++
				}
			}
			if scans != 2 {
				t.Fatalf("%d scan alerts engaged at SIGTERM, want 2 (the test stops too late?):\n%s", scans, describe(before))
			}

			second := startDaemon(t, config)
			if tc.comeback {
				feed(t, second, "../testdata/softflowd-ipfix.pcap")
			}
			// Every alert open at the restart gets released by the second
			// process (cleared at the third tick after the scan traffic, or
			// when the 30 s host expiry has passed).
			all := waitAlerts(t, alerts, 90*time.Second, "release of every resumed alert", func(evs []alert.Event) bool {
				released := map[string]bool{}
				for _, ev := range evs[len(before):] {
					if ev.State == alert.Released {
						released[ev.ID] = true
					}
				}
				for id := range open {
					if !released[id] {
						return false
					}
				}
				return true
			})
			after := all[len(before):]
			t.Logf("second process:\n%s", describe(after))
			releasedAt := map[string]int{}
			for i, ev := range after {
				if ev.State == alert.Released {
					if ev.Reason == "" {
						t.Errorf("release without a reason: %+v", ev)
					}
					if _, ok := releasedAt[ev.ID]; ok {
						t.Errorf("alert %s released twice", ev.ID)
					}
					releasedAt[ev.ID] = i
				}
			}
			for id, eng := range open {
				rel := after[releasedAt[id]]
				if eng.Check == "scan_detection" && rel.Reason != tc.reason {
					t.Errorf("scan alert of %s released with reason %q, want %q", eng.Host.IP, rel.Reason, tc.reason)
				}
				if !rel.FirstSeen.Equal(eng.FirstSeen) || rel.Check != eng.Check || rel.Host.Key() != eng.Host.Key() {
					t.Errorf("release %+v does not continue %+v", rel, eng)
				}
				// No second engaged event for the same check and host while
				// the resumed alert was still engaged.
				for _, ev := range after[:releasedAt[id]] {
					if ev.State == alert.Engaged && ev.Check == eng.Check && ev.Host.Key() == eng.Host.Key() {
						t.Errorf("alert engaged again after the restart: %+v (resumed %s)", ev, id)
					}
				}
			}
			if !strings.Contains(second.stderr.String(), `"msg":"engaged alerts resumed"`) {
				t.Errorf("second process did not log the resumed alerts")
			}
			if code := second.stop(t); code != 0 {
				t.Fatalf("second process: exit status %d", code)
			}
		})
	}
}

func mapValues(m map[string]alert.Event) []alert.Event {
	out := make([]alert.Event, 0, len(m))
	for _, ev := range m {
		out = append(out, ev)
	}
	return out
}
