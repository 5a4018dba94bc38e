// Package alert holds the one alert event type that host checks produce and
// sinks deliver. Its JSON encoding is the versioned schema consumers read
// (docs/alerts.md).
package alert

import (
	"strconv"
	"time"
)

// SchemaVersion is the value of Event.Schema for events of this shape.
const SchemaVersion = 1

// State is the lifecycle state an event reports.
type State string

// The two states of an alert.
const (
	Engaged  State = "engaged"
	Released State = "released"
)

// Reason says why an alert was released; released events carry one,
// engaged events none.
type Reason string

// The reasons of a release.
const (
	// Cleared: the check ran on the host and no longer triggered.
	Cleared Reason = "cleared"
	// HostExpired: the host left the host table (idle past
	// aggregate.idle_timeout), or never came back after a restart.
	HostExpired Reason = "host_expired"
	// CheckDisabled: the check no longer runs on the host: disabled in the
	// configuration, disabled after max_failures consecutive failures, or
	// made local_only while the host is remote.
	CheckDisabled Reason = "check_disabled"
	// CheckRemoved: the check's script is gone (a reload, or a restart
	// without it).
	CheckRemoved Reason = "check_removed"
	// Shutdown: the collector stopped and keeps no state of its alerts
	// (scripting.alert_state_file empty, or the file could not take them).
	Shutdown Reason = "shutdown"
)

// Host identifies the host an alert is about.
type Host struct {
	IP      string `json:"ip"`
	VLAN    uint16 `json:"vlan"`
	MAC     string `json:"mac"`
	Name    string `json:"name"`
	IsLocal bool   `json:"is_local"`
}

// Key is the Kafka message key for the host: "ip", or "ip@vlan" on a tagged
// VLAN, so that one host's events stay ordered in one partition.
func (h Host) Key() string {
	if h.VLAN == 0 {
		return h.IP
	}
	return h.IP + "@" + strconv.Itoa(int(h.VLAN))
}

// Event is one alert state change (engaged or released).
type Event struct {
	Schema    int       `json:"schema"`
	ID        string    `json:"id"`
	State     State     `json:"state"`
	Reason    Reason    `json:"reason,omitempty"` // released events only
	Check     string    `json:"check"`
	Host      Host      `json:"host"`
	Value     int       `json:"value"`
	Severity  string    `json:"severity"`
	Score     int       `json:"score"`
	Message   string    `json:"message"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	Time      time.Time `json:"time"`
	Collector string    `json:"collector"`
}

// Severity names the severity band of an alert value, following ntopng's
// guidelines: info 1–25, warning 26–50, error 51–75, critical 76 and above.
func Severity(value int) string {
	switch {
	case value <= 25:
		return "info"
	case value <= 50:
		return "warning"
	case value <= 75:
		return "error"
	default:
		return "critical"
	}
}
