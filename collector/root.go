// Package collector is the ingest component: it receives NetFlow v5, v9,
// IPFIX and sFlow v5 exports over UDP, decodes them with goflow2's decoders
// (not its pipeline or producer), keeps per-exporter template and sampling
// state, and hands batches of compact flow.Records to a flow.Handler.
package collector

import (
	"encoding/binary"
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flowcheck/flowcheck/clock"
	"github.com/flowcheck/flowcheck/flow"
	"github.com/prometheus/client_golang/prometheus"
)

// Dependencies are what the collector needs from the rest of the program.
type Dependencies struct {
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Clock      clock.Clock
	// Flows receives the decoded records, at least once per datagram. It
	// is called from several decode workers at once, so it must be safe
	// for concurrent use; the batch is reused once it returns.
	Flows flow.Handler
	// Lost, when not nil, is told of datagrams of flow data lost on
	// ingest (a full worker queue, a full socket buffer): each socket
	// reader that lost some reports, about once a second, how many it
	// lost and how many it handed to the workers since its last report,
	// with the clock time. A consumer that infers something from a
	// record's absence (a reply never seen) then knows when its view had
	// gaps, and how large.
	Lost func(at time.Time, lost, received int)
	// Shed, when not nil, takes instead of Flows the records of a worker
	// whose queue is backlogged past shed_backlog: a cheaper path that
	// skips work the consumer can do without (the host table's
	// conversation stitching), so that the worker catches up before its
	// queue overflows. Same contract as Flows.
	Shed flow.Handler
}

// Component is the running collector.
type Component struct {
	config    Configuration
	deps      Dependencies
	metrics   *metrics
	logs      *logLimiter
	denied    *deniedLog
	allow     []netip.Prefix
	overrides []parsedOverride
	listeners []*listener

	mu        sync.RWMutex
	exporters map[netip.Addr]*exporterState
	// noStaleBefore (under mu) is the receive time before which no
	// exporter can have been silent for templates.lifetime: the oldest
	// last-seen time plus the lifetime, as of the last search for one to
	// evict at the cap. It spares a flood of new senders at the cap a
	// scan of every exporter per datagram.
	noStaleBefore time.Time
	// nextSweep is the receive time (Unix nanoseconds) of the next idle
	// exporter sweep; the datagram that reaches it runs the sweep.
	nextSweep  atomic.Int64
	sweepEvery time.Duration

	queues []chan *packet
	// free recycles packets from the workers back to the readers. Unlike
	// a sync.Pool it is never emptied by the GC (nor, under the race
	// detector, at random), so the receive path does not allocate in a
	// steady state; it holds at most what the queues can.
	free     chan *packet
	decoders sync.Pool // *decoder, for HandleDatagram
	readers  sync.WaitGroup
	workers  sync.WaitGroup
	ready    atomic.Bool
	started  bool
	stopOnce sync.Once
}

type parsedOverride struct {
	prefix            netip.Prefix
	defRate, override uint32
}

// packet is one received datagram on its way to a decode worker.
type packet struct {
	from     netip.AddrPort
	received time.Time
	kind     listenKind
	buf      []byte
}

