package collector

import (
	"bytes"
	"encoding/binary"
	"log/slog"
	"slices"
	"time"

	"github.com/netsampler/goflow2/v2/decoders/netflow"
)

// The template registry of an exporter. exporterState implements goflow2's
// NetFlowTemplateSystem with it: goflow2's template parsing stores into it
// (and, in the differential tests, goflow2's data set decoding reads from
// it), and each template keeps its compiled plan.
//
// It holds at most templates.max templates per exporter, and a new
// template is always accepted, because UDP sources are spoofable: a flood of
// templates sent with an exporter's address must not lock the exporter out.
//   - A template not (re)sent for templates.lifetime is forgotten when the
//     exporter's next datagram arrives, so expired templates never count
//     against the cap.
//   - At the cap, the new template takes the place of a template not yet
//     confirmed if there is one, else of a confirmed one. A template is
//     confirmed once a data set has used it or it was re-sent: an
//     exporter's own templates are, within a template refresh, so a flood
//     of templates each sent once never evicts them, whatever domains it
//     spreads over.
//   - The victim is taken from the observation domain (with its protocol
//     version) that holds the most templates among those holding
//     candidates, so that a flood into one domain evicts that domain's
//     templates and not another's; within it, the least recently used (by
//     a data set, or re-sent) goes first.
//   - A flood that re-sends its templates, or sends data for them, evicts
//     the least recently used confirmed ones; the exporter's own come back
//     with its next template refresh, its data sets waiting for them
//     meanwhile (templates.pending_bytes, pending_ttl).
// Evictions are counted (template_events_total{event="evicted"}) and
// logged, rate-limited per exporter.

// tmplKey identifies a template within one exporter. Keying by exporter IP
// (not IP:port) keeps templates across an exporter's source port changes.
type tmplKey struct {
	version uint16
	domain  uint32
	id      uint16
}

// tmplScope is the (version, observation domain) a template belongs to.
type tmplScope struct {
	version uint16
	domain  uint32
}

type tmplEntry struct {
	key  tmplKey
	tmpl any // one of goflow2's template record types
	// raw is tmpl's wire form: a resent record equal to it is the same
	// template, refreshed without parsing.
	raw []byte
	// plan is compiled at the template's first data set (compiled): the
	// templates of a flood, never used, cost none.
	plan     *plan
	fields   int
	options  bool
	lastSeen time.Time
	dom      *tmplDomain
	// confirmed is set once a data set has used the template or it was
	// re-sent; it is then on its domain's confirmed list rather than on
	// its fresh list.
	confirmed bool
	links     [2]tmplLink // useLinks, ageLinks
}

// Which of a template's links a list uses.
const (
	useLinks = iota // its domain's fresh or confirmed list
	ageLinks        // the exporter's age list
)

type tmplLink struct{ prev, next *tmplEntry }

// compiled returns the template's plan, compiled once.
func (t *tmplEntry) compiled() *plan {
	if t.plan == nil {
		t.plan = compilePlan(t.key.version, t.tmpl)
	}
	return t.plan
}

// tmplList is an intrusive doubly linked list of templates, the most
// recent at the front; k says which of a template's links it uses. Its
// operations allocate nothing: they run for every data set.
type tmplList struct{ front, back *tmplEntry }

func (l *tmplList) pushFront(t *tmplEntry, k int) {
	t.links[k] = tmplLink{next: l.front}
	if l.front != nil {
		l.front.links[k].prev = t
	} else {
		l.back = t
	}
	l.front = t
}

func (l *tmplList) remove(t *tmplEntry, k int) {
	p, n := t.links[k].prev, t.links[k].next
	if p != nil {
		p.links[k].next = n
	} else {
		l.front = n
	}
	if n != nil {
		n.links[k].prev = p
	} else {
		l.back = p
	}
	t.links[k] = tmplLink{}
}

func (l *tmplList) toFront(t *tmplEntry, k int) {
	if l.front != t {
		l.remove(t, k)
		l.pushFront(t, k)
	}
}

// tmplDomain is the templates of one scope of an exporter.
type tmplDomain struct {
	scope tmplScope
	n     int
	idx   int // in exporterState.domainList
	// fresh lists the templates not confirmed yet, confirmed the others,
	// each the most recently used first.
	fresh, confirmed tmplList
}

