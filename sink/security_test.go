package sink

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/flowcheck/flowcheck/internal/kafkaconn"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// testPKI is a throw-away CA with a server (127.0.0.1) and a client
// certificate, written as PEM files.
type testPKI struct {
	caFile, certFile, keyFile string
	server                    tls.Certificate
	pool                      *x509.CertPool
}

func newPKI(t *testing.T) testPKI {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "flowcheck test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	leaf := func(serial int64, usage x509.ExtKeyUsage) ([]byte, *ecdsa.PrivateKey) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: "127.0.0.1"},
			IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, key
	}
	pemFile := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	srvDER, srvKey := leaf(2, x509.ExtKeyUsageServerAuth)
	cliDER, cliKey := leaf(3, x509.ExtKeyUsageClientAuth)
	cliKeyDER, _ := x509.MarshalECPrivateKey(cliKey)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return testPKI{
		caFile:   pemFile("ca.pem", "CERTIFICATE", caDER),
		certFile: pemFile("client.pem", "CERTIFICATE", cliDER),
		keyFile:  pemFile("client.key", "EC PRIVATE KEY", cliKeyDER),
		server:   tls.Certificate{Certificate: [][]byte{srvDER}, PrivateKey: srvKey},
		pool:     pool,
	}
}

// TestKafkaSecurity writes through SASL (PLAIN, SCRAM-SHA-256/512) and
// mutual TLS to a kfake cluster requiring them, and reads back.
func TestKafkaSecurity(t *testing.T) {
	pki := newPKI(t)
	cases := []struct {
		name, mechanism, kfakeMethod string
		tls                          bool
	}{
		{"plain", "plain", "PLAIN", false},
		{"scram-sha-256", "scram-sha-256", "SCRAM-SHA-256", false},
		{"scram-sha-512 over mTLS", "scram-sha-512", "SCRAM-SHA-512", true},
		{"mTLS only", "", "", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			opts := []kfake.Opt{kfake.Ports(0), kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(2)}
			clientOpts := []kgo.Opt{}
			if tc.mechanism != "" {
				opts = append(opts, kfake.EnableSASL(), kfake.Superuser(tc.kfakeMethod, "flowcheck", "s3cret"))
				switch tc.mechanism {
				case "plain":
					clientOpts = append(clientOpts, kgo.SASL(plain.Auth{User: "flowcheck", Pass: "s3cret"}.AsMechanism()))
				case "scram-sha-256":
					clientOpts = append(clientOpts, kgo.SASL(scram.Auth{User: "flowcheck", Pass: "s3cret"}.AsSha256Mechanism()))
				default:
					clientOpts = append(clientOpts, kgo.SASL(scram.Auth{User: "flowcheck", Pass: "s3cret"}.AsSha512Mechanism()))
				}
			}
			if tc.tls {
				opts = append(opts, kfake.TLS(&tls.Config{
					Certificates: []tls.Certificate{pki.server},
					ClientCAs:    pki.pool,
					ClientAuth:   tls.RequireAndVerifyClientCert,
				}))
				cli, err := tls.LoadX509KeyPair(pki.certFile, pki.keyFile)
				if err != nil {
					t.Fatal(err)
				}
				clientOpts = append(clientOpts, kgo.DialTLSConfig(&tls.Config{RootCAs: pki.pool, Certificates: []tls.Certificate{cli}}))
			}
			cluster, err := kfake.NewCluster(opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer cluster.Close()
			addr := cluster.ListenAddrs()[0]

			cfg := testConfig(t, addr)
			cfg.Kafka.SASL = kafkaconn.SASLConfiguration{Mechanism: tc.mechanism, Username: "flowcheck", Password: "s3cret"}
			if tc.tls {
				cfg.Kafka.TLS = kafkaconn.TLSConfiguration{Enabled: true, CAFile: pki.caFile, CertFile: pki.certFile, KeyFile: pki.keyFile}
			}
			c := start(t, cfg)
			const n = 20
			for i := range n {
				c.Publish(event(i))
			}
			stop(t, c)
			if got := kafkaOf(c).spool.Len(); got != 0 {
				t.Fatalf("%d alerts left in the spool", got)
			}
			recs := consumeWith(t, addr, n, clientOpts, "flowcheck.alerts")
			checkOrder(t, recs, seq(0, n))
		})
	}
}

// TestKafkaBadCredentialsSpool: a refused login keeps alerts in the spool
// and counts the broker error.
func TestKafkaBadCredentialsSpool(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.Ports(0), kfake.AllowAutoTopicCreation(),
		kfake.EnableSASL(), kfake.Superuser("PLAIN", "flowcheck", "right"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	cfg := testConfig(t, cluster.ListenAddrs()[0])
	cfg.Kafka.SASL = kafkaconn.SASLConfiguration{Mechanism: "plain", Username: "flowcheck", Password: "wrong"}
	c := start(t, cfg)
	k := kafkaOf(c)
	for i := range 10 {
		c.Publish(event(i))
	}
	waitFor(t, "alerts spooled", func() bool { return k.spool.Len() == 10 })
	stop(t, c)
	if sum(k.m.errors) == 0 {
		t.Fatal("no broker error counted")
	}
	if got := k.spool.Len(); got != 10 {
		t.Fatalf("spool holds %d after stop", got)
	}
}

// consumeWith is consume with extra client options (SASL, TLS).
func consumeWith(t testing.TB, addr string, n int, extra []kgo.Opt, topics ...string) []*kgo.Record {
	t.Helper()
	opts := append([]kgo.Opt{kgo.SeedBrokers(addr), kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(50 * time.Millisecond)}, extra...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d records of %d before timeout: %v", len(out), n, fs.Errors())
		}
		fs.EachRecord(func(r *kgo.Record) { out = append(out, r) })
	}
	return out
}
