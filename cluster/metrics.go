package cluster

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Drop reasons of the publisher.
const (
	// dropBufferFull: buffer_bytes was taken by batches not yet
	// acknowledged (a broker outage, or a broker slower than ingest).
	dropBufferFull = "buffer_full"
	// dropTooLarge: a record larger than half of flush_bytes.
	dropTooLarge = "too_large"
	// dropStopped: records handed in after Stop began.
	dropStopped = "stopped"
	// dropUnacknowledged: records the brokers had not acknowledged when
	// Stop's deadline came.
	dropUnacknowledged = "unacknowledged"
)

var dropReasons = []string{dropBufferFull, dropTooLarge, dropStopped, dropUnacknowledged}

// publishMetrics are the ingest role's series.
type publishMetrics struct {
	input     prometheus.Counter
	records   prometheus.Counter
	bytes     prometheus.Counter
	messages  prometheus.Counter
	errors    *prometheus.CounterVec
	retries   prometheus.Counter
	dropped   *prometheus.CounterVec
	buffered  prometheus.Gauge
	bufferMax prometheus.Gauge
}

func newPublishMetrics(reg prometheus.Registerer) (*publishMetrics, error) {
	m := &publishMetrics{
		input: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flowcheck_cluster_publish_input_records_total",
			Help: "Flow records handed to the publisher by the collector (each is published once or twice: see records_total).",
		}),
		records: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flowcheck_cluster_publish_records_total",
			Help: "Record copies acknowledged by the brokers (one per partition a record goes to).",
		}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flowcheck_cluster_publish_bytes_total",
			Help: "Bytes of message values acknowledged by the brokers, before compression.",
		}),
		messages: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flowcheck_cluster_publish_messages_total",
			Help: "Messages (one FlowBatch each) acknowledged by the brokers.",
		}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flowcheck_cluster_publish_errors_total",
			Help: "Failed writes to the flows topic by kind (connection_refused, network, timeout, partition_count, a Kafka error name such as unknown_topic_or_partition, other).",
		}, []string{"kind"}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flowcheck_cluster_publish_retries_total",
			Help: "Writes attempted again after a failure.",
		}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flowcheck_cluster_publish_dropped_records_total",
			Help: "Record copies lost by reason (buffer_full, too_large, stopped, unacknowledged).",
		}, []string{"reason"}),
		buffered: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "flowcheck_cluster_publish_buffer_bytes",
			Help: "Memory reserved by batches being filled, waiting or in flight (at most cluster.publish.buffer_bytes).",
		}),
		bufferMax: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "flowcheck_cluster_publish_buffer_limit_bytes",
			Help: "cluster.publish.buffer_bytes, rounded down to whole batches: the buffer is full at this value.",
		}),
	}
	for _, c := range []prometheus.Collector{
		m.input, m.records, m.bytes, m.messages, m.errors, m.retries, m.dropped, m.buffered, m.bufferMax,
	} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	// Series at zero from start-up, so that rates over them exist.
	for _, r := range dropReasons {
		m.dropped.WithLabelValues(r)
	}
	for _, k := range []string{"connection_refused", "network", "timeout", "partition_count", "other"} {
		m.errors.WithLabelValues(k)
	}
	return m, nil
}

// consumeMetrics are the check role's series.
type consumeMetrics struct {
	records          prometheus.Counter
	messages         prometheus.Counter
	bytes            prometheus.Counter
	decodeErrors     *prometheus.CounterVec
	groupErrors      *prometheus.CounterVec
	lag              *prometheus.GaugeVec
	owned            prometheus.Gauge
	rebuilding       prometheus.Gauge
	rebuilds         prometheus.Counter
	rebuildSeconds   prometheus.Histogram
	checkpoints      prometheus.Counter
	checkpointErrors *prometheus.CounterVec
}

func newConsumeMetrics(reg prometheus.Registerer) (*consumeMetrics, error) {
	m := &consumeMetrics{
		records: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flowcheck_cluster_consume_records_total",
			Help: "Record copies read from the flows topic and applied to the host table.",
		}),
		messages: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flowcheck_cluster_consume_messages_total",
			Help: "Messages read from the flows topic (batches, goflow2 flows and alert checkpoints).",
		}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flowcheck_cluster_consume_bytes_total",
			Help: "Bytes of message values read from the flows topic, after decompression.",
		}),
		decodeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flowcheck_cluster_consume_decode_errors_total",
			Help: "Messages of the flows topic skipped because they could not be decoded, by kind (version: an unknown FlowBatch version; corrupt; checkpoint: an alert checkpoint).",
		}, []string{"kind"}),
		groupErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flowcheck_cluster_consume_errors_total",
			Help: "Failed consumer group, fetch, offset and commit requests by kind (connection_refused, network, timeout, a Kafka error name, other).",
		}, []string{"kind"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "flowcheck_cluster_consume_lag_messages",
			Help: "Messages of an owned partition not applied yet (its high watermark minus the next offset), by partition.",
		}, []string{"partition"}),
		owned: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "flowcheck_cluster_owned_partitions",
			Help: "Partitions of the flows topic the consumer group gave this worker.",
		}),
		rebuilding: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "flowcheck_cluster_partitions_rebuilding",
			Help: "Owned partitions being rebuilt (read from now − cluster.rebuild_window, alerts held); /readyz is false meanwhile.",
		}),
		rebuilds: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flowcheck_cluster_rebuilds_total",
			Help: "Partition rebuilds completed.",
		}),
		rebuildSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "flowcheck_cluster_rebuild_duration_seconds",
			Help:    "Wall time of a partition's rebuild.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 16),
		}),
		checkpoints: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flowcheck_cluster_checkpoints_total",
			Help: "Alert checkpoints written (one per live partition after each check tick, and one when a partition is revoked).",
		}),
		checkpointErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flowcheck_cluster_checkpoint_errors_total",
			Help: "Failed writes of alert checkpoints, by kind.",
		}, []string{"kind"}),
	}
	for _, c := range []prometheus.Collector{m.records, m.messages, m.bytes, m.decodeErrors, m.groupErrors, m.lag,
		m.owned, m.rebuilding, m.rebuilds, m.rebuildSeconds, m.checkpoints, m.checkpointErrors} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	for _, k := range []string{"version", "corrupt", "checkpoint"} {
		m.decodeErrors.WithLabelValues(k)
	}
	for _, k := range []string{"connection_refused", "network", "timeout", "other"} {
		m.groupErrors.WithLabelValues(k)
		m.checkpointErrors.WithLabelValues(k)
	}
	return m, nil
}
