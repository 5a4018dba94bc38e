package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/flowcheck/flowcheck/aggregate"
	"github.com/flowcheck/flowcheck/alert"
	"github.com/flowcheck/flowcheck/clock"
	"github.com/flowcheck/flowcheck/flow"
	"github.com/flowcheck/flowcheck/internal/defaults"
	"github.com/flowcheck/flowcheck/internal/kafkaconn"
	"github.com/flowcheck/flowcheck/internal/ratelog"
)

// Table is what the check role feeds: the host table
// (aggregate.HostTable).
type Table interface {
	// Apply accounts a batch of records (their Sides say which hosts).
	Apply(batch []flow.Record)
	// Drop forgets the hosts for which drop is true and returns them.
	Drop(drop func(aggregate.HostKey) bool) []aggregate.HostKey
	// IngestLost tells of data lost on ingest (the batches' loss
	// reports), whose replies may be missing.
	IngestLost(at time.Time, lost, received int)
	// AppendKeys appends the key of every host.
	AppendKeys(dst []aggregate.HostKey) []aggregate.HostKey
}

// Engine is what the check role hands alerts over with: the check engine
// (scripting.Engine).
type Engine interface {
	// Engaged returns the engaged alerts, for the checkpoints.
	Engaged() []alert.Event
	// Adopt takes over the alerts of a checkpoint.
	Adopt(evs []alert.Event) int
	// Forget drops the hosts of partitions handed over, silently.
	Forget(keys []aggregate.HostKey)
	// Quiet makes the first runs on rebuilt hosts warm-up runs.
	Quiet(keys []aggregate.HostKey)
}

// ConsumerDependencies are what the check role's consumer needs.
type ConsumerDependencies struct {
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Clock gives the rebuild's start (now − rebuild_window) and paces
	// the rate-limited logs.
	Clock  clock.Clock
	Table  Table
	Engine Engine
	// ReplyWindow is the host table's: after a rebuild the checks wait
	// that long more (and a second), for the table to decide the
	// conversations the rebuild re-read.
	ReplyWindow time.Duration
}

// Consumer is the check role: a member of consumer group cluster.group on
// the flows topic. Each partition it is assigned is rebuilt first (read
// from now − rebuild_window to the end it had when assigned, alerts held)
// and then consumed live into the host table; the hosts of a partition
// taken away are dropped, their alerts handed over through the
// partition's checkpoints (checkpoint.go).
type Consumer struct {
	cfg  Configuration
	deps ConsumerDependencies
	m    *consumeMetrics
	logs *ratelog.Logger[string]
	sec  kafkaconn.Security

	group  *kafka.ConsumerGroup
	writer *kafka.Writer // checkpoints; nil with input_format goflow2

	mu sync.Mutex
	// owned are the partitions of the current generation (or the last
	// one, between generations), by id.
	owned map[int]*partState
	// partitions is the flows topic's partition count, for PartitionOf.
	partitions int
	// rebuiltParts are the partitions rebuilt since the last time none
	// was rebuilding: their hosts warm up together (Engine.Quiet).
	rebuiltParts []int

	// rebuilding counts the owned partitions not yet live; assigned is
	// false between generations. Alerts are held unless assigned and
	// none rebuilds (Holding).
	rebuilding atomic.Int32
	assigned   atomic.Bool
	started    atomic.Bool
	// settled is the clock time (ns) until which the last rebuild's
	// conversations are being decided: alerts are held until then.
	settled atomic.Int64

	fatal  chan error
	cancel context.CancelFunc
	done   chan struct{}
}

// partState is one owned partition's progress, kept across generations
// while the partition stays with this worker.
type partState struct {
	// next is the offset of the next message to apply; -1 before the
	// partition's rebuild starts.
	next int64
	// rebuildEnd is the partition's end when it was assigned: the
	// partition is live once next reaches it.
	rebuildEnd int64
	live       bool
	// rebuildStart is when the rebuild began, and records what it applied.
	rebuildStart time.Time
	records      uint64
	// checkpoint is the last alert checkpoint the rebuild read, adopted
	// when it ends (kept if the rebuild is cut short by a rebalance that
	// leaves the partition here).
	checkpoint []alert.Event
}

