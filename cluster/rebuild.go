package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/flowcheck/flowcheck/aggregate"

	"github.com/flowcheck/flowcheck/flow"
	"github.com/flowcheck/flowcheck/internal/kafkaconn"
)

// consume reads partition id for one generation, until ctx ends (the
// partition is revoked, or the worker stops). A partition new to this
// worker is rebuilt first: read from the first offset at or after now −
// rebuild_window up to the end it had when assigned, its records applied
// as live ones but alerts held (Holding), the engaged alerts of its last
// checkpoint adopted at the end. A partition kept from the previous
// generation continues where it was, from this worker's own offset (what
// it applied), not the committed one, which may lag. Offsets are committed
// only after their records are applied.
func (c *Consumer) consume(ctx context.Context, gen *kafka.Generation, id int, st *partState) {
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: c.cfg.Brokers, Topic: c.cfg.FlowsTopic, Partition: id,
		Dialer:   c.sec.Dialer(c.cfg.ClientID, 10*time.Second),
		MinBytes: 1, MaxBytes: 8 << 20, MaxWait: 250 * time.Millisecond,
		Logger: kafka.LoggerFunc(func(string, ...any) {}),
		// The Reader retries on its own; an idle partition's fetch
		// times out now and then. What FetchMessage returns is counted
		// and logged below.
		ErrorLogger: kafka.LoggerFunc(func(msg string, args ...any) {
			c.deps.Logger.Debug("flows topic reader", "partition", id, "error", fmt.Sprintf(msg, args...))
		}),
	})
	defer r.Close()
	if st.next < 0 {
		if !c.startRebuild(ctx, r, id, st) {
			return
		}
	} else if err := r.SetOffset(st.next); err != nil {
		c.logs.Log(slog.LevelError, "offset", "cannot resume a partition", "partition", id, "error", err)
		return
	}
	if !st.live && st.next >= st.rebuildEnd {
		c.rebuilt(id, st)
	}
	var dec Decoder
	var g2 goflow2Decoder
	var g2recs []flow.Record
	committed, lastCommit := st.next, time.Now()
	commit := func() {
		if st.next <= committed {
			return
		}
		if err := gen.CommitOffsets(map[string]map[int]int64{c.cfg.FlowsTopic: {id: st.next}}); err != nil {
			c.m.groupErrors.WithLabelValues(kafkaconn.ErrorKind(err)).Inc()
			c.logs.Log(slog.LevelWarn, "commit", "cannot commit offsets", "partition", id, "error", err)
			return
		}
		committed, lastCommit = st.next, time.Now()
	}
	label := partitionLabel(id)
	for {
		m, err := r.FetchMessage(ctx)
		// A message fetched before the revocation may come after it:
		// the partition is no longer this worker's to apply.
		if ctx.Err() != nil {
			break
		}
		if err != nil {
			c.m.groupErrors.WithLabelValues(kafkaconn.ErrorKind(err)).Inc()
			c.logs.Log(slog.LevelWarn, "fetch", "cannot read the flows topic", "partition", id, "error", err)
			continue
		}
		c.m.messages.Inc()
		c.m.bytes.Add(float64(len(m.Value)))
		switch {
		case isCheckpoint(&m):
			// Another worker's handover; only a rebuild reads it.
			if !st.live {
				st.checkpoint = c.readCheckpoint(id, &m)
			}
		case c.cfg.InputFormat == FormatGoflow2:
			g2recs, err = g2.decode(m.Value, g2recs[:0])
			c.apply(id, st, g2recs, err)
		default:
			recs, err := dec.Decode(m.Value)
			// A loss on ingest may have taken the replies of the
			// records applied now: the table withholds their
			// one-sided verdicts (ingest's time is not this clock's).
			for _, l := range dec.Losses() {
				if err == nil {
					c.deps.Table.IngestLost(c.deps.Clock.Now(), l.Lost, l.Received)
				}
			}
			c.apply(id, st, recs, err)
		}
		st.next = m.Offset + 1
		c.m.lag.WithLabelValues(label).Set(float64(max(m.HighWaterMark-st.next, 0)))
		if !st.live && st.next >= st.rebuildEnd {
			c.rebuilt(id, st)
		}
		if time.Since(lastCommit) >= commitEvery {
			commit()
		}
	}
	commit()
	if st.live {
		// The last word of this worker on the partition, before the
		// group may give it to another: its engaged alerts.
		wctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c.writeCheckpoints(wctx, []int{id})
		cancel()
	}
	c.assigned.Store(false)
}

