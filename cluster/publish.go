package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/flowcheck/flowcheck/clock"
	"github.com/flowcheck/flowcheck/internal/defaults"
	"github.com/flowcheck/flowcheck/internal/kafkaconn"
	"github.com/flowcheck/flowcheck/internal/ratelog"
)

// PublisherDependencies are what the ingest role's publisher needs.
type PublisherDependencies struct {
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Clock paces the rate-limited logs.
	Clock clock.Clock
	// Block makes Handle wait, up to publish.write_timeout, for buffer
	// space rather than drop at once: for replay, which has no socket to
	// keep draining and wants every record delivered.
	Block bool
}

// Publisher is the ingest role: its Handle (a flow.Handler the collector
// feeds) copies each record to the partition of its source host and to
// that of its destination host, gathers the copies per partition into
// FlowBatch messages, and senders (each with its share of the partitions)
// write them to the flows topic.
// Memory is bounded by publish.buffer_bytes; beyond it records are
// dropped and counted, never waited for (unless Block).
type Publisher struct {
	cfg  Configuration
	deps PublisherDependencies
	m    *publishMetrics
	logs *ratelog.Logger[string]
	sec  kafkaconn.Security

	parts []partition
	// tokens hold one entry per batch buffer in use: a partition takes one
	// to start a batch, the sender gives it back once the brokers
	// acknowledged (or Stop dropped) the batch.
	tokens chan struct{}
	free   chan *Batch
	// sealed are the batches ready to send, in sealing order, one queue
	// per sender; each has the capacity of tokens, so sealing never waits.
	sealed []chan *sealedBatch

	// closing is write-locked by Stop to close intake.
	closing sync.RWMutex
	closed  bool

	started atomic.Bool
	topicOK atomic.Bool // the topic was found (or created) with the right partitions
	down    atomic.Bool // the last write failed
	// stalled (Block only) is set when a wait for buffer space timed out,
	// and cleared by the next acknowledgement.
	stalled   atomic.Bool
	stopFlush chan struct{}
	flushDone chan struct{}
	hardCtx   context.Context
	hardStop  context.CancelFunc
	sendDone  chan struct{}

	// Counted for Stop and replay: copies accepted, acknowledged, dropped.
	accepted, acked, dropped atomic.Uint64
}

// NewPublisher builds the ingest role's publisher; nothing is sent before
// Start.
func NewPublisher(cfg Configuration, deps PublisherDependencies) (*Publisher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	deps.Logger = defaults.Logger(deps.Logger)
	deps.Registerer = defaults.Registerer(deps.Registerer)
	deps.Clock = defaults.Clock(deps.Clock)
	sec, err := kafkaconn.NewSecurity(cfg.TLS, cfg.SASL)
	if err != nil {
		return nil, err
	}
	m, err := newPublishMetrics(deps.Registerer)
	if err != nil {
		return nil, err
	}
	buffers := cfg.Publish.BufferBytes / cfg.Publish.FlushBytes
	m.bufferMax.Set(float64(buffers * cfg.Publish.FlushBytes))
	p := &Publisher{
		cfg: cfg, deps: deps, m: m, sec: sec,
		logs:      ratelog.New[string](deps.Logger, deps.Clock, 10*time.Second, 16),
		parts:     make([]partition, cfg.Partitions),
		tokens:    make(chan struct{}, buffers),
		free:      make(chan *Batch, buffers),
		sealed:    make([]chan *sealedBatch, min(senders, cfg.Partitions)),
		stopFlush: make(chan struct{}),
		flushDone: make(chan struct{}),
		sendDone:  make(chan struct{}),
	}
	for i := range p.sealed {
		p.sealed[i] = make(chan *sealedBatch, buffers)
	}
	p.hardCtx, p.hardStop = context.WithCancel(context.Background())
	return p, nil
}