// list returns the list of d that t is on.
func (d *tmplDomain) list(t *tmplEntry) *tmplList {
	if t.confirmed {
		return &d.confirmed
	}
	return &d.fresh
}

// AddTemplate implements goflow2's NetFlowTemplateSystem. It is the gate
// between goflow2's template parsing and its data decoding: templates that
// would make goflow2's data decoding loop forever (no fields, zero-length
// fields) never get stored. It never returns an error, because goflow2
// abandons the rest of the template set on one.
func (e *exporterState) AddTemplate(version uint16, domain uint32, id uint16, template any) error {
	key := tmplKey{version, domain, id}
	var fields []netflow.Field
	options := false
	withdrawal := false
	switch t := template.(type) {
	case netflow.TemplateRecord:
		fields = t.Fields
		// NetFlow v9 has no withdrawal; a v9 template without fields
		// is refused below.
		withdrawal = version == 10 && t.FieldCount == 0
	case netflow.NFv9OptionsTemplateRecord:
		fields = append(slices.Clip(t.Scopes), t.Options...)
		options = true
	case netflow.IPFIXOptionsTemplateRecord:
		fields = append(slices.Clip(t.Scopes), t.Options...)
		options = true
		withdrawal = t.FieldCount == 0
	default:
		return nil
	}
	if withdrawal {
		e.withdraw(key)
		return nil
	}
	if reason := checkTemplate(fields); reason != "" {
		e.templateEvent("rejected")
		e.c.decodeError(e, reason, "template", id, "domain", domain, "version", version)
		return nil
	}
	if cur, ok := e.templates[key]; ok {
		// Exporters resend their templates every few datagrams or
		// minutes, nearly always unchanged: the plan is kept then.
		if !sameTemplate(cur.tmpl, template) {
			cur.tmpl, cur.plan, cur.fields, cur.options = template, nil, len(fields), options
			cur.raw = encodeTemplate(version, template)
		}
		e.refreshed(cur)
		e.added = append(e.added, key)
		return nil
	}
	if len(e.templates) >= e.c.config.Templates.Max {
		e.evictFor(key)
	}
	e.store(&tmplEntry{key: key, tmpl: template, raw: encodeTemplate(version, template),
		fields: len(fields), options: options, lastSeen: e.now})
	e.added = append(e.added, key)
	e.templateEvent("added")
	return nil
}

// refreshTemplates handles a template set body whose every record is, byte
// for byte, a template the exporter holds: it refreshes them as goflow2's
// parse and AddTemplate would (same template: kept, seen now), without
// parsing. It changes nothing and returns false for any other set.
func (e *exporterState) refreshTemplates(version uint16, domain uint32, id uint16, b []byte) bool {
	for rest := b; len(rest) >= 4; {
		n := templateRecordLen(version, id, rest)
		if n == 0 {
			return false
		}
		t := e.templates[tmplKey{version, domain, binary.BigEndian.Uint16(rest)}]
		if t == nil || !bytes.Equal(t.raw, rest[:n]) {
			return false
		}
		rest = rest[n:]
	}
	for rest := b; len(rest) >= 4; {
		n := templateRecordLen(version, id, rest)
		key := tmplKey{version, domain, binary.BigEndian.Uint16(rest)}
		e.refreshed(e.templates[key])
		e.added = append(e.added, key)
		rest = rest[n:]
	}
	return true
}

// store adds a new template; there is room for it.
func (e *exporterState) store(t *tmplEntry) {
	scope := tmplScope{t.key.version, t.key.domain}
	d := e.domains[scope]
	if d == nil {
		d = &tmplDomain{scope: scope, idx: len(e.domainList)}
		e.domains[scope] = d
		e.domainList = append(e.domainList, d)
	}
	t.dom = d
	d.n++
	d.fresh.pushFront(t, useLinks)
	e.age.pushFront(t, ageLinks)
	e.templates[t.key] = t
	e.m.templates.Set(float64(len(e.templates)))
}

// refreshed records that a template was re-sent now: its lifetime starts
// again, and it is confirmed and recently used.
func (e *exporterState) refreshed(t *tmplEntry) {
	t.lastSeen = e.now
	e.age.toFront(t, ageLinks)
	e.confirm(t)
}

// confirm records that a template was used by a data set or re-sent.
func (e *exporterState) confirm(t *tmplEntry) {
	d := t.dom
	if t.confirmed {
		d.confirmed.toFront(t, useLinks)
		return
	}
	d.fresh.remove(t, useLinks)
	t.confirmed = true
	d.confirmed.pushFront(t, useLinks)
}

