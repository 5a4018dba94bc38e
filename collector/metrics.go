package collector

import "github.com/prometheus/client_golang/prometheus"

// metrics are the collector's Prometheus series. Per-exporter series are
// bounded: only admitted exporters (at most exporters.max) get a label.
type metrics struct {
	packets        *prometheus.CounterVec // exporter, version
	packetBytes    *prometheus.CounterVec // exporter
	flows          *prometheus.CounterVec // exporter
	flowBytes      *prometheus.CounterVec // exporter
	flowPackets    *prometheus.CounterVec // exporter
	decodeErrors   *prometheus.CounterVec // exporter, reason
	drops          [numDrops]prometheus.Counter
	exporterDrops  *prometheus.CounterVec // exporter, reason
	evictions      *prometheus.CounterVec // reason
	evictedPending prometheus.Counter
	templates      *prometheus.GaugeVec   // exporter
	templateEvents *prometheus.CounterVec // exporter, event
	samplingUnk    *prometheus.CounterVec // exporter
	pendingBytes   *prometheus.GaugeVec   // exporter
	rcvbuf         *prometheus.GaugeVec   // listener
	exporters      prometheus.Gauge
	shedRecords    prometheus.Counter
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
		packets: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "packets_total", Help: "Export datagrams decoded, by exporter and protocol version."},
			[]string{"exporter", "version"}),
		packetBytes: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
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
	}
	for _, c := range []prometheus.Collector{m.packets, m.packetBytes, m.flows, m.flowBytes, m.flowPackets,
		m.decodeErrors, drops, m.exporterDrops, m.evictions, m.evictedPending, m.templates, m.templateEvents, m.samplingUnk, m.pendingBytes, m.rcvbuf, m.exporters, m.shedRecords} {
		if err := r.Register(c); err != nil {
			return nil, err
		}
	}
	for i, r := range dropReasons {
		m.drops[i] = drops.WithLabelValues(r)
	}
	return m, nil
}

// exporterVecs are the series labelled by exporter.
func (m *metrics) exporterVecs() []interface {
	DeletePartialMatch(prometheus.Labels) int
} {
	return []interface {
		DeletePartialMatch(prometheus.Labels) int
	}{m.packets, m.packetBytes, m.flows, m.flowBytes, m.flowPackets, m.decodeErrors,
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
	packets                                                 [protoSFlow + 1]prometheus.Counter
	packetBytes, flows, flowBytes, flowPackets, samplingUnk prometheus.Counter
	templates, pendingBytes                                 prometheus.Gauge
	// drops is set for exporterDropReasons only.
	drops [numDrops]prometheus.Counter
}

func (m *metrics) forExporter(label string) exporterMetrics {
	em := exporterMetrics{
		packetBytes:  m.packetBytes.WithLabelValues(label),
		flows:        m.flows.WithLabelValues(label),
		flowBytes:    m.flowBytes.WithLabelValues(label),
		flowPackets:  m.flowPackets.WithLabelValues(label),
		samplingUnk:  m.samplingUnk.WithLabelValues(label),
		templates:    m.templates.WithLabelValues(label),
		pendingBytes: m.pendingBytes.WithLabelValues(label),
	}
	for _, r := range exporterDropReasons {
		em.drops[r] = m.exporterDrops.WithLabelValues(label, dropReasons[r])
	}
	for p, v := range map[int]string{protoV5: "netflow5", protoV9: "netflow9", protoIPFIX: "ipfix", protoSFlow: "sflow5"} {
		em.packets[p] = m.packets.WithLabelValues(label, v)
	}
	return em
}
