package scripting

import (
	"context"
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/flowcheck/flowcheck/aggregate"
	"github.com/flowcheck/flowcheck/alert"
)

// bytesScript triggers on every host with traffic: a host is made to
// clear by zeroing its bytes.
const bytesScript = `return { check = function()
	if host.bytes() > 0 then host.triggerAlert(50, "bytes " .. host.bytes()) end
end }`

// trafficHost is a remote host with traffic (it triggers bytesScript).
func trafficHost(ip string) aggregate.HostSnapshot {
	return aggregate.HostSnapshot{Key: key(ip), BytesSent: 100}
}

// TestReleaseReasons drives every path that ends an alert and checks the
// reason of the released event (and that engaged events carry none).
func TestReleaseReasons(t *testing.T) {
	cases := []struct {
		name string
		// end ends the alert of 10.0.0.1 (engaged at the first tick).
		end  func(t *testing.T, h *harness)
		want alert.Reason
	}{
		{"check no longer triggers", func(t *testing.T, h *harness) {
			h.hosts.update(key("10.0.0.1"), func(s *aggregate.HostSnapshot) { s.BytesSent = 0 })
			h.tick()
		}, alert.Cleared},
		{"host expired from the table", func(t *testing.T, h *harness) {
			h.hosts.remove(key("10.0.0.1"))
			h.e.HostExpired(key("10.0.0.1"))
		}, alert.HostExpired},
		{"host missing from the table at a tick", func(t *testing.T, h *harness) {
			h.hosts.remove(key("10.0.0.1"))
			h.tick()
		}, alert.HostExpired},
		{"check disabled by configuration", func(t *testing.T, h *harness) {
			cfg := h.e.Configuration()
			cfg.Checks = map[string]CheckConfiguration{"t": {Enabled: false}}
			if err := h.e.ReloadConfig(cfg); err != nil {
				t.Fatal(err)
			}
			h.tick()
		}, alert.CheckDisabled},
		{"check made local_only, host remote", func(t *testing.T, h *harness) {
			cfg := h.e.Configuration()
			cfg.Checks = map[string]CheckConfiguration{"t": {Enabled: true, LocalOnly: true}}
			if err := h.e.ReloadConfig(cfg); err != nil {
				t.Fatal(err)
			}
			h.tick()
		}, alert.CheckDisabled},
		{"check disabled after max_failures", func(t *testing.T, h *harness) {
			// From now on the check fails on every host; max_failures is 2.
			writeScripts(t, h.dir, map[string]string{"t": `return { check = function() error("broken") end }`})
			if err := h.e.Reload(); err != nil {
				t.Fatal(err)
			}
			h.tick()
			h.tick()
		}, alert.CheckDisabled},
		{"check removed on reload", func(t *testing.T, h *harness) {
			if err := os.Remove(filepath.Join(h.dir, "t.lua")); err != nil {
				t.Fatal(err)
			}
			if err := h.e.Reload(); err != nil {
				t.Fatal(err)
			}
			h.tick()
		}, alert.CheckRemoved},
		{"stop without a state file", func(t *testing.T, h *harness) {
			h.e.Stop(context.Background())
		}, alert.Shutdown},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, map[string]string{"t": bytesScript, "u": `return { check = function() end }`},
				newFakeHosts(trafficHost("10.0.0.1")), func(c *Configuration) { c.MaxFailures = 2 })
			h.tick()
			evs := h.pub.take()
			if len(evs) != 1 || evs[0].State != alert.Engaged || evs[0].Reason != "" {
				t.Fatalf("first tick: %+v", evs)
			}
			id := evs[0].ID
			tc.end(t, h)
			evs = h.pub.take()
			if len(evs) != 1 || evs[0].State != alert.Released || evs[0].ID != id || evs[0].Check != "t" {
				t.Fatalf("events %+v, want the release of %s", evs, id)
			}
			if evs[0].Reason != tc.want {
				t.Errorf("reason %q, want %q", evs[0].Reason, tc.want)
			}
			if len(h.e.Engaged()) != 0 {
				t.Errorf("still engaged: %+v", h.e.Engaged())
			}
		})
	}
}

