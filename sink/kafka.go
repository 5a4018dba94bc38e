package sink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/flowcheck/flowcheck/alert"
	"github.com/flowcheck/flowcheck/clock"
	"github.com/flowcheck/flowcheck/internal/kafkaconn"
	"github.com/flowcheck/flowcheck/internal/ratelog"
	"github.com/flowcheck/flowcheck/sink/spool"
)

// kafkaSink publishes alerts with a kafka-go Writer.
//
// Ordering: one drainer goroutine decides everything, one batch at a time, so
// a host's events reach its partition in order. Intake goes to the bounded
// in-memory queue while the spool is empty; once an event cannot go there
// (queue full, or a send failed) the sink is "spooling" and every new event
// goes to the spool's tail, through the intake of the tail writer
// (spooltail.go: Enqueue never touches the disk), until the drainer has
// emptied the spool and the intake. Queued events are always older than
// spooled ones, so the drainer sends the queue first, then the spool, then
// switches intake back to the queue. A batch taken from the queue that
// fails is put at the front of the spool together with the rest of the
// queue, so that retries and shutdown only deal with the spool. A batch still unacknowledged spool_after after its oldest alert
// was taken is put there as well, without waiting for the outcome (a hung
// broker holds a write for several write_timeouts): what a crash can lose
// is bounded by spool_after, not by the broker.
type kafkaSink struct {
	cfg   KafkaConfiguration
	m     *metrics
	log   *slog.Logger
	logs  *ratelog.Logger[logKey]
	clock clock.Clock
	spool *spool.Spool

	link link
	// spooledTotal counts the alerts written to the spool, for the line
	// that tells how many an outage spooled.
	spooledTotal atomic.Uint64
	probeCtx     context.Context
	probeCancel  context.CancelFunc
	probeDone    chan struct{}

	queue chan kafkaRecord
	wake  chan struct{} // poked after a spool append

	// The tail writer (spooltail.go).
	intake chan kafkaRecord
	// writes is where records are written (the spool, in tests a wrapper);
	// k.spool serves the rest (Peek, Commit, Len).
	writes spoolWriter
	// unwritten counts the alerts on their way to the spool's tail (in
	// the intake, waiting for room, or being written).
	unwritten atomic.Int64
	senders   sync.WaitGroup // publishers waiting for room in the intake
	stalled   atomic.Bool    // a wait timed out; cleared by the next append
	tailDone  chan struct{}

	mu       sync.Mutex // orders intake between queue and spool
	spooling atomic.Bool
	closed   bool

	started   atomic.Bool
	ready     atomic.Bool
	stop      chan struct{} // closed when Stop begins
	hardCtx   context.Context
	hardStop  context.CancelFunc // ends in-flight sends when the grace is over
	done      chan struct{}
	closeOnce sync.Once

	// Owned by the drainer.
	writer      *kafka.Writer
	needTopics  bool
	writerGroup sync.WaitGroup // writers being closed in the background
	security    kafkaconn.Security
}

