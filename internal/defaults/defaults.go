// Package defaults gives the dependencies a component was built without
// their one default, so that every component's New fills its
// Dependencies the same way and a test passes only what it looks at:
//
//	deps.Logger = defaults.Logger(deps.Logger)
//	deps.Registerer = defaults.Registerer(deps.Registerer)
//	deps.Clock = defaults.Clock(deps.Clock)
//
// A dependency without a sensible default (a handler, a data source) is
// checked by New and its absence is an error.
package defaults

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowcheck/flowcheck/clock"
)

// Logger returns l, or a logger that discards everything when l is nil.
func Logger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}

// Registerer returns r, or a registry of its own when r is nil: metrics
// are still counted, and two components built without one do not clash.
func Registerer(r prometheus.Registerer) prometheus.Registerer {
	if r == nil {
		return prometheus.NewRegistry()
	}
	return r
}

// Clock returns c, or the wall clock when c is nil.
func Clock(c clock.Clock) clock.Clock {
	if c == nil {
		return clock.Live{}
	}
	return c
}
