package sink

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// crashChildEnv makes the test binary act as a collector that spools
// alerts until it is killed.
const crashChildEnv = "FLOWCHECK_SINK_CRASH_CHILD"

// TestCrashChild is the child half of TestKafkaKilledMidSpool; it does
// nothing in a normal run.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashChildEnv)
	if dir == "" {
		t.Skip("helper process for TestKafkaKilledMidSpool")
	}
	// No t.TempDir here: the process is killed, nothing would remove it.
	cfg := baseTestConfig(os.Getenv(crashChildEnv + "_ADDR"))
	cfg.Kafka.Spool.Dir = dir
	cfg.Kafka.QueueSize = 1
	cfg.Kafka.Spool.Fsync = "never"
	cfg.Kafka.RetryBackoffMin = time.Hour // the first failed batch stays put
	cfg.Kafka.RetryBackoffMax = time.Hour
	c := start(t, cfg)
	// The first alert fails in memory and goes to the spool's front; the
	// others only once it is there, so that whenever the kill comes the
	// spool holds events 0..n-1.
	c.Publish(event(0))
	k := kafkaOf(c)
	waitFor(t, "first alert spooled", func() bool { return k.spooling.Load() && k.spool.Len() == 1 })
	// Bounded, should the parent die before killing this process.
	deadline := time.Now().Add(time.Minute)
	for i := 1; time.Now().Before(deadline); i++ {
		c.Publish(event(i))
	}
	t.Fatal("not killed within a minute")
}

// TestKafkaKilledMidSpool SIGKILLs a process while it appends to the spool
// as fast as it can (broker down), then starts a sink on the same spool
// with a broker up: the torn tail, if any, is dropped, every complete
// record is delivered, each host's events in order.
func TestKafkaKilledMidSpool(t *testing.T) {
	if os.Getenv(crashChildEnv) != "" {
		t.Skip("in the child")
	}
	addr, port := freeAddr(t)
	dir := filepath.Join(t.TempDir(), "spool")
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir, crashChildEnv+"_ADDR="+addr)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill once a few segments' worth is on disk.
	waitFor(t, "child spooling", func() bool {
		segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
		var total int64
		for _, s := range segs {
			if st, err := os.Stat(s); err == nil {
				total += st.Size()
			}
		}
		return total > 200<<10
	})
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()

	startCluster(t, port)
	cfg := testConfig(t, addr)
	cfg.Kafka.Spool.Dir = dir
	c := start(t, cfg)
	defer stop(t, c)
	k := kafkaOf(c)
	n := k.spool.Len()
	if n < 100 {
		t.Fatalf("only %d alerts recovered", n)
	}
	recs := consume(t, addr, n, "flowcheck.alerts")
	// The first event went through the in-memory queue and failed: it was
	// put at the front of the spool; every later one was appended (the
	// queue stays empty while spooling). So the spool holds events 0..n-1,
	// every one of them.
	var first int
	got := map[int]bool{}
	for _, r := range recs {
		var i int
		if err := parseID(r.Value, &i); err != nil {
			t.Fatal(err)
		}
		got[i] = true
	}
	for got[first] {
		first++
	}
	if first != n || len(got) != n {
		t.Fatalf("recovered %d alerts, received %d distinct, events 0..%d contiguous", n, len(got), first-1)
	}
	checkOrder(t, recs, seq(0, first))
	waitFor(t, "spool drained", func() bool { return k.spool.Len() == 0 })
	t.Logf("recovered %d alerts after SIGKILL; corrupt tail bytes: %v", n,
		value(k.m.spoolCorrupt.WithLabelValues("kafka")))
}

func parseID(v []byte, i *int) error {
	var ev struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(v, &ev); err != nil {
		return err
	}
	n, err := strconv.Atoi(ev.ID[len("ev-"):])
	*i = n
	return err
}
