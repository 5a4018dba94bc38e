// Command collector is flowcheck: a NetFlow/IPFIX/sFlow collector that keeps
// per-host state, runs Lua host checks on it every tick and delivers the
// alerts they raise.
//
// Data moves one way, and this file builds it in that order:
//
//	exporters ─UDP→ collector (decode) ─flow.Record→ aggregate (host table)
//	    ─tick→ scripting (Lua checks) ─alert.Event→ sink (Kafka, stdout, file)
//
// with server/ reading the host table, the engaged alerts and the exporters.
//
// Subcommands: run (the daemon, the default), decode (print the flow
// records of a capture), replay (run the whole pipeline over a capture, in
// capture time).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"reflect"
	"strings"
	"syscall"
	"time"

	"github.com/flowcheck/flowcheck"
	"github.com/flowcheck/flowcheck/aggregate"
	"github.com/flowcheck/flowcheck/clock"
	"github.com/flowcheck/flowcheck/collector"
	"github.com/flowcheck/flowcheck/scripting"
	"github.com/flowcheck/flowcheck/server"
	"github.com/flowcheck/flowcheck/sink"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Exit statuses.
const (
	exitOK      = 0
	exitFailure = 1
	exitConfig  = 2 // bad configuration or usage
)

func main() {
	os.Exit(dispatch(os.Args[1:], os.Stdout, os.Stderr))
}

// dispatch runs a subcommand and returns its exit status.
func dispatch(args []string, stdout, stderr io.Writer) int {
	cmd := "run"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "run":
		return runDaemon(args, stdout, stderr)
	case "decode":
		return runDecode(args, stdout, stderr)
	case "replay":
		return runReplay(args, stdout, stderr)
	case "help":
		usage(stdout)
		return exitOK
	}
	fmt.Fprintf(stderr, "collector: unknown command %q\n", cmd)
	usage(stderr)
	return exitConfig
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage:
  collector [run] [--config FILE]          run the daemon (default: the embedded example configuration)
  collector decode --pcap FILE [--port N]  print the flow records of a capture of export packets
  collector replay --config FILE --pcap FILE [--port N] [--speed N|max]
                                           run the whole pipeline over a capture, in capture time
