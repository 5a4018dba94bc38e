package main

import (
	"errors"
	"log/slog"
	"reflect"

	"github.com/flowcheck/flowcheck/scripting"
)

// reload applies a changed configuration on SIGHUP: blacklists, local
// networks and names (aggregate), the scripting section (checks, dirs,
// workers, budgets, interval) and the scripts, keeping host state and engaged
// alerts. A configuration that fails to load or validate changes nothing.
func reload(running Config, path string, p *pipeline, logger *slog.Logger) Config {
	logger.Info("reloading", "config", configOrigin(path))
	next, err := loadConfig(path, environment())
	if err != nil {
		logger.Error("reload refused, keeping the running configuration", "err", err)
		return running
	}
	if p.table == nil {
		// Role ingest: nothing it runs reloads.
		logger.Warn("configuration change needs a restart to apply (role " + running.Cluster.Role + ")")
		return running
	}
	if err := p.table.Reload(next.Aggregate); err != nil {
		logger.Error("reload refused, keeping the running configuration", "err", "aggregate: "+err.Error())
		return running
	}
	// A scripting section the engine refuses (a script directory that does
	// not exist) leaves the checks running as they were.
	switch err := p.engine.ReloadConfig(next.Scripting); {
	case err == nil:
		running.Scripting = next.Scripting
	case errors.Is(err, scripting.ErrScriptsFailed):
		logger.Error("some scripts failed to reload, keeping their previous version", "err", err)
		running.Scripting = next.Scripting
	default:
		logger.Error("scripting reload refused, keeping the running checks", "err", "scripting: "+err.Error())
	}
	// Everything else is read once at start (scripting's instance is the
	// top-level instance).
	for _, s := range []struct {
		name     string
		old, new any
	}{
		{"instance", running.Instance, next.Instance}, {"log", running.Log, next.Log}, {"http", running.HTTP, next.HTTP},
		{"collector", running.Collector, next.Collector}, {"sinks", running.Sinks, next.Sinks},
		{"cluster", running.Cluster, next.Cluster},
	} {
		if !reflect.DeepEqual(s.old, s.new) {
			logger.Warn("configuration change needs a restart to apply", "section", s.name)
		}
	}
	running.Aggregate = next.Aggregate
	logger.Info("reloaded")
	return running
}