// New checks the configuration and builds the collector; Start binds it.
func New(cfg Configuration, deps Dependencies) (*Component, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Registerer == nil {
		deps.Registerer = prometheus.NewRegistry()
	}
	if deps.Clock == nil {
		deps.Clock = clock.Live{}
	}
	if deps.Flows == nil {
		return nil, errors.New("collector: no flow handler")
	}
	m, err := newMetrics(deps.Registerer)
	if err != nil {
		return nil, err
	}
	c := &Component{
		config:    cfg,
		deps:      deps,
		metrics:   m,
		logs:      newLogLimiter(deps.Logger, logInterval),
		denied:    newDeniedLog(deps.Logger, logInterval),
		exporters: make(map[netip.Addr]*exporterState),
		// Idle exporters are forgotten at most a quarter of the timeout
		// (or a minute) late.
		sweepEvery: min(cfg.Exporters.IdleTimeout/4, time.Minute),
	}
	for _, p := range cfg.Exporters.Allow {
		c.allow = append(c.allow, netip.MustParsePrefix(p).Masked())
	}
	for _, o := range cfg.Sampling.Overrides {
		c.overrides = append(c.overrides, parsedOverride{netip.MustParsePrefix(o.Prefix).Masked(), o.Default, o.Override})
	}
	for _, l := range cfg.Listeners {
		kind, addr, _ := parseListenURL(l.URL)
		c.listeners = append(c.listeners, &listener{url: l.URL, kind: kind, addr: addr, sockets: l.Sockets, rcvbuf: l.ReceiveBuffer})
	}
	c.free = make(chan *packet, cfg.Workers*cfg.QueueSize+readBatch)
	c.decoders.New = func() any { return newDecoder(c) }
	return c, nil
}

// Start binds every listener (returning the first bind error, with nothing
// left bound) and starts the decode workers and socket readers.
func (c *Component) Start() error {
	if c.started {
		return errors.New("collector: already started")
	}
	for _, l := range c.listeners {
		if err := c.bind(l); err != nil {
			for _, l := range c.listeners {
				l.close()
			}
			return err
		}
		if len(c.allow) == 0 && !l.addr.Addr().IsLoopback() {
			c.deps.Logger.Warn("listener bound to a non-loopback address with an empty exporters.allow: anyone who can reach it can inject flows",
				"listener", l.url)
		}
	}
	c.started = true
	c.queues = make([]chan *packet, c.config.Workers)
	for i := range c.queues {
		c.queues[i] = make(chan *packet, c.config.QueueSize)
		c.workers.Add(1)
		go c.work(c.queues[i])
	}
	for _, l := range c.listeners {
		for _, conn := range l.conns {
			c.readers.Add(1)
			go c.read(l, conn)
		}
	}
	c.ready.Store(true)
	return nil
}

// Stop closes the sockets, lets the workers decode what is queued, and
// returns when they have exited.
func (c *Component) Stop() {
	c.stopOnce.Do(func() {
		c.ready.Store(false)
		for _, l := range c.listeners {
			l.close()
		}
		c.readers.Wait()
		for _, q := range c.queues {
			close(q)
		}
		c.workers.Wait()
	})
}

// Ready tells whether every listener is bound and being read.
func (c *Component) Ready() bool { return c.ready.Load() }

// ListenAddrs returns the bound address of each listener, in configuration
// order (the real port when the configuration says port 0).
func (c *Component) ListenAddrs() []netip.AddrPort {
	out := make([]netip.AddrPort, 0, len(c.listeners))
	for _, l := range c.listeners {
		out = append(out, l.bound)
	}
	return out
}

// HandleDatagram runs one export datagram through the allow-list and the
// decode path synchronously: deps.Flows has been called with its records
// when it returns. received stands for the receive time (the capture time
// in replays); template and pending-set expiry run on it.
func (c *Component) HandleDatagram(from netip.AddrPort, payload []byte, received time.Time) {
	d := c.decoders.Get().(*decoder)
	d.handle(from, payload, received, kindAuto)
	d.flush()
	c.decoders.Put(d)
}

// Exporters describes every tracked exporter, sorted by address.
func (c *Component) Exporters() []ExporterInfo {
	c.mu.RLock()
	list := make([]*exporterState, 0, len(c.exporters))
	for _, e := range c.exporters {
		list = append(list, e)
	}
	c.mu.RUnlock()
	out := make([]ExporterInfo, 0, len(list))
	for _, e := range list {
		out = append(out, e.info())
	}
	slices.SortFunc(out, func(a, b ExporterInfo) int { return a.Address.Compare(b.Address) })
	return out
}

