package scripting

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/fsnotify/fsnotify"
)

// ErrScriptsFailed is wrapped by the error of Reload and ReloadConfig when
// some scripts failed to compile or load and kept their previous version:
// the rest of the reload (and the configuration of ReloadConfig) applied.
var ErrScriptsFailed = errors.New("some scripts failed to reload (previous versions kept)")

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
	cfg.Instance, cfg.AlertScope = e.instance, e.scope
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
	e.current.Store(set)
	e.runMu.Unlock()
	for _, sc := range set.checks {
		e.metrics.initCheck(sc.name)
	}
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
		return fmt.Errorf("%d scripts: %w", failed, ErrScriptsFailed)
	}
	return nil
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
			return fmt.Errorf("watcher: %w", err)
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
	for _, d := range slices.Sorted(maps.Keys(want)) {
		if had[d] {
			continue
		}
		if err := e.watcher.Add(d); err != nil {
			return fmt.Errorf("watch %s: %w", d, err)
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
