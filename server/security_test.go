package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestJSONErrors checks that every 4xx under /api/ is a JSON error:
// unknown routes 404, other methods 405 with Allow.
func TestJSONErrors(t *testing.T) {
	ready := true
	ts := newTestServer(t, &ready)
	cases := []struct {
		method, path string
		code         int
		want         string
	}{
		{"GET", "/api/v1/nothing", 404, "no such endpoint: /api/v1/nothing"},
		{"GET", "/api/v2/hosts", 404, "no such endpoint"},
		{"GET", "/api/v1/hosts/", 404, "no such endpoint"},
		{"GET", "/api/v1/hosts/10.99.0.10/more", 404, "no such endpoint"},
		{"POST", "/api/v1/hosts", 405, "not allowed"},
		{"DELETE", "/api/v1/alerts", 405, "not allowed"},
		{"PUT", "/api/v1/hosts/10.99.0.10", 405, "not allowed"},
		{"POST", "/api/v1/nothing", 404, "no such endpoint"},
		{"GET", "/api/v1/hosts/10.99.0.99", 404, "unknown host"},
		{"GET", "/api/v1/hosts?limit=x", 400, "limit"},
	}
	for _, tc := range cases {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, ts.URL+tc.path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var e struct{ Error string }
			err = json.NewDecoder(resp.Body).Decode(&e)
			if resp.StatusCode != tc.code || err != nil || !strings.Contains(e.Error, tc.want) {
				t.Fatalf("%d %q (%v), want %d holding %q", resp.StatusCode, e.Error, err, tc.code, tc.want)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if tc.code == 405 && resp.Header.Get("Allow") != "GET, HEAD" {
				t.Errorf("Allow %q", resp.Header.Get("Allow"))
			}
		})
	}
}

// TestSecurityHeaders checks the headers of every kind of response.
func TestSecurityHeaders(t *testing.T) {
	ready := true
	ts := newTestServer(t, &ready)
	for _, path := range []string{"/", "/healthz", "/metrics", "/api/v1/hosts", "/api/v1/nothing", "/nothing"} {
		resp, err := http.Get(ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		csp := resp.Header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "script-src 'self';") || strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("%s: CSP %q", path, csp)
		}
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("%s: headers %v", path, resp.Header)
		}
	}
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// TestAuth is one row per way to present (or not) credentials.
func TestAuth(t *testing.T) {
	cfg := DefaultConfiguration()
	cfg.Auth = AuthConfiguration{
		TokenFile: writeFile(t, "token", "s3cret-token-0123456789\n"),
		UsersFile: writeFile(t, "users", "# operators\nalice:sha256:"+sha("wonderland")+"\n\nbob:sha256:"+sha("builder")+"\n"),
	}
	ts, reg := serve(t, cfg, Dependencies{Hosts: fakeHosts{}})
	cases := []struct {
		name, path string
		set        func(r *http.Request)
		code       int
	}{
		{"none", "/api/v1/hosts", func(*http.Request) {}, 401},
		{"none on the console", "/", func(*http.Request) {}, 401},
		{"none on metrics", "/metrics", func(*http.Request) {}, 401},
		{"probe", "/healthz", func(*http.Request) {}, 200},
		{"readiness", "/readyz", func(*http.Request) {}, 200},
		{"token", "/api/v1/hosts", func(r *http.Request) { r.Header.Set("Authorization", "Bearer s3cret-token-0123456789") }, 200},
		{"wrong token", "/api/v1/hosts", func(r *http.Request) { r.Header.Set("Authorization", "Bearer s3cret-token-012345678") }, 401},
		{"empty token", "/api/v1/hosts", func(r *http.Request) { r.Header.Set("Authorization", "Bearer ") }, 401},
		{"alice", "/api/v1/hosts", func(r *http.Request) { r.SetBasicAuth("alice", "wonderland") }, 200},
		{"bob on metrics", "/metrics", func(r *http.Request) { r.SetBasicAuth("bob", "builder") }, 200},
		{"alice on the console", "/", func(r *http.Request) { r.SetBasicAuth("alice", "wonderland") }, 200},
		{"alice with bob's password", "/api/v1/hosts", func(r *http.Request) { r.SetBasicAuth("alice", "builder") }, 401},
		{"unknown user", "/api/v1/hosts", func(r *http.Request) { r.SetBasicAuth("eve", "wonderland") }, 401},
		{"unknown user, empty password", "/api/v1/hosts", func(r *http.Request) { r.SetBasicAuth("eve", "") }, 401},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", ts.URL+tc.path, nil)
			tc.set(req)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.code {
				t.Fatalf("%d, want %d: %s", resp.StatusCode, tc.code, body)
			}
			if tc.code == 401 && (!strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic") || !strings.Contains(string(body), `"error"`)) {
				t.Fatalf("401 without a challenge or JSON: %v %s", resp.Header, body)
			}
		})
	}
	if n := counterValue(t, reg, "flowcheck_http_unauthorized_total"); n != 8 {
		t.Errorf("unauthorized_total %v, want 8", n)
	}
}

