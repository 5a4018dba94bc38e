// Package console is flowcheck's web console: plain ES modules, CSS and a
// vendored chart library (uPlot), embedded in the binary and served as they
// are, with no build step, so that the binary alone serves it on an
// air-gapped box. It is read-only: every page reads the JSON API under
// /api/v1/. Host data is inserted as text (textContent), never as HTML.
package console

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
)

// files are the console's files (the Go sources excepted).
//
//go:embed *.html *.js *.css *.svg pages vendor
var files embed.FS

// asset is one console file, ready to serve.
type asset struct {
	body  []byte
	gz    []byte // nil when compression does not pay
	etag  string
	ctype string
}

// load reads the embedded console: each file with its ETag and, when it
// saves bytes, a gzipped copy (the chart library is 145 KB, 42 KB
// compressed).
func load() (map[string]*asset, error) {
	assets := map[string]*asset{}
	err := fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := fs.ReadFile(files, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		a := &asset{body: body, etag: `"` + hex.EncodeToString(sum[:8]) + `"`, ctype: contentType(p)}
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		_, _ = zw.Write(body)
		_ = zw.Close()
		if buf.Len() < len(body)*9/10 {
			a.gz = buf.Bytes()
		}
		assets[p] = a
		return nil
	})
	return assets, err
}

// contentType names a console file's type; .js must be a JavaScript type
// for module scripts, whatever the system's MIME table says.
func contentType(p string) string {
	switch path.Ext(p) {
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".html":
		return "text/html; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	case ".md", "":
		return "text/plain; charset=utf-8"
	}
	if t := mime.TypeByExtension(path.Ext(p)); t != "" {
		return t
	}
	return "application/octet-stream"
}

// Handler serves the console's files: / is index.html, /favicon.ico the
// icon; any other path not in the console is a JSON 404, as the API's.
// Files are revalidated by ETag on each load (their names carry no
// version), and sent gzipped to a browser that accepts it. The files are
// read and compressed once, here (about 0.3 MB held).
func Handler() http.Handler {
	assets, err := load()
	if err != nil {
		// The files are compiled in: reading them cannot fail.
		panic("console: embedded files: " + err.Error())
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			jsonError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed: the console is read-only (GET)")
			return
		}
		p := strings.TrimPrefix(r.URL.Path, "/")
		switch p {
		case "":
			p = "index.html"
		case "favicon.ico":
			p = "favicon.svg"
		}
		a, ok := assets[p]
		if !ok {
			jsonError(w, http.StatusNotFound, "not found: "+r.URL.Path)
			return
		}
		h := w.Header()
		h.Set("Content-Type", a.ctype)
		h.Set("ETag", a.etag)
		h.Set("Cache-Control", "no-cache")
		h.Set("Vary", "Accept-Encoding")
		if match := r.Header.Get("If-None-Match"); match != "" && strings.Contains(match, a.etag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		body := a.body
		if a.gz != nil && acceptsGzip(r) {
			h.Set("Content-Encoding", "gzip")
			body = a.gz
		}
		h.Set("Content-Length", strconv.Itoa(len(body)))
		if r.Method == http.MethodHead {
			return
		}
		_, _ = w.Write(body) // the client went away; nothing to do
	})
}

// jsonError answers an error as the API does: {"error": "..."}.
func jsonError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	b, _ := json.Marshal(map[string]string{"error": msg})
	_, _ = w.Write(append(b, '\n'))
}

// acceptsGzip reports whether the request's Accept-Encoding lists gzip.
func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		enc, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(enc), "gzip") && strings.TrimSpace(q) != "q=0" {
			return true
		}
	}
	return false
}
