package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowcheck/flowcheck/clock"
)

// TestReloadScripting checks that SIGHUP's reload applies the scripting
// section to the running engine, refuses one the engine cannot use, and
// still names the sections that need a restart.
func TestReloadScripting(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.yaml")
	write := func(yaml string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	base := "sinks:\n  stdout:\n    enabled: false\n"
	write(base + "scripting:\n  checks:\n    scan_victim:\n      params:\n        peers: 32\n")
	cfg, err := loadConfig(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	p, err := build(cfg, clock.NewManual(time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)), logger, io.Discard, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.engine.Stop(context.Background()) })

	cases := []struct {
		name string
		yaml string
		// peers and enabled are scan_victim's options the engine runs with
		// after the reload.
		peers   int
		enabled bool
		logs    []string
		nolog   []string
	}{
		{"thresholds and enabled flags apply",
			"scripting:\n  interval: 1m\n  checks:\n    scan_victim:\n      enabled: false\n      params:\n        peers: 40\n",
			40, false, []string{`msg=reloaded`}, []string{"needs a restart", "refused"}},
		{"a missing script directory is refused",
			"scripting:\n  dirs: [" + filepath.Join(dir, "nope") + "]\n  checks:\n    scan_victim:\n      params:\n        peers: 50\n",
			40, false, []string{"scripting reload refused", "scripting: dirs:"}, nil},
		{"other sections still need a restart",
			"http:\n  listen: 127.0.0.1:9799\nscripting:\n  checks:\n    scan_victim:\n      params:\n        peers: 60\n",
			60, true, []string{"needs a restart", "section=http"}, []string{"section=scripting"}},
	}
	for _, tc := range cases {
		logs.Reset()
		write(base + tc.yaml)
		cfg = reload(cfg, path, p, logger)
		got := p.engine.Configuration().Checks["scan_victim"]
		if got.Params["peers"] != tc.peers || got.Enabled != tc.enabled {
			t.Errorf("%s: engine runs scan_victim %+v, want peers %d enabled %v", tc.name, got, tc.peers, tc.enabled)
		}
		if cfg.Scripting.Checks["scan_victim"].Params["peers"] != tc.peers {
			t.Errorf("%s: reload returned scripting %+v", tc.name, cfg.Scripting.Checks["scan_victim"])
		}
		for _, want := range tc.logs {
			if !strings.Contains(logs.String(), want) {
				t.Errorf("%s: log lacks %q:\n%s", tc.name, want, logs.String())
			}
		}
		for _, not := range tc.nolog {
			if strings.Contains(logs.String(), not) {
				t.Errorf("%s: log has %q:\n%s", tc.name, not, logs.String())
			}
		}
	}
	if got := p.engine.Interval().String(); got != "30s" {
		// The last reload went back to the default interval.
		t.Errorf("interval %s, want 30s", got)
	}
}
