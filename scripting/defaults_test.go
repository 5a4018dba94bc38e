package scripting

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/flowcheck/flowcheck/clock"
)

// update rewrites the generated table of docs/lua-api.md from the scripts.
var update = flag.Bool("update", false, "rewrite the shipped checks' params table of docs/lua-api.md")

// declaringScript declares one param of each kind and reports what it got.
const declaringScript = `return {
  defaults = { n = 5, name = "x", on = true, list = { "a", "b" }, nested = { depth = 1 }, opts = {} },
  check = function(info)
    local p = info.params
    host.triggerAlert(p.n, string.format("%s %s %s %d", p.name, tostring(p.on), table.concat(p.list, ","), p.nested.depth))
  end,
}`

// newEngine builds an engine on the scripts of files, logging to logs.
func newEngine(t *testing.T, files map[string]string, checks map[string]CheckConfiguration, logs *bytes.Buffer) (*Engine, *capture, error) {
	t.Helper()
	dir := t.TempDir()
	writeScripts(t, dir, files)
	cfg := DefaultConfiguration()
	cfg.Dirs = []string{dir}
	cfg.CallTimeout = time.Second
	cfg.Checks = checks
	pub := &capture{}
	e, err := New(cfg, Dependencies{Logger: newTextLogger(logs), Registerer: prometheus.NewRegistry(),
		Clock: clock.NewManual(t0), Hosts: newFakeHosts(hostA()), Alerts: pub})
	if err == nil {
		t.Cleanup(func() { e.Stop(context.Background()) })
	}
	return e, pub, err
}

// TestParams checks how configured params meet the defaults a script
// declares: laid over them, and refused at start when a name is not
// declared or a value has another type than its default.
func TestParams(t *testing.T) {
	cases := []struct {
		name    string
		params  map[string]any
		value   int
		message string
		err     string
	}{
		{"defaults", nil, 5, "x true a,b 1", ""},
		{"overrides", map[string]any{"n": 7, "name": "y", "on": false, "list": []any{"c"}, "nested": map[string]any{"depth": 2}},
			7, "y false c 2", ""},
		{"float and list of strings", map[string]any{"n": 7.0, "list": []string{"d", "e"}}, 7, "x true d,e 1", ""},
		{"null takes the default", map[string]any{"n": nil}, 5, "x true a,b 1", ""},
		{"empty default table takes a list or a table", map[string]any{"opts": map[string]any{"k": 1}}, 5, "x true a,b 1", ""},
		{"misspelt name", map[string]any{"nmae": "y"}, 0, "",
			"checks.c.params.nmae: unknown param; c declares list, n, name, nested, on, opts"},
		{"number as a string", map[string]any{"n": "7"}, 0, "",
			`checks.c.params.n: wrong type: "7" is a string, the default 5 is a number`},
		{"string as a number", map[string]any{"name": 3}, 0, "",
			`checks.c.params.name: wrong type: 3 is a number, the default "x" is a string`},
		{"boolean as a string", map[string]any{"on": "yes"}, 0, "",
			`checks.c.params.on: wrong type: "yes" is a string, the default true is a boolean`},
		{"list element", map[string]any{"list": []any{"a", 2}}, 0, "",
			"checks.c.params.list[2]: wrong type: 2 is a number, the default's elements are strings"},
		{"scalar for a list", map[string]any{"list": "a"}, 0, "",
			`checks.c.params.list: wrong type: "a" is a string, the default [a b] is a list`},
		{"list for a table", map[string]any{"nested": []any{1}}, 0, "",
			"checks.c.params.nested: wrong type: [1] is a list, the default map[depth:1] is a table"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			e, pub, err := newEngine(t, map[string]string{"c": declaringScript},
				map[string]CheckConfiguration{"c": {Enabled: true, Params: tc.params}}, &logs)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("New: %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if st := e.Tick(context.Background(), t0, false); st.Errors != 0 {
				t.Fatalf("tick: %+v\n%s", st, logs.String())
			}
			evs := pub.take()
			if len(evs) != 1 || evs[0].Value != tc.value || evs[0].Message != tc.message {
				t.Fatalf("events %+v, want value %d message %q", evs, tc.value, tc.message)
			}
		})
	}
}

