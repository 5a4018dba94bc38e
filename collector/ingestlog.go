package collector

// protoNames are the protocols' names in logs and metric labels.
var protoNames = [...]string{protoUnknown: "unknown", protoV5: "netflow5", protoV9: "netflow9", protoIPFIX: "ipfix", protoSFlow: "sflow5"}

// Template events, as counted in template_events_total and told in the
// log.
const (
	tmplAdded = iota
	tmplWithdrawn
	tmplExpired
	tmplEvicted
	tmplRejected
	numTemplateEvents
)

// templateEventNames are the event labels, by template event constant.
var templateEventNames = [numTemplateEvents]string{"added", "withdrawn", "expired", "evicted", "rejected"}

// logFirstRecords tells that an exporter's first flow records were
// decoded: from then on the collector feeds the host table. Once per
// exporter (again if it is forgotten and comes back). e.mu is held.
func (c *Component) logFirstRecords(e *exporterState, proto int, records uint64) {
	c.deps.Logger.Info("first flow records decoded", "exporter", e.label, "protocol", protoNames[proto], "records", records)
}

// logTemplates tells an exporter's template events since its last
// template line, in one line at most once per logInterval (a burst, or a
// flood, of templates is one line), at info: evictions at templates.max
// and rejected templates have their own warnings. The events of a datagram
// are told at its end, those of an interval at the exporter's first
// datagram after it. e.mu is held.
func (c *Component) logTemplates(e *exporterState) {
	if since := e.now.Sub(e.tmplToldAt); !e.tmplToldAt.IsZero() && since >= 0 && since < logInterval {
		return
	}
	msg := "templates learned"
	args := make([]any, 0, 4+2*numTemplateEvents)
	args = append(args, "exporter", e.label)
	for i, n := range e.tmplUntold {
		if n == 0 {
			continue
		}
		args = append(args, templateEventNames[i], n)
		if i != tmplAdded {
			msg = "templates changed"
		}
	}
	args = append(args, "templates", len(e.templates))
	c.deps.Logger.Info(msg, args...)
	e.tmplUntold = [numTemplateEvents]uint32{}
	e.tmplToldAt = e.now
}