// startRebuild places a new partition's reader at now − rebuild_window and
// notes the partition's end; false when ctx ended first.
func (c *Consumer) startRebuild(ctx context.Context, r *kafka.Reader, id int, st *partState) bool {
	from := c.deps.Clock.Now().Add(-c.cfg.RebuildWindow)
	for {
		end, err := c.lastOffset(ctx, id)
		if err == nil {
			st.rebuildEnd = end
			err = r.SetOffsetAt(ctx, from)
		}
		if err == nil {
			st.next = r.Offset()
			if st.next < 0 || st.next > end {
				// No message since from: nothing to rebuild.
				st.next = end
				err = r.SetOffset(end)
			}
		}
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return false
		}
		c.m.groupErrors.WithLabelValues(kafkaconn.ErrorKind(err)).Inc()
		c.logs.Log(slog.LevelWarn, "rebuild", "cannot find where to rebuild a partition from", "partition", id, "error", err)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(time.Second):
		}
	}
	st.rebuildStart = time.Now()
	st.records = 0
	c.deps.Logger.Info("rebuild started", "partition", id, "from", from.UTC().Format(time.RFC3339),
		"offsets", st.rebuildEnd-st.next, "first", st.next, "end", st.rebuildEnd)
	return true
}

// lastOffset is the offset the next message of partition id will have.
func (c *Consumer) lastOffset(ctx context.Context, id int) (int64, error) {
	client := &kafka.Client{Addr: kafka.TCP(c.cfg.Brokers...), Transport: c.sec.Transport(c.cfg.ClientID, 10*time.Second)}
	resp, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{
		Topics: map[string][]kafka.OffsetRequest{c.cfg.FlowsTopic: {kafka.LastOffsetOf(id)}},
	})
	if err != nil {
		return 0, err
	}
	for _, p := range resp.Topics[c.cfg.FlowsTopic] {
		if p.Partition == id {
			return p.LastOffset, p.Error
		}
	}
	return 0, errors.New("no offset in the answer")
}

// rebuilt makes a partition live: the alerts of its last checkpoint are
// adopted, and the alerts are no longer held once no partition rebuilds.
func (c *Consumer) rebuilt(id int, st *partState) {
	adopted := 0
	if len(st.checkpoint) > 0 {
		adopted = c.deps.Engine.Adopt(st.checkpoint)
		st.checkpoint = nil
	}
	// The rebuilt conversations are decided within a reply window; until
	// then, and for their first runs, the checks must not take the
	// rebuilt hosts' figures for news.
	c.settled.Store(c.deps.Clock.Now().Add(c.deps.ReplyWindow + time.Second).UnixNano())
	c.mu.Lock() // Checkpoint reads live
	st.live = true
	c.rebuiltParts = append(c.rebuiltParts, id)
	left := c.rebuilding.Add(-1)
	var quiet []int
	if left == 0 {
		// One walk over the table for the partitions rebuilt together
		// (the checks wait for the last of them anyway).
		quiet, c.rebuiltParts = c.rebuiltParts, nil
	}
	c.mu.Unlock()
	if len(quiet) > 0 {
		var keys []aggregate.HostKey
		for _, k := range c.deps.Table.AppendKeys(nil) {
			if c.cfg.InputFormat != FormatFlowcheck || slices.Contains(quiet, PartitionOf(k.Addr, k.VLAN, c.partitions)) {
				keys = append(keys, k)
			}
		}
		c.deps.Engine.Quiet(keys)
	}
	took := time.Since(st.rebuildStart)
	c.m.rebuilds.Inc()
	c.m.rebuildSeconds.Observe(took.Seconds())
	c.m.rebuilding.Set(float64(left))
	c.deps.Logger.Info("rebuild done", "partition", id, "records", st.records, "duration", took, "alerts_adopted", adopted)
}

// apply hands a message's records to the table, or counts and logs a
// message that cannot be decoded (skipped).
func (c *Consumer) apply(id int, st *partState, recs []flow.Record, err error) {
	if err != nil {
		kind := "corrupt"
		if errors.Is(err, ErrVersion) {
			kind = "version"
		}
		c.m.decodeErrors.WithLabelValues(kind).Inc()
		c.logs.Log(slog.LevelWarn, "decode:"+kind, "skipping a message of the flows topic", "partition", id,
			"input_format", c.cfg.InputFormat, "error", err)
		return
	}
	c.deps.Table.Apply(recs)
	c.m.records.Add(float64(len(recs)))
	if !st.live {
		st.records += uint64(len(recs))
	}
}

// partitionLabel is a partition's metric label.
func partitionLabel(id int) string { return strconv.Itoa(id) }