// TestBadDefaults checks that a script whose defaults are not a table of
// named plain values does not load, and says why.
func TestBadDefaults(t *testing.T) {
	cases := []struct{ defaults, want string }{
		{"5", "defaults is a number, not a table of params"},
		{"{ 1, 2 }", "defaults: params are named (name = value), not a list"},
		{"{ f = print }", "defaults.f: a function is not a param value"},
		{"{ t = { [true] = 1 } }", "defaults.t: key true is a boolean, not a name"},
		{"{ l = { 1, print } }", "defaults.l[2]: a function is not a param value"},
	}
	for _, tc := range cases {
		t.Run(tc.defaults, func(t *testing.T) {
			src := "return { defaults = " + tc.defaults + ", check = function() end }"
			var logs bytes.Buffer
			_, _, err := newEngine(t, map[string]string{"c": src}, nil, &logs)
			if err == nil || !strings.Contains(logs.String(), tc.want) {
				t.Fatalf("New: %v, want a load failure saying %q; log:\n%s", err, tc.want, logs.String())
			}
		})
	}
}

// TestParamsReload checks that a reload meeting a params error changes
// nothing: a configuration with a misspelt param, and a new version of a
// script that no longer declares a configured param.
func TestParamsReload(t *testing.T) {
	var logs bytes.Buffer
	e, pub, err := newEngine(t, map[string]string{"c": declaringScript},
		map[string]CheckConfiguration{"c": {Enabled: true, Params: map[string]any{"n": 7}}}, &logs)
	if err != nil {
		t.Fatal(err)
	}
	cfg := e.Configuration()
	bad := cfg
	bad.Checks = map[string]CheckConfiguration{"c": {Enabled: true, Params: map[string]any{"n": 8, "nn": 9}}}
	if err := e.ReloadConfig(bad); err == nil || !strings.Contains(err.Error(), "checks.c.params.nn: unknown param") {
		t.Fatalf("ReloadConfig: %v", err)
	}
	writeScripts(t, cfg.Dirs[0], map[string]string{"c": strings.Replace(declaringScript, "n = 5, ", "", 1)})
	if err := e.Reload(); err == nil || !strings.Contains(err.Error(), "checks.c.params.n: unknown param") {
		t.Fatalf("Reload: %v", err)
	}
	e.Tick(context.Background(), t0, false)
	if evs := pub.take(); len(evs) != 1 || evs[0].Value != 7 {
		t.Fatalf("after refused reloads: events %+v, want the running check's value 7", evs)
	}
	if errors.Is(err, ErrScriptsFailed) {
		t.Fatal("a params error is not a script failure")
	}
}

// shippedDefaults loads the shipped scripts and returns each check's
// declared defaults.
func shippedDefaults(t *testing.T) map[string]map[string]any {
	t.Helper()
	h := newHarness(t, nil, newFakeHosts(), nil)
	out := map[string]map[string]any{}
	for _, sc := range h.e.set.checks {
		out[sc.name] = sc.file.defaults
	}
	if names := slices.Sorted(maps.Keys(out)); !slices.Equal(names, ShippedChecks) {
		t.Fatalf("scripts/ holds the checks %v, ShippedChecks lists %v", names, ShippedChecks)
	}
	return out
}

// TestShippedDefaults checks that every shipped check declares its params
// and that its Configuration entry holds none: the script is their one
// source.
func TestShippedDefaults(t *testing.T) {
	defaults := shippedDefaults(t)
	for _, name := range ShippedChecks {
		if len(defaults[name]) == 0 {
			t.Errorf("%s declares no defaults", name)
		}
		if p := DefaultConfiguration().Checks[name].Params; len(p) != 0 {
			t.Errorf("DefaultConfiguration holds params of %s: %v", name, p)
		}
	}
}

