// Package server is the collector's operations surface: Prometheus metrics,
// liveness and readiness probes, and a read-only JSON API over the host table,
// the engaged alerts and the exporters.
//
// It depends on small interfaces defined here, which the components satisfy,
// so that it can be tested with fakes and never imports their internals.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/flowcheck/flowcheck/aggregate"
	"github.com/flowcheck/flowcheck/alert"
	"github.com/flowcheck/flowcheck/collector"
	"github.com/flowcheck/flowcheck/scripting"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Hosts is the read side of the host table (aggregate.HostTable).
type Hosts interface {
	// AppendKeys appends the key of every tracked host to dst.
	AppendKeys(dst []aggregate.HostKey) []aggregate.HostKey
	// Snapshot copies one host's state into dst; false when unknown.
	Snapshot(key aggregate.HostKey, dst *aggregate.HostSnapshot) bool
}

// Alerts is the read side of the check engine (scripting.Engine).
type Alerts interface {
	// Engaged returns the currently engaged alerts.
	Engaged() []alert.Event
	// Score returns a host's current score.
	Score(key aggregate.HostKey) int
}

// Exporters is the read side of the exporter registry
// (collector.Component).
type Exporters interface {
	// Exporters describes every tracked exporter, in address order.
	Exporters() []collector.ExporterInfo
}

// Contacts lists the members of a host's contact sets
// (aggregate.HostTable).
type Contacts interface {
	// Contacts copies a host's contact sets with their first members;
	// false when the host is unknown.
	Contacts(key aggregate.HostKey) (aggregate.HostContacts, bool)
}

// History is the read side of the recently released alerts
// (scripting.Engine).
type History interface {
	// Released returns the last released alerts kept, newest first.
	Released() []alert.Event
}

// Checks is the read side of the loaded checks (scripting.Engine).
type Checks interface {
	// Checks describes every loaded check, in name order.
	Checks() []scripting.CheckInfo
}

// ReadyCheck is one readiness condition, named in /readyz's answer.
type ReadyCheck struct {
	Name  string
	Ready func() bool
}

// Dependencies are what the server reads.
type Dependencies struct {
	Logger *slog.Logger
	// Gatherer serves /metrics; it should hold the Go runtime and process
	// collectors beside every component's metrics.
	Gatherer   prometheus.Gatherer
	Registerer prometheus.Registerer
	Hosts      Hosts
	Alerts     Alerts
	// Exporters are what /api/v1/exporters pages; nil lists none.
	Exporters Exporters
	// Contacts lists the members of the host page's contact sets; nil
	// shows their counts only.
	Contacts Contacts
	// History lists the recently released alerts; nil keeps none.
	History History
	// Checks are what /api/v1/checks pages; nil lists none.
	Checks Checks
	// Ready lists the conditions /readyz requires.
	Ready []ReadyCheck
}

// Component is the HTTP server.
type Component struct {
	config  Configuration
	deps    Dependencies
	metrics *metrics
	handler http.Handler
	srv     *http.Server
	ln      net.Listener
	done    chan struct{}

	// slots holds one scratch per API request allowed at once: taking one
	// is the semaphore, and its buffers are reused by every request it
	// serves.
	slots chan *scratch
	// alerts is the snapshot of the engaged alerts the API pages through.
	alerts alertSnapshot
	// creds are http.auth's (nil: none), tls http.tls's (nil: plain HTTP).
	creds *credentials
	tls   *tls.Config
	// sampler keeps the overview's last hour (overview.go); stopSampler
	// ends its goroutine, sampled is closed once it has.
	sampler     sampler
	stopSampler context.CancelFunc
	sampled     chan struct{}
}

