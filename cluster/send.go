package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/flowcheck/flowcheck/internal/kafkaconn"
)

// senders is how many writes are in flight at most: one sender waiting for
// its acknowledgements held one ingest to ~0.8 M records/s.
const senders = 4

// maxWrite bounds the messages of one write: enough to keep every
// partition busy, little enough that a retry resends little.
const maxWrite = 64

// partitionCountError is a flows topic whose partition count differs from
// cluster.partitions: hosts would be published to partitions the check
// workers do not expect.
type partitionCountError struct {
	topic      string
	have, want int
}

func (e *partitionCountError) Error() string {
	return fmt.Sprintf("flows topic %s has %d partitions, cluster.partitions says %d: a host's partition depends on the count, so set cluster.partitions to %d or use another topic",
		e.topic, e.have, e.want, e.have)
}

// ensureTopic checks that the flows topic has cluster.partitions
// partitions, creating it when it is missing.
func (p *Publisher) ensureTopic(ctx context.Context, transport *kafka.Transport) error {
	err := ensureTopic(ctx, p.cfg, transport, p.deps.Logger)
	if err == nil {
		p.topicOK.Store(true)
	}
	return err
}

// ensureTopic checks that cfg's flows topic has cfg.Partitions
// partitions, creating it when it is missing: the ingest role's publisher
// and the check role's consumer, whichever starts first.
func ensureTopic(ctx context.Context, cfg Configuration, transport *kafka.Transport, logger *slog.Logger) error {
	defer transport.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(cfg.Brokers...), Transport: transport}
	for attempt := 0; ; attempt++ {
		resp, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{cfg.FlowsTopic}})
		if err != nil {
			return err
		}
		if len(resp.Topics) != 1 {
			return fmt.Errorf("metadata of %s: %d topics in the answer", cfg.FlowsTopic, len(resp.Topics))
		}
		t := resp.Topics[0]
		switch {
		case t.Error == nil && len(t.Partitions) == cfg.Partitions:
			return nil
		case t.Error == nil:
			return &partitionCountError{topic: cfg.FlowsTopic, have: len(t.Partitions), want: cfg.Partitions}
		case !errors.Is(t.Error, kafka.UnknownTopicOrPartition) || attempt > 0:
			return t.Error
		}
		cr, err := client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
			Topic: cfg.FlowsTopic, NumPartitions: cfg.Partitions, ReplicationFactor: cfg.ReplicationFactor,
		}}})
		if err != nil {
			return err
		}
		if err := cr.Errors[cfg.FlowsTopic]; err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
			return err
		}
		logger.Info("flows topic created", "topic", cfg.FlowsTopic, "partitions", cfg.Partitions)
		// Read it back: another process may have created it first,
		// with another count.
	}
}

// send is sender i, which has the partitions p with p % senders == i: it
// writes their sealed batches in order, as many at a time as are ready,
// and retries what failed with backoff until it is delivered or Stop's
// deadline passes. Per partition, batches reach the topic in the order
// they were sealed, retries included; the senders, each with its own
// writer and connections, keep several writes in flight.
func (p *Publisher) send(i int) {
	writer := p.newWriter()
	// A Writer's Close waits for the writes in flight, which a hung
	// broker or Stop's deadline may have left: close in the background.
	defer func() { go closeWriter(writer) }()
	backoff := p.cfg.Publish.RetryBackoffMin
	var pending []*sealedBatch
	open := true
	for open || len(pending) > 0 {
		if len(pending) == 0 {
			s, ok := p.next(i)
			if !ok {
				break
			}
			pending = append(pending, s)
		}
		for open && len(pending) < maxWrite {
			select {
			case s, ok := <-p.sealed[i]:
				if ok {
					pending = append(pending, s)
					continue
				}
				open = false
			default:
			}
			break
		}
		if p.hardCtx.Err() != nil {
			p.abandon(pending)
			pending = nil
			continue
		}
		failed, err := p.write(writer, pending)
		if err == nil {
			backoff = p.cfg.Publish.RetryBackoffMin
			pending = pending[:0]
			continue
		}
		pending = failed
		// Start again with fresh metadata and connections: a broker
		// that came back may have lost the topic.
		go closeWriter(writer)
		writer = p.newWriter()
		p.topicOK.Store(false)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-p.hardCtx.Done():
			t.Stop()
		}
		backoff = min(2*backoff, p.cfg.Publish.RetryBackoffMax)
		if len(pending) > 0 && p.hardCtx.Err() == nil {
			p.m.retries.Inc()
		}
	}
}

