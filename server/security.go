package server

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
)

// securityHeaders are set on every response, the console's included: no
// script but the server's own files (no inline script, no eval), no
// framing, no MIME sniffing, no referrer leaving the box.
var securityHeaders = [...][2]string{
	{"Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
		"connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"},
	{"X-Content-Type-Options", "nosniff"},
	{"X-Frame-Options", "DENY"},
	{"Referrer-Policy", "no-referrer"},
	{"Cross-Origin-Opener-Policy", "same-origin"},
	{"Cross-Origin-Resource-Policy", "same-origin"},
}

// minTokenLength is the shortest bearer token accepted: a guessable token
// is no protection.
const minTokenLength = 16

// credentials are what http.auth accepts, as SHA-256 digests: comparing
// digests of equal length in constant time reveals neither the secret nor
// its length.
type credentials struct {
	token *[sha256.Size]byte
	users map[string][sha256.Size]byte
}

// loadCredentials reads the token and users files of http.auth.
func loadCredentials(cfg AuthConfiguration) (*credentials, error) {
	if cfg.TokenFile == "" && cfg.UsersFile == "" {
		return nil, nil
	}
	cr := &credentials{}
	if cfg.TokenFile != "" {
		b, err := os.ReadFile(cfg.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("auth.token_file: %w", err)
		}
		tok := strings.TrimSpace(string(b))
		if len(tok) < minTokenLength || strings.ContainsAny(tok, " \t\r\n") {
			return nil, fmt.Errorf("auth.token_file: %s must hold one token of at least %d characters", cfg.TokenFile, minTokenLength)
		}
		sum := sha256.Sum256([]byte(tok))
		cr.token = &sum
	}
	if cfg.UsersFile != "" {
		users, err := readUsers(cfg.UsersFile)
		if err != nil {
			return nil, fmt.Errorf("auth.users_file: %w", err)
		}
		cr.users = users
	}
	return cr, nil
}

// readUsers reads "name:sha256:HEX" lines (HEX: the SHA-256 of the
// password, as `printf %s PASSWORD | sha256sum` prints it); blank lines and
// lines starting with # are skipped.
func readUsers(path string) (map[string][sha256.Size]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseUsers(path, b)
}

// parseUsers reads the lines of a users file named path.
func parseUsers(path string, b []byte) (map[string][sha256.Size]byte, error) {
	users := map[string][sha256.Size]byte{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, rest, ok1 := strings.Cut(line, ":")
		scheme, digest, ok2 := strings.Cut(rest, ":")
		raw, err := hex.DecodeString(digest)
		if !ok1 || !ok2 || name == "" || scheme != "sha256" || err != nil || len(raw) != sha256.Size {
			return nil, fmt.Errorf("%s:%d: want name:sha256:<64 hex digits>", path, n)
		}
		users[name] = [sha256.Size]byte(raw)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(users) == 0 {
		return nil, fmt.Errorf("%s: no user", path)
	}
	return users, nil
}

// allows reports whether a request carries an accepted token or user.
func (cr *credentials) allows(r *http.Request) bool {
	h := r.Header.Get("Authorization")
	if tok, ok := strings.CutPrefix(h, "Bearer "); ok && cr.token != nil {
		sum := sha256.Sum256([]byte(tok))
		return subtle.ConstantTimeCompare(sum[:], cr.token[:]) == 1
	}
	if name, pass, ok := r.BasicAuth(); ok && cr.users != nil {
		want, known := cr.users[name]
		sum := sha256.Sum256([]byte(pass))
		// An unknown user costs the same comparison as a known one.
		match := subtle.ConstantTimeCompare(sum[:], want[:]) == 1
		return match && known
	}
	return false
}

// secure sets the security headers on every response and, when http.auth
// is set, answers 401 to a request without accepted credentials (the
// probes excepted: orchestrators call them without any).
func (c *Component) secure(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		for _, kv := range securityHeaders {
			hd.Set(kv[0], kv[1])
		}
		if strings.HasPrefix(r.URL.Path, "/api/") {
			hd.Set("Cache-Control", "no-store")
		}
		if c.creds != nil && r.URL.Path != "/healthz" && r.URL.Path != "/readyz" && !c.creds.allows(r) {
			c.metrics.unauthorized.Inc()
			if c.creds.users != nil {
				hd.Set("WWW-Authenticate", `Basic realm="flowcheck", charset="UTF-8"`)
			} else {
				hd.Set("WWW-Authenticate", `Bearer realm="flowcheck"`)
			}
			writeError(w, r, http.StatusUnauthorized, "authentication required (http.auth)")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// loadTLS reads http.tls's certificate and key.
func loadTLS(cfg TLSConfiguration) (*tls.Config, error) {
	if cfg.CertFile == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// loopback reports whether a listen address only accepts local clients:
// a loopback IP or "localhost". An empty host listens on every interface.
func loopback(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// errExposed refuses a non-loopback listen address with neither TLS nor
// authentication.
var errExposed = errors.New("listen: a non-loopback address needs tls or auth (or insecure: true to expose the API as is)")