// counterValue reads a counter.
func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

// stateHarness is a started engine running bytesScript as check "t" and a
// second check "g", keeping its alerts in path; tweak changes its
// configuration and files its scripts.
func stateHarness(t *testing.T, path string, hosts *fakeHosts, now time.Time, tweak func(*Configuration, string)) *harness {
	t.Helper()
	h := newHarness(t, map[string]string{"t": bytesScript, "g": bytesScript}, hosts, func(c *Configuration) {
		c.AlertStateFile = path
		c.HostExpiry = aggregate.IdleTimeoutConfiguration{Local: 5 * time.Minute, Remote: 90 * time.Second}
		if tweak != nil {
			tweak(c, c.Dirs[0])
		}
	})
	h.now = now
	h.clock.Set(now)
	if err := h.e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return h
}

// waitStateFile waits until the state file at path holds n alerts (the
// writer saves a tick's alerts after the tick).
func waitStateFile(t *testing.T, path string, n int) {
	t.Helper()
	var (
		recs []savedAlert
		err  error
	)
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if _, recs, err = readStateFile(path); err == nil && len(recs) == n {
			return
		}
	}
	t.Fatalf("state file %s: %d alerts (%v), want %d", path, len(recs), err, n)
}

// byHostCheck indexes events by "ip check".
func byHostCheck(evs []alert.Event) map[string]alert.Event {
	m := map[string]alert.Event{}
	for _, ev := range evs {
		m[ev.Host.IP+" "+ev.Check] = ev
	}
	return m
}

