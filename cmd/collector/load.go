package main

import (
	"bytes"
	"encoding"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"
)

// envPrefix prefixes every environment override: aggregate.max_hosts is
// FLOWCHECK_AGGREGATE_MAX_HOSTS.
const envPrefix = "FLOWCHECK_"

// keyDelimiter separates nested keys inside viper. The default "." would split
// map keys that are themselves dotted or contain "::" (IPv4 and IPv6 addresses
// in a names map), so viper gets a delimiter no YAML key contains.
const keyDelimiter = "\x1f"

// configError is a start-up configuration problem: one line naming the key
// and what is wrong with it. main exits with status 2 on it.
type configError struct {
	key string
	msg string
}

func (e *configError) Error() string {
	if e.key == "" {
		return e.msg
	}
	return e.key + ": " + e.msg
}

// loadInto fills dst (a pointer to a struct holding the defaults) from a YAML
// document, then from the FLOWCHECK_ variables of env (environment() in
// production). Keys unknown to dst, values of the wrong type and unparsable
// values are reported as a *configError naming the key. hooks convert
// project-specific types and run before the generic ones.
//
// The defaults, the file and the environment are merged as trees before one
// strict decode: mappings merge key by key (so a check configured with only
// its params keeps its default enabled flag), anything else replaces (a
// listed value replaces the default list), except that each mapping of a
// list starts from the first element of the default list (a listener given
// only its url keeps the default sockets and buffer size).
//
// An environment value is read as a YAML scalar or flow collection, so that
// FLOWCHECK_AGGREGATE_MAX_HOSTS=1000 is a number, ..._ENABLED=false a bool and
// ..._LOCAL_NETWORKS='[10.0.0.0/8]' a list, with the same strict typing as
// the file. Unknown keys are refused even when their value is null or an
// empty mapping (checkKeys), with the closest known key suggested.
func loadInto(dst any, document []byte, env map[string]string, hooks ...mapstructure.DecodeHookFunc) error {
	target := reflect.ValueOf(dst).Elem()
	tree, _ := toTree(target).(map[string]any)

	v := viper.NewWithOptions(viper.KeyDelimiter(keyDelimiter))
	v.SetConfigType("yaml")
	if len(bytes.TrimSpace(document)) > 0 {
		if err := v.ReadConfig(bytes.NewReader(document)); err != nil {
			return &configError{msg: "cannot parse YAML: " + oneLine(err.Error())}
		}
		// viper leaves out null and empty mappings: their keys are checked
		// on the document as written.
		var raw any
		if err := yaml.Unmarshal(document, &raw); err != nil {
			return &configError{msg: "cannot parse YAML: " + oneLine(err.Error())}
		}
		if err := checkKeys(target.Type(), raw, ""); err != nil {
			return err
		}
	}
	merge(tree, v.AllSettings())

	overrides, err := envOverrides(target.Type(), envPaths(target.Type(), tree, nil), env)
	if err != nil {
		return err
	}
	for _, o := range overrides {
		name, raw, path := o.name, o.raw, o.path
		var value any
		if err := yaml.Unmarshal([]byte(raw), &value); err != nil {
			return &configError{key: strings.Join(path, "."), msg: "cannot parse " + name + ": " + oneLine(err.Error())}
		}
		t := typeAt(target.Type(), path)
		if t != nil {
			if err := checkKeys(t, value, strings.Join(path, ".")); err != nil {
				return err
			}
		}
		// An empty variable sets an empty string (http.listen="" turns the
		// server off); for other types it is as if unset.
		if raw == "" && t != nil && t.Kind() == reflect.String {
			value = ""
		}
		// A list is also accepted comma-separated, the way environment
		// variables usually carry them: FLOWCHECK_SINKS_KAFKA_BROKERS=k1:9092,k2:9092.
		if str, ok := value.(string); ok {
			if t != nil && t.Kind() == reflect.Slice {
				items := []any{}
				for item := range strings.SplitSeq(str, ",") {
					if item = strings.TrimSpace(item); item != "" {
						items = append(items, item)
					}
				}
				value = items
			}
		}
		override := map[string]any{}
		node := override
		for _, k := range path[:len(path)-1] {
			next := map[string]any{}
			node[k] = next
			node = next
		}
		node[path[len(path)-1]] = value
		merge(tree, override)
	}

	hooks = append(hooks, durationHook, mapstructure.TextUnmarshallerHookFunc())
	decoder, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		DecodeHook:       mapstructure.ComposeDecodeHookFunc(hooks...),
		ErrorUnused:      true,
		WeaklyTypedInput: false,
		Result:           dst,
	})
	if err != nil {
		return err
	}
	target.SetZero()
	if err := decoder.Decode(tree); err != nil {
		return firstDecodeError(err)
	}
	return nil
}

// merge lays src over dst: mappings merge recursively, other values replace,
// and a null in src leaves dst alone (an empty section keeps its defaults).
func merge(dst, src map[string]any) {
	for k, sv := range src {
		if sv == nil {
			continue
		}
		sm, sIsMap := sv.(map[string]any)
		dm, dIsMap := dst[k].(map[string]any)
		if sIsMap && dIsMap {
			merge(dm, sm)
			continue
		}
		if sIsMap {
			// Copy, so that later merges never write into src.
			c := map[string]any{}
			merge(c, sm)
			sv = c
		}
		if sl, ok := sv.([]any); ok {
			sv = overPrototype(sl, dst[k])
		}
		dst[k] = sv
	}
}

