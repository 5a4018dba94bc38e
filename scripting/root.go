package scripting

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/prometheus/client_golang/prometheus"
	lua "github.com/yuin/gopher-lua"

	"github.com/flowcheck/flowcheck/aggregate"
	"github.com/flowcheck/flowcheck/alert"
	"github.com/flowcheck/flowcheck/clock"
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

// TickStats summarises one tick.
type TickStats struct {
	// Hosts is the number of hosts evaluated.
	Hosts int
	// Calls, Errors and Timeouts count check(host_info) calls; Timeouts are
	// also counted in Errors.
	Calls, Errors, Timeouts int
	// Duration is the wall time the tick took.
	Duration time.Duration
	// Paced is the time the walk over the hosts was spread over (see
	// Configuration.TickSpread); 0 when the tick ran flat out.
	Paced time.Duration
}

// script is one check of a script set.
type script struct {
	name string
	file *scriptFile
	// slot indexes the per-host state of this check; stable per name.
	slot int
	cfg  CheckConfiguration
	// disabled is set after MaxFailures consecutive failures.
	disabled atomic.Bool
	// fails counts consecutive failed calls, across hosts and workers.
	fails atomic.Int64
}

// scriptSet is one generation of compiled scripts; immutable once built
// (except for the atomics of its scripts).
type scriptSet struct {
	// files are every loaded file (checks and modules), by name.
	files map[string]*scriptFile
	// modules maps the virtual path of each file to it, for require.
	modules map[string]*scriptFile
	// checks are the files that return a table with a check function, sorted
	// by name: the order in which checks run on a host.
	checks []*script
	// bySlot maps a slot number to its check, nil when no check of this set
	// has that slot.
	bySlot []*script
}

// active reports whether the check of a slot runs in this set on a host
// (local or not).
func (s *scriptSet) active(slot int, local bool) bool {
	if slot >= len(s.bySlot) || s.bySlot[slot] == nil {
		return false
	}
	sc := s.bySlot[slot]
	return sc.cfg.Enabled && !sc.disabled.Load() && (local || !sc.cfg.LocalOnly)
}

// ErrScriptsFailed is wrapped by the error of Reload and ReloadConfig when
// some scripts failed to compile or load and kept their previous version:
// the rest of the reload (and the configuration of ReloadConfig) applied.
var ErrScriptsFailed = errors.New("some scripts failed to reload (previous versions kept)")

// Engine runs the host checks: a pool of sandboxed VMs, one per worker, that
// a tick splits the hosts across.
type Engine struct {
	// cfg is the running configuration; ReloadConfig replaces it holding
	// both reloadMu and runMu, so that a tick (runMu) or a reload (reloadMu)
	// reads it without more locking. instance and interval are the parts
	// read outside those locks (HostExpired, Engaged, the scheduler).
	cfg      Configuration
	instance string
	interval atomic.Int64
	deps     Dependencies
	logger   *slog.Logger
	metrics  metrics
	sources  []source
	limiter  *logLimiter

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

	slotMu    sync.Mutex
	slots     map[string]int
	slotNames []string

	watcher *fsnotify.Watcher
	stop    chan struct{}
	wg      sync.WaitGroup
}

// New compiles the scripts and builds the VM pool. A script that fails to
// compile or load is logged with file:line and skipped; New fails only when
// some script failed and no check at all loaded.
func New(cfg Configuration, deps Dependencies) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Hosts == nil {
		return nil, errors.New("scripting: Dependencies.Hosts is required")
	}
	if deps.Alerts == nil {
		return nil, errors.New("scripting: Dependencies.Alerts is required")
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
		deps:     deps,
		logger:   deps.Logger.With("component", "scripting"),
		sources:  srcs,
		slots:    map[string]int{},
	}
	e.interval.Store(int64(cfg.Interval))
	e.limiter = newLogLimiter(deps.Clock, 10*time.Second)
	if e.metrics, err = newMetrics(deps.Registerer); err != nil {
		return nil, err
	}
	set, failed, err := e.buildSet(nil, cfg, srcs)
	if err != nil {
		return nil, err
	}
	if len(set.checks) == 0 && failed > 0 {
		return nil, fmt.Errorf("scripting: no host check loaded (%d scripts failed, see log)", failed)
	}
	if len(set.checks) == 0 {
		e.logger.Warn("no host check found", "dirs", cfg.Dirs)
	}
	e.set = set
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