// TestResumeAfterRestart stops an engine with six engaged alerts and starts
// another on the same state file: no alert engages twice, and each ends
// later with its own id and the reason that ends it.
func TestResumeAfterRestart(t *testing.T) {
	cases := []struct {
		name string
		// second configures the second engine's check g.
		second func(c *Configuration, dir string)
		gone   alert.Reason
	}{
		{"check removed", func(c *Configuration, dir string) {
			if err := os.Remove(filepath.Join(dir, "g.lua")); err != nil {
				t.Fatal(err)
			}
		}, alert.CheckRemoved},
		{"check disabled", func(c *Configuration, _ string) {
			c.Checks = map[string]CheckConfiguration{"g": {Enabled: false}}
		}, alert.CheckDisabled},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "alerts.state")
			first := stateHarness(t, path, newFakeHosts(trafficHost("10.0.0.1"), trafficHost("10.0.0.2"), trafficHost("10.0.0.3")), t0, nil)
			first.tick()
			engaged := byHostCheck(first.pub.take())
			if len(engaged) != 6 {
				t.Fatalf("first engine engaged %d alerts, want 6", len(engaged))
			}
			first.e.Stop(context.Background())
			if evs := first.pub.take(); len(evs) != 0 {
				t.Fatalf("stop with a state file published %+v", evs)
			}

			// 10.0.0.1 still triggers, 10.0.0.2 no longer does, 10.0.0.3
			// never comes back.
			hosts := newFakeHosts(trafficHost("10.0.0.1"), aggregate.HostSnapshot{Key: key("10.0.0.2")})
			second := stateHarness(t, path, hosts, first.now.Add(10*time.Second), tc.second)
			if got := counterValue(second.e.metrics.resumed); got != 6 {
				t.Errorf("alerts_resumed_total %v, want 6", got)
			}
			// At start: the alerts of g end, with their ids.
			evs := second.pub.take()
			if len(evs) != 3 {
				t.Fatalf("at start: %+v, want the 3 releases of g", evs)
			}
			for _, ev := range evs {
				want := engaged[ev.Host.IP+" g"]
				if ev.State != alert.Released || ev.Check != "g" || ev.ID != want.ID || ev.Reason != tc.gone || !ev.FirstSeen.Equal(want.FirstSeen) {
					t.Errorf("at start: %+v, want the release of %+v, reason %s", ev, want, tc.gone)
				}
			}
			if n := len(second.e.Engaged()); n != 3 {
				t.Errorf("%d engaged after start, want 3 (t on every host)", n)
			}
			if s := second.e.Score(key("10.0.0.3")); s != 50 {
				t.Errorf("score of the missing host %d, want 50", s)
			}

			second.tick()
			evs = second.pub.take()
			if len(evs) != 1 || evs[0].Host.IP != "10.0.0.2" || evs[0].State != alert.Released ||
				evs[0].Reason != alert.Cleared || evs[0].ID != engaged["10.0.0.2 t"].ID {
				t.Fatalf("first tick after restart: %+v, want only 10.0.0.2's release (cleared, id %s)", evs, engaged["10.0.0.2 t"].ID)
			}
			eng := byHostCheck(second.e.Engaged())
			if len(eng) != 2 || eng["10.0.0.1 t"].ID != engaged["10.0.0.1 t"].ID || eng["10.0.0.3 t"].ID != engaged["10.0.0.3 t"].ID {
				t.Errorf("engaged after the first tick %+v", eng)
			}
			if eng["10.0.0.1 t"].Message != "bytes 100" || !eng["10.0.0.1 t"].LastSeen.Equal(second.now) {
				t.Errorf("resumed alert not updated by the tick: %+v", eng["10.0.0.1 t"])
			}

			// 10.0.0.3 is not back within the remote host expiry (90 s).
			second.tick() // 60 s after the start
			if evs := second.pub.take(); len(evs) != 0 {
				t.Fatalf("before the host expiry: %+v", evs)
			}
			second.tick() // 90 s
			evs = second.pub.take()
			if len(evs) != 1 || evs[0].Host.IP != "10.0.0.3" || evs[0].Reason != alert.HostExpired || evs[0].ID != engaged["10.0.0.3 t"].ID {
				t.Fatalf("at the host expiry: %+v, want 10.0.0.3's release (host_expired, id %s)", evs, engaged["10.0.0.3 t"].ID)
			}

			// A third start resumes what the second left: 10.0.0.1 only.
			second.e.Stop(context.Background())
			third := stateHarness(t, path, newFakeHosts(), second.now, nil)
			eng = byHostCheck(third.e.Engaged())
			if len(eng) != 1 || eng["10.0.0.1 t"].ID != engaged["10.0.0.1 t"].ID || !eng["10.0.0.1 t"].FirstSeen.Equal(engaged["10.0.0.1 t"].FirstSeen) {
				t.Errorf("third start resumed %+v", eng)
			}
		})
	}
}

// TestResumeAfterKill: an engine that never stopped (killed) left its alerts
// in the state file at its last tick, and the next one resumes them.
func TestResumeAfterKill(t *testing.T) {
	path := filepath.Join(t.TempDir(), "alerts.state")
	first := stateHarness(t, path, newFakeHosts(trafficHost("10.0.0.1")), t0, nil)
	first.tick()
	engaged := byHostCheck(first.pub.take())
	waitStateFile(t, path, 2) // written after the tick, by the writer
	second := stateHarness(t, path, newFakeHosts(trafficHost("10.0.0.1")), first.now.Add(5*time.Second), nil)
	second.tick()
	if evs := second.pub.take(); len(evs) != 0 {
		t.Fatalf("after the restart: %+v, want no event", evs)
	}
	eng := byHostCheck(second.e.Engaged())
	if len(eng) != 2 || eng["10.0.0.1 t"].ID != engaged["10.0.0.1 t"].ID || eng["10.0.0.1 g"].ID != engaged["10.0.0.1 g"].ID {
		t.Errorf("resumed %+v, want %+v", eng, engaged)
	}
}