func newKafkaSink(cfg KafkaConfiguration, m *metrics, log *slog.Logger, clk clock.Clock) (*kafkaSink, error) {
	k := &kafkaSink{
		cfg:        cfg,
		m:          m,
		log:        log.With("sink", "kafka"),
		queue:      make(chan kafkaRecord, cfg.QueueSize),
		wake:       make(chan struct{}, 1),
		intake:     make(chan kafkaRecord, cfg.Spool.IntakeSize),
		tailDone:   make(chan struct{}),
		stop:       make(chan struct{}),
		done:       make(chan struct{}),
		needTopics: cfg.CreateTopics.Enabled,
	}
	k.logs, k.clock = newLogs(k.log, clk), clk
	k.probeCtx, k.probeCancel = context.WithCancel(context.Background())
	k.probeDone = make(chan struct{})
	k.hardCtx, k.hardStop = context.WithCancel(context.Background())
	var err error
	if k.security, err = kafkaconn.NewSecurity(cfg.TLS, cfg.SASL); err != nil {
		return nil, err
	}
	sp, rec, err := spool.Open(spool.Options{
		Dir:          cfg.Spool.Dir,
		MaxBytes:     cfg.Spool.MaxBytes,
		SegmentBytes: cfg.Spool.SegmentBytes,
		Fsync:        cfg.Spool.Fsync,
	})
	if err != nil {
		return nil, fmt.Errorf("spool.dir: %w", err)
	}
	k.spool, k.writes = sp, sp
	for _, p := range rec.Problems {
		k.log.Warn("spool directory", "problem", p)
	}
	for _, d := range rec.Damage {
		k.log.Error("corrupt spool record skipped, replay resumes at the next good one",
			"file", d.File, "offset", d.Offset, "bytes", d.Bytes, "alerts", d.Records, "reason", d.Reason)
	}
	if rec.DiscardedBytes > 0 {
		m.spoolCorrupt.WithLabelValues("kafka").Add(float64(rec.DiscardedBytes))
	}
	if rec.LostRecords > 0 {
		m.dropped.WithLabelValues("kafka", "", "spool_corrupt").Add(float64(rec.LostRecords))
	}
	if rec.Records > 0 {
		k.log.Info("spool holds alerts from a previous run, replaying them first",
			"alerts", rec.Records, "segments", rec.Segments)
		k.spooling.Store(true)
	}
	m.zeroKafka(cfg.topics())
	k.gauges()
	return k, nil
}

// topics are the default topic and the routed ones, each once.
func (c KafkaConfiguration) topics() []string {
	topics := []string{c.Topic}
	for _, r := range c.Routes {
		if !slices.Contains(topics, r.Topic) {
			topics = append(topics, r.Topic)
		}
	}
	return topics
}

var acks = map[string]kafka.RequiredAcks{"all": kafka.RequireAll, "one": kafka.RequireOne, "none": kafka.RequireNone}

var codecs = map[string]kafka.Compression{"none": 0, "gzip": kafka.Gzip, "snappy": kafka.Snappy, "lz4": kafka.Lz4, "zstd": kafka.Zstd}

// newWriter builds a Writer with its own Transport, so that a fresh one
// after a failure also starts with fresh metadata (a broker that came back
// may have lost its topics).
func (k *kafkaSink) newWriter() *kafka.Writer {
	return &kafka.Writer{
		Addr:     kafka.TCP(k.cfg.Brokers...),
		Balancer: kafka.Murmur2Balancer{}, // same partition as Java clients for a key
		// The sink retries on its own, from the spool; the Writer only
		// gets a couple of quick attempts for transient errors.
		MaxAttempts:     3,
		WriteBackoffMin: 10 * time.Millisecond,
		WriteBackoffMax: 100 * time.Millisecond,
		BatchSize:       k.cfg.BatchSize,
		BatchBytes:      k.cfg.BatchBytes,
		// The sink lingers batch_timeout itself before calling
		// WriteMessages; the Writer must not add its own linger.
		BatchTimeout:           time.Millisecond,
		ReadTimeout:            k.cfg.WriteTimeout,
		WriteTimeout:           k.cfg.WriteTimeout,
		RequiredAcks:           acks[k.cfg.Acks],
		Compression:            codecs[k.cfg.Compression],
		AllowAutoTopicCreation: k.cfg.CreateTopics.Enabled,
		Transport:              k.newTransport(),
	}
}

// newTransport is a Transport to the brokers, with the sink's security.
func (k *kafkaSink) newTransport() *kafka.Transport {
	return k.security.Transport(k.cfg.ClientID, k.cfg.WriteTimeout)
}

func (k *kafkaSink) Name() string { return "kafka" }

// Start starts the drainer, the tail writer and the probe; nothing in it
// waits.
func (k *kafkaSink) Start(context.Context) error {
	if k.started.Swap(true) {
		return errors.New("already started")
	}
	k.writer = k.newWriter()
	k.ready.Store(true)
	go k.run()
	go k.writeTail()
	go k.probe(k.probeCtx)
	return nil
}

