package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flowcheck/flowcheck/alert"
	"github.com/segmentio/kafka-go"
)

// The cluster of the process tests: one flows topic of clusterPartitions
// partitions shared by the check workers of clusterGroup.
const (
	flowsTopic        = "flowcheck.flows"
	clusterPartitions = 6
	clusterGroup      = "flowcheck-check"
)

// export is a capture of export packets and the loopback address the test
// sends it from: each export is its own exporter, on every receiver.
type export struct{ pcap, from string }

// clusterExports are the shared exports of scan-mix.pcap the cluster test
// feeds: softflowd NetFlow v9 and IPFIX, pmacctd IPFIX; filteredExports
// those of filtered-scan.pcap, other hosts.
var (
	clusterExports = []export{
		{"softflowd-v9.pcap", "127.0.0.11"},
		{"softflowd-ipfix.pcap", "127.0.0.12"},
		{"pmacctd-ipfix.pcap", "127.0.0.13"},
	}
	filteredExports = []export{
		{"softflowd-filtered-v9.pcap", "127.0.0.21"},
		{"softflowd-filtered-ipfix.pcap", "127.0.0.22"},
		{"pmacctd-filtered-ipfix.pcap", "127.0.0.23"},
	}
)

// startBroker starts internal/cmd/kfakebroker with args and returns its
// address; the test's cleanup stops it with SIGTERM.
func startBroker(t *testing.T, args ...string) string {
	t.Helper()
	addr, _ := startBrokerStop(t, args...)
	return addr
}

// startBrokerStop is startBroker that also returns a function stopping the
// broker with SIGTERM (a broker outage) and waiting for it to exit.
func startBrokerStop(t *testing.T, args ...string) (string, func()) {
	t.Helper()
	cmd := exec.Command(built(t, "./internal/cmd/kfakebroker"), args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			lines <- sc.Text()
		}
		for sc.Scan() { // keep the pipe drained
		}
		_ = cmd.Wait()
		close(done)
	}()
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	t.Cleanup(stop)
	select {
	case line := <-lines:
		addr, ok := strings.CutPrefix(line, "listening ")
		if !ok {
			t.Fatalf("kfakebroker said %q, want listening ADDR", line)
		}
		return addr, stop
	case <-done:
		t.Fatalf("kfakebroker exited: %s", stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("kfakebroker did not print its address\n%s", stderr.String())
	}
	return "", nil
}

// clusterConfig is the configuration every process of the cluster test
// shares; the role, the instance name, the alert topic and the spool
// directory come from the environment (roleEnv), as a systemd template unit
// gives them. The checks tick every 2 s (a scan alert stays engaged for
// about three ticks after the scan, time to kill its worker), a reply
// window of 2 s decides conversations quickly, and hosts live longer than
// the test.
func clusterConfig(broker string) string {
	return fmt.Sprintf(`instance: e2e
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
    local: 120s
    remote: 120s
scripting:
  interval: 2s
sinks:
  stdout:
    enabled: false
  kafka:
    brokers: [%[1]s]
    topic: flowcheck.alerts
cluster:
  brokers: [%[1]s]
  flows_topic: %[2]s
  group: %[3]s
  partitions: %[4]d
`, broker, flowsTopic, clusterGroup, clusterPartitions)
}

// roleEnv is the environment of one process of the cluster test: its role
// and instance name, its alert topic and a spool directory of its own.
func roleEnv(t *testing.T, role, instance, alerts string, extra ...string) []string {
	return append([]string{
		"FLOWCHECK_CLUSTER_ROLE=" + role,
		"FLOWCHECK_INSTANCE=" + instance,
		"FLOWCHECK_SINKS_KAFKA_TOPIC=" + alerts,
		"FLOWCHECK_SINKS_KAFKA_SPOOL_DIR=" + filepath.Join(t.TempDir(), "spool"),
	}, extra...)
}

// topicAlerts reads an alert topic from the beginning to its end with kcat,
// as a consumer outside the cluster does (nothing while the topic does not
// exist yet).
func topicAlerts(t *testing.T, kcat, broker, topic string) []alert.Event {
	t.Helper()
	out, _, err := run(t, ".", time.Minute, kcat,
		"-C", "-b", broker, "-t", topic, "-o", "beginning", "-e", "-q", "-f", "%s\n")
	if err != nil {
		return nil
	}
	// The topic's partitions come in no particular order: by time.
	evs := parseAlerts(t, out)
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].Time.Before(evs[j].Time) })
	return evs
}