// TestCorruptStateFile: a damaged state file is set aside (FILE.bad),
// counted and logged; the engine starts with no alert and works on.
func TestCorruptStateFile(t *testing.T) {
	// A valid file with two alerts.
	dir := t.TempDir()
	valid := filepath.Join(dir, "valid.state")
	h := stateHarness(t, valid, newFakeHosts(trafficHost("10.0.0.1")), t0, nil)
	h.tick()
	h.e.Stop(context.Background())
	good, err := os.ReadFile(valid)
	if err != nil {
		t.Fatal(err)
	}
	withHeader := func(payload string) []byte {
		b := append(append([]byte(nil), good[:8]...), make([]byte, 8)...)
		binary.BigEndian.PutUint32(b[8:], uint32(len(payload)))
		binary.BigEndian.PutUint32(b[12:], crc32.Checksum([]byte(payload), stateCRC))
		return append(b, payload...)
	}
	flip := func(i int) []byte {
		b := append([]byte(nil), good...)
		b[i] ^= 0x20
		return b
	}
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "shorter than the header"},
		{"garbage", []byte("this is not a state file at all"), "bad magic"},
		{"truncated", good[:len(good)-10], "truncated"},
		{"flipped byte in the middle", flip(stateHeaderLen + (len(good)-stateHeaderLen)/2), "CRC mismatch"},
		{"newer version", func() []byte { b := append([]byte(nil), good...); b[5] = 9; return b }(), "version 9"},
		{"valid CRC, bad JSON", withHeader("{}\n{\"id\": 12\n"), "alert 1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "alerts.state")
			if err := os.WriteFile(path, tc.data, 0o600); err != nil {
				t.Fatal(err)
			}
			h := stateHarness(t, path, newFakeHosts(trafficHost("10.0.0.1")), t0, nil)
			if got := counterValue(h.e.metrics.stateErrors.WithLabelValues("load")); got != 1 {
				t.Errorf("alert_state_errors_total{op=load} = %v, want 1", got)
			}
			if n := len(h.e.Engaged()) + len(h.pub.take()); n != 0 {
				t.Errorf("%d alerts or events from a corrupt file", n)
			}
			if b, err := os.ReadFile(path + ".bad"); err != nil || string(b) != string(tc.data) {
				t.Errorf("corrupt file not set aside as .bad: %v", err)
			}
			_, _, err := readStateFile(path + ".bad")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("read error %v, want %q", err, tc.want)
			}
			// The engine works on, and its stop leaves a valid file.
			h.tick()
			if evs := h.pub.take(); len(evs) != 2 {
				t.Errorf("tick after a corrupt file: %+v", evs)
			}
			h.e.Stop(context.Background())
			if _, recs, err := readStateFile(path); err != nil || len(recs) != 2 {
				t.Errorf("state file after stop: %d alerts, %v", len(recs), err)
			}
		})
	}
}

// TestStateFileUnwritable: a state file whose directory does not exist
// fails the start; one that can no longer be written at stop has its
// alerts released (reason shutdown), counted.
func TestStateFileUnwritable(t *testing.T) {
	h := newHarness(t, map[string]string{"t": bytesScript}, newFakeHosts(trafficHost("10.0.0.1")), func(c *Configuration) {
		c.AlertStateFile = filepath.Join(t.TempDir(), "missing", "alerts.state")
	})
	if err := h.e.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "alert_state_file") {
		t.Errorf("Start with a missing directory: %v", err)
	}

	dir := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	h = stateHarness(t, filepath.Join(dir, "alerts.state"), newFakeHosts(trafficHost("10.0.0.1")), t0, nil)
	h.tick()
	engaged := byHostCheck(h.pub.take())
	waitStateFile(t, filepath.Join(dir, "alerts.state"), 2)
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	h.e.Stop(context.Background())
	evs := h.pub.take()
	if len(evs) != 2 {
		t.Fatalf("stop with an unwritable state file: %+v, want 2 releases", evs)
	}
	for _, ev := range evs {
		if ev.State != alert.Released || ev.Reason != alert.Shutdown || ev.ID != engaged[ev.Host.IP+" "+ev.Check].ID {
			t.Errorf("%+v, want a release (shutdown) of an engaged alert", ev)
		}
	}
	if got := counterValue(h.e.metrics.stateErrors.WithLabelValues("save")); got != 1 {
		t.Errorf("alert_state_errors_total{op=save} = %v, want 1", got)
	}
}