// newVMs builds one VM per worker of cfg for a set.
func (e *Engine) newVMs(set *scriptSet, cfg Configuration) []*vm {
	vms := make([]*vm, cfg.workers())
	for i := range vms {
		vms[i] = newVM(e, set, cfg.limits())
	}
	return vms
}

// buildSet reads, compiles and probes the scripts of srcs, with the check
// options of cfg. A file that fails keeps its version of prev (when there is
// one) and is otherwise left out; failed counts those files.
func (e *Engine) buildSet(prev *scriptSet, cfg Configuration, srcs []source) (*scriptSet, int, error) {
	files, err := readSources(srcs)
	if err != nil {
		return nil, 0, err
	}
	set := &scriptSet{files: map[string]*scriptFile{}, modules: map[string]*scriptFile{}}
	var prevFiles map[string]*scriptFile
	prevChecks := map[string]*script{}
	if prev != nil {
		prevFiles = prev.files
		for _, sc := range prev.checks {
			prevChecks[sc.name] = sc
		}
	}
	var fresh []*scriptFile
	failed := 0
	for i := range files {
		f := &files[i]
		if old, ok := prevFiles[f.name]; ok && bytes.Equal(old.src, f.src) {
			set.files[f.name] = old
			continue
		}
		if err := compile(f); err != nil {
			failed++
			e.metrics.loadErrors.Inc()
			if old, ok := prevFiles[f.name]; ok {
				e.logger.Error("script does not compile, keeping the previous version", "error", err)
				set.files[f.name] = old
			} else {
				e.logger.Error("script does not compile, skipped", "error", err)
			}
			continue
		}
		set.files[f.name] = f
		fresh = append(fresh, f)
	}
	for name, f := range set.files {
		set.modules[modulePrefix+name+".lua"] = f
	}
	// Probe what changed in a scratch VM: does it load, is it a check?
	isCheck := map[string]bool{}
	for name := range set.files {
		if sc, ok := prevChecks[name]; ok && sc.file == set.files[name] {
			isCheck[name] = true
		}
	}
	for _, f := range fresh {
		check, err := e.probe(set, f, cfg)
		if err == nil {
			isCheck[f.name] = check
			continue
		}
		failed++
		e.metrics.loadErrors.Inc()
		if old, ok := prevFiles[f.name]; ok {
			e.logger.Error("script does not load, keeping the previous version", "file", f.path, "error", err)
			set.files[f.name] = old
			set.modules[modulePrefix+f.name+".lua"] = old
			_, isCheck[f.name] = prevChecks[f.name]
		} else {
			e.logger.Error("script does not load, skipped", "file", f.path, "error", err)
			delete(set.files, f.name)
			delete(set.modules, modulePrefix+f.name+".lua")
		}
	}
	for _, name := range sortedKeys(set.files) {
		if !isCheck[name] {
			continue
		}
		f := set.files[name]
		cc := cfg.checkFor(name)
		sc := prevChecks[name]
		switch {
		case sc != nil && sc.file == f && reflect.DeepEqual(sc.cfg, cc):
			// Unchanged: keep it, with its failure count.
		case sc != nil && sc.file == f:
			// Same code, new options: a check disabled after failures
			// stays disabled until its file changes.
			fresh := &script{name: name, file: f, slot: sc.slot, cfg: cc}
			fresh.disabled.Store(sc.disabled.Load())
			fresh.fails.Store(sc.fails.Load())
			sc = fresh
		default:
			sc = &script{name: name, file: f, slot: e.slotFor(name), cfg: cc}
		}
		set.checks = append(set.checks, sc)
		for len(set.bySlot) <= sc.slot {
			set.bySlot = append(set.bySlot, nil)
		}
		set.bySlot[sc.slot] = sc
	}
	return set, failed, nil
}

// probe runs a file's chunk in a scratch VM and tells whether it is a check
// (returns a table with a check function) or a plain module.
func (e *Engine) probe(set *scriptSet, f *scriptFile, cfg Configuration) (bool, error) {
	v := newVM(e, &scriptSet{files: set.files, modules: set.modules}, cfg.limits())
	defer v.close()
	stop := v.guardLoad()
	_, err := v.loadCheck(f, v.newEnv())
	stop()
	if err == nil {
		return true, nil
	}
	var ae *lua.ApiError
	if errors.As(err, &ae) {
		return false, err
	}
	// Loaded, but not a check: a module such as host_consts.
	return false, nil
}

