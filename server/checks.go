package server

import (
	"net/http"
	"time"

	"github.com/flowcheck/flowcheck/collector"
)

// checkJSON is one line of /api/v1/checks.
type checkJSON struct {
	Name                string     `json:"name"`
	File                string     `json:"file"`
	Enabled             bool       `json:"enabled"`
	Disabled            bool       `json:"disabled"`
	LocalOnly           bool       `json:"local_only"`
	Every               int        `json:"every"`
	Runs                uint64     `json:"runs"`
	Failures            uint64     `json:"failures"`
	Timeouts            uint64     `json:"timeouts"`
	SecondsPerCall      float64    `json:"seconds_per_call"`
	InstructionsPerCall float64    `json:"instructions_per_call"`
	LastError           *lastError `json:"last_error"`
	Engaged             int        `json:"engaged"`
}

// lastError is a check's last failure.
type lastError struct {
	Message string    `json:"message"`
	File    string    `json:"file"`
	Line    int       `json:"line"`
	Time    time.Time `json:"time"`
}

// checks pages through the loaded checks, in name order, each with its
// engaged alerts counted in the shared alert snapshot.
func (c *Component) checks(w http.ResponseWriter, r *http.Request) {
	list := c.deps.Checks.Checks()
	engaged := map[string]int{}
	for _, ev := range c.alerts.get(c.deps.Alerts) {
		engaged[ev.Check]++
	}
	writeOffsetPage(w, r, len(list), func(i int) any {
		ci := &list[i]
		out := checkJSON{Name: ci.Name, File: ci.File, Enabled: ci.Enabled, Disabled: ci.Disabled, LocalOnly: ci.LocalOnly,
			Every: ci.Every, Runs: ci.Calls, Failures: ci.Errors, Timeouts: ci.Timeouts, SecondsPerCall: ci.SecondsPerCall,
			InstructionsPerCall: ci.InstructionsPerCall, Engaged: engaged[ci.Name]}
		if le := ci.LastError; le != nil {
			out.LastError = &lastError{Message: le.Message, File: le.File, Line: le.Line, Time: le.Time.UTC()}
		}
		return out
	})
}

// exporterJSON is one line of /api/v1/exporters: the collector's view and
// the overview sampler's rates.
type exporterJSON struct {
	collector.ExporterInfo
	RecordsPerSecond   float64           `json:"records_per_second"`
	DatagramsPerSecond float64           `json:"datagrams_per_second"`
	DecodeErrors       map[string]uint64 `json:"decode_errors"`
}

// exporters pages through the exporters, in address order.
func (c *Component) exporters(w http.ResponseWriter, r *http.Request) {
	list := c.deps.Exporters.Exporters()
	writeOffsetPage(w, r, len(list), func(i int) any {
		rt := c.exporterRates(list[i].Address.String())
		out := exporterJSON{ExporterInfo: list[i], RecordsPerSecond: rt.recordsPerSecond,
			DatagramsPerSecond: rt.datagramsPerSecond, DecodeErrors: rt.decodeErrors}
		if out.DecodeErrors == nil {
			out.DecodeErrors = map[string]uint64{}
		}
		return out
	})
}
