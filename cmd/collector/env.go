package main

import (
	"os"
	"reflect"
	"sort"
	"strings"
)

// leafKeys lists the key paths of t (a struct) that a value sets as a whole:
// scalars, durations, text-decoded types, lists and mappings.
func leafKeys(t reflect.Type) [][]string { return envPaths(t, nil, nil) }

// envPaths lists the key paths an environment variable can set in a value of
// type t whose tree (defaults merged with the file) is node: every leaf key,
// and inside each mapping the whole mapping as well as each key it already
// holds, so that FLOWCHECK_SCRIPTING_CHECKS_SCAN_DETECTION_ENABLED reaches
// scripting.checks.scan_detection.enabled. The result runs from general to
// specific, so that the most specific variable is applied last and wins.
func envPaths(t reflect.Type, node any, prefix []string) [][]string {
	var out [][]string
	var walk func(t reflect.Type, node any, prefix []string)
	walk = func(t reflect.Type, node any, prefix []string) {
		if t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		m, _ := node.(map[string]any)
		switch {
		case t.Kind() == reflect.Struct && !reflect.PointerTo(t).Implements(textUnmarshaler):
			for i := range t.NumField() {
				f := t.Field(i)
				name, squash, ok := configKey(f)
				if !ok {
					continue
				}
				if squash {
					walk(f.Type, node, prefix)
					continue
				}
				walk(f.Type, m[name], append(append([]string(nil), prefix...), name))
			}
		case t.Kind() == reflect.Map:
			out = append(out, prefix)
			keys := make([]string, 0, len(m))
			for k := range m {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				walk(t.Elem(), m[k], append(append([]string(nil), prefix...), k))
			}
		default:
			out = append(out, prefix)
		}
	}
	walk(t, node, prefix)
	sort.SliceStable(out, func(i, j int) bool { return len(out[i]) < len(out[j]) })
	return out
}

// environment is the process's environment, for loadInto.
func environment() map[string]string {
	env := map[string]string{}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	return env
}

// envOverride is one environment variable and the key path it sets.
type envOverride struct {
	name, raw string
	path      []string
}

// envOverrides matches the FLOWCHECK_ variables of env to the key paths
// (from envPaths) they set, general to specific. Inside a mapping of values
// (a check's params) a variable may also add a key the mapping does not
// hold yet: ..._SCAN_VICTIM_PARAMS_PEERS sets params.peers. A variable that
// names no key stops start-up as a misspelt key in the file does:
// "FLOWCHECK_SINKS_KAFAK_BROKERS: unknown key (did you mean
// FLOWCHECK_SINKS_KAFKA_BROKERS?)".
func envOverrides(t reflect.Type, paths [][]string, env map[string]string) ([]envOverride, error) {
	var out []envOverride
	used := map[string]bool{}
	known := make([]string, 0, len(paths))
	for _, path := range paths {
		name := envName(path)
		known = append(known, name)
		if raw, ok := env[name]; ok && !used[name] {
			used[name] = true
			out = append(out, envOverride{name, raw, path})
		}
	}
	var rest []string
	for name := range env {
		if strings.HasPrefix(name, envPrefix) && !used[name] {
			rest = append(rest, name)
		}
	}
	sort.Strings(rest)
	for _, name := range rest {
		path := newMapKey(t, paths, name)
		if path == nil {
			return nil, &configError{key: name, msg: "unknown key" + didYouMean(name, known)}
		}
		out = append(out, envOverride{name, env[name], path})
	}
	return out, nil
}

// envName is the environment variable of a key path.
func envName(path []string) string {
	return envPrefix + strings.ToUpper(strings.Join(path, "_"))
}

// newMapKey is the key path a variable sets when its name is that of a
// mapping of values followed by one more key (the longest such mapping
// wins), or nil. Mappings of structures are left out: in
// FLOWCHECK_SCRIPTING_CHECKS_MY_CHECK_ENABLED nothing tells where the
// check's name ends.
func newMapKey(t reflect.Type, paths [][]string, name string) []string {
	var best []string
	for _, path := range paths {
		mt := typeAt(t, path)
		if len(path) == 0 || mt == nil || mt.Kind() != reflect.Map || structured(mt.Elem()) {
			continue
		}
		prefix := envName(path) + "_"
		if key, ok := strings.CutPrefix(name, prefix); ok && key != "" && len(path) >= len(best) {
			best = append(append([]string(nil), path...), strings.ToLower(key))
		}
	}
	return best
}

// structured tells whether values of t have keys of their own.
func structured(t reflect.Type) bool {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Map:
		return true
	case reflect.Struct:
		return !reflect.PointerTo(t).Implements(textUnmarshaler)
	}
	return false
}

// typeAt is the type of the value at path inside t, or nil when the path
// leads nowhere.
func typeAt(t reflect.Type, path []string) reflect.Type {
	for _, k := range path {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		switch t.Kind() {
		case reflect.Map:
			t = t.Elem()
		case reflect.Struct:
			var next reflect.Type
			for i := range t.NumField() {
				if name, _, ok := configKey(t.Field(i)); ok && name == k {
					next = t.Field(i).Type
					break
				}
			}
			if next == nil {
				return nil
			}
			t = next
		default:
			return nil
		}
	}
	return t
}