// Reload re-reads the script directories: changed files are recompiled, a
// file that fails keeps its previous version, and the VMs are rebuilt.
// Per-host state and engaged alerts of the checks are kept. When some files
// failed, the error wraps ErrScriptsFailed.
func (e *Engine) Reload() error {
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	return e.reload(e.cfg, e.sources)
}

// ReloadConfig applies a new configuration of the section (SIGHUP): checks
// (enabled, local_only, every, params), dirs, workers, call_timeout,
// max_failures and interval (from the next tick on), and re-reads the
// scripts as Reload does. Instance is kept (it needs a restart). A
// configuration that does not validate, or whose directories cannot be
// used, changes nothing and is returned as the error. Per-host state and
// engaged alerts are kept; the alerts of a check that no longer runs on a
// host (disabled, or local_only on a remote host) are released at the next
// tick. An error wrapping ErrScriptsFailed means the configuration applied
// but some scripts kept their previous version.
func (e *Engine) ReloadConfig(cfg Configuration) error {
	if err := cfg.Validate(); err != nil {
		e.metrics.reloads.WithLabelValues("error").Inc()
		return err
	}
	srcs, err := resolveSources(cfg.Dirs, e.deps.EmbeddedScripts)
	if err != nil {
		e.metrics.reloads.WithLabelValues("error").Inc()
		return err
	}
	cfg.Instance = e.instance
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	e.keepStateFile(&cfg)
	old := e.sources
	err = e.reload(cfg, srcs)
	if err != nil && !errors.Is(err, ErrScriptsFailed) {
		return err
	}
	e.sources = srcs
	e.interval.Store(int64(cfg.Interval))
	if werr := e.rewatch(old, srcs); werr != nil {
		e.logger.Warn("cannot watch the new script directories; SIGHUP still reloads", "error", werr)
	}
	return err
}

// reload builds a script set from srcs with the options of cfg and swaps
// it, its VMs and cfg in. Called with reloadMu held; on an error that does
// not wrap ErrScriptsFailed nothing changed.
func (e *Engine) reload(cfg Configuration, srcs []source) error {
	set, failed, err := e.buildSet(e.set, cfg, srcs)
	if err != nil {
		e.metrics.reloads.WithLabelValues("error").Inc()
		e.logger.Error("reload failed, keeping the current scripts", "error", err)
		return err
	}
	vms := e.newVMs(set, cfg)
	e.runMu.Lock()
	old := e.vms
	e.set, e.vms, e.cfg = set, vms, cfg
	e.runMu.Unlock()
	for _, v := range old {
		v.close()
	}
	result := "ok"
	if failed > 0 {
		result = "partial"
	}
	e.metrics.reloads.WithLabelValues(result).Inc()
	e.logger.Info("host checks reloaded", "checks", len(set.checks), "failed", failed)
	if failed > 0 {
		return fmt.Errorf("scripting: %d scripts: %w", failed, ErrScriptsFailed)
	}
	return nil
}

// Start watches the script directories and reloads on change.
func (e *Engine) Start() error {
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	if err := e.resumeAlerts(); err != nil {
		return err
	}
	e.stop = make(chan struct{})
	return e.rewatch(nil, e.sources)
}

// rewatch moves the watcher from the directories of old to those of srcs,
// creating it (and its goroutine) when the engine is started and has none.
// Called with reloadMu held.
func (e *Engine) rewatch(old, srcs []source) error {
	if e.stop == nil {
		return nil
	}
	want := map[string]bool{}
	for _, s := range srcs {
		if s.watch != "" {
			want[s.watch] = true
		}
	}
	had := map[string]bool{}
	for _, s := range old {
		if s.watch != "" {
			had[s.watch] = true
		}
	}
	if e.watcher == nil {
		if len(want) == 0 {
			return nil
		}
		w, err := fsnotify.NewWatcher()
		if err != nil {
			return fmt.Errorf("scripting: watcher: %w", err)
		}
		e.watcher = w
		e.wg.Add(1)
		go e.watch(w, e.stop)
	}
	for d := range had {
		if !want[d] {
			_ = e.watcher.Remove(d) // gone or already unwatched
		}
	}
	for _, d := range sortedKeys(want) {
		if had[d] {
			continue
		}
		if err := e.watcher.Add(d); err != nil {
			return fmt.Errorf("scripting: watch %s: %w", d, err)
		}
	}
	return nil
}

