// Package collector is the ingest component: it receives NetFlow v5, v9,
// IPFIX and sFlow v5 exports over UDP, keeps per-exporter template and
// sampling state, and hands batches of compact flow.Records to a
// flow.Handler. NetFlow v5 records and v9/IPFIX data sets are decoded by
// the collector's own code (data sets by template plans compiled once per
// template, plan.go); goflow2's decoders parse templates, options
// templates and sFlow, and are the differential tests' oracle for the
// rest.
package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flowcheck/flowcheck/clock"
	"github.com/flowcheck/flowcheck/flow"
	"github.com/flowcheck/flowcheck/internal/ratelog"
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
	// Hosts, when not nil, adds its size (the host table's) to the
	// periodic summary line.
	Hosts interface{ Len() int }
}

// Component is the running collector.
type Component struct {
	config    Configuration
	deps      Dependencies
	metrics   *metrics
	logs      *ratelog.Logger[string]
	denied    *ratelog.Logger[netip.Addr]
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
	// pauseHoldsP: a reader's read_pause keeps its P (sleepThread), done
	// only when Ps remain for the workers with every reader paused.
	pauseHoldsP bool
	// free recycles packets from the workers back to the readers.
	free     packetPool
	decoders sync.Pool      // *decoder, for HandleDatagram
	readers  sync.WaitGroup // the socket readers and the summary loop
	workers  sync.WaitGroup
	ready    atomic.Bool
	started  bool
	stopOnce sync.Once
	// stopped is closed when the workers have exited after Stop.
	stopped chan struct{}

	// Running totals, for the summary line (summary.go).
	datagrams, records, decodeErrors atomic.Uint64
	// quit ends the summary loop at Stop; summaryEvery is its period.
	quit         chan struct{}
	summaryEvery time.Duration
}

type parsedOverride struct {
	prefix            netip.Prefix
	defRate, override uint32
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
		return nil, errors.New("no flow handler (Dependencies.Flows)")
	}
	m, err := newMetrics(deps.Registerer)
	if err != nil {
		return nil, err
	}
	c := &Component{
		config:    cfg,
		deps:      deps,
		metrics:   m,
		logs:      ratelog.New[string](deps.Logger, deps.Clock, logInterval, maxLogKeys),
		denied:    ratelog.New[netip.Addr](deps.Logger, deps.Clock, logInterval, maxDeniedSenders).KeyAs("sender"),
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
	c.free.max = cfg.Workers*cfg.QueueSize + readBatch
	c.stopped = make(chan struct{})
	c.quit = make(chan struct{})
	c.summaryEvery = summaryInterval
	c.decoders.New = func() any { return newDecoder(c) }
	return c, nil
}

// Start binds every listener (returning the first bind error, with nothing
// left bound) and starts the decode workers and socket readers. ctx bounds
// the binding only: the readers and workers run until Stop.
func (c *Component) Start(ctx context.Context) error {
	if c.started {
		return errors.New("already started")
	}
	for _, l := range c.listeners {
		if err := c.bind(ctx, l); err != nil {
			for _, l := range c.listeners {
				l.close()
				l.release()
			}
			return err
		}
		if len(c.allow) == 0 && !l.addr.Addr().IsLoopback() {
			c.deps.Logger.Warn("listener bound to a non-loopback address with an empty exporters.allow: anyone who can reach it can inject flows",
				"listener", l.url)
		}
	}
	if portableReceive {
		c.deps.Logger.Warn("portable receive path: one socket per listener, one datagram per read, and datagrams the kernel drops on a full socket buffer are not counted (recvmmsg, SO_REUSEPORT and SO_RXQ_OVFL are Linux's)")
	}
	c.started = true
	c.queues = make([]chan *packet, c.config.Workers)
	for i := range c.queues {
		c.queues[i] = make(chan *packet, c.config.QueueSize)
		c.workers.Add(1)
		go c.work(i, c.queues[i])
	}
	readers := 0
	for _, l := range c.listeners {
		readers += len(l.readers)
	}
	c.pauseHoldsP = runtime.GOMAXPROCS(0) > readers
	for _, l := range c.listeners {
		for _, br := range l.readers {
			c.readers.Add(1)
			go c.read(l, br)
		}
	}
	c.readers.Add(1)
	go c.summarize()
	c.ready.Store(true)
	return nil
}

// Stop closes the sockets, lets the workers decode what is queued, and
// returns when they have exited, or with ctx's error when ctx ends first
// (the workers then finish in the background).
func (c *Component) Stop(ctx context.Context) error {
	c.stopOnce.Do(func() {
		c.ready.Store(false)
		for _, l := range c.listeners {
			l.close()
		}
		close(c.quit)
		go func() {
			c.readers.Wait()
			for _, q := range c.queues {
				close(q)
			}
			c.workers.Wait()
			close(c.stopped)
		}()
	})
	select {
	case <-c.stopped:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("workers still decoding: %w", ctx.Err())
	}
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
