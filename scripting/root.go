package scripting

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowcheck/flowcheck/aggregate"
	"github.com/flowcheck/flowcheck/alert"
	"github.com/flowcheck/flowcheck/clock"
	"github.com/flowcheck/flowcheck/internal/ratelog"
)

// HostSource is what the engine needs of the host table (aggregate.HostTable
// implements it).
type HostSource interface {
	// AppendKeys appends the keys of every host and returns the slice.
	AppendKeys(dst []aggregate.HostKey) []aggregate.HostKey
	// Snapshot copies a host's state into dst (reusing dst.L7's capacity);
	// false when the host is gone.
	Snapshot(key aggregate.HostKey, dst *aggregate.HostSnapshot) bool
	// ResetContacts clears the host's contact sets and unidirectional
	// counters (host.resetHostContacts()).
	ResetContacts(key aggregate.HostKey)
}

// Publisher takes alert events (the sink component implements it; Publish
// must not block for long).
type Publisher interface {
	Publish(ev alert.Event)
}

// Dependencies are what the engine needs from the rest of the collector.
type Dependencies struct {
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Clock      clock.Clock
	Hosts      HostSource
	Alerts     Publisher
	// EmbeddedScripts, optional, holds the shipped .lua files (at its root or
	// under scripts/); it is used when the default "scripts" directory does
	// not exist.
	EmbeddedScripts fs.FS
}

// Engine runs the host checks: a pool of sandboxed VMs, one per worker, that
// a tick splits the hosts across.
type Engine struct {
	// cfg is the running configuration; ReloadConfig replaces it holding
	// both reloadMu and runMu, so that a tick (runMu) or a reload (reloadMu)
	// reads it without more locking. instance and interval are the parts
	// read outside those locks (HostExpired, Engaged, the scheduler).
	cfg      Configuration
	instance string
	// scope is what alert ids are scoped to (Configuration.AlertScope).
	scope    string
	interval atomic.Int64
	deps     Dependencies
	logger   *slog.Logger
	metrics  metrics
	sources  []source
	logs     *ratelog.Logger[string]

	// reloadMu serialises Reload and ReloadConfig, and guards sources and
	// the watcher; runMu serialises a tick with the swap of the script set,
	// VMs and configuration.
	reloadMu sync.Mutex
	runMu    sync.Mutex
	set      *scriptSet
	vms      []*vm
	tickNo   uint64
	keys     []aggregate.HostKey
	missing  []*hostEntry

	// hosts is the engine's per-host state (sharded, with its own locks).
	hosts hostMap
	// stateKeys numbers the keys of the hosts' frozen states.
	stateKeys stateKeys
	// walked is the Go heap's allocation count when the watchdog last
	// asked the VMs to measure their checks' memory (budget.go).
	walked atomic.Int64
	// store keeps the engaged alerts across restarts (persist.go).
	store alertStore
	// quiet are hosts handed over whose first runs raise nothing (Quiet).
	quiet quietHosts
	// read is what the HTTP API reads (readside.go); current is the
	// script set, for readers that must not wait for a tick's runMu.
	read    *readSide
	current atomic.Pointer[scriptSet]

	slotMu    sync.Mutex
	slots     map[string]int
	slotNames []string

	watcher *fsnotify.Watcher
	stop    chan struct{}
	wg      sync.WaitGroup
}

// New compiles the scripts and builds the VM pool. A script that fails to
// compile or load is logged with file:line and skipped; New fails only when
// some script failed and no check at all loaded. Errors of New, Start and
// ReloadConfig do not name the package: the caller does.
func New(cfg Configuration, deps Dependencies) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Hosts == nil {
		return nil, errors.New("Dependencies.Hosts is required")
	}
	if deps.Alerts == nil {
		return nil, errors.New("Dependencies.Alerts is required")
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
	srcs, err := resolveSources(cfg.Dirs, deps.EmbeddedScripts)
	if err != nil {
		return nil, err
	}
	e := &Engine{
		cfg:      cfg,
		instance: cfg.Instance,
		scope:    cmp.Or(cfg.AlertScope, cfg.Instance),
		deps:     deps,
		logger:   deps.Logger.With("component", "scripting"),
		sources:  srcs,
		slots:    map[string]int{},
		read:     newReadSide(cfg.ReleasedHistory),
	}
	e.interval.Store(int64(cfg.Interval))
	// One line per check (or for the state file) every 10 s.
	e.logs = ratelog.New[string](e.logger, deps.Clock, 10*time.Second, 256)
	if e.metrics, err = newMetrics(deps.Registerer); err != nil {
		return nil, err
	}
	set, failed, err := e.buildSet(nil, cfg, srcs)
	if err != nil {
		return nil, err
	}
	if len(set.checks) == 0 && failed > 0 {
		return nil, fmt.Errorf("no host check loaded (%d scripts failed, see log)", failed)
	}
	if len(set.checks) == 0 {
		e.logger.Warn("no host check found", "dirs", cfg.Dirs)
	}
	e.set = set
	e.current.Store(set)
	for _, sc := range set.checks {
		e.metrics.initCheck(sc.name)
	}
	e.vms = e.newVMs(set, cfg)
	names := make([]string, len(set.checks))
	for i, sc := range set.checks {
		names[i] = sc.name
	}
	// The sources say whether the checks come from disk or, when the default
	// directory is missing (a packaged install), from the binary itself.
	from := make([]string, len(srcs))
	for i, src := range srcs {
		from[i] = src.display
	}
	e.logger.Info("host checks loaded", "checks", names, "from", from, "workers", len(e.vms))
	return e, nil
}

// now is the engine's time.
func (e *Engine) now() time.Time { return e.deps.Clock.Now() }

// Interval is the configured tick (ReloadConfig may change it; the
// scheduler reads it for every tick).
func (e *Engine) Interval() time.Duration { return time.Duration(e.interval.Load()) }

// Configuration returns the running configuration.
func (e *Engine) Configuration() Configuration {
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	return e.cfg
}

// Start reads back the engaged alerts of the state file, then watches the
// script directories and reloads on change.
func (e *Engine) Start(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	if err := e.resumeAlerts(); err != nil {
		return err
	}
	e.stop = make(chan struct{})
	return e.rewatch(nil, e.sources)
}

// Stop stops the watcher, the VMs and the state file's writer, then saves
// the engaged alerts to the state file, or releases them (reason shutdown)
// when there is none: call it before the publisher stops. ctx bounds the
// wait for a reload or a write in progress; the alerts are saved or
// released even past it.
func (e *Engine) Stop(ctx context.Context) error {
	e.reloadMu.Lock()
	stop, w := e.stop, e.watcher
	e.stop, e.watcher = nil, nil
	e.reloadMu.Unlock()
	var err error
	// Outside reloadMu: the watch goroutine may be in Reload.
	if stop != nil {
		close(stop)
		if w != nil {
			w.Close()
		}
		err = waitGroup(ctx, &e.wg)
	}
	e.runMu.Lock()
	defer e.runMu.Unlock()
	for _, v := range e.vms {
		v.close()
	}
	e.vms = nil
	err = errors.Join(err, e.stopWriter(ctx))
	e.shutdownAlerts()
	return err
}

// waitGroup waits for wg, or for ctx to end (its error).
func waitGroup(ctx context.Context, wg *sync.WaitGroup) error {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
