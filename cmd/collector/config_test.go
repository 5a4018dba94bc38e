package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/flowcheck/flowcheck/clock"
	"github.com/flowcheck/flowcheck/flow"
	"go.yaml.in/yaml/v3"
)

var noEnv map[string]string

// TestStartupConfigErrors runs the daemon entry point on bad configurations:
// each must stop start-up with exit status 2 and one line naming the key.
func TestStartupConfigErrors(t *testing.T) {
	cases := []struct {
		name string
		yaml string
		env  map[string]string
		want string
	}{
		{"unknown key", "aggregate:\n  max_hostz: 5\n", nil, "aggregate.max_hostz: unknown key"},
		{"unknown section", "sink:\n  stdout:\n    enabled: true\n", nil, "sink: unknown key"},
		{"wrong type", "aggregate:\n  max_hosts: many\n", nil, "aggregate.max_hosts: wrong type"},
		{"wrong type duration", "scripting:\n  interval: 30\n", nil, "scripting.interval: must be a duration"},
		{"out of range", "aggregate:\n  max_hosts: 0\n", nil, "aggregate.max_hosts: must be > 0"},
		{"out of range in list", "collector:\n  listeners:\n    - url: auto://127.0.0.1:2055\n      sockets: 0\n", nil, "collector.listeners[0].sockets: must be between"},
		{"bad log level", "log:\n  level: loud\n", nil, `log.level: "loud" is not`},
		{"bad http listen", "http:\n  listen: nowhere\n", nil, "http.listen: must be host:port"},
		{"http exposed", "http:\n  listen: 0.0.0.0:9740\n", nil, "http.listen: a non-loopback address needs tls or auth"},
		{"env: http exposed", "", map[string]string{"FLOWCHECK_HTTP_LISTEN": ":9740"}, "http.listen: a non-loopback address needs tls or auth"},
		{"misspelt auth key", "http:\n  auth:\n    tokn_file: t\n", nil, "http.auth.tokn_file: unknown key (did you mean token_file?)"},
		{"env: tls cert without key", "", map[string]string{"FLOWCHECK_HTTP_TLS_CERT_FILE": "c.pem"}, "http.tls: cert_file and key_file go together"},
		{"released history out of range", "scripting:\n  released_history: -1\n", nil, "scripting.released_history: must be 0-100000"},
		{"env out of range", "", map[string]string{"FLOWCHECK_AGGREGATE_MAX_HOSTS": "0"}, "aggregate.max_hosts: must be > 0"},
		{"env wrong type", "", map[string]string{"FLOWCHECK_SCRIPTING_WORKERS": "two"}, "scripting.workers: wrong type"},
		{"bad YAML", "aggregate: [\n", nil, "cannot parse YAML"},
		// viper drops null and empty mappings: these reach the strict
		// decoder as nothing, and are caught on the document as written.
		{"misspelt empty section", "sink: {}\n", nil, "sink: unknown key (did you mean sinks?)"},
		{"misspelt null section", "sink:\n", nil, "sink: unknown key (did you mean sinks?)"},
		{"misspelt null subsection", "sinks: {kafak: }\n", nil, "sinks.kafak: unknown key (did you mean kafka?)"},
		// In a flow mapping "kafak:" is one scalar: the key is "kafak:".
		{"misspelt null subsection, no space", "sinks: {kafak:}\n", nil, "sinks.kafak:: unknown key (did you mean kafka?)"},
		{"misspelt explicit null", "sinks:\n  kafak: null\n", nil, "sinks.kafak: unknown key (did you mean kafka?)"},
		{"misspelt empty subsection", "sinks:\n  kafka:\n    spoll: {}\n", nil, "sinks.kafka.spoll: unknown key (did you mean spool?)"},
		{"misspelt key in a check", "scripting:\n  checks:\n    scan_detection: {enabeld: false}\n", nil, "scripting.checks[scan_detection].enabeld: unknown key (did you mean enabled?)"},
		{"misspelt key in a list", "collector:\n  listeners:\n    - url: auto://127.0.0.1:2055\n      sokets:\n", nil, "collector.listeners[0].sokets: unknown key (did you mean sockets?)"},
		{"unknown key, nothing close", "sinks:\n  carrier_pigeon: {}\n", nil, "sinks.carrier_pigeon: unknown key\n"},
		{"check with no script", "scripting:\n  checks:\n    scan_detecton: {enabled: false}\n", nil, "scripting.checks[scan_detecton]: no script scan_detecton.lua in scripts or the embedded scripts (did you mean scan_detection?)"},
		{"null check with no script", "scripting:\n  checks:\n    scan_detecton:\n", nil, "scripting.checks[scan_detecton]: no script"},
		{"env: misspelt key in a check", "", map[string]string{"FLOWCHECK_SCRIPTING_CHECKS": "{scan_detection: {enabeld: }}"}, "scripting.checks[scan_detection].enabeld: unknown key (did you mean enabled?)"},
		{"env: check with no script", "", map[string]string{"FLOWCHECK_SCRIPTING_CHECKS": "{scan_detecton: {enabled: false}}"}, "scripting.checks[scan_detecton]: no script"},
		// A variable that names no key is refused as a misspelt key is.
		{"env: misspelt key", "", map[string]string{"FLOWCHECK_SINKS_KAFAK_BROKERS": "k:9092"}, "FLOWCHECK_SINKS_KAFAK_BROKERS: unknown key (did you mean FLOWCHECK_SINKS_KAFKA_BROKERS?)\n"},
		{"bad cluster role", "cluster:\n  role: both\n", nil, `cluster.role: "both" is not all, ingest or check`},
		{"env: ingest without brokers", "", map[string]string{"FLOWCHECK_CLUSTER_ROLE": "ingest"}, "cluster.brokers: must not be empty with role ingest"},
		{"env: no such key", "", map[string]string{"FLOWCHECK_CARRIER_PIGEON": "1"}, "FLOWCHECK_CARRIER_PIGEON: unknown key\n"},
		{"env: misspelt check", "", map[string]string{"FLOWCHECK_SCRIPTING_CHECKS_SCAN_DETECTON_ENABLED": "false"}, "FLOWCHECK_SCRIPTING_CHECKS_SCAN_DETECTON_ENABLED: unknown key (did you mean FLOWCHECK_SCRIPTING_CHECKS_SCAN_DETECTION_ENABLED?)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "config.yaml")
			if err := os.WriteFile(path, []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			var stdout, stderr bytes.Buffer
			code := dispatch([]string{"run", "--config", path}, &stdout, &stderr)
			if code != exitConfig {
				t.Fatalf("exit %d, want %d; stderr: %s", code, exitConfig, stderr.String())
			}
			msg := stderr.String()
			if strings.Count(msg, "\n") != 1 || !strings.Contains(msg, tc.want) {
				t.Fatalf("stderr = %q, want one line containing %q", msg, tc.want)
			}
		})
	}
}