// drop forgets a template, counting event unless it is empty.
func (e *exporterState) drop(t *tmplEntry, event string) {
	d := t.dom
	d.list(t).remove(t, useLinks)
	e.age.remove(t, ageLinks)
	delete(e.templates, t.key)
	if d.n--; d.n == 0 {
		last := e.domainList[len(e.domainList)-1]
		last.idx = d.idx
		e.domainList[d.idx] = last
		e.domainList[len(e.domainList)-1] = nil
		e.domainList = e.domainList[:len(e.domainList)-1]
		delete(e.domains, d.scope)
	}
	if event != "" {
		e.templateEvent(event)
	}
	e.m.templates.Set(float64(len(e.templates)))
}

// expireTemplates forgets the templates not (re)sent for
// templates.lifetime. It runs before each datagram is decoded; when none
// has expired, it costs one comparison.
func (e *exporterState) expireTemplates() {
	lifetime := e.c.config.Templates.Lifetime
	for t := e.age.back; t != nil && e.now.Sub(t.lastSeen) > lifetime; t = e.age.back {
		e.drop(t, "expired")
	}
}

// evictFor makes room at templates.max for the new template key: it
// evicts the least recently used template not confirmed of the scope
// holding the most templates among those holding such; when every template
// is confirmed, the least recently used of the scope holding the most. On
// a tie, key's own scope is preferred.
func (e *exporterState) evictFor(key tmplKey) {
	scope := tmplScope{key.version, key.domain}
	larger := func(c, d *tmplDomain) bool { return d == nil || c.n > d.n || c.n == d.n && c.scope == scope }
	var withFresh, largest *tmplDomain
	for _, c := range e.domainList {
		if c.fresh.back != nil && larger(c, withFresh) {
			withFresh = c
		}
		if larger(c, largest) {
			largest = c
		}
	}
	var t *tmplEntry
	if withFresh != nil {
		t = withFresh.fresh.back
	} else {
		t = largest.confirmed.back
	}
	e.drop(t, "evicted")
	e.c.logs.LogAt(e.now, slog.LevelWarn, e.label+"\x00template_evicted",
		"template cache full: least recently used template evicted to make room (a template flood, or collector.templates.max too low for this exporter)",
		"exporter", e.label, "templates_max", e.c.config.Templates.Max,
		"evicted_template", t.key.id, "evicted_domain", t.key.domain, "evicted_version", t.key.version, "evicted_confirmed", t.confirmed,
		"template", key.id, "domain", key.domain, "version", key.version)
}

// withdraw deletes a template. IPFIX template IDs 2 and 3 withdraw all
// (options) templates of the domain (RFC 7011 §8.1).
func (e *exporterState) withdraw(key tmplKey) {
	if key.id == 2 || key.id == 3 {
		if d := e.domains[tmplScope{key.version, key.domain}]; d != nil {
			for d.fresh.front != nil {
				e.drop(d.fresh.front, "withdrawn")
			}
			for d.confirmed.front != nil {
				e.drop(d.confirmed.front, "withdrawn")
			}
		}
	} else if t, ok := e.templates[key]; ok {
		e.drop(t, "withdrawn")
	}
	e.m.templates.Set(float64(len(e.templates)))
}

// lookup returns a live template for a data set, and records the use; nil
// when unknown.
func (e *exporterState) lookup(key tmplKey) *tmplEntry {
	t, ok := e.templates[key]
	if !ok {
		return nil
	}
	if e.now.Sub(t.lastSeen) > e.c.config.Templates.Lifetime {
		// Receive times can go back (captures, HandleDatagram), and
		// expireTemplates only looks at the back of the age list.
		e.drop(t, "expired")
		return nil
	}
	e.confirm(t)
	return t
}

// GetTemplate implements goflow2's NetFlowTemplateSystem (goflow2 calls it
// only for data sets, which the collector decodes itself; the differential
// tests' reference path decodes them with goflow2). It is lookup: an
// evicted or expired template is not found, and a found one is confirmed
// and recently used.
func (e *exporterState) GetTemplate(version uint16, domain uint32, id uint16) (any, error) {
	t := e.lookup(tmplKey{version, domain, id})
	if t == nil {
		return nil, netflow.ErrorTemplateNotFound
	}
	return t.tmpl, nil
}

