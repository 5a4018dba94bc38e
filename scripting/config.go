package scripting

import (
	"errors"
	"fmt"
	"runtime"
	"sort"
	"time"

	"github.com/flowcheck/flowcheck/aggregate"
)

// Configuration is the `scripting` section: how often host checks run, on how
// many VMs, with which budget, and each check's options.
type Configuration struct {
	// Interval is the tick: every enabled check runs on every host once per
	// Interval (times the check's Every).
	Interval time.Duration `mapstructure:"interval"`
	// Workers is the number of Lua VMs the hosts of a tick are split across;
	// 0 means GOMAXPROCS.
	Workers int `mapstructure:"workers"`
	// TickSpread is the share of Interval over which a live tick paces its
	// walk over the hosts (0 to 0.9): the checks then take a steady trickle
	// of CPU instead of every core at once, which would starve the decode
	// workers and fill their queues at high flow rates. 0 runs the walk
	// flat out. Replay never paces.
	TickSpread float64 `mapstructure:"tick_spread"`
	// CallTimeout is the CPU time one check(host_info) call may use (the
	// worker thread's CPU clock on Linux, wall time elsewhere), a backstop
	// behind MaxInstructions enforced on live ticks only: replay counts
	// instructions alone, so that its output does not depend on the
	// machine. It is also the wall-clock budget of loading a script (at
	// least 2 s).
	CallTimeout time.Duration `mapstructure:"call_timeout"`
	// MaxInstructions is the budget of one call in Lua instructions, plus
	// the work of the built-ins (pattern matching steps, elements unpacked,
	// concatenated or sorted, 64 bytes of string built): the same on every
	// machine. A call that uses it up is stopped and counted as a timeout.
	MaxInstructions int64 `mapstructure:"max_instructions"`
	// MaxMemory is the ceiling, in bytes, of what one check keeps in a VM
	// (its globals, modules and closures) and of what one call may
	// allocate. A check over it is disabled at once and its memory freed.
	MaxMemory int64 `mapstructure:"max_memory"`
	// MaxFailures disables a check after that many consecutive failed calls
	// (errors or timeouts, on any host); 0 never disables.
	MaxFailures int `mapstructure:"max_failures"`
	// Dirs are the script directories, searched in order (a name found in an
	// earlier directory wins). The default "scripts" falls back to the
	// scripts embedded in the binary when it does not exist.
	Dirs []string `mapstructure:"dirs"`
	// Checks holds per-check options, keyed by script name (file name without
	// ".lua"). A script without an entry, and the keys an entry leaves out,
	// take DefaultCheck (enabled, every host, every tick, no params).
	Checks map[string]CheckConfiguration `mapstructure:"checks"`
	// AlertStateFile, when set, keeps the engaged alerts across restarts:
	// written at every tick that changed them and at stop, read back at
	// start, so that the next process continues the same alerts. Empty:
	// the alerts engaged at stop are released with reason "shutdown".
	// Read at start only (a reload keeps the running one).
	AlertStateFile string `mapstructure:"alert_state_file"`
	// HostExpiry is the host table's idle timeout (aggregate.idle_timeout);
	// main copies it. A resumed alert whose host is not back within it is
	// released (host_expired).
	HostExpiry aggregate.IdleTimeoutConfiguration `mapstructure:"-"`
	// Instance is the collector id stamped on every event; main copies it
	// from the top-level `instance` key.
	Instance string `mapstructure:"-"`
}

// CheckConfiguration are the options of one host check.
type CheckConfiguration struct {
	// Enabled runs the check.
	Enabled bool `mapstructure:"enabled"`
	// LocalOnly runs the check only on hosts inside local_networks.
	LocalOnly bool `mapstructure:"local_only"`
	// Every runs the check every N ticks (0 or 1: every tick).
	Every int `mapstructure:"every"`
	// Params is passed to the script as host_info.params. Keys missing from
	// the configuration take the shipped defaults of that check.
	Params map[string]any `mapstructure:"params"`
}

// DefaultCheck is the options of a script that has no entry in Checks, and
// what the configuration loader lays a listed entry over: a listed check
// runs unless it says `enabled: false`.
func DefaultCheck() CheckConfiguration {
	return CheckConfiguration{Enabled: true, Every: 1}
}

