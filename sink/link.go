package sink

import (
	"context"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/flowcheck/flowcheck/internal/kafkaconn"
)

// link tells the operator when the brokers are reached, lost and back: one
// line for each change, whoever notices it (a write, or the probe at start).
// The failures in between are the rate-limited "kafka write failed" lines.
type link struct {
	mu      sync.Mutex
	reached bool      // the brokers answered once
	down    time.Time // since when they do not; zero while they do
	// spooledAtDown is spooledTotal when the brokers were lost.
	spooledAtDown uint64
}

// up records that the brokers answered (a write acknowledged, or metadata).
func (k *kafkaSink) up(via string) {
	k.link.mu.Lock()
	reached, down, spooledAtDown := k.link.reached, k.link.down, k.link.spooledAtDown
	k.link.reached, k.link.down = true, time.Time{}
	k.link.mu.Unlock()
	if reached && down.IsZero() {
		return
	}
	msg := "kafka back"
	if !reached {
		msg = "kafka connected"
	}
	args := []any{"brokers", k.cfg.Brokers, "via", via}
	if !down.IsZero() {
		args = append(args, "down_for", k.clock.Now().Sub(down).Round(time.Millisecond),
			"spooled", k.spooledTotal.Load()-spooledAtDown)
	}
	k.log.Info(msg, args...)
}

// lost records that the brokers did not answer, and tells whether this
// began an outage (then it was logged).
func (k *kafkaSink) lost(kind string, err error) bool {
	k.link.mu.Lock()
	if !k.link.down.IsZero() {
		k.link.mu.Unlock()
		return false
	}
	k.link.down, k.link.spooledAtDown = k.clock.Now(), k.spooledTotal.Load()
	k.link.mu.Unlock()
	k.log.Warn("kafka unreachable: alerts are spooled until it is back", "brokers", k.cfg.Brokers, "kind", kind, "error", err)
	return true
}

// probe asks the brokers for metadata at start, and again with backoff
// until they answer or a write gets through, so that the log tells at once
// whether Kafka is reachable, not at the first alert.
func (k *kafkaSink) probe(ctx context.Context) {
	defer close(k.probeDone)
	transport := k.newTransport()
	defer transport.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(k.cfg.Brokers...), Transport: transport}
	backoff := k.cfg.RetryBackoffMin
	for {
		k.link.mu.Lock()
		reached := k.link.reached && k.link.down.IsZero()
		k.link.mu.Unlock()
		if reached {
			return
		}
		actx, cancel := context.WithTimeout(ctx, k.cfg.WriteTimeout)
		_, err := client.Metadata(actx, &kafka.MetadataRequest{Topics: []string{k.cfg.Topic}})
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			k.up("metadata")
			return
		}
		k.lost(kafkaconn.ErrorKind(err), err)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
		backoff = min(2*backoff, k.cfg.RetryBackoffMax)
	}
}
