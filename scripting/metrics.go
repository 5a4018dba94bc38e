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
	for _, c := range []prometheus.Collector{m.calls, m.errors, m.timeouts, m.events, m.released, m.resumed, m.adopted, m.stateErrors, m.stateOverflow, m.disabled,
		m.reloads, m.loadErrors, m.ticks, m.tickSeconds, m.hosts} {
		if err := r.Register(c); err != nil {
			return m, err
		}
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
// flowcheck_scripting_alerts_engaged.
var severities = [...]string{"info", "warning", "error", "critical"}

// engagedCollector is flowcheck_scripting_alerts_engaged: the engaged
// alerts by severity, counted when scraped (a walk over the engine's
// hosts, without building events), every band present at zero.
type engagedCollector struct {
	e    *Engine
	desc *prometheus.Desc
}

func newEngagedCollector(e *Engine) engagedCollector {
	return engagedCollector{e: e, desc: prometheus.NewDesc("flowcheck_scripting_alerts_engaged",
		"Engaged alerts, by severity (info, warning, error, critical: the bands of the alert value).", []string{"severity"}, nil)}
}

func (c engagedCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c engagedCollector) Collect(ch chan<- prometheus.Metric) {
	counts := c.e.engagedBySeverity()
	for i, sev := range severities {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(counts[i]), sev)
	}
}

// engagedBySeverity counts the engaged alerts by band, in the order of
// severities.
func (e *Engine) engagedBySeverity() (counts [len(severities)]int) {
	for _, h := range e.hosts.pending.appendTo(e.hosts.all(nil)) {
		h.mu.Lock()
		if h.ext != nil {
			for i := range h.ext.slots {
				if a := h.ext.slots[i].alert; a != nil {
					for j, sev := range severities {
						if alert.Severity(a.value) == sev {
							counts[j]++
						}
					}
				}
			}
		}
		h.mu.Unlock()
	}
	return counts
}