func (k *kafkaSink) Ready() bool { return k.started.Load() && k.ready.Load() }

// route picks the topic: the first matching route, else the default.
func (k *kafkaSink) route(ev *alert.Event) string {
	severity := ev.Severity
	if severity == "" {
		severity = alert.Severity(ev.Value)
	}
	for _, r := range k.cfg.Routes {
		if (r.Check == "" || r.Check == ev.Check) && (r.Severity == "" || r.Severity == severity) {
			return r.Topic
		}
	}
	return k.cfg.Topic
}

func (k *kafkaSink) Enqueue(ev *alert.Event, value []byte) {
	rec := kafkaRecord{
		topic:  k.route(ev),
		key:    ev.Host.Key(),
		check:  ev.Check,
		schema: strconv.Itoa(ev.Schema),
		value:  value,
		at:     time.Now(),
	}
	// A message above batch_bytes would be refused by the Writer forever.
	if int64(len(rec.value)+len(rec.key)+len(rec.check)+64) > k.cfg.BatchBytes {
		k.drop(rec.topic, "too_large", 1)
		return
	}
	k.mu.Lock()
	if k.closed {
		k.mu.Unlock()
		k.drop(rec.topic, "stopped", 1)
		return
	}
	k.m.produced.WithLabelValues("kafka", rec.topic).Inc()
	if !k.spooling.Load() {
		select {
		case k.queue <- rec:
			k.mu.Unlock()
			return
		default:
			k.spooling.Store(true)
			k.logs.Log(slog.LevelWarn, logKey{event: "queue-full"}, "kafka queue full, spooling alerts to disk", "queue_size", k.cfg.QueueSize)
		}
	}
	k.toTail(rec)
}

// spoolDrops accounts for records the spool ceiling pushed out. Their
// topics are not decoded back: the drop is counted under topic "".
func (k *kafkaSink) spoolDrops(n int) {
	if n > 0 {
		k.drop("", "spool_ceiling", n)
	}
}

func (k *kafkaSink) drop(topic, reason string, n int) {
	k.m.dropped.WithLabelValues("kafka", topic, reason).Add(float64(n))
	k.logs.Log(slog.LevelError, logKey{"drop", reason}, "alerts dropped", "reason", reason, "topic", topic, "count", n)
}

func (k *kafkaSink) gauges() {
	k.m.spoolBytes.WithLabelValues("kafka").Set(float64(k.spool.Bytes()))
	k.m.spoolCount.WithLabelValues("kafka").Set(float64(k.spool.Len()))
}

// run is the single drainer: queue first, then spool, with backoff on
// failure. It returns once Stop was called and nothing is left in memory.
func (k *kafkaSink) run() {
	defer close(k.done)
	backoff := k.cfg.RetryBackoffMin
	failed := func() bool {
		// Wait before the next attempt; false when the grace is over.
		t := time.NewTimer(backoff)
		defer t.Stop()
		backoff = min(2*backoff, k.cfg.RetryBackoffMax)
		select {
		case <-t.C:
		case <-k.stop:
			// Stopping: one last attempt is made without waiting;
			// what then fails stays in the spool.
		case <-k.hardCtx.Done():
			return false
		}
		return true
	}
	// held are alerts taken from the queue and not sent yet, older than
	// the queue's.
	var held []kafkaRecord
	for {
		if recs := k.takeLive(&held); len(recs) > 0 {
			spilled, cur, kept, err := k.sendLive(recs)
			// kept left the queue after held did: it is newer.
			held = append(held, kept...)
			if err != nil {
				if spilled && len(held) > 0 {
					// The batch's spool copy is ahead of held,
					// which are newer: write both again, in order.
					_ = k.spool.Commit(cur)
					spilled = false
				}
				if !spilled {
					k.spoolFront(append(recs, held...))
					held = nil
				}
				if k.stopping() || !failed() {
					return
				}
				continue
			}
			backoff = k.cfg.RetryBackoffMin
			continue
		}
		if k.stopping() {
			// In-memory alerts are delivered or spooled; the spool
			// replays at the next start.
			return
		}
		if k.spool.Len() > 0 {
			if err := k.replay(); err != nil {
				if !failed() {
					return
				}
				continue
			}
			backoff = k.cfg.RetryBackoffMin
			continue
		}
		// Queue, spool and the tail writer's intake empty: intake may
		// use the queue again.
		k.mu.Lock()
		if k.spool.Len() == 0 && len(k.queue) == 0 && k.unwritten.Load() == 0 {
			k.spooling.Store(false)
		}
		k.mu.Unlock()
		select {
		case rec := <-k.queue:
			held = append(held, rec)
		case <-k.wake:
		case <-k.stop:
		}
	}
}

