package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"

	"github.com/flowcheck/flowcheck/aggregate"
	"github.com/flowcheck/flowcheck/alert"
	"github.com/flowcheck/flowcheck/clock"
	"github.com/flowcheck/flowcheck/flow"
	"github.com/flowcheck/flowcheck/scripting"
)

// checkConfig is the configuration of a check worker of group on broker.
func checkConfig(broker, group string, partitions int) Configuration {
	c := ingestConfig(broker, partitions)
	c.Role, c.Group, c.RebuildWindow = RoleCheck, group, time.Hour
	return c
}

// alertLog is a scripting.Publisher that keeps the events.
type alertLog struct {
	mu  sync.Mutex
	evs []alert.Event
}

func (l *alertLog) Publish(ev alert.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.evs = append(l.evs, ev)
}

func (l *alertLog) events() []alert.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.evs)
}

// worker is a check worker in process: host table, check engine and
// consumer, as main builds role check.
type worker struct {
	name     string
	table    *aggregate.HostTable
	clk      *clock.Manual
	engine   *scripting.Engine
	alerts   *alertLog
	consumer *Consumer
	reg      *prometheus.Registry
}

// everyHost triggers an alert on every host that sent a byte.
const everyHost = `return { check = function()
	if host.bytes() > 0 then host.triggerAlert(30, "traffic") end
end }`

