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
// capture time), version, help. The standard flag package is enough for
// them: -h, --help and --version are recognised before the subcommand.
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
	"strings"
	"syscall"
	"time"

	"github.com/flowcheck/flowcheck"
	"github.com/flowcheck/flowcheck/aggregate"
	"github.com/flowcheck/flowcheck/clock"
	"github.com/flowcheck/flowcheck/cluster"
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
	if len(args) > 0 {
		switch args[0] {
		case "-h", "-help", "--help":
			args[0] = "help"
		case "-version", "--version":
			args[0] = "version"
		}
		if !strings.HasPrefix(args[0], "-") {
			cmd, args = args[0], args[1:]
		}
	}
	switch cmd {
	case "run":
		return runDaemon(args, stdout, stderr)
	case "decode":
		return runDecode(args, stdout, stderr)
	case "replay":
		return runReplay(args, stdout, stderr)
	case "version":
		return runVersion(args, stdout, stderr)
	case "help":
		usage(stdout)
		return exitOK
	}
	fmt.Fprintf(stderr, "collector: unknown command %q\n", cmd)
	usage(stderr)
	return exitConfig
}

func usage(w io.Writer) {
	fmt.Fprint(w, `collector is flowcheck: a NetFlow/IPFIX/sFlow collector running Lua host checks.

usage:
  collector [run] [--config FILE]          run the daemon (default: the embedded example configuration)
  collector decode --pcap FILE [--port N]  print the flow records of a capture of export packets
  collector replay --config FILE --pcap FILE [--port N] [--speed N|max]
                                           run the whole pipeline over a capture, in capture time
  collector version                        print the version, commit and Go version (also --version)
  collector help                           print this help (also -h, --help)
A command's own flags: collector COMMAND -h.
Every configuration key can be set by an environment variable: aggregate.max_hosts is FLOWCHECK_AGGREGATE_MAX_HOSTS.
`)
}

// runDaemon is `collector run`.
func runDaemon(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "configuration `file` (YAML); the embedded example when empty")
	fs.Usage = func() {
		usage(stderr)
		fmt.Fprintln(stderr, "\nflags of run:")
		fs.PrintDefaults()
	}
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

	// 2. Build the pipeline, from the alert end back to the sockets, so that
	// each stage exists before anything can hand it data.
	p, err := build(cfg, clock.Live{}, logger, stdout, true)
	if err != nil {
		return buildFailed(logger, stderr, err)
	}

	// 3. Start the parts in order (see build): sinks, checks, host table,
	// sockets, HTTP server, then live time.
	if err := p.start(context.Background()); err != nil {
		logger.Error("cannot start", "err", err)
		p.stop(logger)
		return exitFailure
	}
	if p.collector != nil {
		logger.Info("running", "listen", p.collector.ListenAddrs(), "http", p.httpAddr())
	} else {
		logger.Info("running", "role", cfg.Cluster.Role, "http", p.httpAddr())
	}

	// 4. Wait for a signal: SIGHUP reloads, SIGTERM/SIGINT stop.
	status := exitOK
wait:
	for {
		select {
		case sig := <-signals:
			if sig == syscall.SIGHUP {
				cfg = reload(cfg, *configPath, p, logger)
				continue
			}
			logger.Info("stopping", "signal", sig.String())
			break wait
		case err := <-p.fatal():
			logger.Error("stopping", "err", err)
			status = exitFailure
			break wait
		}
	}

	// 5. Stop in reverse order: the tick first, the sinks flush last.
	if err := p.stop(logger); err != nil {
		logger.Error("stopped with errors", "err", err)
		return exitFailure
	}
	logger.Info("stopped")
	return status
}

// buildFailed reports a pipeline that could not be built and returns the
// exit status: a check param its script refuses is a configuration mistake,
// told like a bad key.
func buildFailed(logger *slog.Logger, stderr io.Writer, err error) int {
	if pe := (*scripting.ParamError)(nil); errors.As(err, &pe) {
		fmt.Fprintf(stderr, "collector: configuration: %v\n", err)
		return exitConfig
	}
	logger.Error("cannot build the pipeline", "err", err)
	return exitFailure
}

