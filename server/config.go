package server

import (
	"fmt"
	"net"
	"strconv"
)

// Configuration is the `http` section: where the operations surface listens.
type Configuration struct {
	// Listen is the host:port of the HTTP server (metrics, health, JSON API).
	// An empty value disables the server.
	Listen string `mapstructure:"listen"`
}

// DefaultConfiguration listens on loopback only: the API shows every host's
// traffic, so exposing it is an explicit choice.
func DefaultConfiguration() Configuration {
	return Configuration{Listen: "127.0.0.1:9740"}
}

// Validate checks that Listen is empty or a host:port with a numeric port.
func (c Configuration) Validate() error {
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
	return nil
}