// overPrototype lays each mapping of a list over the first element of the
// list it replaces, so that a listener written as just its url keeps the
// default sockets and buffer size. Other lists are returned as they are.
func overPrototype(list []any, replaced any) []any {
	old, _ := replaced.([]any)
	if len(old) == 0 {
		return list
	}
	proto, ok := old[0].(map[string]any)
	if !ok {
		return list
	}
	out := make([]any, len(list))
	for i, e := range list {
		em, ok := e.(map[string]any)
		if !ok {
			out[i] = e
			continue
		}
		c := map[string]any{}
		merge(c, proto)
		merge(c, em)
		out[i] = c
	}
	return out
}

// toTree turns a configuration value into the generic tree a YAML document
// decodes to, keyed by mapstructure tags, so that defaults merge with the file
// and decode through the same strict path. Nil maps, slices and pointers are
// left out (nil).
func toTree(v reflect.Value) any {
	if !v.IsValid() {
		return nil
	}
	if v.Type() == reflect.TypeFor[time.Duration]() {
		return time.Duration(v.Int()).String()
	}
	if m, ok := v.Interface().(encoding.TextMarshaler); ok && v.Kind() != reflect.Pointer {
		text, err := m.MarshalText()
		if err != nil {
			return nil
		}
		return string(text)
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil
		}
		return toTree(v.Elem())
	case reflect.Struct:
		out := map[string]any{}
		t := v.Type()
		for i := range t.NumField() {
			name, squash, ok := configKey(t.Field(i))
			if !ok {
				continue
			}
			sub := toTree(v.Field(i))
			if sm, ok := sub.(map[string]any); ok && squash {
				merge(out, sm)
				continue
			}
			if sub != nil {
				out[name] = sub
			}
		}
		return out
	case reflect.Map:
		if v.IsNil() {
			return nil
		}
		out := make(map[string]any, v.Len())
		iter := v.MapRange()
		for iter.Next() {
			out[strings.ToLower(fmt.Sprint(iter.Key().Interface()))] = toTree(iter.Value())
		}
		return out
	case reflect.Slice, reflect.Array:
		if v.Kind() == reflect.Slice && v.IsNil() {
			return nil
		}
		out := make([]any, v.Len())
		for i := range out {
			out[i] = toTree(v.Index(i))
		}
		return out
	case reflect.String:
		return v.String()
	case reflect.Bool:
		return v.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return int(v.Int())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return v.Uint()
	case reflect.Float32, reflect.Float64:
		return v.Float()
	}
	return v.Interface()
}

// durationHook parses "30s"-style strings into time.Duration and refuses bare
// numbers, which mapstructure would otherwise take as nanoseconds.
func durationHook(from, to reflect.Type, data any) (any, error) {
	if to != reflect.TypeFor[time.Duration]() {
		return data, nil
	}
	s, ok := data.(string)
	if !ok {
		return nil, fmt.Errorf("must be a duration with a unit, like \"30s\" (got %v)", data)
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return nil, fmt.Errorf("must be a duration with a unit, like \"30s\" (got %q)", s)
	}
	return d, nil
}

// textUnmarshaler is the interface of netip.Addr, netip.Prefix,
// netip.AddrPort and the other types configured from one string.
var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

// firstDecodeError turns mapstructure's joined error tree into one line about
// one key: the first in key order, so that the message is stable.
func firstDecodeError(err error) error {
	var found []*configError
	var walk func(error)
	walk = func(err error) {
		if joined, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range joined.Unwrap() {
				walk(e)
			}
			return
		}
		var de *mapstructure.DecodeError
		if !errors.As(err, &de) {
			found = append(found, &configError{msg: oneLine(err.Error())})
			return
		}
		inner := de.Unwrap()
		if _, ok := inner.(interface{ Unwrap() []error }); ok {
			walk(inner)
			return
		}
		msg := inner.Error()
		if unknown, ok := strings.CutPrefix(msg, "has invalid keys: "); ok {
			for _, k := range strings.Split(unknown, ", ") {
				found = append(found, &configError{key: joinKey(de.Name(), k), msg: "unknown key"})
			}
			return
		}
		found = append(found, &configError{key: de.Name(), msg: describe(inner)})
	}
	walk(err)
	if len(found) == 0 {
		return &configError{msg: oneLine(err.Error())}
	}
	sort.SliceStable(found, func(i, j int) bool { return found[i].key < found[j].key })
	return found[0]
}

// describe words a decoding failure for an operator.
func describe(err error) string {
	var ute *mapstructure.UnconvertibleTypeError
	if errors.As(err, &ute) {
		return fmt.Sprintf("wrong type: want %s, got %s %v", friendlyType(ute.Expected.Type()), yamlKind(ute.Value), ute.Value)
	}
	var pe *mapstructure.ParseError
	if errors.As(err, &pe) {
		return fmt.Sprintf("wrong type: want %s, got %v", friendlyType(pe.Expected.Type()), pe.Value)
	}
	return oneLine(err.Error())
}

// friendlyType names a Go type the way the YAML file spells its values.
func friendlyType(t reflect.Type) string {
	switch t {
	case reflect.TypeFor[netip.Addr]():
		return "an IP address"
	case reflect.TypeFor[netip.Prefix]():
		return "a CIDR prefix"
	case reflect.TypeFor[netip.AddrPort]():
		return "an address:port"
	}
	switch t.Kind() {
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "a mapping"
	}
	return t.String()
}

// yamlKind names the YAML kind of a decoded value.
func yamlKind(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case bool:
		return "boolean"
	case int, int64, uint64, float64:
		return "number"
	case []any:
		return "list"
	case map[string]any:
		return "mapping"
	}
	return fmt.Sprintf("%T", v)
}

func joinKey(parent, child string) string {
	if parent == "" {
		return child
	}
	return parent + "." + child
}

// oneLine keeps a multi-line library message on one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
