package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flowcheck/flowcheck/alert"
	"github.com/flowcheck/flowcheck/pcapsrc"
	"github.com/twmb/franz-go/pkg/kfake"
)

const topic = "flowcheck.alerts"

// liveConfig is the daemon's configuration in the live tests: loopback
// listeners on port 0, a short tick and reply window so the test waits
// seconds, JSON logs so the test can read the bound addresses.
func liveConfig(kafka string) string {
	sinks := "sinks:\n  stdout:\n    enabled: true\n"
	if kafka != "" {
		sinks = fmt.Sprintf(`sinks:
  stdout:
    enabled: false
  kafka:
    brokers: [%s]
    topic: %s
    spool:
      dir: %s
`, kafka, topic, "SPOOL")
	}
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
scripting:
  interval: 1s
` + sinks
}

// alertSchemaKeys are the documented top-level and host keys of an alert.
var (
	alertSchemaKeys = []string{"check", "collector", "first_seen", "host", "id", "last_seen", "message", "schema", "score", "severity", "state", "time", "value"}
	hostSchemaKeys  = []string{"ip", "is_local", "mac", "name", "vlan"}
)

func keysOf(m map[string]any) []string {
	var k []string
	for key := range m {
		k = append(k, key)
	}
	sort.Strings(k)
	return k
}

// TestLiveSoftflowdToKafka runs the daemon with a UDP listener and a Kafka
// sink pointed at an in-process kfake cluster, has softflowd export
// scan-mix.pcap to it (NetFlow v5, v9 and IPFIX), and checks that the scan
// alerts of both scanners arrive on the topic as documented (read back with
// kcat), that the HTTP API reports the scanners' no-reply and refused counts
// and the HTTP client's bytes, and that SIGTERM stops it with status 0.
func TestLiveSoftflowdToKafka(t *testing.T) {
	softflowd := tool(t, "softflowd")
	kcat := tool(t, "kcat")
	for _, version := range []string{"10", "9", "5"} {
		t.Run("v"+version, func(t *testing.T) {
			cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(1))
			if err != nil {
				t.Fatal(err)
			}
			defer cluster.Close()
			broker := cluster.ListenAddrs()[0]
			config := strings.Replace(liveConfig(broker), "SPOOL", filepath.Join(t.TempDir(), "spool"), 1)
			d := startDaemon(t, config)

			// The exporter, started after the listener (it uses a connected
			// socket), reading the capture by a relative path.
			dir := t.TempDir()
			copyFile(t, "../testdata/scan-mix.pcap", dir)
			if _, stderr, err := run(t, dir, time.Minute, softflowd,
				"-d", "-r", "scan-mix.pcap", "-n", d.udp, "-c", "none", "-a", "-v", version); err != nil {
				t.Fatalf("softflowd: %v\n%s", err, stderr)
			}

			// Read the topic with kcat until both scanners' alerts are there.
			var raw map[string]map[string]any // scanner ip → alert JSON
			deadline := time.Now().Add(60 * time.Second)
			for {
				out, stderr, err := run(t, ".", 30*time.Second, kcat,
					"-C", "-b", broker, "-t", topic, "-o", "beginning", "-e", "-q", "-f", "%k\t%s\n")
				raw = map[string]map[string]any{}
				if err == nil {
					for _, line := range strings.Split(out, "\n") {
						key, value, ok := strings.Cut(line, "\t")
						if !ok {
							continue
						}
						var ev map[string]any
						if err := json.Unmarshal([]byte(value), &ev); err != nil {
							t.Fatalf("kcat: not JSON: %q", value)
						}
						if ev["check"] == "scan_detection" && ev["state"] == "engaged" {
							host, _ := ev["host"].(map[string]any)
							if host["ip"] != key {
								t.Errorf("message key %q, want the host %q", key, host["ip"])
							}
							raw[key] = ev
						}
					}
				}
				if len(raw) == len(scanMixScanners) || time.Now().After(deadline) {
					if len(raw) != len(scanMixScanners) {
						t.Fatalf("scan alerts on the topic: %v, want %v (kcat err %v %s)", keysOf(anyMap(raw)), scanMixScanners, err, stderr)
					}
					break
				}
				time.Sleep(500 * time.Millisecond)
			}
			for _, ip := range scanMixScanners {
				ev := raw[ip]
				if ev == nil {
					t.Fatalf("no scan alert for %s", ip)
				}
				if got := keysOf(ev); !reflect.DeepEqual(got, alertSchemaKeys) {
					t.Errorf("alert keys %v, want %v", got, alertSchemaKeys)
				}
				host, _ := ev["host"].(map[string]any)
				if got := keysOf(host); !reflect.DeepEqual(got, hostSchemaKeys) {
					t.Errorf("alert host keys %v, want %v", got, hostSchemaKeys)
				}
				if ev["schema"] != 1.0 || ev["collector"] != "e2e" || ev["severity"] != "critical" || host["is_local"] != true {
					t.Errorf("alert for %s: %v", ip, ev)
				}
			}

			// The HTTP API: the scanners' unanswered contacts (scan-mix-truth.md)
			// and the HTTP client's bytes.
			type contacts struct {
				PeersAsClient uint64 `json:"peers_as_client"`
				ServerPorts   uint64 `json:"server_ports"`
			}
			type hostDetail struct {
				BytesSent uint64   `json:"bytes_sent"`
				BytesRcvd uint64   `json:"bytes_rcvd"`
				NoReply   contacts `json:"noreply"`
				Refused   contacts `json:"refused"`
			}
			// No-reply conversations are decided when the reply window has
			// passed in live time, so poll until the figures settle.
			wantA := hostDetail{BytesSent: 61854, BytesRcvd: 1898834, NoReply: contacts{1, 3}, Refused: contacts{21, 1001}}
			wantC := hostDetail{BytesSent: 88034, BytesRcvd: 254332, Refused: contacts{1, 999}}
			var a, c hostDetail
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
				if code := d.getJSON(t, "/api/v1/hosts/10.99.0.10", &a); code != 200 {
					t.Fatalf("GET host A: %d", code)
				}
				if code := d.getJSON(t, "/api/v1/hosts/10.99.0.30", &c); code != 200 {
					t.Fatalf("GET host C: %d", code)
				}
				if (a == wantA && c == wantC) || time.Now().After(deadline) {
					break
				}
			}
			if a != wantA || c != wantC {
				// Lost datagrams are the usual cause: say how many arrived.
				var exporters struct{ Items []map[string]any }
				d.getJSON(t, "/api/v1/exporters", &exporters)
				t.Errorf("host 10.99.0.10 = %+v, want %+v\nhost 10.99.0.30 = %+v, want %+v\n"+
					"exporters: %v (softflowd sends the capture in a few ms: if datagrams were lost, "+
					"the socket buffer was too small: see flowcheck_collector_drops_total{reason=\"socket_buffer\"}, flowcheck_collector_socket_rcvbuf_bytes and net.core.rmem_max)",
					a, wantA, c, wantC, exporters)
			}
			// The scan alerts may already be released (their window is two
			// one-second ticks), so only the shape of the answer is checked.
			var engaged struct{ Items []map[string]any }
			if code := d.getJSON(t, "/api/v1/alerts", &engaged); code != 200 {
				t.Errorf("GET /api/v1/alerts: %d", code)
			}
			var exporters struct{ Items []map[string]any }
			if code := d.getJSON(t, "/api/v1/exporters", &exporters); code != 200 || len(exporters.Items) != 1 {
				t.Errorf("GET /api/v1/exporters: %d, %v", code, exporters)
			}
			if code := d.getJSON(t, "/readyz", nil); code != 200 {
				t.Errorf("GET /readyz: %d", code)
			}
			resp, err := http.Get("http://" + d.http + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			metrics, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			for _, family := range []string{"flowcheck_collector_", "flowcheck_aggregate_", "flowcheck_scripting_", "flowcheck_sink_", "flowcheck_scripting_ticks_total", "go_goroutines", "process_cpu_seconds_total",
				`flowcheck_collector_drops_total{reason="socket_buffer"} 0`, "flowcheck_aggregate_conversations_withheld_total 0"} {
				if !strings.Contains(string(metrics), "\n"+family) {
					t.Errorf("/metrics has no %s*", family)
				}
			}

			// The same capture's export packets through `collector replay`
			// (same thresholds, stdout sink) engage the same alerts.
			out, _, err := run(t, ".", 30*time.Second, kcat,
				"-C", "-b", broker, "-t", topic, "-o", "beginning", "-e", "-q")
			if err != nil {
				t.Fatalf("kcat: %v", err)
			}
			live := engagedPairs(parseAlerts(t, out))
			t.Logf("alerts engaged live: %v", live)
			replayConfig := filepath.Join(t.TempDir(), "replay.yaml")
			if err := os.WriteFile(replayConfig, []byte(liveConfig("")), 0o600); err != nil {
				t.Fatal(err)
			}
			replayOut, replayErr, err := run(t, ".", time.Minute, binary(t),
				"replay", "--config", replayConfig, "--pcap", "../testdata/"+exportOf[version], "--port", "2055")
			if err != nil {
				t.Fatalf("replay: %v\n%s", err, replayErr)
			}
			if replayed := engagedPairs(parseAlerts(t, replayOut)); !reflect.DeepEqual(live, replayed) {
				t.Errorf("live alerts %v, replay of %s %v", live, exportOf[version], replayed)
			}

			if code := d.stop(t); code != 0 {
				t.Fatalf("exit status %d after SIGTERM, want 0", code)
			}
		})
	}
}

// exportOf names the captured export of scan-mix.pcap by softflowd version.
var exportOf = map[string]string{"10": "softflowd-ipfix.pcap", "9": "softflowd-v9.pcap", "5": "softflowd-v5.pcap"}

// engagedPairs lists the distinct "check host" pairs engaged, sorted.
func engagedPairs(events []alert.Event) []string {
	seen := map[string]bool{}
	for _, ev := range events {
		if ev.State == alert.Engaged {
			seen[ev.Check+" "+ev.Host.Key()] = true
		}
	}
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func anyMap(m map[string]map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	return out
}

// TestSIGTERMFlushesAndExits feeds the daemon the export packets of a
// capture over UDP (no outside program needed), waits for the scan alerts on
// stdout, and checks that SIGTERM stops it with status 0 after logging its
// orderly stop.
func TestSIGTERMFlushesAndExits(t *testing.T) {
	d := startDaemon(t, liveConfig(""))
	r, err := pcapsrc.Open("../testdata/softflowd-ipfix.pcap")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	conn, err := net.Dial("udp", d.udp)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for {
		dg, err := r.Next()
		if err != nil {
			break
		}
		if _, err := conn.Write(dg.Payload); err != nil {
			t.Fatal(err)
		}
		// Pace lightly so the test does not depend on the socket buffer.
		time.Sleep(200 * time.Microsecond)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		engaged := engagedBy(parseAlerts(t, d.stdout.String()))
		if engaged["10.99.0.10"]["scan_detection"] && engaged["10.99.0.30"]["scan_detection"] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no scan alerts on stdout: %v", summary(engaged))
		}
		time.Sleep(200 * time.Millisecond)
	}
	if code := d.stop(t); code != 0 {
		t.Fatalf("exit status %d after SIGTERM, want 0", code)
	}
	var stopping, stopped bool
	for _, l := range logLines(d.stderr.String()) {
		stopping = stopping || (l["msg"] == "stopping" && l["signal"] == "terminated")
		stopped = stopped || l["msg"] == "stopped"
	}
	if !stopping || !stopped {
		t.Errorf("no orderly stop in the logs:\n%s", d.stderr.String())
	}
}

// TestSIGHUPReload checks that SIGHUP with a configuration that fails
// validation keeps the running one (and says why), that a valid one is
// applied, and that the daemon keeps serving through both.
func TestSIGHUPReload(t *testing.T) {
	d := startDaemon(t, liveConfig(""))
	path := d.cmd.Args[len(d.cmd.Args)-1]
	hup := func(config, want string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(20 * time.Second)
		for !strings.Contains(d.stderr.String(), want) {
			if time.Now().After(deadline) {
				t.Fatalf("no %q in the logs after SIGHUP", want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	hup(strings.Replace(liveConfig(""), "aggregate:\n", "aggregate:\n  max_hosts: 0\n", 1), "aggregate.max_hosts: must be")
	if !strings.Contains(d.stderr.String(), "reload refused") {
		t.Fatalf("refused reload not logged:\n%s", d.stderr.String())
	}
	valid := strings.Replace(liveConfig(""), "aggregate:\n", "aggregate:\n  names:\n    10.99.0.10: scanner-a\n", 1)
	hup(valid, `"msg":"reloaded"`)
	if code := d.getJSON(t, "/healthz", nil); code != 200 {
		t.Fatalf("healthz after reload: %d", code)
	}
	if code := d.stop(t); code != 0 {
		t.Fatalf("exit status %d", code)
	}
}
