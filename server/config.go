package server

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"
)

// Configuration is the `http` section: where the operations surface listens,
// and how much of the machine its JSON API may take from ingest.
type Configuration struct {
	// Listen is the host:port of the HTTP server (metrics, health, JSON API).
	// An empty value disables the server.
	Listen string `mapstructure:"listen"`
	// MaxConcurrent is the number of /api/v1 requests served at once. A
	// request beyond it is answered 503 with Retry-After at once, and
	// counted, rather than queued: the API must never take the CPU the
	// decoders need. /metrics and the probes are not limited.
	MaxConcurrent int `mapstructure:"max_concurrent"`
	// RequestTimeout bounds one /api/v1 request: a walk over the host table
	// still running after it stops and answers 503.
	RequestTimeout time.Duration `mapstructure:"request_timeout"`
	// TLS serves HTTPS with this certificate and key.
	TLS TLSConfiguration `mapstructure:"tls"`
	// Auth asks every request (the probes excepted) for a bearer token or
	// a basic-auth user.
	Auth AuthConfiguration `mapstructure:"auth"`
	// Insecure allows a non-loopback Listen with neither TLS nor Auth.
	Insecure bool `mapstructure:"insecure"`
}

// TLSConfiguration is `http.tls`: PEM files, both or neither.
type TLSConfiguration struct {
	CertFile string `mapstructure:"cert_file"`
	KeyFile  string `mapstructure:"key_file"`
}

// AuthConfiguration is `http.auth`: a request is let in with the bearer
// token of TokenFile, or as one of the basic-auth users of UsersFile
// ("name:sha256:HEX" lines). Files, not values, so that secrets stay out
// of the configuration and the environment.
type AuthConfiguration struct {
	TokenFile string `mapstructure:"token_file"`
	UsersFile string `mapstructure:"users_file"`
}

// enabled reports whether any credential is configured.
func (a AuthConfiguration) enabled() bool { return a.TokenFile != "" || a.UsersFile != "" }

// DefaultConfiguration listens on loopback only: the API shows every host's
// traffic, so exposing it is an explicit choice.
func DefaultConfiguration() Configuration {
	return Configuration{Listen: "127.0.0.1:9740", MaxConcurrent: 2, RequestTimeout: 5 * time.Second}
}

// Validate checks that Listen is empty or a host:port with a numeric port,
// that a non-loopback one is protected (TLS or Auth) unless Insecure, and
// the API's limits.
func (c Configuration) Validate() error {
	switch {
	case c.MaxConcurrent < 1:
		return errors.New("max_concurrent: must be >= 1")
	case c.RequestTimeout <= 0:
		return errors.New("request_timeout: must be > 0")
	case (c.TLS.CertFile == "") != (c.TLS.KeyFile == ""):
		return errors.New("tls: cert_file and key_file go together")
	}
	if c.Listen == "" {
		return nil
	}
	_, port, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return fmt.Errorf("listen: must be host:port (got %q)", c.Listen)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("listen: port must be a number 0-65535 (got %q)", port)
	}
	if !loopback(c.Listen) && c.TLS.CertFile == "" && !c.Auth.enabled() && !c.Insecure {
		return errExposed
	}
	return nil
}
