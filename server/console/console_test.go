package console

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func get(t *testing.T, h http.Handler, path string, header map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, path, nil)
	for k, v := range header {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// TestHandler checks what the console answers: the page at /, its modules
// as JavaScript, the icon, gzip when asked, 304 on a matching ETag, and a
// JSON 404 for anything else.
func TestHandler(t *testing.T) {
	h := Handler()
	for _, tc := range []struct {
		path, ctype string
		code        int
		contains    string
	}{
		{"/", "text/html; charset=utf-8", 200, `<script type="module" src="app.js">`},
		{"/index.html", "text/html; charset=utf-8", 200, `<main id="view">`},
		{"/app.js", "text/javascript; charset=utf-8", 200, "function route()"},
		{"/pages/hosts.js", "text/javascript; charset=utf-8", 200, "export async function render"},
		{"/style.css", "text/css; charset=utf-8", 200, "table.grid"},
		{"/vendor/uplot/uPlot.esm.js", "text/javascript; charset=utf-8", 200, "export { uPlot as default }"},
		{"/vendor/uplot/LICENSE", "text/plain; charset=utf-8", 200, "MIT"},
		{"/favicon.ico", "image/svg+xml", 200, "<svg"},
		{"/nope.js", "application/json", 404, `"error"`},
		{"/pages/", "application/json", 404, `"error"`},
		{"/console.go", "application/json", 404, `"error"`},
	} {
		t.Run(tc.path, func(t *testing.T) {
			w := get(t, h, tc.path, nil)
			if w.Code != tc.code || w.Header().Get("Content-Type") != tc.ctype || !strings.Contains(w.Body.String(), tc.contains) {
				t.Fatalf("GET %s = %d %q, want %d %q containing %q:\n%.200s", tc.path, w.Code, w.Header().Get("Content-Type"), tc.code, tc.ctype, tc.contains, w.Body.String())
			}
			if tc.code == 404 {
				var e map[string]string
				if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e["error"] == "" {
					t.Fatalf("404 body %q is not a JSON error", w.Body.String())
				}
			}
		})
	}
}

func TestReadOnly(t *testing.T) {
	w := httptest.NewRecorder()
	Handler().ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/", nil))
	if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "GET, HEAD" || !strings.Contains(w.Body.String(), `"error"`) {
		t.Fatalf("POST / = %d, Allow %q, %s", w.Code, w.Header().Get("Allow"), w.Body.String())
	}
}

func TestGzipAndETag(t *testing.T) {
	h := Handler()
	plain := get(t, h, "/vendor/uplot/uPlot.esm.js", nil)
	if plain.Header().Get("Content-Encoding") != "" {
		t.Fatal("gzip sent to a client that did not ask")
	}
	zipped := get(t, h, "/vendor/uplot/uPlot.esm.js", map[string]string{"Accept-Encoding": "br, gzip;q=0.8"})
	if zipped.Header().Get("Content-Encoding") != "gzip" || zipped.Body.Len() >= plain.Body.Len()/2 {
		t.Fatalf("gzipped answer: encoding %q, %d bytes against %d", zipped.Header().Get("Content-Encoding"), zipped.Body.Len(), plain.Body.Len())
	}
	zr, err := gzip.NewReader(zipped.Body)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(zr)
	if err != nil || !bytes.Equal(body, plain.Body.Bytes()) {
		t.Fatalf("gunzipped body differs (%v)", err)
	}
	if get(t, h, "/vendor/uplot/uPlot.esm.js", map[string]string{"Accept-Encoding": "gzip;q=0"}).Header().Get("Content-Encoding") != "" {
		t.Fatal("gzip sent with q=0")
	}
	etag := plain.Header().Get("ETag")
	if etag == "" || plain.Header().Get("Cache-Control") != "no-cache" {
		t.Fatalf("ETag %q, Cache-Control %q", etag, plain.Header().Get("Cache-Control"))
	}
	if w := get(t, h, "/vendor/uplot/uPlot.esm.js", map[string]string{"If-None-Match": etag}); w.Code != http.StatusNotModified || w.Body.Len() != 0 {
		t.Fatalf("If-None-Match: %d, %d bytes", w.Code, w.Body.Len())
	}
}

// TestNoHTMLFromStrings keeps the console's promise: no inline script or
// style (the CSP forbids them) and no API that parses a string as HTML or
// code, so that host data (a reverse-DNS name is outside input) is only
// ever text. The vendored library is checked for the HTML sinks too.
func TestNoHTMLFromStrings(t *testing.T) {
	sinks := regexp.MustCompile(`\.innerHTML|\.outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|setAttribute\(\s*['"](style|on)|createContextualFragment|DOMParser`)
	inline := regexp.MustCompile(`(?i)<script(?:\s+type="module")?>|<script[^>]*>[^<]+</script>|\sstyle=|\son[a-z]+=`)
	checked := 0
	err := fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(files, p)
		if err != nil {
			return err
		}
		switch {
		case strings.HasSuffix(p, ".js"):
			checked++
			if m := sinks.Find(b); m != nil {
				t.Errorf("%s uses %s", p, m)
			}
		case strings.HasSuffix(p, ".html"):
			checked++
			if m := inline.Find(b); m != nil {
				t.Errorf("%s has inline %q", p, m)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 9 {
		t.Fatalf("checked %d files, want the page and its modules", checked)
	}
}