// watch reloads after a burst of changes has settled (editors write a file
// in several steps).
func (e *Engine) watch(w *fsnotify.Watcher, stop <-chan struct{}) {
	defer e.wg.Done()
	const settle = 200 * time.Millisecond
	t := time.NewTimer(time.Hour)
	t.Stop()
	for {
		select {
		case <-stop:
			t.Stop()
			return
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			if len(ev.Name) > 4 && ev.Name[len(ev.Name)-4:] == ".lua" {
				t.Reset(settle)
			}
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			e.logger.Warn("script watcher", "error", err)
		case <-t.C:
			_ = e.Reload() // logged by Reload
		}
	}
}

// Stop stops the watcher and releases the VMs, then saves the engaged
// alerts to the state file, or releases them (reason shutdown) when there
// is none: call it before the publisher stops.
func (e *Engine) Stop() {
	e.reloadMu.Lock()
	stop, w := e.stop, e.watcher
	e.stop, e.watcher = nil, nil
	e.reloadMu.Unlock()
	// Outside reloadMu: the watch goroutine may be in Reload.
	if stop != nil {
		close(stop)
		if w != nil {
			w.Close()
		}
		e.wg.Wait()
	}
	e.runMu.Lock()
	defer e.runMu.Unlock()
	for _, v := range e.vms {
		v.close()
	}
	e.vms = nil
	e.shutdownAlerts()
}

// tickChunk is how many hosts a worker takes at a time.
const tickChunk = 64

