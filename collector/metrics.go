package collector

import (
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// metrics are the collector's Prometheus series. Per-exporter series are
// bounded: only admitted exporters (at most exporters.max) get a label.
type metrics struct {
	datagrams       *prometheus.CounterVec // exporter, version
	datagramBytes   *prometheus.CounterVec // exporter
	flows           *prometheus.CounterVec // exporter
	flowBytes       *prometheus.CounterVec // exporter
	flowPackets     *prometheus.CounterVec // exporter
	decodeErrors    *prometheus.CounterVec // exporter, reason
	drops           [numDrops]prometheus.Counter
	exporterDrops   *prometheus.CounterVec // exporter, reason
	evictions       *prometheus.CounterVec // reason
	evictedPending  prometheus.Counter
	templates       *prometheus.GaugeVec   // exporter
	templateEvents  *prometheus.CounterVec // exporter, event
	samplingUnk     *prometheus.CounterVec // exporter
	pendingBytes    *prometheus.GaugeVec   // exporter
	rcvbuf          *prometheus.GaugeVec   // listener
	exporters       prometheus.Gauge
	shedRecords     prometheus.Counter
	workerDatagrams *prometheus.CounterVec // worker
	spilled         prometheus.Counter
}

// Reasons a datagram is dropped before decoding.
const (
	dropNotAllowed = iota
	dropExporterCap
	dropQueueFull
	dropWrongProtocol
	// dropSocketBuffer: the kernel dropped it, the socket's receive buffer
	// full (SO_RXQ_OVFL); the sender is unknown.
	dropSocketBuffer
	numDrops
)

// dropReasons are the reason labels, by drop constant.
var dropReasons = [numDrops]string{"not_allowed", "exporter_cap", "queue_full", "wrong_protocol", "socket_buffer"}

// decodeErrorReasons are the reason labels of decode_errors_total. Each
// exporter's series of every reason exist from its first datagram, at
// zero, so that alert rules see the first error as an increase.
var decodeErrorReasons = [...]string{
	"unknown_version", "truncated", "bad_length", "bad_set_length", "bad_set_id",
	"bad_template", "template_no_fields", "template_too_many_fields", "template_zero_length_field",
	"template_missing", "bad_data_set", "sampler_cap", "malformed",
}

// evictionReasons are the reason labels of exporter_evictions_total.
var evictionReasons = [...]string{"idle", "cap"}

// exporterDropReasons are the drops that can concern a tracked exporter:
// not_allowed and exporter_cap only ever concern senders that are not
// tracked, so they stay counted by reason alone, keeping the label set
// bounded.
var exporterDropReasons = [...]int{dropQueueFull, dropWrongProtocol}

func newMetrics(r prometheus.Registerer) (*metrics, error) {
	const ns, sub = "flowcheck", "collector"
	drops := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
		Name: "drops_total", Help: "Datagrams dropped before decoding, by reason (not_allowed, exporter_cap, queue_full, wrong_protocol, socket_buffer: by the kernel, the socket's receive buffer full)."},
		[]string{"reason"})
	m := &metrics{
		datagrams: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "datagrams_total", Help: "Export datagrams decoded, by exporter and protocol version."},
			[]string{"exporter", "version"}),
		datagramBytes: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "datagram_bytes_total", Help: "Bytes of export datagrams decoded, by exporter."},
			[]string{"exporter"}),
		flows: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "flows_total", Help: "Flow records decoded, by exporter."},
			[]string{"exporter"}),
		flowBytes: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "flow_bytes_total", Help: "Traffic bytes in decoded flow records (scaled by sampling), by exporter."},
			[]string{"exporter"}),
		flowPackets: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "flow_packets_total", Help: "Traffic packets in decoded flow records (scaled by sampling), by exporter."},
			[]string{"exporter"}),
		decodeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "decode_errors_total", Help: "Bad input, by exporter and reason."},
			[]string{"exporter", "reason"}),
		exporterDrops: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "exporter_drops_total", Help: "Datagrams of tracked exporters dropped before decoding, by exporter and reason (queue_full, wrong_protocol); also counted in drops_total."},
			[]string{"exporter", "reason"}),
		evictions: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "exporter_evictions_total", Help: "Exporters forgotten with their state, by reason (idle: silent for exporters.idle_timeout; cap: replaced at exporters.max by a new exporter)."},
			[]string{"reason"}),
		evictedPending: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "evicted_pending_sets_total", Help: "Data sets still waiting for their template when their exporter was evicted, dropped with it (the exporter's own series go with it too)."}),
		templates: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "templates", Help: "NetFlow v9/IPFIX templates currently known, by exporter."},
			[]string{"exporter"}),
		templateEvents: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "template_events_total", Help: "Template events (added; withdrawn; expired: not re-sent for templates.lifetime; evicted: at templates.max, to make room for a new one; rejected: unusable), by exporter."},
			[]string{"exporter", "event"}),
		samplingUnk: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "sampling_unknown_total", Help: "Flow records whose sampling rate is unknown (counters left unscaled), by exporter."},
			[]string{"exporter"}),
		pendingBytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "pending_bytes", Help: "Bytes of data sets waiting for their template, by exporter."},
			[]string{"exporter"}),
		rcvbuf: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "socket_rcvbuf_bytes", Help: "Receive buffer the kernel granted each listener socket (as getsockopt reports it)."},
			[]string{"listener"}),
		exporters: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "exporters", Help: "Exporters currently tracked."}),
		shedRecords: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "shed_records_total", Help: "Records handed to the cheaper path (traffic accounted, conversations not stitched) because their decode worker was behind (shed_backlog)."}),
		workerDatagrams: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "worker_datagrams_total", Help: "Datagrams taken from its queue by each decode worker (0 to workers-1)."},
			[]string{"worker"}),
		spilled: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "spilled_datagrams_total", Help: "Datagrams queued to another decode worker than their exporter's own because its queue was backlogged."}),
	}
	for _, c := range []prometheus.Collector{m.datagrams, m.datagramBytes, m.flows, m.flowBytes, m.flowPackets,
		m.decodeErrors, drops, m.exporterDrops, m.evictions, m.evictedPending, m.templates, m.templateEvents, m.samplingUnk, m.pendingBytes, m.rcvbuf, m.exporters, m.shedRecords, m.workerDatagrams, m.spilled} {
		if err := r.Register(c); err != nil {
			return nil, err
		}
	}
	for i, r := range dropReasons {
		m.drops[i] = drops.WithLabelValues(r)
	}
	for _, r := range evictionReasons {
		m.evictions.WithLabelValues(r)
	}
	return m, nil
}

