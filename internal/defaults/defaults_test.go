package defaults

import (
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowcheck/flowcheck/clock"
)

func TestDefaults(t *testing.T) {
	logger := slog.New(slog.DiscardHandler)
	reg := prometheus.NewRegistry()
	clk := clock.NewManual(time.Unix(1, 0))
	cases := []struct {
		name string
		ok   bool
	}{
		{"given logger kept", Logger(logger) == logger},
		{"nil logger discards", Logger(nil) != nil && !Logger(nil).Enabled(t.Context(), slog.LevelError)},
		{"given registerer kept", Registerer(reg) == reg},
		{"nil registerer is a registry of its own", Registerer(nil) != nil && Registerer(nil) != Registerer(nil)},
		{"given clock kept", Clock(clk) == clk},
		{"nil clock is the wall clock", Clock(nil) == clock.Live{}},
	}
	for _, tc := range cases {
		if !tc.ok {
			t.Error(tc.name)
		}
	}
}
