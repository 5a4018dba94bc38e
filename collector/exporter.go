package collector

import (
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

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
// for the whole decode of a datagram: an exporter's datagrams go to its home
// worker, so the lock is uncontended except when HandleDatagram or
// Exporters runs at the same time, or when the home worker is backlogged
// and its datagrams spill over to the other workers (pick), which then take
// turns on it for the decode (not for the host table's Apply, the bulk of
// a datagram's cost).
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
	// domains holds the templates of each (version, observation domain)
	// in use order, for eviction at templates.max; domainList is the same
	// domains, scanned there without walking a map.
	domains    map[tmplScope]*tmplDomain
	domainList []*tmplDomain
	// age holds every template, the most recently (re)sent first, so
	// that expired templates are found at its back.
	age tmplList
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

	// tmplUntold counts the template events not yet told in the log, by
	// templateEventNames index; tmplToldAt is when the last template line
	// was logged (logTemplates).
	tmplUntold [numTemplateEvents]uint32
	tmplToldAt time.Time

	versions uint32 // bit set of protocol versions seen (5, 9, 10; sFlow as bit 0)
	packets  uint64
	flows    uint64
	errors   uint64
	lastSeen time.Time
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