// New builds the server; it does not listen until Start.
func New(config Configuration, deps Dependencies) (*Component, error) {
	if err := config.Validate(); err != nil {
		return nil, err
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Gatherer == nil {
		return nil, errors.New("dependency Gatherer is required")
	}
	if deps.Exporters == nil {
		deps.Exporters = noExporters{}
	}
	if deps.History == nil {
		deps.History = noHistory{}
	}
	if deps.Checks == nil {
		deps.Checks = noChecks{}
	}
	// A process without a host table (cluster role ingest) serves
	// metrics and probes; its API lists no host and no alert.
	if deps.Hosts == nil {
		deps.Hosts = noHosts{}
	}
	if deps.Alerts == nil {
		deps.Alerts = noAlerts{}
	}
	c := &Component{config: config, deps: deps, done: make(chan struct{}), slots: make(chan *scratch, config.MaxConcurrent)}
	var err error
	if c.creds, err = loadCredentials(config.Auth); err != nil {
		return nil, err
	}
	if c.tls, err = loadTLS(config.TLS); err != nil {
		return nil, err
	}
	for range config.MaxConcurrent {
		c.slots <- &scratch{}
	}
	h, err := c.routes()
	if err != nil {
		return nil, err
	}
	c.handler = c.secure(h)
	return c, nil
}

// Handler returns the server's routes, for tests and for embedding.
func (c *Component) Handler() http.Handler { return c.handler }

// Start binds the listen address and serves in the background; ctx bounds
// the bind only. With an empty listen address it does nothing.
func (c *Component) Start(ctx context.Context) error {
	if c.config.Listen == "" {
		close(c.done)
		return nil
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", c.config.Listen)
	if err != nil {
		return err
	}
	if c.tls != nil {
		ln = tls.NewListener(ln, c.tls)
	}
	c.ln = ln
	c.srv = &http.Server{
		Handler:           c.handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		ErrorLog:          slog.NewLogLogger(c.deps.Logger.Handler(), slog.LevelWarn),
	}
	sctx, cancel := context.WithCancel(context.Background())
	c.stopSampler, c.sampled = cancel, make(chan struct{})
	go func() {
		defer close(c.sampled)
		c.runSampler(sctx)
	}()
	go func() {
		defer close(c.done)
		if err := c.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			c.deps.Logger.Error("http server stopped", "err", err)
		}
	}()
	c.deps.Logger.Info("http server listening", "addr", ln.Addr().String(), "tls", c.tls != nil, "auth", c.creds != nil)
	if !loopback(c.config.Listen) && (c.tls == nil || c.creds == nil) {
		c.deps.Logger.Warn("http server reachable beyond loopback without both tls and auth",
			"tls", c.tls != nil, "auth", c.creds != nil, "insecure", c.config.Insecure)
	}
	return nil
}

// Addr is the bound address (useful with port 0), or nil before Start.
func (c *Component) Addr() net.Addr {
	if c.ln == nil {
		return nil
	}
	return c.ln.Addr()
}

// Stop shuts the server down, waiting for requests in flight until ctx ends.
func (c *Component) Stop(ctx context.Context) error {
	if c.srv == nil {
		return nil
	}
	c.stopSampler()
	<-c.sampled
	err := c.srv.Shutdown(ctx)
	<-c.done
	return err
}

// noExporters lists no exporter, for a server built without a collector.
type noExporters struct{}

func (noExporters) Exporters() []collector.ExporterInfo { return nil }

// noHistory keeps no released alert.
type noHistory struct{}

func (noHistory) Released() []alert.Event { return nil }

// noChecks lists no check.
type noChecks struct{}

func (noChecks) Checks() []scripting.CheckInfo { return nil }

// noHosts holds no host, for a server built without a host table.
type noHosts struct{}

func (noHosts) AppendKeys(dst []aggregate.HostKey) []aggregate.HostKey { return dst }

func (noHosts) Snapshot(aggregate.HostKey, *aggregate.HostSnapshot) bool { return false }

// noAlerts engages no alert, for a server built without a check engine.
type noAlerts struct{}

func (noAlerts) Engaged() []alert.Event { return nil }

func (noAlerts) Score(aggregate.HostKey) int { return 0 }

// registerOnce registers a collector, tolerating one already registered (a
// second server on the same registry in tests).
func registerOnce(r prometheus.Registerer, col prometheus.Collector) (prometheus.Collector, error) {
	if err := r.Register(col); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			return are.ExistingCollector, nil
		}
		return nil, err
	}
	return col, nil
}

// promHandler serves the gatherer's metrics, counting its own failures.
func (c *Component) promHandler() http.Handler {
	opts := promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(c.deps.Logger.Handler(), slog.LevelWarn)}
	if c.deps.Registerer != nil {
		opts.Registry = c.deps.Registerer
	}
	return promhttp.HandlerFor(c.deps.Gatherer, opts)
}