// Group session settings: a dead worker's partitions move within about
// sessionTimeout + heartbeat; kfake and Kafka refuse a session below 6 s.
const (
	sessionTimeout    = 10 * time.Second
	heartbeatInterval = time.Second
	rebalanceTimeout  = 5 * time.Second
	// commitEvery is how often a partition commits the offset of what it
	// applied (and when it is revoked).
	commitEvery = time.Second
)

// NewConsumer builds the check role's consumer; nothing is read before
// Start.
func NewConsumer(cfg Configuration, deps ConsumerDependencies) (*Consumer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Role != RoleCheck {
		return nil, fmt.Errorf("role: a consumer is role %s's, not %s's", RoleCheck, cfg.Role)
	}
	if deps.Table == nil || deps.Engine == nil {
		return nil, errors.New("a consumer needs a table and an engine")
	}
	deps.Logger = defaults.Logger(deps.Logger)
	deps.Registerer = defaults.Registerer(deps.Registerer)
	deps.Clock = defaults.Clock(deps.Clock)
	sec, err := kafkaconn.NewSecurity(cfg.TLS, cfg.SASL)
	if err != nil {
		return nil, err
	}
	m, err := newConsumeMetrics(deps.Registerer)
	if err != nil {
		return nil, err
	}
	c := &Consumer{
		cfg: cfg, deps: deps, m: m, sec: sec,
		logs:       ratelog.New[string](deps.Logger, deps.Clock, 10*time.Second, 16),
		owned:      map[int]*partState{},
		partitions: cfg.Partitions,
		fatal:      make(chan error, 1),
		done:       make(chan struct{}),
	}
	if cfg.InputFormat == FormatFlowcheck {
		c.writer = &kafka.Writer{
			Addr: kafka.TCP(cfg.Brokers...), Topic: cfg.FlowsTopic, Balancer: chosenPartition{},
			BatchSize: 1, BatchTimeout: time.Millisecond, RequiredAcks: kafka.RequireAll, Compression: kafka.Lz4,
			WriteTimeout: 10 * time.Second, Transport: sec.Transport(cfg.ClientID, 10*time.Second),
		}
	}
	return c, nil
}

// Start checks the flows topic (creating it with input_format flowcheck,
// as ingest does; a topic of another partition count is refused), then
// joins the group. Unreachable brokers are not an error: the group keeps
// trying. With input_format goflow2, a group that already has a member is
// refused: goflow2 partitions by its own key, so one worker must read
// every partition.
func (c *Consumer) Start(ctx context.Context) error {
	if c.started.Swap(true) {
		return errors.New("already started")
	}
	tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	transport := c.sec.Transport(c.cfg.ClientID, 10*time.Second)
	if c.cfg.InputFormat == FormatFlowcheck {
		err := ensureTopic(tctx, c.cfg, transport, c.deps.Logger)
		var mismatch *partitionCountError
		switch {
		case errors.As(err, &mismatch):
			return err
		case err != nil:
			c.deps.Logger.Warn("flows topic unreachable: the group will join when it answers",
				"brokers", c.cfg.Brokers, "topic", c.cfg.FlowsTopic, "kind", kafkaconn.ErrorKind(err), "error", err)
		}
	} else if n, err := c.groupMembers(tctx, transport); err == nil && n > 0 {
		return fmt.Errorf("input_format goflow2: consumer group %s already has %d member(s): goflow2 keys its messages its own way, so one worker must read every partition of %s",
			c.cfg.Group, n, c.cfg.FlowsTopic)
	}
	group, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID: c.cfg.Group, Brokers: c.cfg.Brokers, Topics: []string{c.cfg.FlowsTopic},
		Dialer:            c.sec.Dialer(c.cfg.ClientID, 10*time.Second),
		SessionTimeout:    sessionTimeout,
		HeartbeatInterval: heartbeatInterval,
		RebalanceTimeout:  rebalanceTimeout,
		// A topic created (or grown) after the workers joined starts a
		// new generation.
		WatchPartitionChanges: true,
		// Partitions stay where they are when members come and go, as
		// far as the counts allow: each move costs a rebuild.
		GroupBalancers: []kafka.GroupBalancer{stickyBalancer{owned: c.Owned}, kafka.RangeGroupBalancer{}},
		StartOffset:    kafka.LastOffset,
		Logger:         kafka.LoggerFunc(func(string, ...any) {}),
		ErrorLogger: kafka.LoggerFunc(func(msg string, args ...any) {
			c.logs.Log(slog.LevelWarn, "group", "consumer group", "error", fmt.Sprintf(msg, args...))
		}),
	})
	if err != nil {
		return fmt.Errorf("consumer group: %w", err)
	}
	c.group = group
	rctx, stop := context.WithCancel(context.Background())
	c.cancel = stop
	go c.run(rctx)
	c.deps.Logger.Info("joining the consumer group", "group", c.cfg.Group, "topic", c.cfg.FlowsTopic,
		"brokers", c.cfg.Brokers, "input_format", c.cfg.InputFormat)
	return nil
}

