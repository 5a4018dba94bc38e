// Package kafkaconn is the one place that turns the TLS and SASL settings
// of a Kafka client (the alert sink's, the cluster's) into kafka-go's
// transport, and names broker errors for metrics.
package kafkaconn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"
)

// TLSConfiguration configures TLS to the brokers.
type TLSConfiguration struct {
	Enabled            bool   `mapstructure:"enabled"`
	CAFile             string `mapstructure:"ca_file"`
	CertFile           string `mapstructure:"cert_file"`
	KeyFile            string `mapstructure:"key_file"`
	InsecureSkipVerify bool   `mapstructure:"insecure_skip_verify"`
}

// SASLConfiguration configures SASL authentication; an empty mechanism
// disables it.
type SASLConfiguration struct {
	// Mechanism is plain, scram-sha-256 or scram-sha-512.
	Mechanism string `mapstructure:"mechanism"`
	Username  string `mapstructure:"username"`
	Password  string `mapstructure:"password"`
}

// Validate checks the section; errors name the key relative to it
// ("cert_file: …").
func (c TLSConfiguration) Validate() error {
	if c.Enabled && (c.CertFile == "") != (c.KeyFile == "") {
		return errors.New("cert_file: cert_file and key_file go together")
	}
	return nil
}

// Validate checks the section; errors name the key relative to it.
func (c SASLConfiguration) Validate() error {
	switch strings.ToLower(c.Mechanism) {
	case "":
	case "plain", "scram-sha-256", "scram-sha-512":
		if c.Username == "" {
			return errors.New("username: must not be empty with a SASL mechanism")
		}
	default:
		return fmt.Errorf("mechanism: %q is not plain, scram-sha-256 or scram-sha-512", c.Mechanism)
	}
	return nil
}

// Build builds the crypto/tls configuration, reading the CA and the
// client certificate; nil when TLS is off.
func (c TLSConfiguration) Build() (*tls.Config, error) {
	if !c.Enabled {
		return nil, nil
	}
	t := &tls.Config{
		MinVersion: tls.VersionTLS12,
		// Off by default; an operator's explicit choice for test brokers.
		InsecureSkipVerify: c.InsecureSkipVerify, //nolint:gosec
	}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file: no certificate in %s", c.CAFile)
		}
		t.RootCAs = pool
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("cert_file: %w", err)
		}
		t.Certificates = []tls.Certificate{cert}
	}
	return t, nil
}

// Build returns the SASL mechanism; nil when SASL is off.
func (c SASLConfiguration) Build() (sasl.Mechanism, error) {
	switch strings.ToLower(c.Mechanism) {
	case "":
		return nil, nil
	case "plain":
		return plain.Mechanism{Username: c.Username, Password: c.Password}, nil
	case "scram-sha-256":
		return scram.Mechanism(scram.SHA256, c.Username, c.Password)
	case "scram-sha-512":
		return scram.Mechanism(scram.SHA512, c.Username, c.Password)
	}
	return nil, fmt.Errorf("mechanism %q unknown", c.Mechanism)
}

// Security is a client's TLS and SASL, built once (certificate files are
// read at start) and used for every transport of that client.
type Security struct {
	TLS  *tls.Config
	SASL sasl.Mechanism
}

// NewSecurity reads and checks the TLS and SASL settings; errors name the
// section ("tls: ca_file: …").
func NewSecurity(t TLSConfiguration, s SASLConfiguration) (Security, error) {
	var sec Security
	var err error
	if sec.TLS, err = t.Build(); err != nil {
		return Security{}, fmt.Errorf("tls: %w", err)
	}
	if sec.SASL, err = s.Build(); err != nil {
		return Security{}, fmt.Errorf("sasl: %w", err)
	}
	return sec, nil
}

// Transport is a new kafka-go Transport with this security. Each has its
// own connections and metadata cache, so that a fresh one after a failure
// starts with fresh metadata (a broker that came back may have lost its
// topics). timeout bounds dialling (at most 5 s).
func (s Security) Transport(clientID string, timeout time.Duration) *kafka.Transport {
	return &kafka.Transport{
		DialTimeout: min(timeout, 5*time.Second),
		ClientID:    clientID,
		TLS:         s.TLS,
		SASL:        s.SASL,
		MetadataTTL: 30 * time.Second,
	}
}

// Dialer is a new kafka-go Dialer with this security, for the clients
// that take one rather than a Transport (Reader, ConsumerGroup).
func (s Security) Dialer(clientID string, timeout time.Duration) *kafka.Dialer {
	return &kafka.Dialer{
		Timeout:       min(timeout, 5*time.Second),
		ClientID:      clientID,
		TLS:           s.TLS,
		SASLMechanism: s.SASL,
		DualStack:     true,
	}
}

// ErrorKind names a kafka-go error for a metric label: the broker error's
// title in snake case (unknown_topic_or_partition), or timeout,
// connection_refused, network, canceled, other.
func ErrorKind(err error) string {
	var werr kafka.WriteErrors
	if errors.As(err, &werr) {
		for _, e := range werr {
			if e != nil {
				err = e
				break
			}
		}
	}
	var kerr kafka.Error
	var nerr net.Error
	switch {
	case errors.As(err, &kerr):
		return strings.ReplaceAll(strings.ToLower(kerr.Title()), " ", "_")
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection_refused"
	case errors.As(err, &nerr) && nerr.Timeout():
		return "timeout"
	case errors.As(err, new(*net.OpError)):
		return "network"
	}
	return "other"
}