func (k *kafkaSink) stopping() bool {
	select {
	case <-k.stop:
		return true
	default:
		return false
	}
}

// takeLive collects a batch from held then the queue, lingering up to
// batch_timeout for it to fill unless spooling or stopping.
func (k *kafkaSink) takeLive(held *[]kafkaRecord) []kafkaRecord {
	n := min(len(*held), k.cfg.BatchSize)
	recs := slices.Clone((*held)[:n])
	*held = (*held)[n:]
	if len(*held) > 0 {
		return recs
	}
	*held = nil
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for len(recs) < k.cfg.BatchSize {
		select {
		case r := <-k.queue:
			recs = append(recs, r)
			continue
		default:
		}
		if len(recs) == 0 || k.spooling.Load() || k.stopping() {
			break
		}
		if timer == nil {
			timer = time.NewTimer(k.cfg.BatchTimeout)
		}
		select {
		case r := <-k.queue:
			recs = append(recs, r)
			continue
		case <-timer.C:
		case <-k.stop:
		}
		break
	}
	return recs
}

// spoolFront puts a failed live batch and everything still queued at the
// front of the spool, in order, and switches intake to the spool.
func (k *kafkaSink) spoolFront(recs []kafkaRecord) {
	recs = append(recs, k.takeQueue()...)
	if _, err := k.writes.Prepend(encodeAll(recs)...); err != nil {
		k.ready.Store(false)
		for _, r := range recs {
			k.drop(r.topic, "spool_error", 1)
		}
		k.log.Error("cannot spool undelivered alerts, dropped", "count", len(recs), "error", err)
		return
	}
	k.ready.Store(true)
	k.countSpooled(recs)
	k.gauges()
}

// replay sends the next batch from the spool and commits it on success.
func (k *kafkaSink) replay() error {
	raw, cur, err := k.spool.Peek(k.cfg.BatchSize, int(k.cfg.BatchBytes/2))
	if err != nil {
		return err
	}
	if d, ok := cur.Damage(); ok {
		// Damaged on disk since start-up; Commit skips it.
		k.m.dropped.WithLabelValues("kafka", "", "spool_corrupt").Add(float64(d.Records))
		k.log.Error("corrupt spool record skipped, replay resumes at the next good one",
			"file", d.File, "offset", d.Offset, "bytes", d.Bytes, "alerts", d.Records, "reason", d.Reason)
	}
	recs := make([]kafkaRecord, 0, len(raw))
	for _, b := range raw {
		r, err := decodeRecord(b)
		if err != nil {
			k.drop("", "corrupt", 1)
			continue
		}
		recs = append(recs, r)
	}
	if len(recs) > 0 {
		if err := k.send(recs, true); err != nil {
			return err
		}
	}
	if err := k.spool.Commit(cur); err != nil {
		return err
	}
	k.gauges()
	return nil
}

// send writes one batch from the spool and waits for the acknowledgements.
func (k *kafkaSink) send(recs []kafkaRecord, replayed bool) error {
	start := time.Now()
	return k.finish(recs, start, <-k.write(recs), replayed)
}