// newer are the events of evs not in seen (by eventKey).
func newer(evs []alert.Event, seen map[string]bool) []alert.Event {
	var out []alert.Event
	for _, ev := range evs {
		if !seen[eventKey(ev)] {
			out = append(out, ev)
		}
	}
	return out
}

// keys are the eventKeys of evs.
func keys(evs []alert.Event) map[string]bool {
	out := map[string]bool{}
	for _, ev := range evs {
		out[eventKey(ev)] = true
	}
	return out
}

// waitTopic reads an alert topic until ok accepts its events and no new
// event has come for quiet, within three minutes (a failover under -race on
// a busy machine has taken more than 90 s).
func waitTopic(t *testing.T, kcat, broker, topic, what string, quiet time.Duration, ok func([]alert.Event) bool) []alert.Event {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	var last []alert.Event
	since := time.Now()
	for {
		evs := topicAlerts(t, kcat, broker, topic)
		if len(evs) != len(last) {
			since = time.Now()
		}
		last = evs
		if ok(evs) && time.Since(since) >= quiet {
			return evs
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 3 minutes; %s:\n%s", what, topic, describe(evs))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// triples are the distinct (host, check, state) of the events, sorted.
func triples(evs []alert.Event) []string {
	set := map[string]bool{}
	for _, ev := range evs {
		set[ev.Host.Key()+" "+ev.Check+" "+string(ev.State)] = true
	}
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// openAlerts are the ids engaged and never released, deduplicated by id.
func openAlerts(evs []alert.Event) map[string]alert.Event {
	open := map[string]alert.Event{}
	released := map[string]bool{}
	for _, ev := range evs {
		switch ev.State {
		case alert.Engaged:
			if _, ok := open[ev.ID]; !ok {
				open[ev.ID] = ev
			}
		case alert.Released:
			released[ev.ID] = true
		}
	}
	for id := range released {
		delete(open, id)
	}
	return open
}

// settled reports whether both scanners were alerted and every engaged
// alert was released.
func settled(evs []alert.Event) bool {
	return scansEngaged(evs) && len(openAlerts(evs)) == 0
}

// engagedTwice returns, after deduplication by id, the hosts engaged twice
// at once for one check: an alert engaged under a new id while another id
// of the same host and check was still open. That is what a failover that
// failed to adopt the dead worker's alerts would produce. A host engaged
// again after its alert was released is not counted: the capture replayed
// into the cluster grows a scan victim's conversation counters, and whether
// that continues its alert or engages a new one depends on whether its
// release came first, in any role.
func engagedTwice(evs []alert.Event) []string {
	sorted := slices.Clone(evs)
	slices.SortStableFunc(sorted, func(a, b alert.Event) int { return a.Time.Compare(b.Time) })
	open := map[string]map[string]alert.Event{} // host and check → open ids
	var out []string
	for _, ev := range sorted {
		pair := ev.Host.Key() + " " + ev.Check
		ids := open[pair]
		if ids == nil {
			ids = map[string]alert.Event{}
			open[pair] = ids
		}
		switch ev.State {
		case alert.Released:
			delete(ids, ev.ID)
		case alert.Engaged:
			if _, ok := ids[ev.ID]; ok {
				continue
			}
			for id, other := range ids {
				out = append(out, fmt.Sprintf("%s: %s by %s at %s while %s by %s (engaged at %s) was open",
					pair, ev.ID, ev.Collector, ev.Time.Format("15:04:05.000"),
					id, other.Collector, other.Time.Format("15:04:05.000")))
			}
			ids[ev.ID] = ev
		}
	}
	sort.Strings(out)
	return out
}

// TestEngagedTwice checks the failover's criterion on hand-made events.
func TestEngagedTwice(t *testing.T) {
	at := func(s int) time.Time { return time.Date(2026, 1, 1, 0, 0, s, 0, time.UTC) }
	ev := func(id string, state alert.State, s int) alert.Event {
		return alert.Event{ID: id, State: state, Check: "scan_victim", Host: alert.Host{IP: "10.0.0.1"}, Collector: "check-1", Time: at(s)}
	}
	for _, c := range []struct {
		name string
		evs  []alert.Event
		want int
	}{
		{"one alert continued by the new owner", []alert.Event{ev("a", alert.Engaged, 1), ev("a", alert.Engaged, 3), ev("a", alert.Released, 5)}, 0},
		{"engaged again after its release", []alert.Event{ev("a", alert.Engaged, 1), ev("a", alert.Released, 2), ev("b", alert.Engaged, 3)}, 0},
		{"a second id while the first is open", []alert.Event{ev("a", alert.Engaged, 1), ev("b", alert.Engaged, 3), ev("a", alert.Released, 5)}, 1},
		{"out of topic order", []alert.Event{ev("b", alert.Engaged, 3), ev("a", alert.Engaged, 1)}, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := engagedTwice(c.evs); len(got) != c.want {
				t.Errorf("got %d (%q), want %d", len(got), got, c.want)
			}
		})
	}
}

// groupAssignment waits until the consumer group of the check workers is
// stable with members members whose assignments cover every partition of
// the flows topic once, and returns the partitions of each member.
func groupAssignment(t *testing.T, broker string, members int) map[string][]int {
	t.Helper()
	return waitGroup(t, broker, clusterGroup, flowsTopic, clusterPartitions, members)
}

// waitGroup waits until a consumer group is stable with members members
// whose assignments cover each of the partitions of topic once, and returns
// the partitions of each member (by member id).
func waitGroup(t *testing.T, broker, group, topic string, partitions, members int) map[string][]int {
	t.Helper()
	client := &kafka.Client{Addr: kafka.TCP(broker), Timeout: 10 * time.Second}
	deadline := time.Now().Add(90 * time.Second)
	var last string
	for {
		resp, err := client.DescribeGroups(context.Background(), &kafka.DescribeGroupsRequest{GroupIDs: []string{group}})
		if err == nil && len(resp.Groups) == 1 && resp.Groups[0].Error == nil {
			g := resp.Groups[0]
			owned := map[string][]int{}
			var all []int
			for _, m := range g.Members {
				for _, tp := range m.MemberAssignments.Topics {
					if tp.Topic == topic {
						owned[m.MemberID] = append(owned[m.MemberID], tp.Partitions...)
						all = append(all, tp.Partitions...)
					}
				}
			}
			slices.Sort(all)
			want := make([]int, partitions)
			for i := range want {
				want[i] = i
			}
			if g.GroupState == "Stable" && len(g.Members) == members && slices.Equal(all, want) {
				return owned
			}
			last = fmt.Sprintf("state %s, %d members, partitions %v", g.GroupState, len(g.Members), owned)
		} else {
			last = fmt.Sprintf("%v %+v", err, resp)
		}
		if time.Now().After(deadline) {
			t.Fatalf("consumer group %s not stable with %d members owning every partition within 90 s: %s", group, members, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitReady waits until the daemon's /readyz answers 200.
func waitReady(t *testing.T, d *daemon, name string) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for d.getJSON(t, "/readyz", nil) != 200 {
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready within 90 s", name)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// owner returns the index of the check worker whose /api/v1/hosts knows ip.
func owner(t *testing.T, checks []*daemon, ip string) int {
	t.Helper()
	found := -1
	for i, d := range checks {
		if d.getJSON(t, "/api/v1/hosts/"+ip, nil) == 200 {
			if found >= 0 {
				t.Fatalf("host %s answered by check-%d and check-%d", ip, found+1, i+1)
			}
			found = i
		}
	}
	if found < 0 {
		t.Fatalf("no check worker answers for host %s", ip)
	}
	return found
}

// replayIngest feeds a capture to the running cluster with `collector
// replay` in role ingest, which publishes the capture's records and exits
// once the broker acknowledged them all.
func replayIngest(t *testing.T, config, pcap string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "replay.yaml")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary(t), "replay", "--config", path, "--pcap", pcap, "--port", "2055")
	cmd.Env = append(withoutFlowcheckEnv(), roleEnv(t, "ingest", "ingest-replay", "flowcheck.alerts")...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("replay in role ingest: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "replay published") {
		t.Errorf("replay in role ingest did not say what it published:\n%s", stderr.String())
	}
}

// TestCluster runs the cluster as operators would on one machine: a Kafka
// broker (kfake, its own process), two ingest and three check processes of
// the built binary, the alerts read by kcat from the alert topic. The shared
// exports of scan-mix.pcap (softflowd NetFlow v9 and IPFIX, pmacctd IPFIX)
// go to the ingest processes and to one process of role all; once both have
// settled (every alert released), the cluster's alerts (host, check, state)
// equal those of all. Then the exports of filtered-scan.pcap (other
// scanners) go to the cluster, the check worker owning a scanner is killed
// with SIGKILL while its alert is engaged, and a capture is replayed into
// the cluster (collector replay in role ingest): the dead worker's
// partitions move to the two others, the scanners are still alerted, every
// alert ends released, and after deduplication by id no host is engaged
// twice at once for one check.
func TestCluster(t *testing.T) {
	kcat := tool(t, "kcat")
	// The flows topic exists before any process asks for it (an automatic
	// creation would give it the broker's default partition count).
	broker := startBroker(t, "-partitions", "4", "-topic", fmt.Sprintf("%s:%d", flowsTopic, clusterPartitions))
	config := clusterConfig(broker)
	const (
		clusterAlerts = "flowcheck.alerts.cluster"
		allAlerts     = "flowcheck.alerts.all"
	)

	all := startProcess(t, config, roleEnv(t, "all", "all", allAlerts), true)
	var checks, ingests []*daemon
	for i := 1; i <= 3; i++ {
		checks = append(checks, startProcess(t, config, roleEnv(t, "check", fmt.Sprintf("check-%d", i), clusterAlerts), false))
	}
	for i := 1; i <= 2; i++ {
		ingests = append(ingests, startProcess(t, config, roleEnv(t, "ingest", fmt.Sprintf("ingest-%d", i), clusterAlerts), true))
	}
	groupAssignment(t, broker, 3)
	for i, d := range checks {
		waitReady(t, d, fmt.Sprintf("check-%d", i+1))
	}

	// The same exports, from the same addresses, to all and to the cluster
	// (the ingest processes in turn).
	for i, e := range clusterExports {
		send(t, e.from, all.udp, "../testdata/"+e.pcap)
		send(t, e.from, ingests[i%len(ingests)].udp, "../testdata/"+e.pcap)
	}
	want := waitTopic(t, kcat, broker, allAlerts, "role all settled", 3*time.Second, settled)
	if code := all.stop(t); code != 0 {
		t.Errorf("all: exit status %d", code)
	}
	got := waitTopic(t, kcat, broker, clusterAlerts, "cluster settled", 3*time.Second, settled)
	if w, g := triples(want), triples(got); !slices.Equal(w, g) {
		t.Fatalf("the cluster's alerts differ from role all's on the same exports\nall:\n%s\ncluster:\n%s\nall's events:\n%s\ncluster's events:\n%s",
			strings.Join(w, "\n"), strings.Join(g, "\n"), describe(want), describe(got))
	}
	t.Logf("cluster = all: %d (host, check, state) from %d and %d events", len(triples(got)), len(got), len(want))

	// Failover. The same scans again would not alert (the scanners' contact
	// sets would not grow): new scanners, those of filtered-scan, engage.
	first := keys(got)
	for i, e := range filteredExports {
		send(t, e.from, ingests[i%len(ingests)].udp, "../testdata/"+e.pcap)
	}
	waitTopic(t, kcat, broker, clusterAlerts, "the filtered scans engaged", 0, func(evs []alert.Event) bool {
		e := engagedBy(newer(evs, first))
		return e[filteredScanners[0]]["scan_detection"] && e[filteredScanners[1]]["scan_detection"]
	})
	victim := owner(t, checks, filteredScanners[0])
	if err := checks[victim].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-checks[victim].done
	dead := fmt.Sprintf("check-%d", victim+1)
	atKill := topicAlerts(t, kcat, broker, clusterAlerts)
	seen := keys(atKill)
	engagedAtKill := false
	for _, ev := range openAlerts(atKill) {
		engagedAtKill = engagedAtKill || (ev.Host.IP == filteredScanners[0] && ev.Check == "scan_detection" && ev.Collector == dead)
	}
	t.Logf("killed %s, owner of %s; its scan alert engaged at the kill: %v", dead, filteredScanners[0], engagedAtKill)

	// Yesterday's capture fed to the running cluster while the dead
	// worker's partitions move.
	replayIngest(t, config, "../testdata/"+filteredExports[0].pcap)
	groupAssignment(t, broker, 2)
	final := waitTopic(t, kcat, broker, clusterAlerts, "every alert released after the failover", 3*time.Second, func(evs []alert.Event) bool {
		// Each scanner has news from a live worker: its alert continued
		// (same id) or engaged anew.
		for _, ip := range filteredScanners {
			news := false
			for _, ev := range newer(evs, seen) {
				if ev.Host.IP == ip && ev.Check == "scan_detection" && ev.Collector != dead {
					news = true
				}
			}
			if !news {
				return false
			}
		}
		return len(openAlerts(evs)) == 0
	})
	t.Logf("after the kill:\n%s", describe(newer(final, first)))
	if twice := engagedTwice(final); len(twice) > 0 {
		t.Errorf("after deduplication by id, hosts engaged twice at once for one check:\n%s\nevents:\n%s",
			strings.Join(twice, "\n"), describe(final))
	}
	for i, d := range checks {
		if i != victim {
			if code := d.stop(t); code != 0 {
				t.Errorf("check-%d: exit status %d", i+1, code)
			}
		}
	}
	for i, d := range ingests {
		if code := d.stop(t); code != 0 {
			t.Errorf("ingest-%d: exit status %d", i+1, code)
		}
	}
}

// eventKey tells one event from another of the same alert.
func eventKey(ev alert.Event) string {
	return ev.ID + " " + string(ev.State) + " " + ev.Collector + " " + ev.Time.Format(time.RFC3339Nano)
}

// metricSum sums the samples of a metric (every label set) on the daemon's
// /metrics.
func metricSum(t *testing.T, d *daemon, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + d.http + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok || (rest != "" && rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		fields := strings.Fields(line)
		if v, err := strconv.ParseFloat(fields[len(fields)-1], 64); err == nil {
			sum += v
		}
	}
	return sum
}

// waitUntil polls cond every 200 ms for up to two minutes.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 2 minutes", what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// freeTCPPort returns a TCP port of 127.0.0.1 free a moment ago.
func freeTCPPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestClusterBrokerOutage stops the broker under a running ingest process
// and check worker, and later starts a new one on the same port (kfake
// keeps nothing: its topics and groups start empty, as a single-broker
// cluster that lost its disk). During the outage the ingest process keeps
// receiving, counts its failed writes and holds or drops (and counts) what
// it cannot publish, without exiting; when the broker is back, the check
// worker joins the group again and raises the scan alerts of the exports
// sent afterwards, and no record handed to the publisher went uncounted.
func TestClusterBrokerOutage(t *testing.T) {
	kcat := tool(t, "kcat")
	const alerts = "flowcheck.alerts.outage"
	args := []string{"-port", strconv.Itoa(freeTCPPort(t)), "-partitions", "4",
		"-topic", fmt.Sprintf("%s:%d", flowsTopic, clusterPartitions)}
	broker, stop := startBrokerStop(t, args...)
	config := clusterConfig(broker)
	check := startProcess(t, config, roleEnv(t, "check", "check-1", alerts), false)
	ingest := startProcess(t, config, roleEnv(t, "ingest", "ingest-1", alerts), true)
	groupAssignment(t, broker, 1)
	waitReady(t, check, "check-1")

	stop()
	send(t, clusterExports[0].from, ingest.udp, "../testdata/"+clusterExports[0].pcap)
	waitUntil(t, "the ingest process counting failed writes to the stopped broker", func() bool {
		return metricSum(t, ingest, "flowcheck_cluster_publish_errors_total") > 0
	})
	if ingest.getJSON(t, "/healthz", nil) != 200 {
		t.Errorf("ingest not healthy during the outage")
	}

	broker2, _ := startBrokerStop(t, args...)
	if broker2 != broker {
		t.Fatalf("the broker came back on %s, not %s", broker2, broker)
	}
	groupAssignment(t, broker, 1)
	waitReady(t, check, "check-1")
	for _, e := range filteredExports {
		send(t, e.from, ingest.udp, "../testdata/"+e.pcap)
	}
	waitTopic(t, kcat, broker, alerts, "the filtered scans alerted after the outage", 0, func(evs []alert.Event) bool {
		e := engagedBy(evs)
		return e[filteredScanners[0]]["scan_detection"] && e[filteredScanners[1]]["scan_detection"]
	})
	input := metricSum(t, ingest, "flowcheck_cluster_publish_input_records_total")
	acked := metricSum(t, ingest, "flowcheck_cluster_publish_records_total")
	dropped := metricSum(t, ingest, "flowcheck_cluster_publish_dropped_records_total")
	t.Logf("ingest: %.0f records in, %.0f copies acknowledged, %.0f dropped, %.0f failed writes, %.0f retries",
		input, acked, dropped, metricSum(t, ingest, "flowcheck_cluster_publish_errors_total"),
		metricSum(t, ingest, "flowcheck_cluster_publish_retries_total"))
	if acked+dropped < input {
		t.Errorf("%.0f records handed to the publisher, but only %.0f copies acknowledged or counted dropped", input, acked+dropped)
	}
	for name, d := range map[string]*daemon{"ingest": ingest, "check": check} {
		if code := d.stop(t); code != 0 {
			t.Errorf("%s: exit status %d", name, code)
		}
	}
}
