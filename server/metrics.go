package server

import "github.com/prometheus/client_golang/prometheus"

// metrics counts API use, so that an operator sees who polls what.
type metrics struct {
	requests *prometheus.CounterVec
}

func newMetrics(r prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "flowcheck",
			Subsystem: "http",
			Name:      "requests_total",
			Help:      "HTTP requests served, by route and status code.",
		}, []string{"handler", "code"}),
	}
	if r == nil {
		return m, nil
	}
	col, err := registerOnce(r, m.requests)
	if err != nil {
		return nil, err
	}
	m.requests = col.(*prometheus.CounterVec)
	return m, nil
}