// next waits for the next sealed batch; false once Stop closed the queue.
// While nothing comes for retry_backoff_max, it asks the brokers for the
// topic's metadata, so that readiness follows an outage (and a broker that
// came back without the topic gets it again) even when no record flows.
func (p *Publisher) next(i int) (*sealedBatch, bool) {
	t := time.NewTimer(p.cfg.Publish.RetryBackoffMax)
	defer t.Stop()
	for {
		select {
		case s, ok := <-p.sealed[i]:
			return s, ok
		case <-t.C:
		}
		if i > 0 {
			// One sender asks for all.
			t.Reset(p.cfg.Publish.RetryBackoffMax)
			continue
		}
		ctx, cancel := context.WithTimeout(p.hardCtx, p.cfg.Publish.WriteTimeout)
		err := p.ensureTopic(ctx, p.sec.Transport(p.cfg.ClientID, p.cfg.Publish.WriteTimeout))
		cancel()
		switch {
		case err == nil:
			p.up()
		case !p.down.Swap(true):
			p.topicOK.Store(false)
			p.deps.Logger.Warn("flows topic unreachable: records will be buffered, then dropped, until it answers",
				"topic", p.cfg.FlowsTopic, "kind", errorKind(err), "error", err)
		}
		t.Reset(p.cfg.Publish.RetryBackoffMax)
	}
}

func closeWriter(w *kafka.Writer) { _ = w.Close() }

// write sends the batches and returns those that failed. Acknowledged
// batches are counted and recycled.
func (p *Publisher) write(writer *kafka.Writer, batches []*sealedBatch) ([]*sealedBatch, error) {
	if !p.topicOK.Load() {
		ctx, cancel := context.WithTimeout(p.hardCtx, p.cfg.Publish.WriteTimeout)
		err := p.ensureTopic(ctx, p.sec.Transport(p.cfg.ClientID, p.cfg.Publish.WriteTimeout))
		cancel()
		if err != nil {
			p.failed(err, batches)
			return batches, err
		}
	}
	msgs := make([]kafka.Message, len(batches))
	for i, s := range batches {
		msgs[i] = kafka.Message{Partition: s.partition, Value: s.batch.Bytes(), Time: s.at}
	}
	err := writer.WriteMessages(p.hardCtx, msgs...)
	var werrs kafka.WriteErrors
	if err != nil && !errors.As(err, &werrs) {
		// The whole write failed (or Stop's deadline cut it short:
		// the Writer may still read the buffers, which are left to
		// the garbage collector).
		p.failed(err, batches)
		return batches, err
	}
	var failed []*sealedBatch
	for i, s := range batches {
		if werrs != nil && werrs[i] != nil {
			failed = append(failed, s)
			continue
		}
		p.m.records.Add(float64(s.batch.Len()))
		p.m.bytes.Add(float64(s.batch.Size()))
		p.m.messages.Inc()
		p.acked.Add(uint64(s.batch.Len()))
		p.recycle(s.batch)
	}
	if len(failed) > 0 {
		p.failed(err, failed)
		return failed, err
	}
	p.up()
	return nil, nil
}

// up records that the brokers answered, and says so after an outage.
func (p *Publisher) up() {
	if p.down.Swap(false) {
		p.deps.Logger.Info("flows topic reachable again", "topic", p.cfg.FlowsTopic, "dropped_so_far", p.dropped.Load())
	}
}

// errorKind names an error for the errors metric and the logs.
func errorKind(err error) string {
	if errors.As(err, new(*partitionCountError)) {
		return "partition_count"
	}
	return kafkaconn.ErrorKind(err)
}

// failed accounts for a failed write.
func (p *Publisher) failed(err error, batches []*sealedBatch) {
	kind := errorKind(err)
	p.m.errors.WithLabelValues(kind).Inc()
	if !p.down.Swap(true) {
		p.deps.Logger.Warn("cannot publish to the flows topic: records are buffered, then dropped, until it answers",
			"topic", p.cfg.FlowsTopic, "kind", kind, "error", err)
		return
	}
	records := 0
	for _, s := range batches {
		records += s.batch.Len()
	}
	p.logs.Log(slog.LevelWarn, "write:"+kind, "flows topic still unreachable", "kind", kind, "error", err,
		"waiting_records", records, "buffer_bytes", len(p.tokens)*p.cfg.Publish.FlushBytes)
}

// abandon drops batches Stop's deadline left unacknowledged; their
// buffers are left to the garbage collector (a cancelled write may still
// read them).
func (p *Publisher) abandon(batches []*sealedBatch) {
	n := 0
	for _, s := range batches {
		n += s.batch.Len()
		p.release()
	}
	if n > 0 {
		p.drop(dropUnacknowledged, n)
	}
}
