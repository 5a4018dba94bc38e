package sink

import (
	"errors"
	"log/slog"
	"time"

	"github.com/flowcheck/flowcheck/sink/spool"
)

// While the Kafka sink is spooling, Enqueue hands each alert to a bounded
// intake and one goroutine, the tail writer, appends what has accumulated
// there to the spool's tail in one call: Publish (a scripting tick worker)
// never writes or fsyncs, and under fsync: always a batch costs one fsync
// instead of one per alert. The intake is FIFO and only the tail writer
// appends, so the spool keeps publication order; the drainer still prepends
// older in-memory alerts (spoolFront, spill) in front of everything.

// The tail writer appends at most this much in one call, so that a long
// backlog reaches the spool (and the drainer) in steps.
const (
	tailBatchRecords = 1024
	tailBatchBytes   = 1 << 20
)

// spoolWriter is the spool's writing half: Append for the tail writer,
// Prepend for the drainer. Tests wrap it to hold or count the writes.
type spoolWriter interface {
	Append(recs ...[]byte) (written, dropped int, err error)
	Prepend(recs ...[]byte) (spool.Cursor, error)
}

// toTail hands rec to the tail writer (k.mu held, released on return).
// When the intake is full, the publisher waits at most intake_wait for room
// outside the lock, and once a wait timed out the next alerts are dropped
// at once until the writer completes an append: a hung disk costs the tick
// one wait, not one per alert.
func (k *kafkaSink) toTail(rec kafkaRecord) {
	k.unwritten.Add(1)
	select {
	case k.intake <- rec:
		k.mu.Unlock()
		return
	default:
	}
	// Stop waits for these senders before it closes the intake.
	k.senders.Add(1)
	k.mu.Unlock()
	defer k.senders.Done()
	if !k.stalled.Load() {
		k.m.spoolWaits.WithLabelValues("kafka").Inc()
		t := time.NewTimer(k.cfg.Spool.IntakeWait)
		defer t.Stop()
		select {
		case k.intake <- rec:
			return
		case <-t.C:
			k.stalled.Store(true)
		}
	}
	k.unwritten.Add(-1)
	k.ready.Store(false)
	k.drop(rec.topic, "spool_slow", 1)
	k.poke() // the drainer may be waiting for the intake to empty
}

// writeTail is the tail writer. It returns once the intake is closed (by
// Stop, after the last sender) and written.
func (k *kafkaSink) writeTail() {
	defer close(k.tailDone)
	batch := make([]kafkaRecord, 0, tailBatchRecords)
	for rec := range k.intake {
		batch = append(batch[:0], rec)
		size := len(rec.value)
	more:
		for len(batch) < tailBatchRecords && size < tailBatchBytes {
			select {
			case r, ok := <-k.intake:
				if !ok {
					break more
				}
				batch = append(batch, r)
				size += len(r.value)
			default:
				break more
			}
		}
		k.appendSpool(batch)
		k.unwritten.Add(-int64(len(batch)))
		k.stalled.Store(false)
		k.poke()
	}
}

// appendSpool writes records at the spool's tail, in order, and accounts
// for each: spooled, or dropped with the reason. A record too large for a
// segment costs itself only.
func (k *kafkaSink) appendSpool(recs []kafkaRecord) {
	enc := encodeAll(recs)
	for len(recs) > 0 {
		written, dropped, err := k.writes.Append(enc...)
		k.spoolDrops(dropped)
		k.countSpooled(recs[:written])
		recs, enc = recs[written:], enc[written:]
		if err == nil {
			k.ready.Store(true)
			break
		}
		n := len(recs)
		if errors.Is(err, spool.ErrRecordTooLarge) {
			n = 1
		}
		k.ready.Store(false)
		for _, r := range recs[:n] {
			k.drop(r.topic, "spool_error", 1)
		}
		k.logs.Log(slog.LevelError, logKey{event: "spool-error"}, "spool write failed", "dropped", n, "error", err)
		recs, enc = recs[n:], enc[n:]
	}
	k.gauges()
}

// poke wakes the drainer, which may be waiting for the spool to fill or
// the intake to empty.
func (k *kafkaSink) poke() {
	select {
	case k.wake <- struct{}{}:
	default:
	}
}