// pipeline holds the built components.
type pipeline struct {
	registry  *prometheus.Registry
	sinks     *sink.Component
	engine    *scripting.Engine
	table     *aggregate.HostTable
	collector *collector.Component
	server    *server.Component // nil in replay
	sched     *scheduler
	// publisher is role ingest's end of the data path; nil otherwise
	// (and then sinks, engine, table and sched are nil).
	publisher *cluster.Publisher
	// consumer is role check's start of the data path (collector is nil
	// then); nil otherwise.
	consumer *cluster.Consumer
	// parts are the components with a lifecycle, in start order; the first
	// running of them are started.
	parts   []part
	running int
}

// lifecycle is what every component has.
type lifecycle interface {
	Start(ctx context.Context) error
	// Stop honours ctx's deadline.
	Stop(ctx context.Context) error
}

// part is a component as the pipeline starts and stops it.
type part struct {
	name string
	lifecycle
	// stopWithin bounds Stop.
	stopWithin time.Duration
}

// stopTimeout is how long a component may take to stop: the decode of what
// is queued, the wait for a tick or a reload in progress, requests in
// flight.
const stopTimeout = 5 * time.Second

// build creates every component of this process's role (cluster.role),
// wired, without starting any. live adds the sockets, the HTTP server and
// live time (ticks in the background); replay feeds the collector and
// advances time itself. Each role has its builder, here.
func build(cfg Config, clk clock.Clock, logger *slog.Logger, stdout io.Writer, live bool) (*pipeline, error) {
	p := &pipeline{registry: prometheus.NewRegistry()}
	p.registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		readBuildInfo().metric(),
	)
	var err error
	switch cfg.Cluster.Role {
	case cluster.RoleAll:
		err = p.buildAll(cfg, clk, logger, stdout, live)
	case cluster.RoleIngest:
		err = p.buildIngest(cfg, clk, logger, live)
	case cluster.RoleCheck:
		if !live {
			return nil, errors.New("cluster.role check consumes the flows topic: replay a capture with role all, or into a cluster with role ingest")
		}
		err = p.buildCheck(cfg, clk, logger, stdout)
	default:
		err = fmt.Errorf("cluster.role %s is unknown", cfg.Cluster.Role)
	}
	if err != nil {
		return nil, err
	}
	return p, nil
}

// buildChecking builds what roles all and check share: the alert sinks,
// the host table and the Lua checks over it (scfg: the scripting section as
// the role runs it), listed as the first parts to start, in that order.
func (p *pipeline) buildChecking(cfg Config, scfg scripting.Configuration, clk clock.Clock, logger *slog.Logger, stdout io.Writer) error {
	var err error
	// Alert delivery: where every alert.Event ends.
	p.sinks, err = sink.New(cfg.Sinks, sink.Dependencies{
		Logger: logger, Registerer: p.registry, Stdout: stdout,
	})
	if err != nil {
		return fmt.Errorf("sinks: %w", err)
	}

	// The host table.
	p.table, err = aggregate.New(cfg.Aggregate, aggregate.Dependencies{
		Logger: logger, Registerer: p.registry, Clock: clk,
	})
	if err != nil {
		return fmt.Errorf("aggregate: %w", err)
	}

	// The Lua host checks: read the table each tick, publish to the sinks.
	p.engine, err = scripting.New(scfg, scripting.Dependencies{
		Logger: logger, Registerer: p.registry, Clock: clk,
		Hosts: p.table, Alerts: p.sinks, EmbeddedScripts: flowcheck.Scripts,
	})
	if err != nil {
		return fmt.Errorf("scripting: %w", err)
	}
	// Host expiry tells the engine to release the host's alerts. The
	// engine is built from the table, so the table learns of it now,
	// before either starts.
	if err := p.table.ListenExpiry(p.engine); err != nil {
		return fmt.Errorf("aggregate: %w", err)
	}

	// Start order: each part after those it hands data to (the engine
	// before the table, which tells it of expired hosts); stop is the
	// reverse. The sinks bound their own flush by shutdown_grace; the extra
	// second lets them spool what they could not send. The engine saves (or
	// releases) its engaged alerts whatever its deadline says.
	p.parts = []part{
		{"sinks", p.sinks, cfg.Sinks.ShutdownGrace + time.Second},
		{"scripting", p.engine, stopTimeout},
		{"aggregate", p.table, stopTimeout},
	}
	return nil
}

