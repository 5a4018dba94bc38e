package server

import (
	"errors"
	"log/slog"

	"github.com/flowcheck/flowcheck/aggregate"
	"github.com/flowcheck/flowcheck/alert"
	"github.com/flowcheck/flowcheck/collector"
	"github.com/flowcheck/flowcheck/internal/defaults"
	"github.com/flowcheck/flowcheck/scripting"
	"github.com/prometheus/client_golang/prometheus"
)

// Hosts is the read side of the host table (aggregate.HostTable).
type Hosts interface {
	// AppendKeys appends the key of every tracked host to dst.
	AppendKeys(dst []aggregate.HostKey) []aggregate.HostKey
	// Snapshot copies one host's state into dst; false when unknown.
	Snapshot(key aggregate.HostKey, dst *aggregate.HostSnapshot) bool
}

// Alerts is the read side of the check engine (scripting.Engine).
type Alerts interface {
	// Engaged returns the currently engaged alerts.
	Engaged() []alert.Event
	// Score returns a host's current score.
	Score(key aggregate.HostKey) int
}

// Exporters is the read side of the exporter registry
// (collector.Component).
type Exporters interface {
	// Exporters describes every tracked exporter, in address order.
	Exporters() []collector.ExporterInfo
}

// Contacts lists the members of a host's contact sets
// (aggregate.HostTable).
type Contacts interface {
	// Contacts copies a host's contact sets with their first members;
	// false when the host is unknown.
	Contacts(key aggregate.HostKey) (aggregate.HostContacts, bool)
}

// History is the read side of the recently released alerts
// (scripting.Engine).
type History interface {
	// Released returns the last released alerts kept, newest first.
	Released() []alert.Event
}

// Checks is the read side of the loaded checks (scripting.Engine).
type Checks interface {
	// Checks describes every loaded check, in name order.
	Checks() []scripting.CheckInfo
}

// ReadyCheck is one readiness condition, named in /readyz's answer.
type ReadyCheck struct {
	Name  string
	Ready func() bool
}

// Dependencies are what the server reads.
type Dependencies struct {
	Logger *slog.Logger
	// Gatherer serves /metrics; it should hold the Go runtime and process
	// collectors beside every component's metrics.
	Gatherer   prometheus.Gatherer
	Registerer prometheus.Registerer
	Hosts      Hosts
	Alerts     Alerts
	// Exporters are what /api/v1/exporters pages; nil lists none.
	Exporters Exporters
	// Contacts lists the members of the host page's contact sets; nil
	// shows their counts only.
	Contacts Contacts
	// History lists the recently released alerts; nil keeps none.
	History History
	// Checks are what /api/v1/checks pages; nil lists none.
	Checks Checks
	// Ready lists the conditions /readyz requires.
	Ready []ReadyCheck
	// Partitions, set in cluster role check, lists the partitions of the
	// flows topic whose hosts this worker holds: /api/v1/hosts says them.
	Partitions func() []int
}

// fill gives the dependencies left out their defaults. A process without a
// host table (cluster role ingest) serves metrics and probes; its API lists
// no host and no alert.
func (d *Dependencies) fill() error {
	if d.Gatherer == nil {
		return errors.New("dependency Gatherer is required")
	}
	d.Logger = defaults.Logger(d.Logger)
	if d.Exporters == nil {
		d.Exporters = noExporters{}
	}
	if d.History == nil {
		d.History = noHistory{}
	}
	if d.Checks == nil {
		d.Checks = noChecks{}
	}
	if d.Hosts == nil {
		d.Hosts = noHosts{}
	}
	if d.Alerts == nil {
		d.Alerts = noAlerts{}
	}
	return nil
}

// noExporters lists no exporter, for a server built without a collector.
type noExporters struct{}

func (noExporters) Exporters() []collector.ExporterInfo { return nil }

// noHistory keeps no released alert.
type noHistory struct{}

func (noHistory) Released() []alert.Event { return nil }

// noChecks lists no check.
type noChecks struct{}

func (noChecks) Checks() []scripting.CheckInfo { return nil }

// noHosts holds no host, for a server built without a host table.
type noHosts struct{}

func (noHosts) AppendKeys(dst []aggregate.HostKey) []aggregate.HostKey { return dst }

func (noHosts) Snapshot(aggregate.HostKey, *aggregate.HostSnapshot) bool { return false }

// noAlerts engages no alert, for a server built without a check engine.
type noAlerts struct{}

func (noAlerts) Engaged() []alert.Event { return nil }

func (noAlerts) Score(aggregate.HostKey) int { return 0 }