// sendLive writes one batch taken from the queue. Should it still be
// unacknowledged spool_after after its oldest alert was taken, the batch and
// everything queued behind it are put in the spool while the write goes on
// (spilled); once it succeeds, the batch's spool copy is committed away.
// kept returns queued alerts a failed spill took out of the queue; cur
// covers the batch's spool copy.
func (k *kafkaSink) sendLive(recs []kafkaRecord) (spilled bool, cur spool.Cursor, kept []kafkaRecord, err error) {
	start := time.Now()
	res := k.write(recs)
	timer := time.NewTimer(time.Until(recs[0].at.Add(k.cfg.SpoolAfter)))
	defer timer.Stop()
	select {
	case err = <-res:
	case <-timer.C:
		cur, kept, spilled = k.spill(recs)
		err = <-res
	}
	err = k.finish(recs, start, err, false)
	if err == nil && spilled {
		if cerr := k.spool.Commit(cur); cerr != nil && !k.stopping() {
			// The copy stays: delivered twice, never lost.
			k.log.Warn("cannot remove delivered alerts from the spool", "error", cerr)
		}
		k.gauges()
	}
	return spilled, cur, kept, err
}

// write starts one write (creating the topics first when needed) in its own
// goroutine, so that the drainer can spill while the brokers hang. The
// drainer touches the Writer only once the result is in.
func (k *kafkaSink) write(recs []kafkaRecord) <-chan error {
	msgs := make([]kafka.Message, len(recs))
	for i, r := range recs {
		msgs[i] = kafka.Message{
			Topic: r.topic,
			Key:   []byte(r.key),
			Value: r.value,
			Headers: []kafka.Header{
				{Key: "schema", Value: []byte(r.schema)},
				{Key: "check", Value: []byte(r.check)},
			},
		}
	}
	res := make(chan error, 1)
	go func() {
		if k.needTopics {
			k.createTopics()
		}
		res <- k.writer.WriteMessages(k.hardCtx, msgs...)
	}()
	return res
}

// spill writes a live batch still in flight, and the queue behind it, to
// the front of the spool, and switches intake to the spool. The queued
// alerts go first (the batch is then prepended before them); if they cannot
// be written they are returned, to be sent or spooled later, and the batch
// stays in memory only too, so that order holds.
func (k *kafkaSink) spill(recs []kafkaRecord) (spool.Cursor, []kafkaRecord, bool) {
	queued := k.takeQueue()
	if len(queued) > 0 {
		if _, err := k.writes.Prepend(encodeAll(queued)...); err != nil {
			k.spillFailed(err)
			return spool.Cursor{}, queued, false
		}
		k.countSpooled(queued)
	}
	cur, err := k.writes.Prepend(encodeAll(recs)...)
	if err != nil {
		k.spillFailed(err)
		return spool.Cursor{}, nil, false
	}
	k.ready.Store(true)
	k.countSpooled(recs)
	k.gauges()
	k.logs.Log(slog.LevelWarn, logKey{event: "spill"}, "kafka write unacknowledged after spool_after, alerts spooled meanwhile",
		"spool_after", k.cfg.SpoolAfter, "alerts", len(recs)+len(queued))
	return cur, nil, true
}

// takeQueue switches intake to the spool and empties the queue, under k.mu
// so that no alert enters the queue behind the ones taken. The caller puts
// them at the spool's front without the lock: a publisher never waits for
// that write, and what publishers add meanwhile goes to the spool's tail,
// behind them, through the tail writer.
func (k *kafkaSink) takeQueue() []kafkaRecord {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.spooling.Store(true)
	var queued []kafkaRecord
	for {
		select {
		case r := <-k.queue:
			queued = append(queued, r)
			continue
		default:
		}
		return queued
	}
}

func (k *kafkaSink) spillFailed(err error) {
	k.ready.Store(false)
	k.logs.Log(slog.LevelError, logKey{event: "spool-error"}, "cannot spool alerts of a slow write, kept in memory", "error", err)
}

// countSpooled counts alerts written to the spool.
func (k *kafkaSink) countSpooled(recs []kafkaRecord) {
	countByTopic(k.m.spooled, recs)
	k.spooledTotal.Add(uint64(len(recs)))
}

func encodeAll(recs []kafkaRecord) [][]byte {
	enc := make([][]byte, len(recs))
	for i := range recs {
		enc[i] = recs[i].encode()
	}
	return enc
}