func (c *Component) allowed(a netip.Addr) bool {
	if len(c.allow) == 0 {
		return true
	}
	for _, p := range c.allow {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// known returns the state of a tracked exporter, or nil.
func (c *Component) known(a netip.Addr) *exporterState {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.exporters[a]
}

// exporter returns the state of an exporter, creating it within the
// exporters.max cap (evicting a stale exporter at the cap if there is one);
// nil when the cap is reached.
func (c *Component) exporter(a netip.Addr, now time.Time) *exporterState {
	if e := c.known(a); e != nil {
		return e
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.exporters[a]; e != nil {
		return e
	}
	if len(c.exporters) >= c.config.Exporters.Max && !c.evictStale(now) {
		return nil
	}
	label := a.String()
	e := &exporterState{
		c:           c,
		addr:        a,
		label:       label,
		m:           c.metrics.forExporter(label),
		defaultRate: c.config.Sampling.Default,
		templates:   make(map[tmplKey]*tmplEntry),
		domains:     make(map[tmplScope]*tmplDomain),
		sampling:    make(map[samplerKey]uint32),
		sysInit:     make(map[uint32]time.Time),
		// Seen now, before it is published: a sweep must not take
		// it for idle before its first datagram is decoded.
		lastSeen: now,
	}
	for _, o := range c.overrides {
		if o.prefix.Contains(a) {
			if o.defRate != 0 {
				e.defaultRate = o.defRate
			}
			e.overrideRate = o.override
			break
		}
	}
	c.exporters[a] = e
	c.metrics.exporters.Set(float64(len(c.exporters)))
	return e
}

// admit returns the locked state of an exporter for the decode of one
// datagram, nil at the exporters.max cap. An exporter is evicted only while
// its lock is free, so one evicted between lookup and lock is looked up
// again (and created afresh).
func (c *Component) admit(a netip.Addr, now time.Time) *exporterState {
	for {
		e := c.exporter(a, now)
		if e == nil {
			return nil
		}
		e.mu.Lock()
		if !e.evicted {
			return e
		}
		e.mu.Unlock()
	}
}

// evictStale makes room at the cap: it evicts the least recently seen
// exporter silent for longer than templates.lifetime, and tells whether it
// found one. c.mu is held.
func (c *Component) evictStale(now time.Time) bool {
	if now.Before(c.noStaleBefore) {
		return false
	}
	lifetime := c.config.Templates.Lifetime
	var oldest *exporterState
	var oldestSeen time.Time
	for _, e := range c.exporters {
		if !e.mu.TryLock() {
			continue // being decoded: seen just now
		}
		seen := e.lastSeen
		e.mu.Unlock()
		if oldest == nil || seen.Before(oldestSeen) {
			oldest, oldestSeen = e, seen
		}
	}
	if oldest == nil || now.Sub(oldestSeen) <= lifetime {
		if oldest != nil {
			c.noStaleBefore = oldestSeen.Add(lifetime)
		}
		return false
	}
	if !oldest.mu.TryLock() {
		return false
	}
	c.evict(oldest, "cap", now)
	oldest.mu.Unlock()
	return true
}

// maybeSweep runs the idle sweep when receive time has reached it; one
// datagram at a time wins the sweep.
func (c *Component) maybeSweep(now time.Time) {
	next := c.nextSweep.Load()
	if now.UnixNano() < next || !c.nextSweep.CompareAndSwap(next, now.Add(c.sweepEvery).UnixNano()) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.exporters {
		// An exporter's state belongs to the worker decoding it: one
		// whose lock is taken is busy, hence not idle.
		if !e.mu.TryLock() {
			continue
		}
		if now.Sub(e.lastSeen) > c.config.Exporters.IdleTimeout {
			c.evict(e, "idle", now)
		}
		e.mu.Unlock()
	}
}

// evict forgets an exporter with all its state and metric series. c.mu and
// e.mu are held.
func (c *Component) evict(e *exporterState, reason string, now time.Time) {
	delete(c.exporters, e.addr)
	e.evicted = true
	c.metrics.exporters.Set(float64(len(c.exporters)))
	c.metrics.evictions.WithLabelValues(reason).Inc()
	c.metrics.evictedPending.Add(float64(len(e.pending)))
	c.metrics.forget(e.label)
	c.logs.Info(now, "evict\x00"+e.label, "exporter forgotten", "exporter", e.label, "reason", reason,
		"last_seen", e.lastSeen, "templates", len(e.templates), "pending_sets", len(e.pending), "pending_bytes", e.pendingBytes)
}

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

// Protocol of a datagram, from its first bytes.
const (
	protoUnknown = iota
	protoV5
	protoV9
	protoIPFIX
	protoSFlow
)

func detect(b []byte) int {
	if len(b) < 4 {
		return protoUnknown
	}
	if binary.BigEndian.Uint32(b) == 5 {
		return protoSFlow
	}
	switch binary.BigEndian.Uint16(b) {
	case 5:
		return protoV5
	case 9:
		return protoV9
	case 10:
		return protoIPFIX
	}
	return protoUnknown
}

func accepts(k listenKind, proto int) bool {
	switch k {
	case kindNetFlow:
		return proto == protoV5 || proto == protoV9 || proto == protoIPFIX
	case kindIPFIX:
		return proto == protoIPFIX
	case kindSFlow:
		return proto == protoSFlow
	}
	return true
}

// begin runs the checks before decoding a datagram: the allow-list, the
// listener's protocols, the exporter cap. It returns the exporter, locked,
// and the datagram's protocol; nil when the datagram is dropped.
func (c *Component) begin(addr netip.Addr, b []byte, received time.Time, kind listenKind) (*exporterState, int) {
	if !c.allowed(addr) {
		c.notAllowed(addr, received)
		return nil, 0
	}
	proto := detect(b)
	if proto != protoUnknown && !accepts(kind, proto) {
		c.dropped(addr, dropWrongProtocol)
		return nil, 0
	}
	c.maybeSweep(received)
	e := c.admit(addr, received)
	if e == nil {
		c.metrics.drops[dropExporterCap].Inc()
		return nil, 0
	}
	e.now = received
	e.lastSeen = received
	e.added = e.added[:0]
	e.expireTemplates()
	e.expirePending()
	if proto != protoUnknown {
		e.packets++
		e.m.packetBytes.Add(float64(len(b)))
		e.m.packets[proto].Inc()
	}
	return e, proto
}

// handle decodes one datagram, appending its records to d.batch; flush
// hands them on.
func (d *decoder) handle(from netip.AddrPort, b []byte, received time.Time, kind listenKind) {
	d.handleWith(d, from, b, received, kind)
}

// dataPath decodes NetFlow data: the decoder's compiled plans, or, in the
// differential tests, goflow2's own decoders.
type dataPath interface {
	decodeV5(e *exporterState, b []byte)
	decodeNetFlow(e *exporterState, b []byte, received time.Time)
}

// handleWith is handle with NetFlow decoded by p (sFlow always by d).
func (d *decoder) handleWith(p dataPath, from netip.AddrPort, b []byte, received time.Time, kind listenKind) {
	c := d.c
	addr := from.Addr().Unmap()
	e, proto := c.begin(addr, b, received, kind)
	if e == nil {
		return
	}
	switch proto {
	case protoV5:
		e.versions |= 1 << 5
		p.decodeV5(e, b)
	case protoV9:
		e.versions |= 1 << 9
		p.decodeNetFlow(e, b, received)
	case protoIPFIX:
		e.versions |= 1 << 10
		p.decodeNetFlow(e, b, received)
	case protoSFlow:
		e.versions |= 1
		d.decodeSFlow(e, b, received)
	default:
		c.decodeError(e, "unknown_version")
	}
	d.sum.flush(e)
	e.mu.Unlock()
}

// flush hands the decoded records to deps.Flows.
func (d *decoder) flush() { d.flushTo(d.c.deps.Flows) }

// flushTo hands the batch to h.
func (d *decoder) flushTo(h flow.Handler) {
	if len(d.batch) > 0 {
		h(d.batch)
		clear(d.batch) // drop references (application names) early
		d.batch = d.batch[:0]
	}
}
