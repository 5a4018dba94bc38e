package main

import (
	"errors"
	"net/netip"
	"reflect"
	"testing"
	"time"
)

type testInner struct {
	MaxHosts int            `mapstructure:"max_hosts"`
	Window   time.Duration  `mapstructure:"reply_window"`
	Local    []netip.Prefix `mapstructure:"local_networks"`
	Names    map[string]string
	Checks   map[string]testCheck `mapstructure:"checks"`
	Hidden   string               `mapstructure:"-"`
}

type testCheck struct {
	Enabled bool           `mapstructure:"enabled"`
	Every   int            `mapstructure:"every"`
	Params  map[string]any `mapstructure:"params"`
}

type testListener struct {
	URL     string `mapstructure:"url"`
	Sockets int    `mapstructure:"sockets"`
}

type testRoot struct {
	Listeners []testListener `mapstructure:"listeners"`
	Instance  string         `mapstructure:"instance"`
	Enabled   bool           `mapstructure:"enabled"`
	Inner     testInner      `mapstructure:"aggregate"`
}

func testDefaults() testRoot {
	return testRoot{
		Listeners: []testListener{{URL: "auto://127.0.0.1:2055", Sockets: 1}},
		Instance:  "default",
		Enabled:   true,
		Inner: testInner{
			MaxHosts: 10,
			Window:   30 * time.Second,
			Local:    []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.0.0/16")},
			Checks:   map[string]testCheck{"scan": {Enabled: true, Every: 1, Params: map[string]any{"ports": 100, "value": 80}}},
		},
	}
}