// Tick runs every due check on every host, split across the VMs, and
// publishes the resulting events. It returns when all hosts are done (or ctx
// is cancelled). A paced tick (live) spreads its walk over the hosts across
// TickSpread of the interval, by wall time; an unpaced one (replay, the
// last tick at shutdown) runs flat out.
func (e *Engine) Tick(ctx context.Context, now time.Time, paced bool) TickStats {
	start := time.Now()
	e.runMu.Lock()
	defer e.runMu.Unlock()
	if len(e.vms) == 0 {
		return TickStats{}
	}
	var over time.Duration
	if paced {
		over = time.Duration(float64(e.Interval()) * e.cfg.TickSpread)
	}
	e.tickNo++
	tick := e.tickNo
	set := e.set

	e.keys = e.deps.Hosts.AppendKeys(e.keys[:0])
	e.hosts.expiredSeen.Store(0)
	e.hosts.tick.Store(tick)
	defer e.hosts.tick.Store(0)

	due := make([]bool, len(set.checks))
	for i, sc := range set.checks {
		due[i] = sc.cfg.Enabled && (tick-1)%uint64(sc.cfg.Every) == 0
	}

	budgets := make([]*budget, len(e.vms))
	for i, v := range e.vms {
		if v.holdsDisabled(set) {
			v.close()
			v = newVM(e, set, e.cfg.limits())
			e.vms[i] = v
		}
		budgets[i] = v.budget
	}
	// The CPU-time backstop applies to live (paced) ticks only: replay
	// counts instructions alone, and gives the same result on any machine.
	lim := watchLimits{memory: e.cfg.MaxMemory}
	if paced {
		lim.cpu = e.cfg.CallTimeout
	}
	wdStop, wdDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(wdDone)
		watchdog(ctx, wdStop, budgets, lim, &e.walked)
	}()

	var next atomic.Int64
	var wg sync.WaitGroup
	n := int64(len(e.keys))
	walkStart := time.Now()
	for _, v := range e.vms {
		v.missing = v.missing[:0]
		v.seen = 0
		wg.Add(1)
		go func() {
			defer wg.Done()
			// The watchdog reads the CPU clock of this thread.
			v.budget.tid.Store(pinThread())
			defer func() {
				v.budget.tid.Store(0)
				unpinThread()
			}()
			for ctx.Err() == nil {
				i := next.Add(tickChunk) - tickChunk
				if i >= n {
					return
				}
				if over > 0 {
					// The chunk at i starts no earlier than its
					// share of the spread.
					at := walkStart.Add(time.Duration(float64(over) * float64(i) / float64(n)))
					if !sleepUntil(ctx, at) {
						return
					}
				}
				for _, k := range e.keys[i:min(i+tickChunk, n)] {
					if ctx.Err() != nil {
						return
					}
					h := e.hosts.seen(k, tick)
					v.seen++
					if !v.runHost(set, h, due, now) {
						v.missing = append(v.missing, h)
					}
				}
			}
		}()
	}
	wg.Wait()
	close(wdStop)
	<-wdDone
	for _, v := range e.vms {
		if v.budget.walk.Load() {
			v.measureChecks(set)
		}
	}

	// Hosts the table no longer has: release their alerts, drop their state.
	e.missing = e.missing[:0]
	seen := int64(0)
	for _, v := range e.vms {
		e.missing = append(e.missing, v.missing...)
		seen += v.seen
	}
	// The keys are distinct, so the map holds entries of hosts the table no
	// longer has only when it is larger than the entries of this tick still
	// in it: most ticks skip the walk. A cancelled tick did not see every
	// host and removes nothing.
	if ctx.Err() == nil && int64(e.hosts.count()) > seen-e.hosts.expiredSeen.Load() {
		e.missing = e.hosts.removeStale(tick, e.missing)
	}
	for _, h := range e.missing {
		e.hosts.drop(h)
	}
	for _, h := range e.missing {
		h.mu.Lock()
		if !h.dead {
			h.dead = true
			e.releaseAll(h, alert.HostExpired, now)
		}
		h.mu.Unlock()
	}
	e.afterTick(ctx, now, set)

	stats := TickStats{Hosts: int(seen)}
	for i, sc := range set.checks {
		var c checkStats
		for _, v := range e.vms {
			c.calls += v.stats[i].calls
			c.errors += v.stats[i].errors
			c.timeouts += v.stats[i].timeouts
			v.stats[i] = checkStats{}
		}
		stats.Calls += int(c.calls)
		stats.Errors += int(c.errors)
		stats.Timeouts += int(c.timeouts)
		e.metrics.calls.WithLabelValues(sc.name).Add(float64(c.calls))
		e.metrics.errors.WithLabelValues(sc.name).Add(float64(c.errors))
		e.metrics.timeouts.WithLabelValues(sc.name).Add(float64(c.timeouts))
	}
	stats.Duration, stats.Paced = time.Since(start), over
	e.metrics.ticks.Inc()
	e.metrics.tickSeconds.Observe(stats.Duration.Seconds())
	e.metrics.hosts.Set(float64(stats.Hosts))
	return stats
}

// sleepUntil waits until t; it returns false when ctx ends first.
func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return true
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// runHost runs the due checks of one host. It returns false when the host
// table no longer has the host.
func (v *vm) runHost(set *scriptSet, h *hostEntry, due []bool, now time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.dead {
		return true
	}
	if !v.e.deps.Hosts.Snapshot(h.key(), &v.snapBuf) {
		return false
	}
	if h.ext != nil && h.ext.host.IP != "" {
		h.ext.setIdentity(&v.snapBuf)
	}
	v.entry, v.snap, v.now = h, &v.snapBuf, now
	v.ipLV, v.macLV, v.nameLV = nil, nil, nil
	unix := now.Unix()
	for i, sc := range set.checks {
		if !due[i] || (sc.cfg.LocalOnly && !v.snapBuf.Local) {
			continue
		}
		vc := &v.checks[i]
		if sc.disabled.Load() {
			// A disabled check's states are freed.
			h.dropState(sc.slot)
			continue
		}
		if vc.fn == nil {
			continue
		}
		if x := h.peek(sc.slot); x != nil && x.skipUntil != 0 {
			if unix < x.skipUntil {
				continue
			}
			x.skipUntil = 0
		}
		v.call(sc, vc, h, i)
	}
	// A check that was removed or disabled, or no longer runs on this host
	// (local_only), leaves no engaged alert behind.
	if h.ext != nil {
		for i := range h.ext.slots {
			if h.ext.slots[i].alert != nil && !set.active(i, v.snapBuf.Local) {
				v.e.release(h, i, v.e.slotName(i), set.inactiveReason(i), now)
			}
		}
		h.compact()
	}
	v.entry, v.snap, v.check = nil, nil, nil
	v.ipLV, v.macLV, v.nameLV = nil, nil, nil
	return true
}

