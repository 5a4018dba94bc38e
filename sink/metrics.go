package sink

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the counters of every sink. Labels: sink is the sink name
// (stdout, file, kafka), topic the Kafka topic ("" for stdout and file).
type metrics struct {
	produced     *prometheus.CounterVec
	delivered    *prometheus.CounterVec
	spooled      *prometheus.CounterVec
	replayed     *prometheus.CounterVec
	dropped      *prometheus.CounterVec
	spoolBytes   *prometheus.GaugeVec
	spoolCount   *prometheus.GaugeVec
	latency      *prometheus.HistogramVec
	errors       *prometheus.CounterVec
	spoolCorrupt *prometheus.CounterVec
	spoolWaits   *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		produced: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flowcheck_sink_alerts_produced_total",
			Help: "Alerts handed to a sink.",
		}, []string{"sink", "topic"}),
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flowcheck_sink_alerts_delivered_total",
			Help: "Alerts written (stdout, file) or acknowledged by the brokers (kafka).",
		}, []string{"sink", "topic"}),
		spooled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flowcheck_sink_alerts_spooled_total",
			Help: "Alerts written to the on-disk spool.",
		}, []string{"sink", "topic"}),
		replayed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flowcheck_sink_alerts_replayed_total",
			Help: "Spooled alerts delivered from the spool.",
		}, []string{"sink", "topic"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flowcheck_sink_alerts_dropped_total",
			Help: "Alerts lost, by reason (queue_full, spool_ceiling, spool_error, spool_slow, spool_corrupt, stopped, encode, write_error, too_large, corrupt).",
		}, []string{"sink", "topic", "reason"}),
		spoolBytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "flowcheck_sink_spool_bytes",
			Help: "Disk space taken by the spool.",
		}, []string{"sink"}),
		spoolCount: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "flowcheck_sink_spool_alerts",
			Help: "Alerts waiting in the spool.",
		}, []string{"sink"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "flowcheck_sink_write_duration_seconds",
			Help:    "Time to write one batch (kafka: until acknowledged).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
		}, []string{"sink"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flowcheck_sink_broker_errors_total",
			Help: "Failed Kafka writes by kind (connection_refused, network, timeout, canceled, a Kafka error name such as unknown_topic_or_partition, other).",
		}, []string{"sink", "kind"}),
		spoolCorrupt: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flowcheck_sink_spool_corrupt_bytes_total",
			Help: "Bytes of corrupt or truncated spool records skipped (the alerts they held count as dropped, reason spool_corrupt).",
		}, []string{"sink"}),
		spoolWaits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flowcheck_sink_spool_waits_total",
			Help: "Publishes that waited for room in the spool writer's intake (a disk slower than the alerts); those that waited in vain count as dropped, reason spool_slow.",
		}, []string{"sink"}),
	}
	for _, c := range []prometheus.Collector{
		m.produced, m.delivered, m.spooled, m.replayed, m.dropped,
		m.spoolBytes, m.spoolCount, m.latency, m.errors, m.spoolCorrupt, m.spoolWaits,
	} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// The series alert rules watch exist at zero from start-up, so that a rate
// or an increase over them is 0 rather than absent: every drop reason a
// sink can count, and the broker errors of the kinds that are not Kafka
// error names.

// zeroLines makes the drop series of a stdout or file sink.
func (m *metrics) zeroLines(sink string) {
	for _, reason := range []string{"queue_full", "stopped", "encode", "write_error"} {
		m.dropped.WithLabelValues(sink, "", reason)
	}
}

// zeroKafka makes the drop series of the Kafka sink (per topic for the
// reasons counted per topic) and its broker error series.
func (m *metrics) zeroKafka(topics []string) {
	for _, reason := range []string{"stopped", "encode", "spool_ceiling", "spool_corrupt", "corrupt"} {
		m.dropped.WithLabelValues("kafka", "", reason)
	}
	for _, topic := range topics {
		for _, reason := range []string{"too_large", "stopped", "spool_error", "spool_slow"} {
			m.dropped.WithLabelValues("kafka", topic, reason)
		}
	}
	for _, kind := range []string{"connection_refused", "network", "timeout", "canceled", "other"} {
		m.errors.WithLabelValues("kafka", kind)
	}
	m.spoolWaits.WithLabelValues("kafka")
}
