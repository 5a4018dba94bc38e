package main

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/flowcheck/flowcheck"
	"github.com/flowcheck/flowcheck/aggregate"
	"github.com/flowcheck/flowcheck/cluster"
	"github.com/flowcheck/flowcheck/collector"
	"github.com/flowcheck/flowcheck/scripting"
	"github.com/flowcheck/flowcheck/server"
	"github.com/flowcheck/flowcheck/sink"
	"go.yaml.in/yaml/v3"
)

// Config is the whole configuration file: a few keys of the program's own,
// then one section per component, each owned by that component.
type Config struct {
	// Instance names this collector in every alert ("collector" field).
	Instance string `mapstructure:"instance"`
	// Log configures the program's logs (stderr).
	Log LogConfiguration `mapstructure:"log"`
	// HTTP is the operations surface: metrics, probes, JSON API.
	HTTP server.Configuration `mapstructure:"http"`

	Collector collector.Configuration `mapstructure:"collector"`
	Aggregate aggregate.Configuration `mapstructure:"aggregate"`
	Scripting scripting.Configuration `mapstructure:"scripting"`
	Sinks     sink.Configuration      `mapstructure:"sinks"`
	// Cluster says which part of the pipeline this process runs (role)
	// and where the flows topic is.
	Cluster cluster.Configuration `mapstructure:"cluster"`
}

// LogConfiguration is the `log` section.
type LogConfiguration struct {
	// Level is debug, info, warn or error.
	Level string `mapstructure:"level"`
	// Format is text or json.
	Format string `mapstructure:"format"`
}

// DefaultConfig is the configuration with every key at its default.
func DefaultConfig() Config {
	return Config{
		Instance:  "flowcheck",
		Log:       LogConfiguration{Level: "info", Format: "text"},
		HTTP:      server.DefaultConfiguration(),
		Collector: collector.DefaultConfiguration(),
		Aggregate: aggregate.DefaultConfiguration(),
		Scripting: scripting.DefaultConfiguration(),
		Sinks:     sink.DefaultConfiguration(),
		Cluster:   cluster.DefaultConfiguration(),
	}
}

// Validate checks the `log` section.
func (c LogConfiguration) Validate() error {
	if _, err := c.level(); err != nil {
		return err
	}
	switch c.Format {
	case "text", "json":
		return nil
	}
	return fmt.Errorf("format: %q is not text or json", c.Format)
}

func (c LogConfiguration) level() (slog.Level, error) {
	switch strings.ToLower(c.Level) {
	case "debug":
		return slog.LevelDebug, nil
	case "info", "":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("level: %q is not debug, info, warn or error", c.Level)
}

// Validate checks every section and returns the first problem as one line,
// prefixed with its section: "aggregate.max_hosts: must be > 0".
func (c Config) Validate() error {
	if strings.TrimSpace(c.Instance) == "" {
		return &configError{key: "instance", msg: "must not be empty"}
	}
	sections := []struct {
		name string
		v    interface{ Validate() error }
	}{
		{"log", c.Log}, {"http", c.HTTP},
		{"collector", c.Collector}, {"aggregate", c.Aggregate},
		{"scripting", c.Scripting}, {"sinks", c.Sinks},
		{"cluster", c.Cluster},
	}
	for _, s := range sections {
		if err := s.v.Validate(); err != nil {
			// Components may join several problems; the operator gets the
			// first, fixes it, and learns of the next on the next start.
			first, _, _ := strings.Cut(err.Error(), "\n")
			return &configError{msg: s.name + "." + first}
		}
	}
	return nil
}

// loadConfig reads the configuration: defaults, then the file (or the
// embedded example when path is empty), then FLOWCHECK_* environment
// variables, then validation. Any error is a *configError of one line.
func loadConfig(path string, env map[string]string) (Config, error) {
	document := flowcheck.DefaultConfig
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return Config{}, &configError{msg: "cannot read configuration: " + err.Error()}
		}
		document = b
	}
	cfg := DefaultConfig()
	if err := loadInto(&cfg, document, env, switchHook, listedCheckHook); err != nil {
		return Config{}, err
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	if err := checkScriptNames(cfg.Scripting, listedChecks(document), flowcheck.Scripts); err != nil {
		return Config{}, err
	}
	cfg.Scripting.Instance = cfg.Instance
	cfg.Scripting.HostExpiry = cfg.Aggregate.IdleTimeout
	if cfg.Cluster.RebuildWindow == 0 {
		cfg.Cluster.RebuildWindow = max(cfg.Aggregate.IdleTimeout.Local, cfg.Aggregate.IdleTimeout.Remote)
	}
	return cfg, nil
}