func TestLoadConfigOverrides(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.yaml")
	yaml := "instance: edge-1\naggregate:\n  reply_window: 5s\n  names:\n    \"fd00::1\": printer\nsinks:\n  stdout:\n    enabled: false\n"
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"FLOWCHECK_AGGREGATE_REPLY_WINDOW":                    "7s",
		"FLOWCHECK_HTTP_LISTEN":                               "127.0.0.1:0",
		"FLOWCHECK_SINKS_KAFKA_BROKERS":                       "[127.0.0.1:9092]",
		"FLOWCHECK_SCRIPTING_CHECKS_SCAN_DETECTION_ENABLED":   "false",
		"FLOWCHECK_SCRIPTING_CHECKS_SCAN_VICTIM_PARAMS_PEERS": "32",
		"FLOWCHECK_CLUSTER_ROLE":                              "ingest",
		"FLOWCHECK_CLUSTER_BROKERS":                           "k1:9092,k2:9092",
		"FLOWCHECK_CLUSTER_PARTITIONS":                        "12",
	}
	cfg, err := loadConfig(path, env)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Instance != "edge-1" || cfg.Scripting.Instance != "edge-1" {
		t.Errorf("instance = %q / %q", cfg.Instance, cfg.Scripting.Instance)
	}
	if cfg.Aggregate.ReplyWindow != 7*time.Second {
		t.Errorf("reply_window = %v, want the environment's 7s", cfg.Aggregate.ReplyWindow)
	}
	if cfg.Aggregate.Names["fd00::1"] != "printer" {
		t.Errorf("names = %v", cfg.Aggregate.Names)
	}
	if cfg.HTTP.Listen != "127.0.0.1:0" {
		t.Errorf("http.listen = %q", cfg.HTTP.Listen)
	}
	if string(cfg.Sinks.Stdout.Enabled) != "false" {
		t.Errorf("sinks.stdout.enabled = %q (a YAML boolean)", cfg.Sinks.Stdout.Enabled)
	}
	if len(cfg.Sinks.Kafka.Brokers) != 1 || cfg.Sinks.Kafka.Brokers[0] != "127.0.0.1:9092" {
		t.Errorf("sinks.kafka.brokers = %v", cfg.Sinks.Kafka.Brokers)
	}
	if c := cfg.Cluster; c.Role != "ingest" || len(c.Brokers) != 2 || c.Brokers[1] != "k2:9092" || c.Partitions != 12 {
		t.Errorf("cluster = %+v", c)
	}
	if cfg.Cluster.RebuildWindow != cfg.Aggregate.IdleTimeout.Local {
		t.Errorf("cluster.rebuild_window = %v, want the host idle timeout", cfg.Cluster.RebuildWindow)
	}
	// The params' defaults are the scripts' own: the configuration holds
	// only what it overrides.
	if sd := cfg.Scripting.Checks["scan_detection"]; sd.Enabled || len(sd.Params) != 0 {
		t.Errorf("scripting.checks.scan_detection = %+v, want disabled with default params", sd)
	}
	if sv := cfg.Scripting.Checks["scan_victim"]; !sv.Enabled || sv.Params["peers"] != 32 || len(sv.Params) != 1 {
		t.Errorf("scripting.checks.scan_victim = %+v, want peers 32 and the other defaults", sv)
	}
	// Untouched keys keep their defaults.
	if d := DefaultConfig(); cfg.Aggregate.MaxHosts != d.Aggregate.MaxHosts || cfg.Scripting.Interval != d.Scripting.Interval {
		t.Errorf("defaults lost: max_hosts %d, interval %v", cfg.Aggregate.MaxHosts, cfg.Scripting.Interval)
	}
}

