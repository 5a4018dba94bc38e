package scripting

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowcheck/flowcheck/alert"
)

// metrics are the engine's Prometheus series.
type metrics struct {
	calls, errors, timeouts *prometheus.CounterVec
	events                  *prometheus.CounterVec
	released                *prometheus.CounterVec
	resumed                 prometheus.Counter
	adopted                 prometheus.Counter
	stateErrors             *prometheus.CounterVec
	stateOverflow           prometheus.Counter
	disabled                *prometheus.CounterVec
	reloads                 *prometheus.CounterVec
	loadErrors              prometheus.Counter
	ticks                   prometheus.Counter
	tickSeconds             prometheus.Histogram
	hosts                   prometheus.Gauge
	// engaged counts the engaged alerts by severity band (severities'
	// order), kept at each engage, value change and release.
	engaged [len(severities)]prometheus.Gauge
}

// band is the index in severities of an alert value's band.
func band(value int) int {
	switch alert.Severity(value) {
	case "info":
		return 0
	case "warning":
		return 1
	case "error":
		return 2
	}
	return 3
}

func newMetrics(r prometheus.Registerer) (metrics, error) {
	const ns, sub = "flowcheck", "scripting"
	m := metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "calls_total", Help: "check(host_info) calls, by check."}, []string{"check"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "errors_total", Help: "Failed check calls (errors and timeouts), by check."}, []string{"check"}),
		timeouts: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "timeouts_total", Help: "Check calls stopped by the call budget, by check."}, []string{"check"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "events_total", Help: "Alert events published, by check and state."}, []string{"check", "state"}),
		released: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "released_total", Help: "Alerts released, by check and reason."}, []string{"check", "reason"}),
		resumed: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "alerts_resumed_total", Help: "Engaged alerts read back from alert_state_file at start."}),
		adopted: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "alerts_adopted_total", Help: "Engaged alerts taken over from another cluster worker's checkpoint (Adopt)."}),
		stateErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "alert_state_errors_total", Help: "alert_state_file that could not be read (op=load: corrupt or unreadable) or written (op=save)."}, []string{"op"}),
		stateOverflow: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "alert_state_overflow_total", Help: "Engaged alerts left out of alert_state_file because it reached its size limit."}),
		disabled: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "disabled_total", Help: "Checks disabled after max_failures consecutive failures."}, []string{"check"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "reloads_total", Help: "Script reloads, by result (ok, partial, error)."}, []string{"result"}),
		loadErrors: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "load_errors_total", Help: "Scripts that failed to compile or load."}),
		ticks: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "ticks_total", Help: "Ticks run."}),
		tickSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub,
			Name: "tick_duration_seconds", Help: "Wall time of a tick.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)}),
		hosts: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "tick_hosts", Help: "Hosts evaluated by the last tick."}),
	}
	// Kept at each engage, change of band and release, so that a scrape
	// does not walk the engine's hosts.
	engaged := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
		Name: "alerts_engaged", Help: "Engaged alerts, by severity (info, warning, error, critical: the bands of the alert value), resumed ones included."},
		[]string{"severity"})
	for _, c := range []prometheus.Collector{m.calls, m.errors, m.timeouts, m.events, m.released, m.resumed, m.adopted, m.stateErrors, m.stateOverflow, m.disabled,
		m.reloads, m.loadErrors, m.ticks, m.tickSeconds, m.hosts, engaged} {
		if err := r.Register(c); err != nil {
			return m, err
		}
	}
	for i, sev := range severities {
		m.engaged[i] = engaged.WithLabelValues(sev)
	}
	// Series at zero from start-up, so that alert rules on rate() or
	// increase() see the first failure.
	for _, result := range []string{"ok", "partial", "error"} {
		m.reloads.WithLabelValues(result)
	}
	for _, op := range []string{"load", "save"} {
		m.stateErrors.WithLabelValues(op)
	}
	return m, nil
}

// initCheck creates the series of a loaded check at zero (see newMetrics).
func (m *metrics) initCheck(check string) {
	m.calls.WithLabelValues(check)
	m.errors.WithLabelValues(check)
	m.timeouts.WithLabelValues(check)
	m.disabled.WithLabelValues(check)
	for _, state := range []alert.State{alert.Engaged, alert.Released} {
		m.events.WithLabelValues(check, string(state))
	}
	for _, reason := range []alert.Reason{alert.Cleared, alert.HostExpired, alert.CheckDisabled, alert.CheckRemoved, alert.Shutdown} {
		m.released.WithLabelValues(check, string(reason))
	}
}

// severities are the bands of alert.Severity, the labels of
// flowcheck_scripting_alerts_engaged, in the order of metrics.engaged.
var severities = [...]string{"info", "warning", "error", "critical"}
