package scripting

import (
	"errors"
	"fmt"
	"maps"
	"reflect"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
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
	// ReleasedHistory is how many of the last released alerts the engine
	// keeps for the HTTP API (/api/v1/alerts?state=released), a few hundred bytes
	// each; 0 keeps none. Read at start only.
	ReleasedHistory int `mapstructure:"released_history"`
	// Instance is the collector id stamped on every event; main copies it
	// from the top-level `instance` key.
	Instance string `mapstructure:"-"`
	// AlertScope is hashed into every alert id with the check, the host
	// and the engagement's first-seen time: the instance for one process;
	// main sets the cluster's consumer group in role check, so that the
	// workers of one group give one engagement one id. Empty: Instance.
	AlertScope string `mapstructure:"-"`
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

// ShippedChecks are the names of the checks shipped in scripts/: each has
// an entry in the default Checks, so that the configuration and its
// environment keys (FLOWCHECK_SCRIPTING_CHECKS_SCAN_DETECTION_ENABLED) know
// them. Their params and defaults are the scripts' own (a `defaults` table).
var ShippedChecks = []string{"blacklisted_host", "dangerous_host", "large_transfer", "p2p_heavy",
	"rx_only_contacted", "scan_detection", "scan_victim"}

// DefaultConfiguration returns the defaults of the `scripting` section. The
// thresholds of the shipped checks are not here: each script declares its
// own (see checkFor).
func DefaultConfiguration() Configuration {
	checks := make(map[string]CheckConfiguration, len(ShippedChecks))
	for _, name := range ShippedChecks {
		checks[name] = DefaultCheck()
	}
	return Configuration{
		Interval:        30 * time.Second,
		Workers:         0,
		TickSpread:      0.5,
		CallTimeout:     50 * time.Millisecond,
		MaxInstructions: 1_000_000,
		MaxMemory:       64 << 20,
		MaxFailures:     100,
		Dirs:            []string{DefaultDir},
		Checks:          checks,
		ReleasedHistory: 1000,
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
	case c.ReleasedHistory < 0 || c.ReleasedHistory > 100_000:
		return errors.New("released_history: must be 0-100000")
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
// (or DefaultCheck for an unlisted script), with its params laid over the
// defaults the script declares. A script that declares defaults accepts
// only those names, each with the type of its default, so that a misspelt
// or mistyped threshold stops the load instead of leaving the default in
// force unnoticed; a null param takes the default. A script that declares
// none gets the params as configured.
func (c Configuration) checkFor(name string, defaults map[string]any) (CheckConfiguration, error) {
	cc, ok := c.Checks[name]
	if !ok {
		cc = DefaultCheck()
	}
	if cc.Every <= 0 {
		cc.Every = 1
	}
	if defaults == nil {
		return cc, nil
	}
	merged := make(map[string]any, len(defaults))
	for k, v := range defaults {
		merged[k] = v
	}
	for _, k := range slices.Sorted(maps.Keys(cc.Params)) {
		v := cc.Params[k]
		def, ok := defaults[k]
		switch {
		case !ok:
			return cc, &ParamError{fmt.Errorf("checks.%s.params.%s: unknown param; %s declares %s",
				name, k, name, strings.Join(slices.Sorted(maps.Keys(defaults)), ", "))}
		case v == nil:
			continue
		}
		if err := sameKind(v, def); err != nil {
			return cc, &ParamError{fmt.Errorf("checks.%s.params.%s%w", name, k, err)}
		}
		merged[k] = v
	}
	cc.Params = merged
	return cc, nil
}

// ParamError is a configured param that the check's script does not declare,
// or whose type differs from its default's: a configuration mistake, told
// apart so that the command exits as for any other bad key.
type ParamError struct{ err error }

func (e *ParamError) Error() string { return e.err.Error() }

// Unwrap returns the underlying error.
func (e *ParamError) Unwrap() error { return e.err }

// kindOf names the kind of a param value as a script sees it: number,
// string, boolean, list or table ("" for a type checkParam refuses).
func kindOf(v any) string {
	switch v.(type) {
	case int, int64, int32, uint64, uint32, uint, float64, float32, time.Duration:
		return "number"
	case string:
		return "string"
	case bool:
		return "boolean"
	case []any, []string:
		return "list"
	case map[string]any, map[any]any:
		return "table"
	}
	return ""
}

// sameKind reports a configured value whose kind differs from its
// default's. An empty default table takes a list or a table; the elements
// of a list are checked against those of a default list of one kind.
// Errors start with the path below the param ("[2]") and ": wrong type".
func sameKind(v, def any) error {
	kv, kd := kindOf(v), kindOf(def)
	if (kd == "list" || kd == "table") && (kv == "list" || kv == "table") && reflect.ValueOf(def).Len() == 0 {
		return nil
	}
	if kv != kd {
		return fmt.Errorf(": wrong type: %v is a %s, the default %s is a %s", describe(v), kv, describe(def), kd)
	}
	dl, ok := def.([]any)
	if !ok || len(dl) == 0 {
		return nil
	}
	elem := kindOf(dl[0])
	for _, e := range dl[1:] {
		if kindOf(e) != elem {
			return nil
		}
	}
	for i, e := range toList(v) {
		if k := kindOf(e); k != elem {
			return fmt.Errorf("[%d]: wrong type: %v is a %s, the default's elements are %ss", i+1, describe(e), k, elem)
		}
	}
	return nil
}

// toList returns the elements of a list value.
func toList(v any) []any {
	if l, ok := v.([]string); ok {
		out := make([]any, len(l))
		for i, s := range l {
			out[i] = s
		}
		return out
	}
	l, _ := v.([]any)
	return l
}

// describe formats a value for an error: strings quoted, numbers plain.
func describe(v any) string {
	switch v := v.(type) {
	case string:
		return strconv.Quote(v)
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64)
	}
	return fmt.Sprint(v)
}