// TestShippedConfigLoads checks that the embedded default and the example
// file at the root load and validate as shipped.
func TestShippedConfigLoads(t *testing.T) {
	if _, err := loadConfig("", noEnv); err != nil {
		t.Fatalf("embedded default: %v", err)
	}
	if _, err := loadConfig("../../config.example.yaml", noEnv); err != nil {
		t.Fatalf("config.example.yaml: %v", err)
	}
}

func TestDispatchUsage(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := dispatch([]string{"frobnicate"}, &out, &errOut); code != exitConfig || !strings.Contains(errOut.String(), "unknown command") {
		t.Fatalf("unknown command: exit %d, %q", code, errOut.String())
	}
	errOut.Reset()
	if code := dispatch([]string{"replay", "--config", "x"}, &out, &errOut); code != exitConfig {
		t.Fatalf("replay without --pcap: exit %d", code)
	}
	if code := dispatch([]string{"replay", "--pcap", "x", "--speed", "fast"}, &out, &errOut); code != exitConfig {
		t.Fatalf("replay --speed fast: exit %d", code)
	}
}

// FuzzLoadConfig feeds arbitrary documents to the loader: it must answer
// with a configuration or a one-line error, never panic.
func FuzzLoadConfig(f *testing.F) {
	for _, seed := range []string{
		"", "instance: x\n", "aggregate:\n  max_hosts: 5\n", "aggregate: [\n", "sinks:\n  stdout:\n    enabled: true\n",
		"scripting:\n  checks:\n    scan_detection:\n      params: {value: 90}\n", "collector:\n  listeners:\n    - url: auto://127.0.0.1:0\n",
		"aggregate:\n  names:\n    \"fd00::1\": a\n", "log: {level: 3}\n", "http: null\n", "- 1\n- 2\n", "a: &x [*x]\n",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, doc string) {
		cfg := DefaultConfig()
		err := loadInto(&cfg, []byte(doc), noEnv, switchHook)
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Fatalf("multi-line error %q", err)
		}
	})
}