// exporterVecs are the series labelled by exporter.
func (m *metrics) exporterVecs() []interface {
	DeletePartialMatch(prometheus.Labels) int
} {
	return []interface {
		DeletePartialMatch(prometheus.Labels) int
	}{m.datagrams, m.datagramBytes, m.flows, m.flowBytes, m.flowPackets, m.decodeErrors,
		m.exporterDrops, m.templates, m.templateEvents, m.samplingUnk, m.pendingBytes}
}

// forget deletes the series of an evicted exporter, so that the label set
// stays bounded by exporters.max however many exporters come and go.
func (m *metrics) forget(label string) {
	for _, v := range m.exporterVecs() {
		v.DeletePartialMatch(prometheus.Labels{"exporter": label})
	}
}

// exporterMetrics are one exporter's curried series, resolved once so the
// hot path does no label lookups.
type exporterMetrics struct {
	datagrams                                                 [protoSFlow + 1]prometheus.Counter
	datagramBytes, flows, flowBytes, flowPackets, samplingUnk prometheus.Counter
	templates, pendingBytes                                   prometheus.Gauge
	// drops is set for exporterDropReasons only.
	drops [numDrops]prometheus.Counter
}

func (m *metrics) forExporter(label string) exporterMetrics {
	em := exporterMetrics{
		datagramBytes: m.datagramBytes.WithLabelValues(label),
		flows:         m.flows.WithLabelValues(label),
		flowBytes:     m.flowBytes.WithLabelValues(label),
		flowPackets:   m.flowPackets.WithLabelValues(label),
		samplingUnk:   m.samplingUnk.WithLabelValues(label),
		templates:     m.templates.WithLabelValues(label),
		pendingBytes:  m.pendingBytes.WithLabelValues(label),
	}
	for _, r := range exporterDropReasons {
		em.drops[r] = m.exporterDrops.WithLabelValues(label, dropReasons[r])
	}
	for p := protoV5; p <= protoSFlow; p++ {
		em.datagrams[p] = m.datagrams.WithLabelValues(label, protoNames[p])
	}
	// At zero until the first of each, like drops_total.
	for _, r := range decodeErrorReasons {
		m.decodeErrors.WithLabelValues(label, r)
	}
	for _, ev := range templateEventNames {
		m.templateEvents.WithLabelValues(label, ev)
	}
	return em
}

// metricValue reads a counter or gauge; -1 when it cannot.
func metricValue(m prometheus.Metric) float64 {
	var out dto.Metric
	if err := m.Write(&out); err != nil {
		return -1
	}
	if out.Counter != nil {
		return out.Counter.GetValue()
	}
	return out.Gauge.GetValue()
}
