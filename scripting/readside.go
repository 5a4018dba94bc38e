package scripting

import (
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/flowcheck/flowcheck/alert"
)

// This file is the engine's read side for the HTTP API: the recently
// released alerts and each check's figures. Nothing here changes state.

// timeEvery is how often a call is timed: one call in timeEvery per check
// and VM, so that two clock reads are spread over many calls (a call takes
// microseconds, a clock read tens of nanoseconds).
const timeEvery = 16

// CheckInfo describes one loaded check, for the HTTP API.
type CheckInfo struct {
	// Name is the check's name, File the script's display path.
	Name string
	File string
	// Enabled is the configuration's; LocalOnly and Every too.
	Enabled   bool
	LocalOnly bool
	Every     int
	// Disabled is set once the check was turned off after max_failures
	// consecutive failures or over the memory ceiling.
	Disabled bool
	// Calls, Errors and Timeouts count its calls since start (a reload
	// keeps them).
	Calls, Errors, Timeouts uint64
	// SecondsPerCall is the mean wall time of its timed calls (one in
	// timeEvery); InstructionsPerCall the mean of its instruction budget
	// used. Both 0 before the first call.
	SecondsPerCall      float64
	InstructionsPerCall float64
	// LastError is its last failure; nil when it never failed.
	LastError *CheckError
}

// CheckError is the last failure of a check.
type CheckError struct {
	// Message is the first line of the error (without a stack traceback).
	Message string
	// File and Line locate it in a script when the message does (a Lua
	// error does); empty and 0 otherwise (a timeout).
	File string
	Line int
	Time time.Time
}

// checkTotals are one check's figures since start.
type checkTotals struct {
	calls, errors, timeouts uint64
	steps                   uint64
	timed                   uint64
	nanos                   uint64
	// lastErr is the last failure, formatted only when read: a check
	// failing on every host must not format every error.
	lastErr error
	lastAt  time.Time
}

// readSide holds what the API reads: per-check totals and the ring of the
// last released alerts.
type readSide struct {
	mu     sync.Mutex
	totals map[string]*checkTotals
	// released is a ring of the last len(released) released events; next
	// is where the next one goes, n how many it holds.
	released []alert.Event
	next, n  int
}

func newReadSide(history int) *readSide {
	return &readSide{totals: map[string]*checkTotals{}, released: make([]alert.Event, history)}
}

// add folds one tick's figures of a check in.
func (r *readSide) add(name string, c checkStats) {
	r.mu.Lock()
	t := r.totalsOf(name)
	t.calls += c.calls
	t.errors += c.errors
	t.timeouts += c.timeouts
	t.steps += c.steps
	t.timed += c.timed
	t.nanos += c.nanos
	r.mu.Unlock()
}

func (r *readSide) totalsOf(name string) *checkTotals {
	t := r.totals[name]
	if t == nil {
		t = &checkTotals{}
		r.totals[name] = t
	}
	return t
}

// luaWhere finds "file.lua:line:" in an error message.
var luaWhere = regexp.MustCompile(`([^\s:]+\.lua):(\d+):`)

// failed records a check's last failure.
func (r *readSide) failed(name string, err error, now time.Time) {
	r.mu.Lock()
	t := r.totalsOf(name)
	t.lastErr, t.lastAt = err, now
	r.mu.Unlock()
}

// checkError formats a failure: the first line of its message (a Lua
// error's stack traceback follows it), with the file:line it names.
func checkError(err error, at time.Time) *CheckError {
	msg, _, _ := strings.Cut(err.Error(), "\n")
	ce := &CheckError{Message: msg, Time: at}
	if m := luaWhere.FindStringSubmatch(ce.Message); m != nil {
		ce.File = m[1]
		ce.Line, _ = strconv.Atoi(m[2])
	}
	return ce
}

// keep adds the released events of evs to the ring.
func (r *readSide) keep(evs []alert.Event) {
	if len(r.released) == 0 {
		return
	}
	r.mu.Lock()
	for i := range evs {
		if evs[i].State != alert.Released {
			continue
		}
		r.released[r.next] = evs[i]
		r.next = (r.next + 1) % len(r.released)
		r.n = min(r.n+1, len(r.released))
	}
	r.mu.Unlock()
}

// Released returns the last released alerts still in the ring
// (scripting.released_history of them at most), newest first.
func (e *Engine) Released() []alert.Event {
	r := e.read
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]alert.Event, 0, r.n)
	for i := 1; i <= r.n; i++ {
		out = append(out, r.released[(r.next-i+len(r.released))%len(r.released)])
	}
	return out
}

// Checks describes the loaded checks, in name order.
func (e *Engine) Checks() []CheckInfo {
	set := e.current.Load()
	out := make([]CheckInfo, 0, len(set.checks))
	r := e.read
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, sc := range set.checks {
		ci := CheckInfo{Name: sc.name, File: sc.file.path, Enabled: sc.cfg.Enabled, LocalOnly: sc.cfg.LocalOnly,
			Every: max(1, sc.cfg.Every), Disabled: sc.disabled.Load()}
		if t := r.totals[sc.name]; t != nil {
			ci.Calls, ci.Errors, ci.Timeouts = t.calls, t.errors, t.timeouts
			if t.calls > 0 {
				ci.InstructionsPerCall = float64(t.steps) / float64(t.calls)
			}
			if t.timed > 0 {
				ci.SecondsPerCall = float64(t.nanos) / float64(t.timed) / 1e9
			}
			if t.lastErr != nil {
				ci.LastError = checkError(t.lastErr, t.lastAt)
			}
		}
		out = append(out, ci)
	}
	return out
}