// startWorker starts a check worker of cfg's group; the table's clock is
// manual (at start), the engine runs everyHost. The test stops it, or its
// cleanup does.
func startWorker(t *testing.T, name string, cfg Configuration, start time.Time) *worker {
	t.Helper()
	w := &worker{name: name, clk: clock.NewManual(start), alerts: &alertLog{}, reg: prometheus.NewRegistry()}
	logger := slog.New(slog.NewTextHandler(testLog{t, name}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	var err error
	w.table, err = aggregate.New(aggregate.DefaultConfiguration(), aggregate.Dependencies{Registerer: w.reg, Clock: w.clk, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "every_host.lua"), []byte(everyHost), 0o644); err != nil {
		t.Fatal(err)
	}
	scfg := scripting.DefaultConfiguration()
	scfg.Dirs, scfg.Checks, scfg.Workers = []string{dir}, map[string]scripting.CheckConfiguration{}, 1
	scfg.Instance, scfg.AlertScope = name, cfg.Group
	w.engine, err = scripting.New(scfg, scripting.Dependencies{Logger: logger, Registerer: w.reg, Clock: w.clk, Hosts: w.table, Alerts: w.alerts})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.table.ListenExpiry(w.engine); err != nil {
		t.Fatal(err)
	}
	w.consumer, err = NewConsumer(cfg, ConsumerDependencies{Logger: logger, Registerer: w.reg, Table: w.table, Engine: w.engine})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []interface{ Start(context.Context) error }{w.engine, w.table, w.consumer} {
		if err := c.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { w.stop(t) })
	return w
}

// stop stops the worker's consumer (it leaves the group), then the rest.
func (w *worker) stop(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, c := range []interface{ Stop(context.Context) error }{w.consumer, w.table, w.engine} {
		if err := c.Stop(ctx); err != nil {
			t.Errorf("%s: stop: %v", w.name, err)
		}
	}
}

// consumed is the number of record copies the worker applied.
func (w *worker) consumed() int { return int(testutil.ToFloat64(w.consumer.m.records)) }

// caughtUp tells whether the worker is ready and has read each of its
// partitions to its end.
func (w *worker) caughtUp() bool {
	if !w.consumer.Ready() {
		return false
	}
	for _, p := range w.consumer.Owned() {
		g, err := w.consumer.m.lag.GetMetricWithLabelValues(partitionLabel(p))
		if err != nil || testutil.ToFloat64(g) != 0 || testutil.ToFloat64(w.consumer.m.messages) == 0 {
			return false
		}
	}
	return true
}

// tick runs a check tick unless the consumer holds the alerts, as main's
// scheduler does in role check; it reports whether it ran.
func (w *worker) tick() bool {
	if w.consumer.Holding() {
		return false
	}
	w.clk.Advance(time.Second)
	w.engine.Tick(context.Background(), w.clk.Now(), false)
	w.consumer.Checkpoint(context.Background())
	return true
}

// testLog sends a worker's log lines to the test log.
type testLog struct {
	t    *testing.T
	name string
}

func (l testLog) Write(p []byte) (int, error) {
	l.t.Logf("%s: %s", l.name, p)
	return len(p), nil
}

// publishCapture publishes a capture's records with the ingest role's
// publisher and returns them and the number of copies acknowledged.
func publishCapture(t *testing.T, broker string, partitions int, path string) ([]flow.Record, int) {
	t.Helper()
	recs := captureRecords(t, path)
	p, _ := startPublisher(t, ingestConfig(broker, partitions), true)
	for i := 0; i < len(recs); i += 100 {
		p.Handle(recs[i:min(i+100, len(recs))])
	}
	if err := p.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if p.Dropped() != 0 {
		t.Fatalf("publisher dropped %d copies", p.Dropped())
	}
	return recs, int(p.Acknowledged())
}

// figures are a table's hosts' snapshots without the clock times (the
// reference table is fed at other instants), L7 sorted.
func figures(tbl *aggregate.HostTable) map[aggregate.HostKey]aggregate.HostSnapshot {
	out := allFigures(tbl)
	for k, s := range out {
		s.FirstSeen, s.LastSeen = time.Time{}, time.Time{}
		out[k] = s
	}
	return out
}

// settle advances a table past the reply window, so that every pending
// conversation is decided.
func settle(tbl *aggregate.HostTable, clk *clock.Manual) {
	clk.Advance(aggregate.DefaultConfiguration().ReplyWindow + time.Second)
	tbl.Advance(clk.Now())
}

// TestConsume publishes a softflowd export with the ingest role's
// publisher and consumes it with one, then two check workers of a group:
// every host is on exactly one worker, the owner of its partition, with
// the figures of one table fed the records whole.
func TestConsume(t *testing.T) {
	const partitions = 6
	_, broker := startKafka(t, 0)
	path := "../testdata/softflowd-v9.pcap"
	recs, copies := publishCapture(t, broker, partitions, path)
	start := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)

	refClk := clock.NewManual(start)
	ref, err := aggregate.New(aggregate.DefaultConfiguration(), aggregate.Dependencies{Registerer: prometheus.NewRegistry(), Clock: refClk})
	if err != nil {
		t.Fatal(err)
	}
	ref.Apply(recs)
	settle(ref, refClk)
	want := figures(ref)

	for _, n := range []int{1, 2} {
		t.Run(fmt.Sprintf("workers=%d", n), func(t *testing.T) {
			cfg := checkConfig(broker, fmt.Sprintf("group-%d", n), partitions)
			var ws []*worker
			for i := range n {
				ws = append(ws, startWorker(t, fmt.Sprintf("check-%d", i+1), cfg, start))
			}
			waitFor(t, "every partition owned, rebuilt and consumed", func() bool {
				owned := 0
				for _, w := range ws {
					if !w.caughtUp() {
						return false
					}
					owned += len(w.consumer.Owned())
				}
				return owned == partitions
			})
			if n == 1 && ws[0].consumed() != copies {
				t.Errorf("one worker applied %d copies, the publisher sent %d", ws[0].consumed(), copies)
			}
			got := map[aggregate.HostKey]aggregate.HostSnapshot{}
			for i, w := range ws {
				settle(w.table, w.clk)
				mine := w.consumer.Owned()
				for k, s := range figures(w.table) {
					if p := PartitionOf(k.Addr, k.VLAN, partitions); !slices.Contains(mine, p) {
						t.Errorf("%v on check-%d, which owns %v, not its partition %d", k, i+1, mine, p)
					}
					if _, dup := got[k]; dup {
						t.Errorf("%v on two workers", k)
					}
					got[k] = s
				}
				// The first to join rebuilt every partition, then gave some up.
				if r := testutil.ToFloat64(w.consumer.m.rebuilds); int(r) < len(mine) {
					t.Errorf("check-%d: %v rebuilds for %d partitions", i+1, r, len(mine))
				}
			}
			if len(got) != len(want) {
				t.Errorf("%d hosts across the workers, want %d", len(got), len(want))
			}
			for k, w := range want {
				if !reflect.DeepEqual(got[k], w) {
					t.Errorf("%v:\n got %+v\nwant %+v", k, got[k], w)
				}
			}
			if n == 1 {
				// Offsets are committed for what was applied: all of it.
				ends := map[int]int64{}
				for p := range partitions {
					end, err := ws[0].consumer.lastOffset(context.Background(), p)
					if err != nil {
						t.Fatal(err)
					}
					ends[p] = end
				}
				ws[0].stop(t)
				client := &kafka.Client{Addr: kafka.TCP(broker)}
				resp, err := client.OffsetFetch(context.Background(), &kafka.OffsetFetchRequest{GroupID: cfg.Group,
					Topics: map[string][]int{cfg.FlowsTopic: {0, 1, 2, 3, 4, 5}}})
				if err != nil {
					t.Fatal(err)
				}
				for _, p := range resp.Topics[cfg.FlowsTopic] {
					if p.CommittedOffset != ends[p.Partition] {
						t.Errorf("partition %d: committed %d, applied up to %d", p.Partition, p.CommittedOffset, ends[p.Partition])
					}
				}
			}
		})
	}
}

// TestRebalance: two check workers share the partitions and alert every
// host; one leaves the group. Its partitions move to the other, which
// rebuilds them with the alerts held, adopts the engaged alerts of their
// last checkpoint and carries on: no host is engaged twice after dedupe
// by id, and the moved hosts have the figures they had.
func TestRebalance(t *testing.T) {
	const partitions = 4
	_, broker := startKafka(t, 0)
	publishCapture(t, broker, partitions, "../testdata/softflowd-v9.pcap")
	start := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	cfg := checkConfig(broker, "group-rebalance", partitions)
	a := startWorker(t, "check-a", cfg, start)
	b := startWorker(t, "check-b", cfg, start)
	waitFor(t, "both workers own partitions and consumed everything", func() bool {
		return a.caughtUp() && b.caughtUp() && len(a.consumer.Owned()) > 0 && len(b.consumer.Owned()) > 0 &&
			len(a.consumer.Owned())+len(b.consumer.Owned()) == partitions
	})
	// The hosts were rebuilt (published before the workers started): their
	// first runs are a warm-up that raises nothing, then everyHost fires.
	for _, w := range []*worker{a, b} {
		settle(w.table, w.clk)
		for range 2 {
			if !w.tick() {
				t.Fatalf("%s held its alerts while ready", w.name)
			}
		}
		if evs := w.alerts.events(); len(evs) != 0 {
			t.Fatalf("%s raised %d alerts while warming up", w.name, len(evs))
		}
		w.tick()
	}
	movedHosts := figures(a.table)
	movedParts := a.consumer.Owned()
	if len(movedHosts) == 0 {
		t.Fatal("check-a has no host")
	}
	engagedA := len(a.alerts.events())
	if engagedA != len(movedHosts) {
		t.Fatalf("check-a published %d events for %d hosts", engagedA, len(movedHosts))
	}
	rebuiltBefore := testutil.ToFloat64(b.consumer.m.rebuilds)
	// a's tick wrote the checkpoints of its alerts; Stop writes the last
	// ones.
	a.stop(t)

	waitFor(t, "check-b owns every partition, rebuilt", func() bool {
		return b.caughtUp() && len(b.consumer.Owned()) == partitions
	})
	if r := testutil.ToFloat64(b.consumer.m.rebuilds) - rebuiltBefore; int(r) != len(movedParts) {
		t.Errorf("check-b: %v rebuilds after check-a left, want %d (a's partitions %v)", r, len(movedParts), movedParts)
	}
	if n := testutil.ToFloat64(b.consumer.m.checkpoints); n == 0 {
		t.Error("check-b wrote no checkpoint")
	}
	settle(b.table, b.clk)
	got := figures(b.table)
	for k, w := range movedHosts {
		if !reflect.DeepEqual(got[k], w) {
			t.Errorf("moved host %v:\n got %+v\nwant %+v", k, got[k], w)
		}
	}
	for _, ev := range b.alerts.events() {
		if ev.State != alert.Engaged {
			t.Errorf("check-b published %+v", ev)
		}
	}
	for range 3 { // the moved hosts' warm-up, then a normal run
		b.tick()
	}
	// Dedupe by id: one engagement per host, whoever published it.
	ids := map[string]map[string]bool{}
	for _, ev := range slices.Concat(a.alerts.events(), b.alerts.events()) {
		if ev.State == alert.Released {
			t.Errorf("released %+v", ev)
		}
		k := ev.Host.Key()
		if ids[k] == nil {
			ids[k] = map[string]bool{}
		}
		ids[k][ev.ID] = true
	}
	var twice []string
	for k, set := range ids {
		if len(set) > 1 {
			twice = append(twice, k)
		}
	}
	sort.Strings(twice)
	if len(twice) > 0 {
		t.Errorf("hosts engaged twice after dedupe by id (partitions %v moved): %v", movedParts, twice)
	}
	if n := len(b.engine.Engaged()); n != len(ids) {
		t.Errorf("check-b holds %d engaged alerts, want %d (every host)", n, len(ids))
	}
}

// TestConsumeDecodeErrors: an unknown FlowBatch version and a corrupt value on
// the topic are counted and skipped; the records around them are applied.
func TestConsumeDecodeErrors(t *testing.T) {
	const partitions = 1
	_, broker := startKafka(t, 0)
	cfg := checkConfig(broker, "group-bad", partitions)
	w := startWorker(t, "check", cfg, time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC))
	waitFor(t, "ready", w.consumer.Ready)
	var good Batch
	r := flow.Record{SrcAddr: netip.MustParseAddr("10.0.0.1"), DstAddr: netip.MustParseAddr("10.0.0.2"), Proto: flow.ProtoUDP, Bytes: 100, Packets: 1}
	good.Add(&r, flow.SideSrc|flow.SideDst)
	v2 := append([]byte{0x08, 0x02}, good.Bytes()[2:]...) // version 2
	wr := &kafka.Writer{Addr: kafka.TCP(broker), Topic: cfg.FlowsTopic, AllowAutoTopicCreation: true}
	defer wr.Close()
	if err := wr.WriteMessages(context.Background(),
		kafka.Message{Value: good.Bytes()}, kafka.Message{Value: v2}, kafka.Message{Value: []byte{0xff, 0xff}}, kafka.Message{Value: good.Bytes()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the good records applied", func() bool { return w.consumed() == 2 })
	waitFor(t, "the bad ones counted", func() bool {
		return testutil.ToFloat64(w.consumer.m.decodeErrors.WithLabelValues("version")) == 1 &&
			testutil.ToFloat64(w.consumer.m.decodeErrors.WithLabelValues("corrupt")) == 1
	})
	var s aggregate.HostSnapshot
	if !w.table.Snapshot(aggregate.HostKey{Addr: netip.MustParseAddr("10.0.0.1")}, &s) || s.BytesSent != 200 {
		t.Errorf("10.0.0.1 sent %d bytes, want 200", s.BytesSent)
	}
}

// TestGoflow2Consume: goflow2's own values of a softflowd export, on a
// topic of 3 partitions as goflow2 spreads them, read by a worker with
// input_format goflow2: it owns every partition and its hosts have the
// figures of the collector's own decoding; a second worker of the group is
// refused at start.
func TestGoflow2Consume(t *testing.T) {
	_, broker := startKafka(t, 0)
	path := "../testdata/softflowd-v9.pcap"
	cfg := checkConfig(broker, "group-goflow2", 3)
	cfg.InputFormat, cfg.FlowsTopic = FormatGoflow2, "goflow2.flows"
	// goflow2's topic, as its operator created it.
	if err := ensureTopic(context.Background(), cfg, (&kafka.Transport{}), slog.Default()); err != nil {
		t.Fatal(err)
	}
	wr := &kafka.Writer{Addr: kafka.TCP(broker), Topic: cfg.FlowsTopic, AllowAutoTopicCreation: true, Balancer: &kafka.RoundRobin{}}
	defer wr.Close()
	var msgs []kafka.Message
	for _, v := range goflow2Values(t, path) {
		msgs = append(msgs, kafka.Message{Value: v.value})
	}
	if err := wr.WriteMessages(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
	w := startWorker(t, "check-goflow2", cfg, time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC))
	n, err := w.consumer.topicPartitions(context.Background())
	if err != nil || n < 1 {
		t.Fatalf("topic partitions %d, %v", n, err)
	}
	waitFor(t, "every goflow2 flow consumed", func() bool { return w.caughtUp() && w.consumed() == len(msgs) })
	if got := w.consumer.Owned(); len(got) != n {
		t.Errorf("owns %v of %d partitions", got, n)
	}
	second, err := NewConsumer(cfg, ConsumerDependencies{Registerer: prometheus.NewRegistry(), Table: w.table, Engine: w.engine})
	if err != nil {
		t.Fatal(err)
	}
	if err := second.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "one worker must read every partition") {
		t.Errorf("a second goflow2 worker started: %v", err)
		_ = second.Stop(context.Background())
	}

	refClk := clock.NewManual(w.clk.Now())
	ref, err := aggregate.New(aggregate.DefaultConfiguration(), aggregate.Dependencies{Registerer: prometheus.NewRegistry(), Clock: refClk})
	if err != nil {
		t.Fatal(err)
	}
	ref.Apply(captureRecords(t, path))
	settle(ref, refClk)
	settle(w.table, w.clk)
	got, want := figures(w.table), figures(ref)
	if len(got) != len(want) {
		t.Errorf("%d hosts, want %d", len(got), len(want))
	}
	for k, s := range want {
		g := got[k]
		if g.BytesSent != s.BytesSent || g.BytesRcvd != s.BytesRcvd || g.NoReply != s.NoReply || g.Refused != s.Refused ||
			g.Unidirectional != s.Unidirectional || g.RefusedFlows != s.RefusedFlows {
			t.Errorf("%v:\n got %+v\nwant %+v", k, g, s)
		}
	}
}

// blockingTable is a Table whose first Apply waits for release: a
// rebuild caught in the middle.
type blockingTable struct {
	Table
	entered, release chan struct{}
	once             sync.Once
}

func (b *blockingTable) Apply(batch []flow.Record) {
	b.once.Do(func() {
		close(b.entered)
		<-b.release
	})
	b.Table.Apply(batch)
}

// TestHoldWhileRebuilding: while a partition is being rebuilt the worker
// holds its checks and is not ready, and says so in partitions_rebuilding;
// once rebuilt, it is ready.
func TestHoldWhileRebuilding(t *testing.T) {
	_, broker := startKafka(t, 0)
	publishCapture(t, broker, 1, "../testdata/softflowd-v9.pcap")
	table, err := aggregate.New(aggregate.DefaultConfiguration(), aggregate.Dependencies{Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	bt := &blockingTable{Table: table, entered: make(chan struct{}), release: make(chan struct{})}
	c, err := NewConsumer(checkConfig(broker, "group-hold", 1), ConsumerDependencies{Registerer: prometheus.NewRegistry(), Table: bt, Engine: noAlerts{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer c.Stop(context.Background())
	<-bt.entered
	if !c.Holding() || c.Ready() || testutil.ToFloat64(c.m.rebuilding) != 1 {
		t.Errorf("mid-rebuild: holding %v, ready %v, rebuilding %v", c.Holding(), c.Ready(), testutil.ToFloat64(c.m.rebuilding))
	}
	close(bt.release)
	waitFor(t, "the rebuild done", c.Ready)
	if c.Holding() || testutil.ToFloat64(c.m.rebuilding) != 0 || testutil.ToFloat64(c.m.rebuilds) != 1 {
		t.Errorf("rebuilt: holding %v, rebuilding %v, rebuilds %v", c.Holding(), testutil.ToFloat64(c.m.rebuilding), testutil.ToFloat64(c.m.rebuilds))
	}
}

// TestStickyRebalance: when one of three workers leaves, the two others
// keep the partitions they had and share the leaver's.
func TestStickyRebalance(t *testing.T) {
	const partitions = 6
	_, broker := startKafka(t, 0)
	cfg := checkConfig(broker, "group-sticky", partitions)
	start := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	var ws []*worker
	for i := range 3 {
		ws = append(ws, startWorker(t, fmt.Sprintf("check-%d", i+1), cfg, start))
	}
	spread := func(ws []*worker) bool {
		owned := 0
		for _, w := range ws {
			if !w.consumer.Ready() || len(w.consumer.Owned()) != partitions/len(ws) {
				return false
			}
			owned += len(w.consumer.Owned())
		}
		return owned == partitions
	}
	waitFor(t, "three workers with two partitions each", func() bool { return spread(ws) })
	before := [][]int{ws[0].consumer.Owned(), ws[1].consumer.Owned()}
	ws[2].stop(t)
	waitFor(t, "two workers with three partitions each", func() bool { return spread(ws[:2]) })
	for i, had := range before {
		now := ws[i].consumer.Owned()
		for _, p := range had {
			if !slices.Contains(now, p) {
				t.Errorf("check-%d had %v, now %v: partition %d moved", i+1, had, now, p)
			}
		}
	}
}