// RemoveTemplate implements goflow2's NetFlowTemplateSystem.
func (e *exporterState) RemoveTemplate(version uint16, domain uint32, id uint16) (any, error) {
	t, ok := e.templates[tmplKey{version, domain, id}]
	if !ok {
		return nil, netflow.ErrorTemplateNotFound
	}
	e.drop(t, "")
	return t.tmpl, nil
}

// GetTemplates implements goflow2's NetFlowTemplateSystem (goflow2's
// decoders never call it).
func (e *exporterState) GetTemplates() netflow.FlowBaseTemplateSet {
	out := make(netflow.FlowBaseTemplateSet, len(e.templates))
	for k, t := range e.templates {
		out[uint64(k.version)<<48|uint64(k.domain)<<16|uint64(k.id)] = t.tmpl
	}
	return out
}

// templateEvent counts a template event, and keeps it for the exporter's
// next template log line (logTemplates).
func (e *exporterState) templateEvent(ev string) {
	e.c.metrics.templateEvents.WithLabelValues(e.label, ev).Inc()
	for i, name := range templateEventNames {
		if name == ev {
			e.tmplUntold[i]++
		}
	}
}

// encodeTemplate renders one of goflow2's template records in its wire
// form. goflow2's template parsing is deterministic and keeps every bit
// of the record, so a record with these bytes parses to this template.
func encodeTemplate(version uint16, template any) []byte {
	var b []byte
	fields := func(fs []netflow.Field) {
		for _, f := range fs {
			if version == 10 && f.PenProvided {
				b = binary.BigEndian.AppendUint16(b, f.Type|0x8000)
				b = binary.BigEndian.AppendUint16(b, f.Length)
				b = binary.BigEndian.AppendUint32(b, f.Pen)
				continue
			}
			b = binary.BigEndian.AppendUint16(b, f.Type)
			b = binary.BigEndian.AppendUint16(b, f.Length)
		}
	}
	switch t := template.(type) {
	case netflow.TemplateRecord:
		b = binary.BigEndian.AppendUint16(b, t.TemplateId)
		b = binary.BigEndian.AppendUint16(b, t.FieldCount)
		fields(t.Fields)
	case netflow.NFv9OptionsTemplateRecord:
		b = binary.BigEndian.AppendUint16(b, t.TemplateId)
		b = binary.BigEndian.AppendUint16(b, t.ScopeLength)
		b = binary.BigEndian.AppendUint16(b, t.OptionLength)
		fields(t.Scopes)
		fields(t.Options)
	case netflow.IPFIXOptionsTemplateRecord:
		b = binary.BigEndian.AppendUint16(b, t.TemplateId)
		b = binary.BigEndian.AppendUint16(b, t.FieldCount)
		b = binary.BigEndian.AppendUint16(b, t.ScopeFieldCount)
		fields(t.Scopes)
		fields(t.Options)
	}
	return b
}

// sameTemplate tells whether two of goflow2's template records describe
// the same record layout.
func sameTemplate(a, b any) bool {
	switch x := a.(type) {
	case netflow.TemplateRecord:
		y, ok := b.(netflow.TemplateRecord)
		return ok && slices.Equal(x.Fields, y.Fields)
	case netflow.NFv9OptionsTemplateRecord:
		y, ok := b.(netflow.NFv9OptionsTemplateRecord)
		return ok && slices.Equal(x.Scopes, y.Scopes) && slices.Equal(x.Options, y.Options)
	case netflow.IPFIXOptionsTemplateRecord:
		y, ok := b.(netflow.IPFIXOptionsTemplateRecord)
		return ok && slices.Equal(x.Scopes, y.Scopes) && slices.Equal(x.Options, y.Options)
	}
	return false
}

// maxTemplateFields bounds a template: real exporters send tens of fields,
// and goflow2 allocates a value slice of this size for every record.
const maxTemplateFields = 512

// checkTemplate returns why a template is unusable, or "".
func checkTemplate(fields []netflow.Field) string {
	if len(fields) == 0 {
		return "template_no_fields"
	}
	if len(fields) > maxTemplateFields {
		return "template_too_many_fields"
	}
	for _, f := range fields {
		// A zero-length field carries nothing; a template of only such
		// fields makes goflow2's data set loop spin without consuming
		// bytes. Reject any, as no information element has length 0.
		if f.Length == 0 {
			return "template_zero_length_field"
		}
	}
	return ""
}
