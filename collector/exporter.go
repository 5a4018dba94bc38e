package collector

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/netsampler/goflow2/v2/decoders/netflow"
)

// tmplKey identifies a template within one exporter. Keying by exporter IP
// (not IP:port) keeps templates across an exporter's source port changes.
type tmplKey struct {
	version uint16
	domain  uint32
	id      uint16
}

type tmplEntry struct {
	tmpl any // one of goflow2's template record types
	// raw is tmpl's wire form: a resent record equal to it is the same
	// template, refreshed without parsing.
	raw      []byte
	plan     *plan
	fields   int
	options  bool
	lastSeen time.Time
}

// samplerKey identifies a sampler (v9 sampler ID, IPFIX samplerId or
// selectorId; 0 when the exporter names none) within an exporter.
type samplerKey struct {
	domain uint32
	id     uint64
}

// pendingSet is a data set that arrived before its template.
type pendingSet struct {
	key  tmplKey
	data []byte
	hdr  exportHeader
}

// exporterState is everything known about one exporter. Its lock is held
// for the whole decode of a datagram: datagrams of one exporter are sharded
// to one worker, so the lock is uncontended except when HandleDatagram or
// Exporters runs at the same time.
type exporterState struct {
	mu    sync.Mutex
	c     *Component
	addr  netip.Addr
	label string
	m     exporterMetrics

	// defaultRate and overrideRate come from the configuration.
	defaultRate, overrideRate uint32

	// now is the receive time of the datagram being decoded; template
	// and pending expiry run on it so that replays of captures behave
	// like the live collector did.
	now       time.Time
	templates map[tmplKey]*tmplEntry
	// added lists the templates added by the current datagram, to decode
	// the data sets waiting for them.
	added []tmplKey

	sampling map[samplerKey]uint32
	// sysInit is IPFIX systemInitTimeMilliseconds (IE 160) per domain.
	sysInit map[uint32]time.Time

	pending      []pendingSet
	pendingBytes int

	// evicted is set, under mu, when the exporter is forgotten: a
	// worker that looked it up just before must look it up again.
	evicted bool
	// drops count this exporter's datagrams dropped before decoding, by
	// reason (exporterDropReasons); they are counted outside the lock, by
	// the socket readers and before admission.
	drops [numDrops]atomic.Uint64

	versions uint32 // bit set of protocol versions seen (5, 9, 10; sFlow as bit 0)
	packets  uint64
	flows    uint64
	errors   uint64
	lastSeen time.Time
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
			cur.tmpl, cur.plan, cur.fields, cur.options = template, compilePlan(version, template), len(fields), options
			cur.raw = encodeTemplate(version, template)
		}
		cur.lastSeen = e.now
		e.added = append(e.added, key)
		return nil
	}
	if len(e.templates) >= e.c.config.Templates.Max {
		e.templateEvent("capped")
		e.c.decodeError(e, "template_cap", "template", id, "domain", domain, "version", version)
		return nil
	}
	e.templates[key] = &tmplEntry{tmpl: template, raw: encodeTemplate(version, template), plan: compilePlan(version, template),
		fields: len(fields), options: options, lastSeen: e.now}
	e.added = append(e.added, key)
	e.templateEvent("added")
	e.m.templates.Set(float64(len(e.templates)))
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
		e.templates[key].lastSeen = e.now
		e.added = append(e.added, key)
		rest = rest[n:]
	}
	return true
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

// withdraw deletes a template. IPFIX template IDs 2 and 3 withdraw all
// (options) templates of the domain (RFC 7011 §8.1).
func (e *exporterState) withdraw(key tmplKey) {
	if key.id == 2 || key.id == 3 {
		for k := range e.templates {
			if k.version == key.version && k.domain == key.domain {
				delete(e.templates, k)
				e.templateEvent("withdrawn")
			}
		}
	} else if _, ok := e.templates[key]; ok {
		delete(e.templates, key)
		e.templateEvent("withdrawn")
	}
	e.m.templates.Set(float64(len(e.templates)))
}