// finish accounts for a write's outcome. A failure replaces the Writer;
// a success makes the sink ready again, whatever failed before.
func (k *kafkaSink) finish(recs []kafkaRecord, start time.Time, err error, replayed bool) error {
	if err != nil {
		kind := kafkaconn.ErrorKind(err)
		k.m.errors.WithLabelValues("kafka", kind).Inc()
		if !k.lost(kind, err) {
			k.logs.Log(slog.LevelWarn, logKey{"write", kind}, "kafka write failed, alerts kept in the spool", "kind", kind, "error", err,
				"alerts", len(recs))
		}
		// Start over with a fresh Writer (fresh metadata, connections);
		// the old one finishes its in-flight attempts in the background.
		old := k.writer
		k.writerGroup.Go(func() { _ = old.Close() })
		k.writer = k.newWriter()
		k.needTopics = k.cfg.CreateTopics.Enabled
		return err
	}
	k.ready.Store(true)
	k.up("write")
	k.m.latency.WithLabelValues("kafka").Observe(time.Since(start).Seconds())
	countByTopic(k.m.delivered, recs)
	if replayed {
		countByTopic(k.m.replayed, recs)
	}
	return nil
}

// createTopics creates the default and routed topics, ignoring those that
// exist. Failures are logged: the Writer's auto-creation may still work.
func (k *kafkaSink) createTopics() {
	var topics []kafka.TopicConfig
	for _, t := range k.cfg.topics() {
		topics = append(topics, kafka.TopicConfig{
			Topic:             t,
			NumPartitions:     k.cfg.CreateTopics.Partitions,
			ReplicationFactor: k.cfg.CreateTopics.ReplicationFactor,
		})
	}
	ctx, cancel := context.WithTimeout(k.hardCtx, k.cfg.WriteTimeout)
	defer cancel()
	client := &kafka.Client{Addr: k.writer.Addr, Transport: k.writer.Transport}
	resp, err := client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: topics})
	if err != nil {
		// Most likely the broker is down; the write will tell.
		return
	}
	k.needTopics = false
	for topic, err := range resp.Errors {
		if err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
			k.log.Warn("cannot create topic", "topic", topic, "error", err)
		}
	}
}

// countByTopic adds each record to its topic's counter.
func countByTopic(vec *prometheus.CounterVec, recs []kafkaRecord) {
	i := 0
	for i < len(recs) {
		j := i + 1
		for j < len(recs) && recs[j].topic == recs[i].topic {
			j++
		}
		vec.WithLabelValues("kafka", recs[i].topic).Add(float64(j - i))
		i = j
	}
}

// Stop stops intake and lets the drainer deliver what is in memory until
// ctx ends; then in-flight sends are cancelled and their alerts spooled.
// What the tail writer was given is written to the spool as well.
func (k *kafkaSink) Stop(ctx context.Context) error {
	var err error
	k.closeOnce.Do(func() {
		k.mu.Lock()
		k.closed = true
		k.mu.Unlock()
		close(k.stop)
		k.probeCancel()
		// No sender is left after closed (each waits intake_wait at most).
		k.senders.Wait()
		close(k.intake)
		if k.started.Load() {
			<-k.probeDone
			select {
			case <-k.done:
			case <-ctx.Done():
				k.hardStop()
				<-k.done
			}
			k.hardStop()
			closed := make(chan struct{})
			w := k.writer
			go func() {
				_ = w.Close()
				k.writerGroup.Wait()
				close(closed)
			}()
			select {
			case <-closed:
			case <-time.After(time.Second):
				// Writers stuck on a dead broker finish on their own.
			}
			<-k.tailDone
		} else {
			// Never started: keep what was queued and given to the
			// tail writer.
			k.spoolFront(nil)
			k.writeTail()
		}
		k.gauges()
		if n := k.spool.Len(); n > 0 {
			k.log.Info("alerts left in the spool for the next start", "alerts", n)
		}
		err = k.spool.Close()
		k.ready.Store(false)
	})
	return err
}
