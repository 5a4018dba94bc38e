package e2e

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowcheck/flowcheck/alert"
)

// goflow2Version is the goflow2 CLI the interop test drives (.ci/run
// installs it), the version of the goflow2 module the collector uses.
const goflow2Version = "v2.2.6"

// goTool finds a program installed with go install: on PATH or in
// $(go env GOPATH)/bin. Missing, it skips the test outside CI and fails it
// under CI.
func goTool(t *testing.T, name, module string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		for _, dir := range filepath.SplitList(strings.TrimSpace(string(out))) {
			p := filepath.Join(dir, "bin", name)
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is required under CI: go install %s", name, module)
	}
	t.Skipf("%s not installed (go install %s); skipping outside CI", name, module)
	return ""
}

// freeUDPPort returns a UDP port of 127.0.0.1 free a moment ago, for a
// program that cannot bind port 0 and say which it got.
func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// startGoflow2 runs goflow2 with its Kafka transport and protobuf output
// (-format bin: one length-delimited FlowMessage per Kafka message) to
// topic, listening for NetFlow on a loopback port it returns.
func startGoflow2(t *testing.T, bin, broker, topic string) string {
	t.Helper()
	addr := "127.0.0.1:" + strconv.Itoa(freeUDPPort(t))
	var out syncBuffer
	cmd := exec.Command(bin,
		"-listen", "netflow://"+addr,
		"-transport", "kafka",
		"-transport.kafka.brokers", broker,
		"-transport.kafka.topic", topic,
		"-transport.kafka.flushfreq", "100ms",
		"-format", "bin",
		"-addr", "", // no metrics server (it takes :8080 by default)
	)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("goflow2 output:\n%s", out.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), "starting collection") {
		select {
		case err := <-done:
			t.Fatalf("goflow2 exited: %v\n%s", err, out.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("goflow2 did not start collecting within 30 s:\n%s", out.String())
		}
	}
	return addr
}

// scanTriples are the (host, check, state) of the scan checks.
func scanTriples(evs []alert.Event) []string {
	var out []string
	for _, tr := range triples(evs) {
		if strings.Contains(tr, " scan_") {
			out = append(out, tr)
		}
	}
	return out
}

// TestGoflow2Interop has goflow2's CLI publish softflowd's NetFlow v9 export
// of scan-mix.pcap to Kafka (kfake, its own process) as operators already
// run it, and a check worker with input_format goflow2 consume its topic:
// its scan alerts (host, check, state), read with kcat, are those of a
// process of role all fed the same export.
func TestGoflow2Interop(t *testing.T) {
	kcat := tool(t, "kcat")
	goflow2 := goTool(t, "goflow2", "github.com/netsampler/goflow2/v2/cmd/goflow2@"+goflow2Version)
	const (
		topic      = "goflow2.flows"
		partitions = 4
		group      = "flowcheck-goflow2"
		alerts     = "flowcheck.alerts.goflow2"
		allAlerts  = "flowcheck.alerts.all"
	)
	broker := startBroker(t, "-topic", topic+":"+strconv.Itoa(partitions))
	config := clusterConfig(broker)

	all := startProcess(t, config, roleEnv(t, "all", "all", allAlerts), true)
	check := startProcess(t, config, roleEnv(t, "check", "check-goflow2", alerts,
		"FLOWCHECK_CLUSTER_INPUT_FORMAT=goflow2",
		"FLOWCHECK_CLUSTER_FLOWS_TOPIC="+topic,
		"FLOWCHECK_CLUSTER_PARTITIONS="+strconv.Itoa(partitions),
		"FLOWCHECK_CLUSTER_GROUP="+group,
	), false)
	waitGroup(t, broker, group, topic, partitions, 1)
	waitReady(t, check, "check-goflow2")
	gf := startGoflow2(t, goflow2, broker, topic)

	send(t, "127.0.0.11", all.udp, "../testdata/softflowd-v9.pcap")
	send(t, "127.0.0.11", gf, "../testdata/softflowd-v9.pcap")
	want := waitTopic(t, kcat, broker, allAlerts, "role all settled", 3*time.Second, settled)
	got := waitTopic(t, kcat, broker, alerts, "the goflow2 check worker settled", 3*time.Second, settled)
	if w, g := scanTriples(want), scanTriples(got); !slices.Equal(w, g) {
		t.Fatalf("scan alerts from goflow2's topic differ from role all's on the same export\nall:\n%s\ngoflow2:\n%s\nall's events:\n%s\ngoflow2's:\n%s",
			strings.Join(w, "\n"), strings.Join(g, "\n"), describe(want), describe(got))
	}
	if w, g := triples(want), triples(got); !slices.Equal(w, g) {
		t.Logf("other alerts differ (not scans): all %v, goflow2 %v", w, g)
	}
	for name, d := range map[string]*daemon{"all": all, "check": check} {
		if code := d.stop(t); code != 0 {
			t.Errorf("%s: exit status %d", name, code)
		}
	}
}