// switchHook lets a YAML boolean set a sink.Switch (auto/true/false), which
// the strict decoder would otherwise refuse as a wrong type.
func switchHook(from, to reflect.Type, data any) (any, error) {
	if to == reflect.TypeFor[sink.Switch]() {
		if b, ok := data.(bool); ok {
			return strconv.FormatBool(b), nil
		}
	}
	return data, nil
}

// listedCheckHook lays an entry of scripting.checks over
// scripting.DefaultCheck, so that a check listed with only some of its keys
// (`local_only: true`) runs, as an unlisted one does, unless it says
// `enabled: false`. Entries of the shipped checks already hold their
// defaults.
func listedCheckHook(_, to reflect.Type, data any) (any, error) {
	m, ok := data.(map[string]any)
	if to != reflect.TypeFor[scripting.CheckConfiguration]() || !ok {
		return data, nil
	}
	entry, _ := toTree(reflect.ValueOf(scripting.DefaultCheck())).(map[string]any)
	merge(entry, m)
	return entry, nil
}

// listedChecks lists the names under scripting.checks in a document as
// written: viper drops an entry whose value is null or empty, which still
// names a check.
func listedChecks(document []byte) []string {
	var doc struct {
		Scripting struct {
			Checks map[string]any `yaml:"checks"`
		} `yaml:"scripting"`
	}
	if yaml.Unmarshal(document, &doc) != nil {
		return nil
	}
	names := make([]string, 0, len(doc.Scripting.Checks))
	for k := range doc.Scripting.Checks {
		names = append(names, strings.ToLower(k))
	}
	return names
}

// checkScriptNames refuses a check option whose name matches no script in
// the script directories or among the scripts embedded in the binary: a
// misspelt `scan_detecton: {enabled: false}` would otherwise leave
// scan_detection running. A directory that cannot be read is left for the
// scripting engine to report.
func checkScriptNames(cfg scripting.Configuration, listed []string, embedded fs.FS) error {
	known := map[string]bool{}
	addDir := func(fsys fs.FS) error {
		entries, err := fs.ReadDir(fsys, ".")
		if err != nil {
			return err
		}
		for _, e := range entries {
			if name, ok := strings.CutSuffix(e.Name(), ".lua"); ok && !e.IsDir() {
				known[name] = true
			}
		}
		return nil
	}
	if sub, err := fs.Sub(embedded, scripting.DefaultDir); err == nil {
		_ = addDir(sub) // an empty embedded set only makes more names unknown
	}
	for _, d := range cfg.Dirs {
		if err := addDir(os.DirFS(d)); err != nil && !(errors.Is(err, fs.ErrNotExist) && d == scripting.DefaultDir) {
			return nil
		}
	}
	names := slices.Clone(listed)
	for name := range cfg.Checks {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range slices.Compact(names) {
		if known[name] {
			continue
		}
		candidates := make([]string, 0, len(known))
		for k := range known {
			candidates = append(candidates, k)
		}
		return &configError{
			key: "scripting.checks[" + name + "]",
			msg: "no script " + name + ".lua in " + strings.Join(cfg.Dirs, ", ") + " or the embedded scripts" + didYouMean(name, candidates),
		}
	}
	return nil
}