// buildAll is role all: the whole data path in this process.
func (p *pipeline) buildAll(cfg Config, clk clock.Clock, logger *slog.Logger, stdout io.Writer, live bool) error {
	// aggregate, scripting and sink name themselves in their logs.
	component := func(name string) *slog.Logger { return logger.With("component", name) }
	var err error

	// Alert delivery, the host table and the checks, as in role check.
	if err := p.buildChecking(cfg, cfg.Scripting, clk, logger, stdout); err != nil {
		return err
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
		// The summary line tells the host count too.
		Hosts: p.table,
	})
	if err != nil {
		return fmt.Errorf("collector: %w", err)
	}

	// Time: one scheduler for live and replay.
	p.sched, err = newScheduler(p.table, p.engine, clk, live, component("tick"), p.registry)
	if err != nil {
		return fmt.Errorf("tick: %w", err)
	}

	if live {
		// The operations surface, reading the others.
		p.server, err = server.New(cfg.HTTP, server.Dependencies{
			Logger: component("http"), Gatherer: p.registry, Registerer: p.registry,
			Hosts: p.table, Contacts: p.table, Alerts: p.engine, Exporters: p.collector, History: p.engine, Checks: p.engine,
			Ready: []server.ReadyCheck{
				{Name: "collector", Ready: p.collector.Ready},
				{Name: "sinks", Ready: p.sinks.Ready},
			},
		})
		if err != nil {
			return fmt.Errorf("http: %w", err)
		}
	}

	// After the sinks, the engine and the table (buildChecking): ingest,
	// the HTTP server once the rest runs (readiness reflects it), and live
	// time last. Stop is the reverse: no new ticks, no new datagrams, then
	// the sinks flush what the last tick published.
	if live {
		p.parts = append(p.parts, part{"collector", p.collector, stopTimeout}, part{"http", p.server, stopTimeout})
	}
	p.parts = append(p.parts, part{"tick", p.sched, stopTimeout})
	return nil
}

// buildIngest is role ingest: sockets, decode, then the flows topic. No
// host table, no checks, no sinks: the check workers have them.
func (p *pipeline) buildIngest(cfg Config, clk clock.Clock, logger *slog.Logger, live bool) error {
	var err error
	// Replay has no socket to keep draining: it waits for buffer space
	// rather than drop records.
	p.publisher, err = cluster.NewPublisher(cfg.Cluster, cluster.PublisherDependencies{
		Logger: logger.With("component", "cluster"), Registerer: p.registry, Clock: clk, Block: !live,
	})
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	p.collector, err = collector.New(cfg.Collector, collector.Dependencies{
		Logger: logger.With("component", "collector"), Registerer: p.registry, Clock: clk,
		Flows: p.publisher.Handle,
		// The check workers withhold the verdicts a lost datagram could
		// have falsified, as role all does: they learn of the loss
		// through the topic.
		Lost: p.publisher.Lost,
	})
	if err != nil {
		return fmt.Errorf("collector: %w", err)
	}
	// Stop sends what is buffered, within the time of one write.
	p.parts = []part{{"cluster", p.publisher, cfg.Cluster.Publish.WriteTimeout + time.Second}}
	if live {
		p.server, err = server.New(cfg.HTTP, server.Dependencies{
			Logger: logger.With("component", "http"), Gatherer: p.registry, Registerer: p.registry,
			Exporters: p.collector,
			Ready: []server.ReadyCheck{
				{Name: "collector", Ready: p.collector.Ready},
				{Name: "cluster", Ready: p.publisher.Ready},
			},
		})
		if err != nil {
			return fmt.Errorf("http: %w", err)
		}
		p.parts = append(p.parts, part{"collector", p.collector, stopTimeout}, part{"http", p.server, stopTimeout})
	}
	return nil
}