// TestStateFileLimit: the file keeps the oldest alerts that fit in its
// payload limit, and says how many.
func TestStateFileLimit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "alerts.state")
	var recs []savedAlert
	for i := range 100 {
		recs = append(recs, savedAlert{ID: strings.Repeat("a", 16), Check: "c", Host: alert.Host{IP: "10.0.0.1"},
			Value: i, Message: strings.Repeat("m", 100), FirstSeen: t0, LastSeen: t0})
	}
	for _, tc := range []struct {
		limit, want int
	}{{1 << 20, 100}, {2000, 6}, {10, 0}} {
		n, err := writeStateFile(path, stateMeta{Instance: "x", Saved: t0}, recs, tc.limit)
		if err != nil {
			t.Fatal(err)
		}
		_, got, err := readStateFile(path)
		if n != tc.want || len(got) != tc.want || err != nil {
			t.Errorf("limit %d: wrote %d, read %d (%v), want %d", tc.limit, n, len(got), err, tc.want)
		}
		for i, r := range got {
			if r.Value != i {
				t.Errorf("limit %d: record %d has value %d, not the oldest first", tc.limit, i, r.Value)
				break
			}
		}
	}
}

// TestStopReleasesWithoutStateFile: with no state file, stop releases every
// engaged alert, also those of a host no tick has seen since.
func TestStopReleasesWithoutStateFile(t *testing.T) {
	hosts := newFakeHosts(trafficHost("10.0.0.1"), trafficHost("10.0.0.2"))
	h := newHarness(t, map[string]string{"t": bytesScript}, hosts, nil)
	if err := h.e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.tick()
	engaged := byHostCheck(h.pub.take())
	h.e.Stop(context.Background())
	released := byHostCheck(h.pub.take())
	if len(released) != 2 {
		t.Fatalf("released %+v", released)
	}
	for k, ev := range released {
		if ev.Reason != alert.Shutdown || ev.ID != engaged[k].ID || ev.State != alert.Released {
			t.Errorf("%s: %+v", k, ev)
		}
	}
	if got := counterValue(h.e.metrics.released.WithLabelValues("t", "shutdown")); got != 2 {
		t.Errorf("released_total{reason=shutdown} = %v, want 2", got)
	}
}

// BenchmarkWriteStateFile writes a state file of n alerts (what a tick
// that changed them, and a stop, cost), and reports its size per alert.
func BenchmarkWriteStateFile(b *testing.B) {
	for _, n := range []int{1000, 100_000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			recs := make([]savedAlert, n)
			for i := range recs {
				recs[i] = savedAlert{ID: "3f9c2a7d1e4b8c05", Check: "scan_detection",
					Host:  alert.Host{IP: "192.0.2.17", MAC: "02:42:ac:11:00:05", Name: "192.0.2.17", IsLocal: true},
					Value: 80, Message: "horizontal sweep: 2 ports, 180 no-reply + 132 refused peers (no-reply ports 2, refused ports 1)",
					FirstSeen: t0, LastSeen: t0}
			}
			path := filepath.Join(b.TempDir(), "alerts.state")
			for b.Loop() {
				if _, err := writeStateFile(path, stateMeta{Instance: "x", Saved: t0}, recs, maxStatePayload); err != nil {
					b.Fatal(err)
				}
			}
			st, err := os.Stat(path)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(st.Size())/float64(n), "B/alert")
		})
	}
}
