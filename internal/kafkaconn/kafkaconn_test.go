package kafkaconn

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/segmentio/kafka-go"
)

func TestTLSConfigErrors(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "x.pem")
	_ = os.WriteFile(notPEM, []byte("nothing"), 0o600)
	for _, c := range []TLSConfiguration{
		{Enabled: true, CAFile: filepath.Join(dir, "missing.pem")},
		{Enabled: true, CAFile: notPEM},
		{Enabled: true, CertFile: notPEM, KeyFile: notPEM},
	} {
		if _, err := c.Build(); err == nil {
			t.Errorf("Build(%+v) accepted", c)
		}
	}
	if cfg, err := (TLSConfiguration{Enabled: true}).Build(); err != nil || cfg.InsecureSkipVerify {
		t.Fatalf("default TLS: %+v, %v", cfg, err)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"cert without key", TLSConfiguration{Enabled: true, CertFile: "c.pem"}.Validate(), "cert_file: cert_file and key_file go together"},
		{"tls off", TLSConfiguration{CertFile: "c.pem"}.Validate(), ""},
		{"sasl no user", SASLConfiguration{Mechanism: "plain"}.Validate(), "username: must not be empty with a SASL mechanism"},
		{"sasl unknown", SASLConfiguration{Mechanism: "kerberos", Username: "u"}.Validate(), `mechanism: "kerberos" is not plain, scram-sha-256 or scram-sha-512`},
		{"sasl upper case", SASLConfiguration{Mechanism: "SCRAM-SHA-256", Username: "u"}.Validate(), ""},
	} {
		got := ""
		if tc.err != nil {
			got = tc.err.Error()
		}
		if got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestErrorKind(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{kafkaUnknownTopic, "unknown_topic_or_partition"},
		{errors.New("x"), "other"},
	} {
		if got := ErrorKind(tc.err); got != tc.want {
			t.Errorf("ErrorKind(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

var kafkaUnknownTopic = kafka.UnknownTopicOrPartition