func TestLoadInto(t *testing.T) {
	cases := []struct {
		name    string
		yaml    string
		env     map[string]string
		want    func(*testRoot)
		wantErr string
	}{
		{name: "empty keeps defaults", want: func(*testRoot) {}},
		{
			name: "file overrides, defaults stay",
			yaml: "aggregate:\n  max_hosts: 5\n",
			want: func(r *testRoot) { r.Inner.MaxHosts = 5 },
		},
		{
			name: "list replaces the default list",
			yaml: "aggregate:\n  local_networks: [172.16.0.0/12]\n",
			want: func(r *testRoot) { r.Inner.Local = []netip.Prefix{netip.MustParsePrefix("172.16.0.0/12")} },
		},
		{
			name: "dotted map keys survive",
			yaml: "aggregate:\n  names:\n    10.0.0.1: router\n    \"fd00::1\": printer\n",
			want: func(r *testRoot) { r.Inner.Names = map[string]string{"10.0.0.1": "router", "fd00::1": "printer"} },
		},
		{
			name: "a partly configured map entry keeps its defaults",
			yaml: "aggregate:\n  checks:\n    scan:\n      params: {ports: 50}\n    other: {every: 2}\n",
			want: func(r *testRoot) {
				r.Inner.Checks = map[string]testCheck{
					"scan":  {Enabled: true, Every: 1, Params: map[string]any{"ports": 50, "value": 80}},
					"other": {Every: 2},
				}
			},
		},
		{
			name: "empty section keeps defaults",
			yaml: "aggregate:\n",
			want: func(*testRoot) {},
		},
		{name: "unknown key in a map entry", yaml: "aggregate:\n  checks:\n    scan: {evry: 2}\n", wantErr: "aggregate.checks[scan].evry: unknown key"},
		{
			name: "env overrides file",
			yaml: "aggregate:\n  max_hosts: 5\n",
			env:  map[string]string{"FLOWCHECK_AGGREGATE_MAX_HOSTS": "7", "FLOWCHECK_ENABLED": "false", "FLOWCHECK_AGGREGATE_REPLY_WINDOW": "1m"},
			want: func(r *testRoot) { r.Inner.MaxHosts = 7; r.Enabled = false; r.Inner.Window = time.Minute },
		},
		{
			name: "env list",
			env:  map[string]string{"FLOWCHECK_AGGREGATE_LOCAL_NETWORKS": "[fd00::/8]"},
			want: func(r *testRoot) { r.Inner.Local = []netip.Prefix{netip.MustParsePrefix("fd00::/8")} },
		},
		{
			name: "list elements start from the default element",
			yaml: "listeners:\n  - url: netflow://0.0.0.0:2055\n  - url: sflow://0.0.0.0:6343\n    sockets: 4\n",
			want: func(r *testRoot) {
				r.Listeners = []testListener{{URL: "netflow://0.0.0.0:2055", Sockets: 1}, {URL: "sflow://0.0.0.0:6343", Sockets: 4}}
			},
		},
		{
			name: "env list of mappings",
			env:  map[string]string{"FLOWCHECK_LISTENERS": "[{url: ipfix://127.0.0.1:0}]"},
			want: func(r *testRoot) { r.Listeners = []testListener{{URL: "ipfix://127.0.0.1:0", Sockets: 1}} },
		},
		{
			name: "empty env sets an empty string",
			env:  map[string]string{"FLOWCHECK_INSTANCE": "", "FLOWCHECK_AGGREGATE_MAX_HOSTS": ""},
			want: func(r *testRoot) { r.Instance = "" },
		},
		{
			name: "env list, comma-separated",
			env:  map[string]string{"FLOWCHECK_AGGREGATE_LOCAL_NETWORKS": "fd00::/8, 10.0.0.0/8"},
			want: func(r *testRoot) {
				r.Inner.Local = []netip.Prefix{netip.MustParsePrefix("fd00::/8"), netip.MustParsePrefix("10.0.0.0/8")}
			},
		},
		{
			name: "env reaches inside a mapping",
			env:  map[string]string{"FLOWCHECK_AGGREGATE_CHECKS_SCAN_ENABLED": "false", "FLOWCHECK_AGGREGATE_CHECKS_SCAN_PARAMS_VALUE": "90"},
			want: func(r *testRoot) {
				r.Inner.Checks = map[string]testCheck{"scan": {Enabled: false, Every: 1, Params: map[string]any{"ports": 100, "value": 90}}}
			},
		},
		{
			name: "the most specific env wins",
			env:  map[string]string{"FLOWCHECK_AGGREGATE_CHECKS": "{scan: {every: 5}}", "FLOWCHECK_AGGREGATE_CHECKS_SCAN_EVERY": "7"},
			want: func(r *testRoot) {
				r.Inner.Checks = map[string]testCheck{"scan": {Enabled: true, Every: 7, Params: map[string]any{"ports": 100, "value": 80}}}
			},
		},
		{
			name: "env adds a key to a mapping of values",
			env:  map[string]string{"FLOWCHECK_AGGREGATE_CHECKS_SCAN_PARAMS_MIN_PEERS": "3", "FLOWCHECK_AGGREGATE_NAMES_ROUTER1": "edge"},
			want: func(r *testRoot) {
				r.Inner.Checks = map[string]testCheck{"scan": {Enabled: true, Every: 1, Params: map[string]any{"ports": 100, "value": 80, "min_peers": 3}}}
				r.Inner.Names = map[string]string{"router1": "edge"}
			},
		},
		{name: "env names no key", env: map[string]string{"FLOWCHECK_AGGREGATE_MAX_HOSTZ": "5"}, wantErr: "FLOWCHECK_AGGREGATE_MAX_HOSTZ: unknown key (did you mean FLOWCHECK_AGGREGATE_MAX_HOSTS?)"},
		{name: "env names an unknown entry of a mapping of structures", env: map[string]string{"FLOWCHECK_AGGREGATE_CHECKS_OTHER_EVERY": "5"}, wantErr: "FLOWCHECK_AGGREGATE_CHECKS_OTHER_EVERY: unknown key"},
		{name: "env names no key, whatever the others", env: map[string]string{"FLOWCHECK_ENABLED": "false", "FLOWCHECK_BOGUS": "1"}, wantErr: "FLOWCHECK_BOGUS: unknown key"},
		{name: "unknown key", yaml: "aggregate:\n  max_hostz: 5\n", wantErr: "aggregate.max_hostz: unknown key"},
		{name: "unknown section", yaml: "bogus: 1\n", wantErr: "bogus: unknown key"},
		{name: "wrong type", yaml: "aggregate:\n  max_hosts: lots\n", wantErr: "aggregate.max_hosts: wrong type: want an integer, got string lots"},
		{name: "wrong type from env", env: map[string]string{"FLOWCHECK_ENABLED": "maybe"}, wantErr: "enabled: wrong type: want a boolean, got string maybe"},
		{name: "bare number duration", yaml: "aggregate:\n  reply_window: 30\n", wantErr: `aggregate.reply_window: must be a duration with a unit, like "30s" (got 30)`},
		{name: "bad prefix", yaml: "aggregate:\n  local_networks: [10.0.0.0/33]\n", wantErr: "aggregate.local_networks[0]: "},
		{name: "bad YAML", yaml: "aggregate: [\n", wantErr: "cannot parse YAML: "},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := testDefaults()
			err := loadInto(&got, []byte(tc.yaml), tc.env)
			if tc.wantErr != "" {
				var ce *configError
				if !errors.As(err, &ce) {
					t.Fatalf("err = %v, want configError %q", err, tc.wantErr)
				}
				if msg := err.Error(); len(msg) < len(tc.wantErr) || msg[:len(tc.wantErr)] != tc.wantErr {
					t.Fatalf("err = %q, want prefix %q", msg, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("loadInto: %v", err)
			}
			want := testDefaults()
			tc.want(&want)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("got %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestLeafKeys(t *testing.T) {
	var got []string
	for _, p := range leafKeys(reflect.TypeFor[testRoot]()) {
		got = append(got, joinPath(p))
	}
	want := []string{"listeners", "instance", "enabled", "aggregate.max_hosts", "aggregate.reply_window", "aggregate.local_networks", "aggregate.names", "aggregate.checks"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("leafKeys = %v, want %v", got, want)
	}
}

func joinPath(p []string) string {
	s := p[0]
	for _, x := range p[1:] {
		s += "." + x
	}
	return s
}