// Start checks the flows topic (creating it when missing) and starts the
// sender and the interval flush. A topic with another partition count
// than configured is refused; unreachable brokers are not an error: the
// sender keeps trying, and records wait in the buffer meanwhile.
func (p *Publisher) Start(ctx context.Context) error {
	if p.started.Swap(true) {
		return errors.New("already started")
	}
	tctx, cancel := context.WithTimeout(ctx, p.cfg.Publish.WriteTimeout)
	err := p.ensureTopic(tctx, p.sec.Transport(p.cfg.ClientID, p.cfg.Publish.WriteTimeout))
	cancel()
	var mismatch *partitionCountError
	switch {
	case errors.As(err, &mismatch):
		return err
	case err != nil:
		p.down.Store(true)
		p.deps.Logger.Warn("flows topic unreachable: records are buffered, then dropped, until it answers",
			"brokers", p.cfg.Brokers, "topic", p.cfg.FlowsTopic, "kind", kafkaconn.ErrorKind(err), "error", err)
	default:
		p.deps.Logger.Info("publishing to the flows topic", "brokers", p.cfg.Brokers, "topic", p.cfg.FlowsTopic,
			"partitions", p.cfg.Partitions)
	}
	go p.flushLoop()
	var wg sync.WaitGroup
	for i := range p.sealed {
		wg.Go(func() { p.send(i) })
	}
	go func() {
		wg.Wait()
		close(p.sendDone)
	}()
	return nil
}

// Ready tells whether records are being delivered: started, not
// stopping, the topic checked and the last write acknowledged.
func (p *Publisher) Ready() bool {
	return p.started.Load() && p.topicOK.Load() && !p.down.Load() && !p.isClosed()
}

// Stop closes intake, sends what is buffered and waits for the brokers'
// acknowledgements until ctx ends; what is still unacknowledged then is
// dropped, counted, and reported in the error.
func (p *Publisher) Stop(ctx context.Context) error {
	p.closing.Lock()
	already := p.closed
	p.closed = true
	p.closing.Unlock()
	if already || !p.started.Load() {
		return nil
	}
	close(p.stopFlush)
	<-p.flushDone
	p.sealAll()
	for _, c := range p.sealed {
		close(c)
	}
	select {
	case <-p.sendDone:
	case <-ctx.Done():
		p.hardStop()
		<-p.sendDone
	}
	p.hardStop()
	if n := p.Unacknowledged(); n > 0 {
		return fmt.Errorf("%d records not acknowledged by the brokers (dropped)", n)
	}
	return nil
}

// Unacknowledged counts the record copies accepted and not acknowledged:
// dropped at Stop, or still on their way.
func (p *Publisher) Unacknowledged() uint64 {
	return p.accepted.Load() - p.acked.Load()
}

// Acknowledged counts the record copies the brokers acknowledged.
func (p *Publisher) Acknowledged() uint64 { return p.acked.Load() }

// Dropped counts the record copies dropped, whatever the reason.
func (p *Publisher) Dropped() uint64 { return p.dropped.Load() }

func (p *Publisher) isClosed() bool {
	p.closing.RLock()
	defer p.closing.RUnlock()
	return p.closed
}

// newWriter is a Writer with its own transport (fresh metadata after a
// failure), sending each message to the partition chosen for it.
func (p *Publisher) newWriter() *kafka.Writer {
	return &kafka.Writer{
		Addr:     kafka.TCP(p.cfg.Brokers...),
		Topic:    p.cfg.FlowsTopic,
		Balancer: chosenPartition{},
		// The sender retries on its own, with backoff; the Writer only
		// gets one more quick attempt for transient errors.
		MaxAttempts:     2,
		WriteBackoffMin: 10 * time.Millisecond,
		WriteBackoffMax: 50 * time.Millisecond,
		// Each message is a whole batch already: the Writer sends it at
		// once, without lingering for more.
		BatchSize:    1,
		BatchBytes:   1 << 20,
		BatchTimeout: time.Millisecond,
		ReadTimeout:  p.cfg.Publish.WriteTimeout,
		WriteTimeout: p.cfg.Publish.WriteTimeout,
		RequiredAcks: acks[p.cfg.Publish.Acks],
		Compression:  kafka.Lz4,
		Transport:    p.sec.Transport(p.cfg.ClientID, p.cfg.Publish.WriteTimeout),
	}
}

var acks = map[string]kafka.RequiredAcks{"all": kafka.RequireAll, "one": kafka.RequireOne, "none": kafka.RequireNone}

// chosenPartition sends a message to its Partition field, which kafka-go
// otherwise ignores on write: the publisher chose it (PartitionOf).
type chosenPartition struct{}

// Balance returns msg.Partition.
func (chosenPartition) Balance(msg kafka.Message, _ ...int) int { return msg.Partition }
