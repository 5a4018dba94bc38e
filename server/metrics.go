package server

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics counts API use, so that an operator sees who polls what, and how
// often the API turned requests away to leave the CPU to ingest.
type metrics struct {
	requests *prometheus.CounterVec
	rejected *prometheus.CounterVec
	timeouts *prometheus.CounterVec
	// unauthorized counts requests refused by http.auth.
	unauthorized prometheus.Counter
}

func newMetrics(r prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "flowcheck",
			Subsystem: "http",
			Name:      "requests_total",
			Help:      "HTTP requests served, by route and status code.",
		}, []string{"handler", "code"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "flowcheck",
			Subsystem: "http",
			Name:      "rejected_total",
			Help:      "API requests answered 503 because http.max_concurrent requests were already running, by route.",
		}, []string{"handler"}),
		timeouts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "flowcheck",
			Subsystem: "http",
			Name:      "timeouts_total",
			Help:      "API requests cut short by http.request_timeout, by route.",
		}, []string{"handler"}),
		unauthorized: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "flowcheck",
			Subsystem: "http",
			Name:      "unauthorized_total",
			Help:      "Requests answered 401 because they carried no credentials accepted by http.auth.",
		}),
	}
	if r == nil {
		return m, nil
	}
	col, err := registerOnce(r, m.unauthorized)
	if err != nil {
		return nil, err
	}
	m.unauthorized = col.(prometheus.Counter)
	for _, c := range []**prometheus.CounterVec{&m.requests, &m.rejected, &m.timeouts} {
		col, err := registerOnce(r, *c)
		if err != nil {
			return nil, err
		}
		*c = col.(*prometheus.CounterVec)
	}
	return m, nil
}

// registerOnce registers a collector, tolerating one already registered (a
// second server on the same registry in tests).
func registerOnce(r prometheus.Registerer, col prometheus.Collector) (prometheus.Collector, error) {
	if err := r.Register(col); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			return are.ExistingCollector, nil
		}
		return nil, err
	}
	return col, nil
}
