// Package scripting runs the Lua host checks: every tick (scripting.interval,
// 30 s by default) each enabled check script runs once on every host of the
// host table, through ntopng's host.* API (the 23 functions of
// host-lua-api.md, same names, arguments, results, and nil/false outside a
// host), on a pool of sandboxed gopher-lua VMs.
//
// # Engine
//
// One *lua.LState per worker (scripting.workers, GOMAXPROCS by default). Each
// .lua file of the script directories is compiled once to a FunctionProto
// and loaded into every VM; the host and ntop tables and their functions are
// created once per VM. A file whose module returns a table with a check
// function is a check (named after the file); any other file is a module for
// require (host_consts.lua). Checks run on a host in name order. The hosts of
// a tick are split across the workers in chunks; the host under evaluation is
// bound to the VM for the call (no per-call table building: host_info's
// identity fields are served by a metatable, its state is a raw field set per
// call, and getUnidirectionalTCPUDPFlowsStats/getRefusedTCPFlowsStats refill
// one table per VM instead of building three per call; host.l7() builds its
// table once per check call, as the script may keep it).
//
// # Per-host memory
//
// The engine keeps one 80-byte entry per host of the table, in a sharded
// open-addressing hash table (8 bytes a slot): the key, which checks have
// run, and the frozen host_info.state of its checks (state.go: 16 bytes per
// string-keyed number or boolean; a state that cannot be frozen stays a
// live Lua table). Engaged alerts, the identity their events carry, skips
// and live states are in a side structure that most hosts do not have.
// BenchmarkStateMemory (the shipped checks on 10^5 flowgen-like hosts of a
// real host table) measures 177 bytes per host, of which 32 are the tick's
// key list and ~10 the VMs; it was 2.2 KB with one Lua table per (check,
// host).
//
// The per-call budget is a context set once on each VM (budget.go): its
// Done, which gopher-lua calls before every instruction, counts them against
// max_instructions (deterministic, also in replay), and the built-ins that
// work in Go charge their work to it (pattern matching through our own
// matcher, pattern.go; unpack, concat, sort, rep, ...: sandbox.go). A
// watchdog goroutine closes its Done channel when a live call overruns
// call_timeout of its thread's CPU time, when a call allocates more than
// max_memory, or when the tick is cancelled. A call costs two atomic
// increments, no timer. What a check keeps is measured by a bounded walk
// every max_memory the process allocates (memory.go); a check over the
// ceiling is disabled at once and the VMs holding it rebuilt. Each check
// runs in its own environment (sandbox.go). A stopped or failing call is counted
// per check, logged rate-limited with the host and the Lua traceback, and
// leaves that check's alert for that host unchanged. After max_failures
// consecutive failures a check is disabled (logged) until its file changes.
//
// Reload (a change seen by fsnotify in a script directory) recompiles
// changed files; a file that fails to compile or load keeps its previous
// version (the error is logged as file:line). ReloadConfig (SIGHUP) does the
// same with a new configuration of the section: checks, dirs, workers,
// budgets and interval apply without a restart, and a configuration it
// cannot use changes nothing. Per-host state and engaged alerts are kept by
// check name, so they survive both; the alerts of a check that no longer
// runs on a host (disabled, local_only) are released at the next tick.
//
// # Sandbox
//
// base without dofile, loadfile, module, newproxy and string.dump
// (gopher-lua cannot load bytecode at all; load/loadstring compile source),
// string (string.rep capped at 1 MiB), table, math, and os.time, os.clock,
// os.date, os.difftime only. os.time() and os.date() without a time read the
// engine clock, so a replayed capture sees capture time. print goes to the
// debug log; collectgarbage is a no-op. require resolves package.path
// patterns against the script directories only, exposed under the virtual
// ntop.getDirs().installdir ("/flowcheck"): installdir ..
// "/scripts/lua/modules/?.lua" is the default package.path.
//
// # Alerts
//
// host.triggerAlert(value, msg) engages an alert for (check, host) when the
// call returns (value clamped to 0–255; the last trigger of a run wins); a
// later triggering run updates value, message and last-seen without an
// event; a successful run that does not trigger releases it; expiry of the
// host (HostExpired, or the host missing from the table at a tick) releases
// all its alerts. host.score() is the sum of the values of the host's
// engaged alerts. See docs/lua-api.md for every function.
package scripting
