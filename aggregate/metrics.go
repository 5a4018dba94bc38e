package aggregate

import "github.com/prometheus/client_golang/prometheus"

// metrics are the host table's Prometheus series.
type metrics struct {
	hostsRefused       *prometheus.CounterVec // by kind: local, remote
	hostsExpired       prometheus.Counter
	recordsInvalid     prometheus.Counter
	pendingOverflow    prometheus.Counter
	l7NamesOverflow    prometheus.Counter
	committed          *prometheus.CounterVec // by verdict: one_sided, refused
	withheld           prometheus.Counter
	blacklistEntries   prometheus.Gauge
	blacklistBadLines  prometheus.Counter
	blacklistReloads   *prometheus.CounterVec // by result: ok, error
	rdnsLookups        *prometheus.CounterVec // by result: ok, error
	rdnsQueueOverflows prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, t *HostTable) (*metrics, error) {
	const ns, sub = "flowcheck", "aggregate"
	m := &metrics{
		hostsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "hosts_refused_total", Help: "New hosts not created because the table was at its ceiling, by kind (local, remote)."},
			[]string{"kind"}),
		hostsExpired: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "hosts_expired_total", Help: "Hosts removed after their idle timeout."}),
		recordsInvalid: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "records_invalid_total", Help: "Flow records skipped because an address was missing."}),
		pendingOverflow: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "pending_overflow_total", Help: "Conversations decided before their reply window ended because the pending table was full."}),
		l7NamesOverflow: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "l7_names_overflow_total", Help: "Records whose exporter-supplied application name was counted as Other because the table already interned its maximum of names."}),
		committed: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "conversations_committed_total", Help: "Unanswered conversations committed to host contact sets, by verdict (one_sided, refused)."},
			[]string{"verdict"}),
		withheld: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "conversations_withheld_total", Help: "One-sided conversations not committed because ingest lost datagrams during their reply window, which may have held the reply (withhold_after_ingest_loss)."}),
		blacklistEntries: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "blacklist_entries", Help: "Addresses and prefixes in the loaded blacklists."}),
		blacklistBadLines: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "blacklist_bad_lines_total", Help: "Blacklist lines skipped because they were not an address or CIDR."}),
		blacklistReloads: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "blacklist_reloads_total", Help: "Blacklist loads, by result (ok, error)."}, []string{"result"}),
		rdnsLookups: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "rdns_lookups_total", Help: "Reverse DNS lookups, by result (ok, error)."}, []string{"result"}),
		rdnsQueueOverflows: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "rdns_queue_overflow_total", Help: "Reverse DNS lookups skipped because the queue was full."}),
	}
	hosts := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
		Name: "hosts", Help: "Hosts in the table."}, func() float64 { return float64(t.Len()) })
	pending := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
		Name: "pending_conversations", Help: "Conversations waiting for their reply window to end."},
		func() float64 { return float64(t.pendingLen()) })
	// Every labelled series exists at zero from start-up, so that alert
	// rules on it see a rise from 0 rather than a series appearing.
	for vec, values := range map[*prometheus.CounterVec][]string{
		m.hostsRefused:     {"local", "remote"},
		m.committed:        {"one_sided", "refused"},
		m.blacklistReloads: {"ok", "error"},
		m.rdnsLookups:      {"ok", "error"},
	} {
		for _, v := range values {
			vec.WithLabelValues(v)
		}
	}
	for _, c := range []prometheus.Collector{m.hostsRefused, m.hostsExpired, m.recordsInvalid, m.pendingOverflow, m.l7NamesOverflow,
		m.committed, m.withheld, m.blacklistEntries, m.blacklistBadLines, m.blacklistReloads, m.rdnsLookups,
		m.rdnsQueueOverflows, hosts, pending} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