// DefaultConfiguration returns the defaults of the `scripting` section,
// including the thresholds of every shipped check.
func DefaultConfiguration() Configuration {
	return Configuration{
		Interval:        30 * time.Second,
		Workers:         0,
		TickSpread:      0.5,
		CallTimeout:     50 * time.Millisecond,
		MaxInstructions: 1_000_000,
		MaxMemory:       64 << 20,
		MaxFailures:     100,
		Dirs:            []string{DefaultDir},
		Checks: map[string]CheckConfiguration{
			"scan_detection": {Enabled: true, Every: 1, Params: map[string]any{
				"vertical_ports":          100,
				"vertical_ports_per_peer": 4,
				"horizontal_peers":        16,
				"horizontal_max_ports":    8,
				"window_ticks":            2,
				"value":                   80,
			}},
			"scan_victim": {Enabled: true, Every: 1, Params: map[string]any{
				"peers":         16,
				"conversations": 100,
				"window_ticks":  2,
				"value":         40,
			}},
			"p2p_heavy": {Enabled: true, Every: 1, Params: map[string]any{
				"protocols":     []any{"BitTorrent"},
				"bytes_per_run": 100_000_000,
				"value":         30,
			}},
			"large_transfer": {Enabled: true, Every: 1, Params: map[string]any{
				"bytes_per_run": 1_000_000_000,
				"value":         20,
			}},
			"blacklisted_host": {Enabled: true, Every: 1, Params: map[string]any{
				"value": 90,
			}},
			"dangerous_host": {Enabled: true, Every: 1, Params: map[string]any{
				"score": 150,
				"value": 60,
			}},
			"rx_only_contacted": {Enabled: true, Every: 1, Params: map[string]any{
				"peers": 16,
				"value": 25,
			}},
		},
	}
}

// Validate reports the first invalid key, relative to the section.
func (c Configuration) Validate() error {
	switch {
	case c.Interval <= 0:
		return errors.New("interval: must be > 0")
	case c.Workers < 0:
		return errors.New("workers: must be >= 0 (0 = GOMAXPROCS)")
	case c.TickSpread < 0 || c.TickSpread > 0.9:
		return errors.New("tick_spread: must be within [0, 0.9]")
	case c.CallTimeout <= 0:
		return errors.New("call_timeout: must be > 0")
	case c.CallTimeout >= c.Interval:
		return errors.New("call_timeout: must be shorter than interval")
	case c.MaxInstructions < 1000:
		return errors.New("max_instructions: must be >= 1000")
	case c.MaxMemory < 1<<20:
		return errors.New("max_memory: must be >= 1048576 (1 MiB)")
	case c.MaxFailures < 0:
		return errors.New("max_failures: must be >= 0 (0 = never disable)")
	case len(c.Dirs) == 0:
		return errors.New("dirs: at least one script directory is needed")
	}
	for i, d := range c.Dirs {
		if d == "" {
			return fmt.Errorf("dirs[%d]: must not be empty", i)
		}
	}
	names := make([]string, 0, len(c.Checks))
	for name := range c.Checks {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		cc := c.Checks[name]
		if cc.Every < 0 {
			return fmt.Errorf("checks.%s.every: must be >= 0", name)
		}
		for k, v := range cc.Params {
			if err := checkParam(v); err != nil {
				return fmt.Errorf("checks.%s.params.%s: %w", name, k, err)
			}
		}
	}
	return nil
}

// workers resolves Workers.
func (c Configuration) workers() int {
	if c.Workers > 0 {
		return c.Workers
	}
	return runtime.GOMAXPROCS(0)
}

// checkFor returns the effective options of a script: its configured entry
// (or the defaults of an unlisted script), with params missing from the
// entry taken from the shipped defaults.
func (c Configuration) checkFor(name string) CheckConfiguration {
	cc, ok := c.Checks[name]
	if !ok {
		cc = DefaultCheck()
	}
	if cc.Every <= 0 {
		cc.Every = 1
	}
	def, ok := DefaultConfiguration().Checks[name]
	if !ok || len(def.Params) == 0 {
		return cc
	}
	merged := make(map[string]any, len(def.Params)+len(cc.Params))
	for k, v := range def.Params {
		merged[k] = v
	}
	for k, v := range cc.Params {
		merged[k] = v
	}
	cc.Params = merged
	return cc
}
