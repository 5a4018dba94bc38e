package collector

import (
	"log/slog"
	"net/netip"
	"time"
)

// logInterval is how often a rate-limited log line may repeat.
const logInterval = 10 * time.Second

// maxLogKeys bounds the rate-limited lines told apart (exporter × reason,
// listener × event); the lines of any others share one key.
const maxLogKeys = 4096

// maxDeniedSenders bounds the senders outside exporters.allow told apart
// in the log, and so the lines per interval: sources are spoofable. The
// datagrams of any others are told together, in one line per interval.
const maxDeniedSenders = 64

// notAllowed counts and logs (rate-limited per sender) a datagram from a
// sender outside exporters.allow, dropped at now.
func (c *Component) notAllowed(addr netip.Addr, now time.Time) {
	// Logged before counted: whoever sees the count sees the line too.
	c.denied.LogAt(now, slog.LevelWarn, addr, "datagram from a sender outside collector.exporters.allow dropped")
	c.metrics.drops[dropNotAllowed].Inc()
}

// dropped counts a datagram dropped before decoding, by reason, and by
// exporter too when the exporter is tracked.
func (c *Component) dropped(addr netip.Addr, reason int) {
	c.metrics.drops[reason].Inc()
	if e := c.known(addr); e != nil {
		e.drops[reason].Add(1)
		e.m.drops[reason].Inc()
	}
}

// decodeError counts bad input of an exporter by reason and logs it,
// rate-limited per exporter and reason.
func (c *Component) decodeError(e *exporterState, reason string, args ...any) {
	e.errors++
	c.decodeErrors.Add(1)
	c.metrics.decodeErrors.WithLabelValues(e.label, reason).Inc()
	c.logs.LogAt(e.now, slog.LevelWarn, e.label+"\x00"+reason, "bad flow export",
		append([]any{"exporter", e.label, "reason", reason}, args...)...)
}
