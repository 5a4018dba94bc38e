// Package server is the collector's operations surface: Prometheus metrics,
// liveness and readiness probes, the web console, and a read-only JSON API
// over the host table, the alerts, the exporters and the checks
// (docs/api.md).
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
)

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
	if err := deps.fill(); err != nil {
		return nil, err
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