Every configuration key can be set by an environment variable: aggregate.max_hosts is FLOWCHECK_AGGREGATE_MAX_HOSTS.
`)
}

// runDaemon is `collector run`.
func runDaemon(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "configuration `file` (YAML); the embedded example when empty")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitConfig
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "collector run: unexpected argument %q\n", fs.Arg(0))
		return exitConfig
	}

	// 1. Configuration: defaults, file, environment, validation.
	cfg, err := loadConfig(*configPath, environment())
	if err != nil {
		fmt.Fprintf(stderr, "collector: configuration: %v\n", err)
		return exitConfig
	}
	logger := newLogger(cfg.Log, stderr)
	logger.Info("starting", "instance", cfg.Instance, "config", configOrigin(*configPath))

	// Signals are caught from here on: a SIGHUP or SIGTERM during start-up
	// waits its turn instead of killing the process half-started.
	signals := make(chan os.Signal, 4)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(signals)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// 2. Build the pipeline, from the alert end back to the sockets, so that
	// each stage exists before anything can hand it data.
	clk := clock.Live{}
	p, err := build(ctx, cfg, clk, logger, stdout, true)
	if err != nil {
		logger.Error("cannot build the pipeline", "err", err)
		return exitFailure
	}

	// 3. Start in dependency order: sinks, checks, host table, then the
	// sockets, and the HTTP server last (readiness reflects the rest).
	if err := p.start(true); err != nil {
		logger.Error("cannot start", "err", err)
		p.stop(logger)
		return exitFailure
	}

	// 4. Live time: every second the table decides reply windows and
	// expires idle hosts, and the tick runs when due.
	tickDone := make(chan struct{})
	go func() {
		defer close(tickDone)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				p.sched.advance(clk.Now())
			}
		}
	}()
	logger.Info("running", "listen", p.collector.ListenAddrs(), "http", p.httpAddr())

	// 5. Wait for a signal: SIGHUP reloads, SIGTERM/SIGINT stop.
	for sig := range signals {
		if sig == syscall.SIGHUP {
			cfg = reload(cfg, *configPath, p, logger)
			continue
		}
		logger.Info("stopping", "signal", sig.String())
		break
	}

	// 6. Stop in reverse order; the sinks flush last.
	cancel()
	<-tickDone
	p.sched.wait()
	if err := p.stop(logger); err != nil {
		logger.Error("stopped with errors", "err", err)
		return exitFailure
	}
	logger.Info("stopped")
	return exitOK
}

// pipeline holds the built components.
type pipeline struct {
	cfg       Config
	registry  *prometheus.Registry
	sinks     *sink.Component
	engine    *scripting.Engine
	table     *aggregate.HostTable
	collector *collector.Component
	server    *server.Component // nil in replay
	sched     *scheduler
	started   []string
}

// build creates every component, wired, without starting any. live adds the
// HTTP server and runs ticks in the background.
func build(ctx context.Context, cfg Config, clk clock.Clock, logger *slog.Logger, stdout io.Writer, live bool) (*pipeline, error) {
	p := &pipeline{cfg: cfg, registry: prometheus.NewRegistry()}
	p.registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	// aggregate, scripting and sink name themselves in their logs.
	component := func(name string) *slog.Logger { return logger.With("component", name) }
	var err error

	// Alert delivery: where every alert.Event ends.
	p.sinks, err = sink.New(cfg.Sinks, sink.Dependencies{
		Logger: logger, Registerer: p.registry, Stdout: stdout,
	})
	if err != nil {
		return nil, fmt.Errorf("sinks: %w", err)
	}

	// The host table.
	p.table, err = aggregate.New(cfg.Aggregate, aggregate.Dependencies{
		Logger: logger, Registerer: p.registry, Clock: clk,
	})
	if err != nil {
		return nil, fmt.Errorf("aggregate: %w", err)
	}

	// The Lua host checks: read the table each tick, publish to the sinks.
	p.engine, err = scripting.New(cfg.Scripting, scripting.Dependencies{
		Logger: logger, Registerer: p.registry, Clock: clk,
		Hosts: p.table, Alerts: p.sinks, EmbeddedScripts: flowcheck.Scripts,
	})
	if err != nil {
		return nil, fmt.Errorf("scripting: %w", err)
	}
	// Host expiry tells the engine to release the host's alerts. The
	// engine is built from the table, so the table learns of it now,
	// before either starts.
	if err := p.table.ListenExpiry(p.engine); err != nil {
		return nil, fmt.Errorf("aggregate: %w", err)
	}

	// Ingest: datagrams in, batches of flow records into the table.
	p.collector, err = collector.New(cfg.Collector, collector.Dependencies{
		Logger: component("collector"), Registerer: p.registry, Clock: clk,
		Flows: p.table.Apply,
		// Datagrams lost on ingest may hold replies: the table withholds
		// the one-sided verdicts they could have falsified.
		Lost: p.table.IngestLost,
		// A worker that falls behind accounts traffic without stitching
		// conversations until it catches up, rather than dropping
		// datagrams.
		Shed: p.table.ApplyTrafficOnly,
	})
	if err != nil {
		return nil, fmt.Errorf("collector: %w", err)
	}

	// Time: one scheduler for live and replay.
	p.sched, err = newScheduler(ctx, p.table, p.engine, live, component("tick"), p.registry)
	if err != nil {
		return nil, fmt.Errorf("tick: %w", err)
	}

	if !live {
		return p, nil
	}
	// The operations surface, reading the others.
	p.server, err = server.New(cfg.HTTP, server.Dependencies{
		Logger: component("http"), Gatherer: p.registry, Registerer: p.registry,
		Hosts: p.table, Alerts: p.engine,
		Exporters: func() any { return p.collector.Exporters() },
		Ready: []server.ReadyCheck{
			{Name: "collector", Ready: p.collector.Ready},
			{Name: "sinks", Ready: p.sinks.Ready},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("http: %w", err)
	}
	return p, nil
}

// start starts the components in dependency order; listen binds the
// collector's sockets (replay feeds it directly instead).
func (p *pipeline) start(listen bool) error {
	type step struct {
		name  string
		start func() error
	}
	steps := []step{
		{"sinks", func() error { return p.sinks.Start(context.Background()) }},
		{"scripting", func() error { return p.engine.Start(context.Background()) }},
		{"aggregate", func() error { return p.table.Start(context.Background()) }},
	}
	if listen {
		steps = append(steps, step{"collector", func() error { return p.collector.Start(context.Background()) }})
	}
	if p.server != nil {
		steps = append(steps, step{"http", p.server.Start})
	}
	for _, s := range steps {
		if err := s.start(); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		p.started = append(p.started, s.name)
	}
	return nil
}

// stop stops what start started, in reverse order: no new datagrams, then
// no new ticks, then the sinks flush what the last tick published.
func (p *pipeline) stop(logger *slog.Logger) error {
	var errs []error
	for i := len(p.started) - 1; i >= 0; i-- {
		switch p.started[i] {
		case "http":
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			errs = append(errs, p.server.Stop(ctx))
			cancel()
		case "collector":
			// The deadline bounds the decode of what is queued.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := p.collector.Stop(ctx); err != nil {
				errs = append(errs, fmt.Errorf("collector: %w", err))
			}
			cancel()
		case "aggregate":
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := p.table.Stop(ctx); err != nil {
				errs = append(errs, fmt.Errorf("aggregate: %w", err))
			}
			cancel()
		case "scripting":
			// The deadline bounds the wait for a reload in progress; the
			// engaged alerts are saved (or released) whatever it says.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := p.engine.Stop(ctx); err != nil {
				errs = append(errs, fmt.Errorf("scripting: %w", err))
			}
			cancel()
		case "sinks":
			// The sinks bound their own flush by shutdown_grace; the
			// extra second lets them spool what they could not send.
			ctx, cancel := context.WithTimeout(context.Background(), p.cfg.Sinks.ShutdownGrace+time.Second)
			if err := p.sinks.Stop(ctx); err != nil {
				errs = append(errs, fmt.Errorf("sinks: %w", err))
			}
			cancel()
		}
		logger.Debug("stopped", "component", p.started[i])
	}
	p.started = nil
	return errors.Join(errs...)
}

// httpAddr is the HTTP server's bound address, or "" when disabled.
func (p *pipeline) httpAddr() string {
	if p.server == nil || p.server.Addr() == nil {
		return ""
	}
	return p.server.Addr().String()
}

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
	} {
		if !reflect.DeepEqual(s.old, s.new) {
			logger.Warn("configuration change needs a restart to apply", "section", s.name)
		}
	}
	running.Aggregate = next.Aggregate
	logger.Info("reloaded")
	return running
}

// newLogger returns the program's logger: text or JSON on stderr.
func newLogger(c LogConfiguration, w io.Writer) *slog.Logger {
	level, _ := c.level() // validated at load
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func configOrigin(path string) string {
	if path == "" {
		return "(embedded config.example.yaml)"
	}
	return path
}