// counterValue reads a counter without labels.
func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no %s", name)
	return 0
}

// TestCredentialFiles: bad files stop New with one line naming the file.
func TestCredentialFiles(t *testing.T) {
	cases := []struct {
		name string
		auth AuthConfiguration
		want string
	}{
		{"missing token file", AuthConfiguration{TokenFile: "/nonexistent/token"}, "auth.token_file"},
		{"short token", AuthConfiguration{TokenFile: writeFile(t, "t", "short\n")}, "at least 16"},
		{"two tokens", AuthConfiguration{TokenFile: writeFile(t, "t", "aaaaaaaaaaaaaaaaaa bbbbbbbbbbbbbbbbbbbbb\n")}, "one token"},
		{"plain password", AuthConfiguration{UsersFile: writeFile(t, "u", "alice:wonderland\n")}, ":1: want name:sha256:"},
		{"bad hex", AuthConfiguration{UsersFile: writeFile(t, "u", "alice:sha256:"+sha("x")+"\nbob:sha256:zz\n")}, ":2: want"},
		{"short digest", AuthConfiguration{UsersFile: writeFile(t, "u", "alice:sha256:abcd\n")}, ":1: want"},
		{"no name", AuthConfiguration{UsersFile: writeFile(t, "u", ":sha256:"+sha("x")+"\n")}, ":1: want"},
		{"no user", AuthConfiguration{UsersFile: writeFile(t, "u", "# nobody\n")}, "no user"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfiguration()
			cfg.Auth = tc.auth
			_, err := New(cfg, Dependencies{Gatherer: prometheus.NewRegistry(), Hosts: fakeHosts{}, Alerts: fakeAlerts{}})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

// TestExposure: a non-loopback listen needs tls or auth, or insecure.
func TestExposure(t *testing.T) {
	cases := []struct {
		listen   string
		tls      bool
		auth     bool
		insecure bool
		ok       bool
	}{
		{"127.0.0.1:9740", false, false, false, true},
		{"[::1]:9740", false, false, false, true},
		{"localhost:9740", false, false, false, true},
		{"0.0.0.0:9740", false, false, false, false},
		{":9740", false, false, false, false},
		{"[::]:9740", false, false, false, false},
		{"192.0.2.1:9740", false, false, false, false},
		{"host.example:9740", false, false, false, false},
		{"0.0.0.0:9740", true, false, false, true},
		{"0.0.0.0:9740", false, true, false, true},
		{"0.0.0.0:9740", false, false, true, true},
	}
	for _, tc := range cases {
		cfg := DefaultConfiguration()
		cfg.Listen, cfg.Insecure = tc.listen, tc.insecure
		if tc.tls {
			cfg.TLS = TLSConfiguration{CertFile: "c.pem", KeyFile: "k.pem"}
		}
		if tc.auth {
			cfg.Auth.TokenFile = "token"
		}
		err := cfg.Validate()
		if (err == nil) != tc.ok || (err != nil && !strings.Contains(err.Error(), "needs tls or auth")) {
			t.Errorf("%+v: %v", tc, err)
		}
	}
	cfg := DefaultConfiguration()
	cfg.TLS.CertFile = "c.pem"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "go together") {
		t.Errorf("cert without key: %v", err)
	}
}

// TestTLS serves HTTPS with a self-signed certificate, on a real socket.
func TestTLS(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	cfg := DefaultConfiguration()
	cfg.Listen = "127.0.0.1:0"
	cfg.TLS = TLSConfiguration{
		CertFile: writeFile(t, "cert.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))),
		KeyFile:  writeFile(t, "key.pem", string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}))),
	}
	srv, err := New(cfg, Dependencies{Gatherer: prometheus.NewRegistry(), Hosts: fakeHosts{}, Alerts: fakeAlerts{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer srv.Stop(context.Background())
	pool := x509.NewCertPool()
	pool.AddCert(must(x509.ParseCertificate(der)))
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := client.Get("https://" + srv.Addr().String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.TLS == nil {
		t.Fatalf("HTTPS: %d, TLS %v", resp.StatusCode, resp.TLS != nil)
	}
	// Plain HTTP on the TLS port gets no API answer.
	if resp, err := http.Get("http://" + srv.Addr().String() + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatal("plain HTTP answered on the TLS port")
		}
	}
	cfg.TLS.KeyFile = writeFile(t, "other.pem", "not a key")
	if _, err := New(cfg, Dependencies{Gatherer: prometheus.NewRegistry(), Hosts: fakeHosts{}, Alerts: fakeAlerts{}}); err == nil || !strings.Contains(err.Error(), "tls:") {
		t.Fatalf("bad key: %v", err)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