// call runs check(host_info) for the bound host and applies the alert
// lifecycle: a triggering run engages or updates the alert, a run that does
// not trigger releases it, a failed run leaves it as it was (what it wrote
// in its state is kept either way, as a live table's would be).
func (v *vm) call(sc *script, vc *vmCheck, h *hostEntry, i int) {
	L := v.L
	v.slot, v.check = sc.slot, vc
	v.triggered = false
	if v.l7All != nil {
		// The previous call's host.l7() result is the script's now.
		v.l7All = nil
		clear(v.l7Protos)
		v.l7Protos = v.l7Protos[:0]
	}
	state := v.stateFor(h, sc.slot, vc)
	L.Push(vc.fn)
	L.Push(vc.info)
	v.budget.arm(v.lim.steps)
	err := L.PCall(1, 0, nil)
	stopped := v.budget.disarm()
	if !v.freeze(h, sc.slot, vc, state) && err == nil {
		err = fmt.Errorf("host_info.state larger than %d bytes: emptied", maxStateBytes)
	}
	h.setRun(sc.slot)
	st := &v.stats[i]
	st.calls++
	if v.budget.walk.Load() {
		v.measureChecks(v.set)
	}
	if err != nil {
		st.errors++
		if stopped != stopNone {
			st.timeouts++
		}
		if stopped == stopMemory {
			v.e.overMemory(sc, -1)
		}
		v.e.failed(sc, h, err, stopped != stopNone)
		return
	}
	if sc.fails.Load() != 0 {
		sc.fails.Store(0)
	}
	if v.triggered {
		v.e.engage(h, v.snap, sc.slot, sc.name, v.tValue, v.tMsg, v.now)
		v.tMsg = ""
	} else {
		v.e.release(h, sc.slot, sc.name, alert.Cleared, v.now)
	}
}

// failed counts a failed call, logs it (rate-limited per check) and disables
// the check after MaxFailures consecutive failures.
func (e *Engine) failed(sc *script, h *hostEntry, err error, stopped bool) {
	n := sc.fails.Add(1)
	what := "error"
	if stopped {
		what = "timeout"
	}
	if ok, suppressed := e.limiter.allow(sc.name); ok {
		e.logger.Warn("host check failed", "check", sc.name, "host", h.key().String(), "kind", what,
			"consecutive", n, "suppressed", suppressed, "error", err.Error())
	}
	if e.cfg.MaxFailures > 0 && n >= int64(e.cfg.MaxFailures) && sc.disabled.CompareAndSwap(false, true) {
		e.metrics.disabled.WithLabelValues(sc.name).Inc()
		e.logger.Error("host check disabled after consecutive failures; fix the script to re-enable it",
			"check", sc.name, "file", sc.file.path, "failures", n)
	}
}

// overMemory disables a check that went over the memory ceiling, at once:
// the next tick rebuilds the VMs that held it (holdsDisabled), which frees
// its memory, and frees its host states (runHost). n is its measured size, -1 when a call allocated
// too much.
func (e *Engine) overMemory(sc *script, n int64) {
	if n >= 0 {
		// Found by a measure, outside the call's own accounting.
		e.metrics.errors.WithLabelValues(sc.name).Inc()
	}
	if sc.disabled.CompareAndSwap(false, true) {
		e.metrics.disabled.WithLabelValues(sc.name).Inc()
		e.logger.Error("host check disabled: over the memory ceiling (scripting.max_memory); fix the script to re-enable it",
			"check", sc.name, "file", sc.file.path, "bytes", n, "max_memory", e.cfg.MaxMemory)
	}
}

// logFailure logs a problem of a check outside a call (rate-limited).
func (e *Engine) logFailure(sc *script, host string, err error) {
	if ok, suppressed := e.limiter.allow(sc.name); ok {
		e.logger.Warn("host check failed", "check", sc.name, "host", host, "suppressed", suppressed, "error", err.Error())
	}
}