// TestShippedParamsDocumented holds the params table of docs/lua-api.md to
// the scripts' defaults (and their comments); go test ./scripting/ -run
// TestShippedParamsDocumented -update rewrites it.
func TestShippedParamsDocumented(t *testing.T) {
	const begin, end = "<!-- params:begin -->\n", "<!-- params:end -->\n"
	want := paramsDoc(t, shippedDefaults(t))
	doc, err := os.ReadFile("../docs/lua-api.md")
	if err != nil {
		t.Fatal(err)
	}
	i, j := bytes.Index(doc, []byte(begin)), bytes.Index(doc, []byte(end))
	if i < 0 || j < i {
		t.Fatalf("docs/lua-api.md has no %q … %q section", begin, end)
	}
	got := string(doc[i+len(begin) : j])
	if got == want {
		return
	}
	if *update {
		out := slices.Concat(doc[:i+len(begin)], []byte(want), doc[j:])
		if err := os.WriteFile("../docs/lua-api.md", out, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("docs/lua-api.md: the params table differs from the scripts' defaults (rerun with -update):\n got:\n%s\nwant:\n%s", got, want)
}

// defaultLine is one line of a defaults table: name = value, -- comment.
var defaultLine = regexp.MustCompile(`^\s*([A-Za-z_]\w*)\s*=\s*(.*?),\s*--\s*(.*)$`)

// paramsDoc renders the params table: one row per check and param, in the
// order of the script, with the comment of the param's line.
func paramsDoc(t *testing.T, defaults map[string]map[string]any) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("| check | param | default | meaning |\n|---|---|---|---|\n")
	for _, name := range ShippedChecks {
		src, err := os.ReadFile(filepath.Join("../scripts", name+".lua"))
		if err != nil {
			t.Fatal(err)
		}
		// In the order of the script, each with the comment of its line.
		var order []string
		comments := map[string]string{}
		for line := range strings.SplitSeq(string(src), "\n") {
			if m := defaultLine.FindStringSubmatch(line); m != nil {
				if _, ok := defaults[name][m[1]]; ok && comments[m[1]] == "" {
					order = append(order, m[1])
					comments[m[1]] = m[3]
				}
			}
		}
		for _, p := range slices.Sorted(maps.Keys(defaults[name])) {
			if comments[p] == "" {
				t.Errorf("scripts/%s.lua: default %s is not on a line of its own with a comment", name, p)
				order = append(order, p)
			}
		}
		for _, p := range order {
			fmt.Fprintf(&b, "| `%s` | `%s` | %s | %s |\n", name, p, yamlValue(defaults[name][p]), comments[p])
		}
	}
	return b.String()
}

// yamlValue writes a default as it is written in the configuration.
func yamlValue(v any) string {
	switch v := v.(type) {
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case []any:
		parts := make([]string, len(v))
		for i, e := range v {
			parts[i] = yamlValue(e)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	return fmt.Sprint(v)
}

// TestExampleParams holds the params shown (commented out) under each
// shipped check of config.example.yaml to the scripts' defaults.
func TestExampleParams(t *testing.T) {
	doc, err := os.ReadFile("../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// Uncomment the "# params:" blocks: the line and the deeper commented
	// lines that follow it.
	lines := strings.Split(string(doc), "\n")
	block := ""
	for i, line := range lines {
		trimmed := strings.TrimLeft(line, " ")
		indent := line[:len(line)-len(trimmed)]
		switch {
		case strings.HasPrefix(trimmed, "# params:"):
			block = indent
		case block != "" && strings.HasPrefix(line, block+"#   "):
		default:
			block = ""
			continue
		}
		lines[i] = indent + strings.TrimPrefix(trimmed, "# ")
	}
	var stated struct {
		Scripting struct {
			Checks map[string]struct {
				Params map[string]any `yaml:"params"`
			} `yaml:"checks"`
		} `yaml:"scripting"`
	}
	if err := yaml.Unmarshal([]byte(strings.Join(lines, "\n")), &stated); err != nil {
		t.Fatal(err)
	}
	for name, defaults := range shippedDefaults(t) {
		got := map[string]string{}
		for k, v := range stated.Scripting.Checks[name].Params {
			if f, ok := v.(int); ok {
				v = float64(f)
			}
			got[k] = yamlValue(v)
		}
		want := map[string]string{}
		for k, v := range defaults {
			want[k] = yamlValue(v)
		}
		if !maps.Equal(got, want) {
			t.Errorf("config.example.yaml: scripting.checks.%s shows the params %v, the script declares %v", name, got, want)
		}
	}
}
