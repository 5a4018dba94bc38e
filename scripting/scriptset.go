package scripting

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sync/atomic"

	lua "github.com/yuin/gopher-lua"
)

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
	for _, name := range slices.Sorted(maps.Keys(set.files)) {
		if !isCheck[name] {
			continue
		}
		f := set.files[name]
		cc, err := cfg.checkFor(name, f.defaults)
		if err != nil {
			return nil, 0, err
		}
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
	mod, _, err := v.loadCheck(f, v.newEnv())
	stop()
	if err == nil {
		// The params it declares, for checkFor.
		if f.defaults, err = readDefaults(mod); err != nil {
			return false, fmt.Errorf("%s: %w", f.path, err)
		}
		return true, nil
	}
	var ae *lua.ApiError
	if errors.As(err, &ae) {
		return false, err
	}
	// Loaded, but not a check: a module such as host_consts.
	return false, nil
}