// TestExampleIsTheDefaults checks that config.example.yaml, which documents
// every key, states every key and gives each its default: loading it yields
// exactly DefaultConfig.
func TestExampleIsTheDefaults(t *testing.T) {
	got, err := loadConfig("../../config.example.yaml", noEnv)
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultConfig()
	want.Scripting.Instance = want.Instance
	want.Cluster.RebuildWindow = want.Aggregate.IdleTimeout.Local
	// Compared as trees, where an empty list and no list are the same.
	gt, _ := toTree(reflect.ValueOf(got)).(map[string]any)
	wt, _ := toTree(reflect.ValueOf(want)).(map[string]any)
	for _, d := range treeDiff("", gt, wt) {
		t.Errorf("config.example.yaml differs from the defaults: %s", d)
	}
	doc, err := os.ReadFile("../../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var stated map[string]any
	if err := yaml.Unmarshal(doc, &stated); err != nil {
		t.Fatal(err)
	}
	for _, path := range leafKeys(reflect.TypeFor[Config]()) {
		node := any(stated)
		for _, k := range path {
			m, _ := node.(map[string]any)
			var ok bool
			if node, ok = m[k]; !ok {
				t.Errorf("config.example.yaml does not state %s", strings.Join(path, "."))
				break
			}
		}
	}
}

// treeDiff lists the paths where two configuration trees differ.
func treeDiff(prefix string, a, b map[string]any) []string {
	var out []string
	keys := map[string]bool{}
	for k := range a {
		keys[k] = true
	}
	for k := range b {
		keys[k] = true
	}
	for k := range keys {
		am, aok := a[k].(map[string]any)
		bm, bok := b[k].(map[string]any)
		if aok && bok {
			out = append(out, treeDiff(prefix+k+".", am, bm)...)
			continue
		}
		if !reflect.DeepEqual(a[k], b[k]) && !(isEmpty(a[k]) && isEmpty(b[k])) {
			out = append(out, fmt.Sprintf("%s%s: file %v, default %v", prefix, k, a[k], b[k]))
		}
	}
	sort.Strings(out)
	return out
}

func isEmpty(v any) bool {
	if v == nil {
		return true
	}
	rv := reflect.ValueOf(v)
	return (rv.Kind() == reflect.Slice || rv.Kind() == reflect.Map) && rv.Len() == 0
}

// TestGoodConfigs loads configurations that must pass: null and empty
// sections under their right names keep the defaults, and a listed check
// takes the options of an unlisted one for the keys it leaves out.
func TestGoodConfigs(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "custom.lua"), []byte("return {check = function() end}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	def := DefaultConfig()
	cases := []struct {
		name  string
		yaml  string
		check func(t *testing.T, cfg Config)
	}{
		{"null sections", "http:\nsinks:\n  kafka: null\nscripting:\n  checks:\n", func(t *testing.T, cfg Config) {
			if cfg.HTTP != def.HTTP || cfg.Sinks.Kafka.QueueSize != def.Sinks.Kafka.QueueSize || len(cfg.Scripting.Checks) != len(def.Scripting.Checks) {
				t.Errorf("null sections lost defaults: %+v", cfg.HTTP)
			}
		}},
		{"empty sections", "sinks: {}\nscripting: {checks: {scan_detection: {}}}\n", func(t *testing.T, cfg Config) {
			if sd := cfg.Scripting.Checks["scan_detection"]; !sd.Enabled || len(sd.Params) != 0 {
				t.Errorf("scan_detection = %+v", sd)
			}
		}},
		{"shipped check disabled", "scripting: {checks: {scan_detection: {enabled: false}}}\n", func(t *testing.T, cfg Config) {
			if sd := cfg.Scripting.Checks["scan_detection"]; sd.Enabled || len(sd.Params) != 0 {
				t.Errorf("scan_detection = %+v", sd)
			}
		}},
		{"custom check listed with only local_only runs", "scripting:\n  dirs: [" + dir + "]\n  checks:\n    custom: {local_only: true}\n", func(t *testing.T, cfg Config) {
			if c := cfg.Scripting.Checks["custom"]; !c.Enabled || !c.LocalOnly || c.Every != 1 {
				t.Errorf("custom = %+v, want enabled, local only, every tick", c)
			}
		}},
		{"custom check disabled", "scripting:\n  dirs: [" + dir + "]\n  checks:\n    custom: {enabled: false, every: 3}\n", func(t *testing.T, cfg Config) {
			if c := cfg.Scripting.Checks["custom"]; c.Enabled || c.Every != 3 {
				t.Errorf("custom = %+v, want disabled every 3", c)
			}
		}},
		{"shipped names are known beside a custom directory", "scripting:\n  dirs: [" + dir + "]\n  checks:\n    scan_victim: {enabled: false}\n", func(t *testing.T, cfg Config) {
			if cfg.Scripting.Checks["scan_victim"].Enabled {
				t.Error("scan_victim enabled")
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "config.yaml")
			if err := os.WriteFile(path, []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := loadConfig(path, noEnv)
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, cfg)
		})
	}
}

// TestListedCheckRuns builds the pipeline with a custom check listed with
// only local_only: true and checks that a tick runs it on a local host (it
// used to load and never run).
func TestListedCheckRuns(t *testing.T) {
	dir := t.TempDir()
	script := "return {check = function(h) host.triggerAlert(10, 'seen ' .. host.ip()) end}\n"
	if err := os.WriteFile(filepath.Join(dir, "custom.lua"), []byte(script), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "config.yaml")
	yaml := "sinks:\n  stdout:\n    enabled: false\nscripting:\n  dirs: [" + dir + "]\n  checks:\n    custom:\n      local_only: true\n"
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(path, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	p, err := build(cfg, clock.NewManual(now), slog.New(slog.DiscardHandler), io.Discard, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.engine.Stop(context.Background()) })
	p.table.Apply([]flow.Record{{
		SrcAddr: netip.MustParseAddr("10.0.0.1"), DstAddr: netip.MustParseAddr("192.0.2.1"),
		SrcPort: 40000, DstPort: 443, Proto: 6, TCPFlags: 0x18, Bytes: 1000, Packets: 2,
		Start: now, End: now,
	}})
	p.engine.Tick(context.Background(), now, false)
	var got []string
	for _, ev := range p.engine.Engaged() {
		got = append(got, ev.Check+"@"+ev.Host.IP)
	}
	if !slices.Equal(got, []string{"custom@10.0.0.1"}) {
		t.Fatalf("engaged %v, want custom on the local host only", got)
	}
}

// TestStartupParamErrors: a check param its script refuses stops start-up
// with the configuration's exit status, as a misspelt key does.
func TestStartupParamErrors(t *testing.T) {
	cases := []struct{ name, yaml, want string }{
		{"unknown param", "scripting:\n  checks:\n    scan_detection:\n      params: {vertical_portz: 3}\n",
			"configuration: scripting: checks.scan_detection.params.vertical_portz: unknown param"},
		{"wrong type", "scripting:\n  checks:\n    scan_detection:\n      params: {vertical_ports: many}\n",
			"configuration: scripting: checks.scan_detection.params.vertical_ports: wrong type"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "config.yaml")
			if err := os.WriteFile(path, []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			var stdout, stderr bytes.Buffer
			if code := dispatch([]string{"run", "--config", path}, &stdout, &stderr); code != exitConfig {
				t.Fatalf("exit %d, want %d; stderr: %s", code, exitConfig, stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.want) {
				t.Fatalf("stderr = %q, want it to contain %q", stderr.String(), tc.want)
			}
		})
	}
}
