package aggregate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowcheck/flowcheck/clock"
	"github.com/flowcheck/flowcheck/internal/defaults"
)

// Dependencies are what the host table needs from the rest of the program.
type Dependencies struct {
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Clock is the only time source (live or replay): windows, expiry and
	// first/last seen read it, never record timestamps.
	Clock clock.Clock
	// LookupAddr resolves an address to names for the optional reverse
	// DNS; nil means net.DefaultResolver.LookupAddr.
	LookupAddr LookupAddrFunc
}

// HostTable holds the state of every host, sharded by a hash of the host
// key so that ingest workers update it in parallel.
type HostTable struct {
	log     *slog.Logger
	clock   clock.Clock
	metrics *metrics
	// refusedLocal and refusedRemote are hostsRefused's two series,
	// commitOneSided and commitRefused committed's.
	refusedLocal, refusedRemote   prometheus.Counter
	commitOneSided, commitRefused prometheus.Counter
	withheld                      prometheus.Counter

	shards   []hostShard
	trackers []trackerLock
	mask     uint64

	// count is the number of hosts, across shards.
	count                   atomic.Int64
	localLimit, remoteLimit int64
	idleLocal, idleRemote   int64
	exactSetSize            int
	maxL7                   int
	foldRefused             bool
	withholdAfterLoss       bool
	lossTolerance           float64

	// lastLoss is the clock time (ns) of the latest ingest loss told to
	// IngestLost; noLoss before any.
	lastLoss atomic.Int64

	nc        atomic.Pointer[netClass]
	lastSweep atomic.Int64
	sweepMu   sync.Mutex

	scratch sync.Pool
	l7      l7Names

	// expiry is told of expired hosts (ListenExpiry); nil tells nobody.
	// It is set before Start, so sweep reads it without a lock.
	expiry ExpiryListener

	// reloadMu serializes Reload, blacklist reloads, ListenExpiry and
	// Start/Stop.
	reloadMu sync.Mutex
	started  bool
	cfg      Configuration
	black    *prefixSet
	watch    *blacklistWatcher
	rdns     *resolver
}

type hostShard struct {
	mu    sync.Mutex
	hosts hostIndex
	_     [48]byte // keep shards on separate cache lines
}

type trackerLock struct {
	mu sync.Mutex
	t  *trackerShard
	_  [48]byte
}

// New builds a host table. The blacklist files are read now; a file that
// cannot be read is an error.
func New(cfg Configuration, deps Dependencies) (*HostTable, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	deps.Logger = defaults.Logger(deps.Logger)
	deps.Registerer = defaults.Registerer(deps.Registerer)
	deps.Clock = defaults.Clock(deps.Clock)
	if deps.LookupAddr == nil {
		deps.LookupAddr = net.DefaultResolver.LookupAddr
	}
	t := &HostTable{
		log:          deps.Logger.With("component", "aggregate"),
		clock:        deps.Clock,
		shards:       make([]hostShard, cfg.Shards),
		trackers:     make([]trackerLock, cfg.Shards),
		mask:         uint64(cfg.Shards - 1),
		localLimit:   int64(cfg.MaxHosts),
		remoteLimit:  int64(cfg.MaxHosts) * int64(100-cfg.LocalReservePercent) / 100,
		idleLocal:    int64(cfg.IdleTimeout.Local),
		idleRemote:   int64(cfg.IdleTimeout.Remote),
		exactSetSize: cfg.ExactSetSize,
		maxL7:        cfg.MaxL7Protocols,
		foldRefused:  cfg.FoldRefusedIntoNoReply,
		cfg:          cfg,

		withholdAfterLoss: cfg.WithholdAfterIngestLoss,
		lossTolerance:     cfg.IngestLossTolerance,
	}
	t.lastLoss.Store(noLoss)
	t.scratch.New = func() any { return &applyScratch{} }
	perShard := max(1, cfg.MaxPending/cfg.Shards)
	n := recentSlots(perShard)
	recent := hugePageSlice[recentConv](n * cfg.Shards)
	for i := range t.shards {
		t.shards[i].hosts = newHostIndex()
		t.trackers[i].t = newTrackerShard(perShard, int64(cfg.ReplyWindow), &t.lastLoss, recent[i*n:(i+1)*n:(i+1)*n])
	}
	m, err := newMetrics(deps.Registerer, t)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	t.metrics = m
	t.refusedLocal = m.hostsRefused.WithLabelValues("local")
	t.refusedRemote = m.hostsRefused.WithLabelValues("remote")
	t.commitOneSided = m.committed.WithLabelValues("one_sided")
	t.commitRefused = m.committed.WithLabelValues("refused")
	t.withheld = m.withheld
	t.l7.overflow = m.l7NamesOverflow.Inc
	if err := t.loadConfig(cfg); err != nil {
		return nil, err
	}
	if cfg.ReverseDNS.Enabled {
		t.rdns = newResolver(cfg.ReverseDNS, deps.LookupAddr, m, t.log)
	}
	t.lastSweep.Store(t.clock.Now().UnixNano())
	return t, nil
}

// ExpiryListener is told of each host that expires, outside the table's
// locks: the check engine, which releases the host's alerts.
type ExpiryListener interface {
	HostExpired(key HostKey)
}

// ListenExpiry makes l the table's expiry listener. The listener (the
// check engine) is built from the table, so it cannot be a Dependency of
// New: it is set here, before Start, and an error after.
func (t *HostTable) ListenExpiry(l ExpiryListener) error {
	t.reloadMu.Lock()
	defer t.reloadMu.Unlock()
	if t.started {
		return errors.New("expiry listener set after Start")
	}
	t.expiry = l
	return nil
}

// Start starts the blacklist file watcher and the reverse DNS workers.
func (t *HostTable) Start(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	t.reloadMu.Lock()
	defer t.reloadMu.Unlock()
	if t.watch != nil {
		return errors.New("already started")
	}
	w, err := newBlacklistWatcher(t.log, t.reloadBlacklists)
	if err != nil {
		return fmt.Errorf("blacklist watcher: %w", err)
	}
	w.setFiles(t.cfg.Blacklists)
	t.watch = w
	t.started = true
	if t.rdns != nil {
		t.rdns.start()
	}
	return nil
}

// Stop stops the watcher and the reverse DNS workers (whose lookups it
// cancels). It returns ctx's error if they have not stopped by its end.
func (t *HostTable) Stop(ctx context.Context) error {
	t.reloadMu.Lock()
	w := t.watch
	t.watch = nil
	t.reloadMu.Unlock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		if w != nil {
			w.close()
		}
		if t.rdns != nil {
			t.rdns.stop()
		}
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
