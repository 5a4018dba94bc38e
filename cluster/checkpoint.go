package cluster

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/netip"
	"slices"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/flowcheck/flowcheck/alert"
	"github.com/flowcheck/flowcheck/internal/kafkaconn"
)

// A checkpoint is how an engagement survives a handover with its id: after
// every check tick, and when it loses a partition, a check worker writes to
// each partition it owns the engaged alerts of that partition's hosts, as
// a message of the flows topic with header kindHeader = kindAlerts (the
// ingest's FlowBatches have none). The next owner, rebuilding the
// partition, adopts the alerts of the last checkpoint it read: it
// continues them (same id, first seen, value) and releases them when they
// end, instead of engaging them anew. Live readers skip checkpoints.
const (
	kindHeader = "flowcheck-kind"
	kindAlerts = "alerts"
	// checkpointVersion is checkpointValue.Version.
	checkpointVersion = 1
)

// checkpointValue is a checkpoint's JSON value: alert.Event is the alert
// schema of docs/alerts.md, engaged events only.
type checkpointValue struct {
	Version int           `json:"version"`
	Written time.Time     `json:"written"`
	Alerts  []alert.Event `json:"alerts"`
}

// isCheckpoint tells whether a message is a checkpoint.
func isCheckpoint(m *kafka.Message) bool {
	for _, h := range m.Headers {
		if h.Key == kindHeader {
			return string(h.Value) == kindAlerts
		}
	}
	return false
}

// readCheckpoint decodes a checkpoint of partition id; nil when it cannot
// (counted as a decode error and logged).
func (c *Consumer) readCheckpoint(id int, m *kafka.Message) []alert.Event {
	var v checkpointValue
	if err := json.Unmarshal(m.Value, &v); err != nil || v.Version != checkpointVersion {
		c.m.decodeErrors.WithLabelValues("checkpoint").Inc()
		c.logs.Log(slog.LevelWarn, "decode:checkpoint", "skipping an alert checkpoint", "partition", id,
			"version", v.Version, "error", err)
		return nil
	}
	return v.Alerts
}

// Checkpoint writes the checkpoints of the live partitions: main calls it
// after every check tick, so that an alert engaged by a tick is in its
// partition's checkpoint a few milliseconds later, before the sinks have
// usually delivered it (a worker killed in between leaves it to be engaged
// anew, under another id, by the next owner). It does nothing between
// generations or with input_format goflow2.
func (c *Consumer) Checkpoint(ctx context.Context) {
	if c.writer == nil || !c.assigned.Load() {
		return
	}
	c.mu.Lock()
	var live []int
	for id, st := range c.owned {
		if st.live {
			live = append(live, id)
		}
	}
	c.mu.Unlock()
	c.writeCheckpoints(ctx, live)
}

// writeCheckpoints writes one checkpoint to each of the partitions ids:
// the engaged alerts of its hosts, none when it has none (so that the last
// checkpoint tells released alerts too).
func (c *Consumer) writeCheckpoints(ctx context.Context, ids []int) {
	if c.writer == nil || len(ids) == 0 {
		return
	}
	byPart := map[int][]alert.Event{}
	for _, ev := range c.deps.Engine.Engaged() {
		addr, err := netip.ParseAddr(ev.Host.IP)
		if err != nil {
			continue
		}
		p := PartitionOf(addr, ev.Host.VLAN, c.partitions)
		byPart[p] = append(byPart[p], ev)
	}
	slices.Sort(ids)
	now := c.deps.Clock.Now().UTC()
	msgs := make([]kafka.Message, 0, len(ids))
	for _, id := range ids {
		v, err := json.Marshal(checkpointValue{Version: checkpointVersion, Written: now, Alerts: byPart[id]})
		if err != nil {
			continue
		}
		msgs = append(msgs, kafka.Message{Partition: id, Value: v,
			Headers: []kafka.Header{{Key: kindHeader, Value: []byte(kindAlerts)}}})
	}
	if err := c.writer.WriteMessages(ctx, msgs...); err != nil {
		if ctx.Err() != nil {
			return // stopping: Stop's hand-over writes the last ones
		}
		c.m.checkpointErrors.WithLabelValues(kafkaconn.ErrorKind(err)).Inc()
		c.logs.Log(slog.LevelWarn, "checkpoint", "cannot write the alert checkpoints", "partitions", ids, "error", err)
		return
	}
	c.m.checkpoints.Add(float64(len(msgs)))
}
