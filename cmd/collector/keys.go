package main

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
)

// checkKeys walks a YAML tree as written against the type it configures and
// reports the first key, in key order, that no field of a structure has:
// "sinks.kafak: unknown key (did you mean kafka?)". It sees what the strict
// decoder does not: viper drops null and empty mappings before the decoder
// runs, so `sink: {}` or `sinks: {kafak:}` would otherwise pass silently.
// Values are left to the decoder; keys of mappings (map types) are free.
func checkKeys(t reflect.Type, node any, path string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		if reflect.PointerTo(t).Implements(textUnmarshaler) {
			return nil
		}
		fields := fieldsOf(t)
		for _, k := range sortedKeys(node) {
			name := strings.ToLower(k.name)
			ft, ok := fields[name]
			if !ok {
				known := make([]string, 0, len(fields))
				for f := range fields {
					known = append(known, f)
				}
				return &configError{key: joinKey(path, name), msg: "unknown key" + didYouMean(name, known)}
			}
			if err := checkKeys(ft, k.value, joinKey(path, name)); err != nil {
				return err
			}
		}
	case reflect.Map:
		for _, k := range sortedKeys(node) {
			// viper lower-cases every key, map keys included.
			if err := checkKeys(t.Elem(), k.value, path+"["+strings.ToLower(k.name)+"]"); err != nil {
				return err
			}
		}
	case reflect.Slice, reflect.Array:
		list, _ := node.([]any)
		for i, e := range list {
			if err := checkKeys(t.Elem(), e, path+"["+strconv.Itoa(i)+"]"); err != nil {
				return err
			}
		}
	}
	return nil
}

// configKey returns the key of a configuration structure's field (its
// mapstructure tag, else its name in lower case) and whether the field is
// squashed into its parent; ok is false for a field that holds no key
// (unexported, or tagged "-").
func configKey(f reflect.StructField) (name string, squash, ok bool) {
	if !f.IsExported() {
		return "", false, false
	}
	name, opts, _ := strings.Cut(f.Tag.Get("mapstructure"), ",")
	if name == "-" {
		return "", false, false
	}
	if name == "" {
		name = strings.ToLower(f.Name)
	}
	return name, strings.Contains(opts, "squash"), true
}

// fieldsOf maps the keys of a configuration structure to their types,
// squashed structures included.
func fieldsOf(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, squash, ok := configKey(f)
		if !ok {
			continue
		}
		if squash && f.Type.Kind() == reflect.Struct {
			for k, v := range fieldsOf(f.Type) {
				out[k] = v
			}
			continue
		}
		out[name] = f.Type
	}
	return out
}

// keyValue is one entry of a YAML mapping.
type keyValue struct {
	name  string
	value any
}

// sortedKeys lists the entries of a YAML mapping (as yaml.v3 decodes it into
// an interface) in key order; anything else has none.
func sortedKeys(node any) []keyValue {
	var out []keyValue
	switch m := node.(type) {
	case map[string]any:
		for k, v := range m {
			out = append(out, keyValue{k, v})
		}
	case map[any]any:
		for k, v := range m {
			out = append(out, keyValue{fmt.Sprint(k), v})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// didYouMean suggests the known name closest to a misspelt one, when one is
// within two edits (a swap of two letters is one), or nothing.
func didYouMean(name string, known []string) string {
	best, bestDist := "", 3
	sort.Strings(known)
	for _, k := range known {
		if d := editDistance(name, k); d < bestDist && d < len(name) {
			best, bestDist = k, d
		}
	}
	if best == "" {
		return ""
	}
	return " (did you mean " + best + "?)"
}

// editDistance is the optimal string alignment distance: insertions,
// deletions, substitutions and swaps of adjacent characters count one.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}