// buildCheck is role check: the flows topic in consumer group
// cluster.group → host table → checks → sinks, on this worker's share of
// the hosts. No UDP listener: the ingest processes decode.
func (p *pipeline) buildCheck(cfg Config, clk clock.Clock, logger *slog.Logger, stdout io.Writer) error {
	component := func(name string) *slog.Logger { return logger.With("component", name) }
	var err error
	// The workers of one group give one engagement one alert id.
	scfg := cfg.Scripting
	scfg.AlertScope = cfg.Cluster.Group
	if err := p.buildChecking(cfg, scfg, clk, logger, stdout); err != nil {
		return err
	}
	// The flows topic into the table; the hand-over of hosts and alerts
	// when partitions move goes through the engine.
	p.consumer, err = cluster.NewConsumer(cfg.Cluster, cluster.ConsumerDependencies{
		Logger: component("cluster"), Registerer: p.registry, Clock: clk,
		Table: p.table, Engine: p.engine, ReplyWindow: cfg.Aggregate.ReplyWindow,
	})
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	// The checks wait while a partition rebuilds or the group rebalances:
	// no alert from a partial host state. Each tick's engaged alerts go
	// to their partitions' checkpoints at once, for the next owner.
	p.sched, err = newScheduler(p.table, heldTicker{p.engine, p.consumer.Holding, p.consumer.Checkpoint}, clk, true, component("tick"), p.registry)
	if err != nil {
		return fmt.Errorf("tick: %w", err)
	}
	p.server, err = server.New(cfg.HTTP, server.Dependencies{
		Logger: component("http"), Gatherer: p.registry, Registerer: p.registry,
		Hosts: p.table, Contacts: p.table, Alerts: p.engine, History: p.engine, Checks: p.engine,
		Partitions: p.consumer.Owned,
		Ready: []server.ReadyCheck{
			{Name: "cluster", Ready: p.consumer.Ready},
			{Name: "sinks", Ready: p.sinks.Ready},
		},
	})
	if err != nil {
		return fmt.Errorf("http: %w", err)
	}
	// As role all, with the consumer in the collector's place: it stops
	// before the engine, so that the hosts it hands over leave with their
	// alerts engaged (the next owner adopts them) rather than released.
	p.parts = append(p.parts,
		part{"cluster", p.consumer, 15 * time.Second},
		part{"http", p.server, stopTimeout},
		part{"tick", p.sched, stopTimeout},
	)
	return nil
}

// fatal is the channel of an error that stops the daemon (role check with
// input_format goflow2 in a group that splits the partitions); nil, which
// never delivers, otherwise.
func (p *pipeline) fatal() <-chan error {
	if p.consumer == nil {
		return nil
	}
	return p.consumer.Fatal()
}

// start starts the parts in order, until one fails.
func (p *pipeline) start(ctx context.Context) error {
	for _, part := range p.parts[p.running:] {
		if err := part.Start(ctx); err != nil {
			return fmt.Errorf("%s: %w", part.name, err)
		}
		p.running++
	}
	return nil
}

// stop stops the running parts in reverse order, each within its
// stopWithin, and reports every error.
func (p *pipeline) stop(logger *slog.Logger) error {
	var errs []error
	for ; p.running > 0; p.running-- {
		part := p.parts[p.running-1]
		ctx, cancel := context.WithTimeout(context.Background(), part.stopWithin)
		if err := part.Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", part.name, err))
		}
		cancel()
		logger.Debug("stopped", "component", part.name)
	}
	return errors.Join(errs...)
}

// httpAddr is the HTTP server's bound address, or "" when disabled.
func (p *pipeline) httpAddr() string {
	if p.server == nil || p.server.Addr() == nil {
		return ""
	}
	return p.server.Addr().String()
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