// groupMembers is the number of members of the consumer group.
func (c *Consumer) groupMembers(ctx context.Context, transport *kafka.Transport) (int, error) {
	client := &kafka.Client{Addr: kafka.TCP(c.cfg.Brokers...), Transport: transport}
	resp, err := client.DescribeGroups(ctx, &kafka.DescribeGroupsRequest{GroupIDs: []string{c.cfg.Group}})
	if err != nil || len(resp.Groups) != 1 {
		return 0, err
	}
	return len(resp.Groups[0].Members), resp.Groups[0].Error
}

// Stop leaves the group: each partition commits what it applied and
// writes its last checkpoint, then its hosts are handed over (dropped
// without releasing their alerts: the next owner adopts them). It returns
// ctx's error if that has not happened by its end.
func (c *Consumer) Stop(ctx context.Context) error {
	if c.group == nil {
		return nil
	}
	done := make(chan error, 1)
	go func() {
		c.cancel()
		err := c.group.Close()
		<-c.done
		if c.writer != nil {
			err = errors.Join(err, c.writer.Close())
		}
		c.mu.Lock()
		all := slices.Collect(maps.Keys(c.owned))
		c.owned = map[int]*partState{}
		c.mu.Unlock()
		c.handOver(all)
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Fatal delivers the error that stops this worker for good (input_format
// goflow2 in a group that splits the partitions); main exits on it.
func (c *Consumer) Fatal() <-chan error { return c.fatal }

// Ready tells whether this worker checks its hosts: assigned partitions
// by the group, none of them rebuilding, and the reply window of the last
// rebuild over.
func (c *Consumer) Ready() bool {
	return c.assigned.Load() && c.rebuilding.Load() == 0 && c.deps.Clock.Now().UnixNano() >= c.settled.Load()
}

// Holding tells whether alerts are held: between generations (the
// partitions may be moving) or while a partition rebuilds, the checks
// must not run on a partial host state. The check tick waits meanwhile.
func (c *Consumer) Holding() bool { return !c.Ready() }

// Owned returns the partitions this worker owns, sorted.
func (c *Consumer) Owned() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	ids := slices.Collect(maps.Keys(c.owned))
	slices.Sort(ids)
	return ids
}

// run takes the group's generations one after the other until ctx ends.
func (c *Consumer) run(ctx context.Context) {
	defer close(c.done)
	for {
		gen, err := c.group.Next(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, kafka.ErrGroupClosed) {
				return
			}
			c.m.groupErrors.WithLabelValues(kafkaconn.ErrorKind(err)).Inc()
			c.logs.Log(slog.LevelWarn, "next", "consumer group: no generation yet", "group", c.cfg.Group, "error", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}
		if !c.generationStarts(ctx, gen) {
			return
		}
	}
}

// generationStarts takes a new generation's assignment: the partitions no
// longer owned are handed over, the new ones rebuilt, and one reader per
// partition started. false stops the worker (a fatal error).
func (c *Consumer) generationStarts(ctx context.Context, gen *kafka.Generation) bool {
	var ids []int
	for _, a := range gen.Assignments[c.cfg.FlowsTopic] {
		ids = append(ids, a.ID)
	}
	slices.Sort(ids)
	if c.cfg.InputFormat == FormatGoflow2 {
		n, err := c.topicPartitions(ctx)
		if err == nil && len(ids) != n {
			err := fmt.Errorf("input_format goflow2: the group gave this worker partitions %v of %s's %d: goflow2 keys its messages its own way, so one worker must read every partition (stop the other members of group %s)",
				ids, c.cfg.FlowsTopic, n, c.cfg.Group)
			c.deps.Logger.Error("stopping", "error", err)
			c.fatal <- err
			return false
		}
	}
	c.mu.Lock()
	prev := c.owned
	c.owned = make(map[int]*partState, len(ids))
	var added, revoked []int
	for _, id := range ids {
		st, ok := prev[id]
		if !ok {
			st = &partState{next: -1}
			added = append(added, id)
		}
		c.owned[id] = st
	}
	for id := range prev {
		if _, ok := c.owned[id]; !ok {
			revoked = append(revoked, id)
		}
	}
	rebuilding := 0
	for _, st := range c.owned {
		if !st.live {
			rebuilding++
		}
	}
	c.mu.Unlock()
	slices.Sort(revoked)
	c.handOver(revoked)
	c.rebuilding.Store(int32(rebuilding))
	c.m.owned.Set(float64(len(ids)))
	c.m.rebuilding.Set(float64(rebuilding))
	c.deps.Logger.Info("partitions assigned", "generation", gen.ID, "member", gen.MemberID, "partitions", ids,
		"new", added, "revoked", revoked)
	c.assigned.Store(true)
	for _, id := range ids {
		c.mu.Lock()
		st := c.owned[id]
		c.mu.Unlock()
		gen.Start(func(ctx context.Context) { c.consume(ctx, gen, id, st) })
	}
	return true
}

// topicPartitions reads the flows topic's partition count.
func (c *Consumer) topicPartitions(ctx context.Context) (int, error) {
	client := &kafka.Client{Addr: kafka.TCP(c.cfg.Brokers...), Transport: c.sec.Transport(c.cfg.ClientID, 10*time.Second)}
	resp, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{c.cfg.FlowsTopic}})
	if err != nil {
		return 0, err
	}
	if len(resp.Topics) != 1 || resp.Topics[0].Error != nil {
		return 0, fmt.Errorf("metadata of %s: %v", c.cfg.FlowsTopic, resp.Topics)
	}
	return len(resp.Topics[0].Partitions), nil
}

// handOver drops the hosts of partitions this worker no longer owns, and
// tells the engine to forget them without releasing their alerts: the new
// owner adopts them from the partition's last checkpoint. With input_format
// goflow2 a host's partition is goflow2's: nothing is dropped (one worker
// owns them all).
func (c *Consumer) handOver(revoked []int) {
	if len(revoked) == 0 || c.cfg.InputFormat != FormatFlowcheck {
		return
	}
	gone := make(map[int]bool, len(revoked))
	for _, id := range revoked {
		gone[id] = true
		c.m.lag.DeleteLabelValues(partitionLabel(id))
	}
	keys := c.deps.Table.Drop(func(k aggregate.HostKey) bool { return gone[PartitionOf(k.Addr, k.VLAN, c.partitions)] })
	c.deps.Engine.Forget(keys)
	c.deps.Logger.Info("partitions revoked: hosts handed over", "partitions", revoked, "hosts", len(keys))
}