// lookup returns a live template, nil when unknown; expired templates are
// deleted on lookup.
func (e *exporterState) lookup(key tmplKey) *tmplEntry {
	t, ok := e.templates[key]
	if !ok {
		return nil
	}
	if e.now.Sub(t.lastSeen) > e.c.config.Templates.Lifetime {
		delete(e.templates, key)
		e.templateEvent("expired")
		e.m.templates.Set(float64(len(e.templates)))
		return nil
	}
	return t
}

// GetTemplate implements goflow2's NetFlowTemplateSystem (goflow2 calls it
// only for data sets, which the collector decodes itself).
func (e *exporterState) GetTemplate(version uint16, domain uint32, id uint16) (any, error) {
	t := e.lookup(tmplKey{version, domain, id})
	if t == nil {
		return nil, netflow.ErrorTemplateNotFound
	}
	return t.tmpl, nil
}

// RemoveTemplate implements goflow2's NetFlowTemplateSystem.
func (e *exporterState) RemoveTemplate(version uint16, domain uint32, id uint16) (any, error) {
	key := tmplKey{version, domain, id}
	t, ok := e.templates[key]
	if !ok {
		return nil, netflow.ErrorTemplateNotFound
	}
	delete(e.templates, key)
	e.m.templates.Set(float64(len(e.templates)))
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

func (e *exporterState) templateEvent(ev string) {
	e.c.metrics.templateEvents.WithLabelValues(e.label, ev).Inc()
}

// addPending keeps a copy of a data set until its template arrives, within
// the configured byte budget (oldest evicted first, counted as missing).
func (e *exporterState) addPending(key tmplKey, set []byte, hdr exportHeader) {
	limit := e.c.config.Templates.PendingBytes
	if len(set) > limit {
		e.c.decodeError(e, "template_missing", "template", key.id, "domain", key.domain, "version", key.version)
		return
	}
	for e.pendingBytes+len(set) > limit && len(e.pending) > 0 {
		e.dropPending(0)
	}
	e.pending = append(e.pending, pendingSet{key: key, data: slices.Clone(set), hdr: hdr})
	e.pendingBytes += len(set)
	e.m.pendingBytes.Set(float64(e.pendingBytes))
}

// dropPending forgets pending set i, counting it as template_missing.
func (e *exporterState) dropPending(i int) {
	p := e.pending[i]
	e.pendingBytes -= len(p.data)
	e.pending = slices.Delete(e.pending, i, i+1)
	e.m.pendingBytes.Set(float64(e.pendingBytes))
	e.c.decodeError(e, "template_missing", "template", p.key.id, "domain", p.key.domain, "version", p.key.version)
}

// expirePending drops pending sets older than the configured TTL.
func (e *exporterState) expirePending() {
	ttl := e.c.config.Templates.PendingTTL
	for i := 0; i < len(e.pending); {
		if e.now.Sub(e.pending[i].hdr.received) > ttl {
			e.dropPending(i)
			continue
		}
		i++
	}
}

// takePending removes and returns the pending sets of the templates added
// by the current datagram, in arrival order.
func (e *exporterState) takePending(dst []pendingSet) []pendingSet {
	if len(e.pending) == 0 || len(e.added) == 0 {
		return dst
	}
	kept := e.pending[:0]
	for _, p := range e.pending {
		if slices.Contains(e.added, p.key) {
			dst = append(dst, p)
			e.pendingBytes -= len(p.data)
			continue
		}
		kept = append(kept, p)
	}
	clear(e.pending[len(kept):])
	e.pending = kept
	e.m.pendingBytes.Set(float64(e.pendingBytes))
	return dst
}

// rate resolves the sampling rate of a record: configured override, then
// the record's own rate, then the exporter's announced sampler rate, then
// the configured default. 0 means unknown.
func (e *exporterState) rate(domain uint32, recordRate uint32, sampler uint64) uint32 {
	if e.overrideRate != 0 {
		return e.overrideRate
	}
	if recordRate != 0 {
		return recordRate
	}
	if r, ok := e.sampling[samplerKey{domain, sampler}]; ok {
		return r
	}
	if sampler != 0 {
		if r, ok := e.sampling[samplerKey{domain, 0}]; ok {
			return r
		}
	}
	return e.defaultRate
}

// maxSamplers bounds the sampling registry of one exporter.
const maxSamplers = 1024

func (e *exporterState) learnRate(domain uint32, sampler uint64, rate uint32) {
	k := samplerKey{domain, sampler}
	if _, ok := e.sampling[k]; !ok && len(e.sampling) >= maxSamplers {
		e.c.decodeError(e, "sampler_cap")
		return
	}
	e.sampling[k] = rate
}

// ExporterInfo describes one exporter for the HTTP API.
type ExporterInfo struct {
	Address netip.Addr `json:"address"`
	// Protocols are the export protocols seen: netflow5, netflow9, ipfix,
	// sflow5.
	Protocols     []string       `json:"protocols"`
	Templates     []TemplateInfo `json:"templates"`
	SamplingRates []SamplingInfo `json:"sampling_rates"`
	Packets       uint64         `json:"packets"`
	Flows         uint64         `json:"flows"`
	Errors        uint64         `json:"errors"`
	PendingBytes  int            `json:"pending_bytes"`
	Drops         ExporterDrops  `json:"drops"`
	LastSeen      time.Time      `json:"last_seen"`
}

// ExporterDrops counts an exporter's datagrams dropped before decoding, by
// reason. (Datagrams of senders outside exporters.allow or beyond
// exporters.max are counted by reason only: such senders are not tracked.)
type ExporterDrops struct {
	// QueueFull counts datagrams its decode worker had no room for.
	QueueFull uint64 `json:"queue_full"`
	// WrongProtocol counts datagrams of a protocol their listener does
	// not accept.
	WrongProtocol uint64 `json:"wrong_protocol"`
}

// TemplateInfo describes one template of an exporter.
type TemplateInfo struct {
	Version  uint16    `json:"version"`
	Domain   uint32    `json:"domain"`
	ID       uint16    `json:"id"`
	Fields   int       `json:"fields"`
	Options  bool      `json:"options"`
	LastSeen time.Time `json:"last_seen"`
}

// SamplingInfo is one learned sampling rate.
type SamplingInfo struct {
	Domain    uint32 `json:"domain"`
	SamplerID uint64 `json:"sampler_id"`
	Rate      uint32 `json:"rate"`
}

func (e *exporterState) info() ExporterInfo {
	e.mu.Lock()
	defer e.mu.Unlock()
	in := ExporterInfo{
		Address:      e.addr,
		Packets:      e.packets,
		Flows:        e.flows,
		Errors:       e.errors,
		PendingBytes: e.pendingBytes,
		Drops: ExporterDrops{
			QueueFull:     e.drops[dropQueueFull].Load(),
			WrongProtocol: e.drops[dropWrongProtocol].Load(),
		},
		LastSeen: e.lastSeen,
	}
	for _, p := range []struct {
		bit  uint32
		name string
	}{{1, "sflow5"}, {1 << 5, "netflow5"}, {1 << 9, "netflow9"}, {1 << 10, "ipfix"}} {
		if e.versions&p.bit != 0 {
			in.Protocols = append(in.Protocols, p.name)
		}
	}
	for k, t := range e.templates {
		in.Templates = append(in.Templates, TemplateInfo{Version: k.version, Domain: k.domain, ID: k.id,
			Fields: t.fields, Options: t.options, LastSeen: t.lastSeen})
	}
	slices.SortFunc(in.Templates, func(a, b TemplateInfo) int {
		if a.Version != b.Version {
			return int(a.Version) - int(b.Version)
		}
		if a.Domain != b.Domain {
			if a.Domain < b.Domain {
				return -1
			}
			return 1
		}
		return int(a.ID) - int(b.ID)
	})
	for k, r := range e.sampling {
		in.SamplingRates = append(in.SamplingRates, SamplingInfo{Domain: k.domain, SamplerID: k.id, Rate: r})
	}
	slices.SortFunc(in.SamplingRates, func(a, b SamplingInfo) int {
		if a.Domain != b.Domain {
			if a.Domain < b.Domain {
				return -1
			}
			return 1
		}
		if a.SamplerID < b.SamplerID {
			return -1
		}
		if a.SamplerID > b.SamplerID {
			return 1
		}
		return 0
	})
	return in
}
