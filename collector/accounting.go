package collector

import (
	"net/netip"
	"time"
)

// logInterval is how often a rate-limited log line may repeat.
const logInterval = 10 * time.Second

// notAllowed counts and logs (rate-limited per sender) a datagram from a
// sender outside exporters.allow, dropped at now.
func (c *Component) notAllowed(addr netip.Addr, now time.Time) {
	c.metrics.drops[dropNotAllowed].Inc()
	c.denied.dropped(addr, now)
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
	c.metrics.decodeErrors.WithLabelValues(e.label, reason).Inc()
	c.logs.Warn(e.now, e.label+"\x00"+reason, "bad flow export",
		append([]any{"exporter", e.label, "reason", reason}, args...)...)
}
