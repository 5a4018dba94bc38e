package e2e

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// screenshots makes TestConsole write its screenshots into docs/screenshots
// (committed, shown by the README) rather than into a temporary directory:
// go test ./e2e -run Console -args -screenshots
var screenshots = flag.Bool("screenshots", false, "write the console's screenshots to docs/screenshots")

// hostileName is the display name the console test gives a host: were it
// parsed as HTML, the page would set window.pwned.
const hostileName = `<script>window.pwned=1</script><img src=x onerror="window.pwned=2">`

// consoleConfig is the daemon's configuration in the console tests: the
// restart tests' short windows (a scan alert engages within seconds and is
// released a few seconds after its traffic), and a hostile static name.
func consoleConfig(alerts string) string {
	return `instance: e2e
log:
  level: info
  format: json
http:
  listen: 127.0.0.1:0
collector:
  listeners:
    - url: auto://127.0.0.1:0
      sockets: 1
      rcvbuf: 33554432
aggregate:
  reply_window: 2s
  names:
    "10.99.0.30": '` + hostileName + `'
  idle_timeout:
    local: 300s
    remote: 300s
scripting:
  interval: 10s
sinks:
  stdout:
    enabled: false
  file:
    enabled: true
    path: "` + alerts + `"
`
}

// chromium finds the browser: CHROME_PATH, else chromium on PATH. The test
// skips without it, except under CI, where a missing browser fails.
func chromium(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("CHROME_PATH"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is required under CI (Debian package chromium)")
	}
	t.Skip("chromium not installed (apt-get install chromium fonts-liberation); skipping outside CI")
	return ""
}

// newBrowser starts one headless browser for a test; tabs share it.
func newBrowser(t testing.TB) context.Context {
	t.Helper()
	exe := chromium(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.Env("TMPDIR="+t.TempDir()))
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	bctx, bcancel := chromedp.NewContext(actx)
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	t.Cleanup(func() { bcancel(); acancel(); cancel() })
	return bctx
}

// pageLog gathers what a tab reports: console errors, uncaught exceptions,
// browser log errors (CSP violations, failed loads), and the bytes each
// response took on the wire.
type pageLog struct {
	mu       sync.Mutex
	errors   []string
	kinds    map[network.RequestID]network.ResourceType
	urls     map[network.RequestID]string
	bytes    map[network.ResourceType]float64
	requests int
}

func (l *pageLog) listen(ev any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch e := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		if e.Type == runtime.ConsoleAPICalledTypeError || e.Type == runtime.ConsoleAPICalledTypeAssert {
			var parts []string
			for _, a := range e.Args {
				parts = append(parts, strings.Trim(string(a.Value), `"`)+a.Description)
			}
			l.errors = append(l.errors, "console."+string(e.Type)+": "+strings.Join(parts, " "))
		}
	case *runtime.EventExceptionThrown:
		d := e.ExceptionDetails
		msg := d.Text
		if d.Exception != nil {
			msg += " " + d.Exception.Description
		}
		l.errors = append(l.errors, fmt.Sprintf("exception at %s:%d: %s", d.URL, d.LineNumber, msg))
	case *cdplog.EventEntryAdded:
		if e.Entry.Level == cdplog.EntryLevelError || e.Entry.Source == cdplog.EntrySourceSecurity {
			l.errors = append(l.errors, fmt.Sprintf("log %s %s: %s %s", e.Entry.Source, e.Entry.Level, e.Entry.Text, e.Entry.URL))
		}
	case *network.EventResponseReceived:
		l.kinds[e.RequestID] = e.Type
		l.urls[e.RequestID] = e.Response.URL
	case *network.EventLoadingFinished:
		l.bytes[l.kinds[e.RequestID]] += e.EncodedDataLength
		l.requests++
	case *network.EventLoadingFailed:
		if e.Canceled {
			return // a request the console abandoned when its page was left
		}
		l.errors = append(l.errors, fmt.Sprintf("load failed: %s %s", l.urls[e.RequestID], e.ErrorText))
	}
}

// take returns the errors so far and forgets them.
func (l *pageLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	errs := l.errors
	l.errors = nil
	return errs
}

// weight returns the bytes transferred so far (all, and of API answers)
// and the number of responses, and starts counting again.
func (l *pageLog) weight() (total, api float64, requests int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for kind, n := range l.bytes {
		total += n
		if kind == network.ResourceTypeFetch || kind == network.ResourceTypeXHR {
			api += n
		}
	}
	requests = l.requests
	l.bytes, l.requests = map[network.ResourceType]float64{}, 0
	return total, api, requests
}

// newTab opens a tab in a fresh browser context (no cache, no cookies) with
// a 1366×768 viewport, recording its log from its first event.
func newTab(t testing.TB, browser context.Context) (context.Context, *pageLog) {
	t.Helper()
	l := &pageLog{kinds: map[network.RequestID]network.ResourceType{}, urls: map[network.RequestID]string{}, bytes: map[network.ResourceType]float64{}}
	ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext(), chromedp.WithListener(l.listen))
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1366, 768)); err != nil {
		t.Fatal(err)
	}
	// Every page is measured cold: nothing comes from the cache.
	if _, err := chromedp.Call(ctx, network.SetCacheDisabled, network.SetCacheDisabledParams{CacheDisabled: true}); err != nil {
		t.Fatal(err)
	}
	return ctx, l
}

// text is the text of the first element a CSS selector matches, once it is
// visible.
func text(t testing.TB, ctx context.Context, sel string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("text of %s: %v", sel, err)
	}
	return strings.TrimSpace(s)
}

// texts are the texts of every element a CSS selector matches, read at
// once (empty when none).
func texts(t testing.TB, ctx context.Context, sel string) []string {
	t.Helper()
	js := fmt.Sprintf(`Array.from(document.querySelectorAll(%q)).map((e) => e.textContent.trim())`, sel)
	out, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](js))
	if err != nil {
		t.Fatalf("texts of %s: %v", sel, err)
	}
	return out
}

// waitFor polls a JavaScript condition until it holds.
func waitFor(t testing.TB, ctx context.Context, cond string) {
	t.Helper()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := chromedp.Run(wctx, chromedp.Poll[bool](cond, chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
		t.Fatalf("waiting for %s: %v", cond, err)
	}
}

// truthRow returns the cells of the row of a markdown table in
// testdata/scan-mix-truth.md whose first cell starts with prefix.
func truthRow(t testing.TB, prefix string) []string {
	t.Helper()
	f, err := os.Open("../testdata/scan-mix-truth.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "| "+prefix) {
			continue
		}
		var cells []string
		for _, c := range strings.Split(strings.Trim(line, "|"), "|") {
			cells = append(cells, strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(c), "‖")))
		}
		return cells
	}
	t.Fatalf("no row %q in scan-mix-truth.md", prefix)
	return nil
}

// scanMixA is scanner A of scan-mix, from the truth file: its distinct
// one-sided and refused figures as client, and its bytes.
type truthHost struct {
	noReplyPeers, noReplyPorts, refusedPorts, refusedPeers string
	sent, rcvd                                             string
}

func scanMixA(t testing.TB) truthHost {
	// | host | conv | 1side | nrIP | nrPort | nrTCP | nrUDP | ref | refPort | refIP ‖ ...
	fig := truthRow(t, "A 10.99.0.10")
	// | address | sent bytes | received bytes | ...
	bytes := truthRow(t, "10.99.0.10")
	return truthHost{noReplyPeers: fig[3], noReplyPorts: fig[4], refusedPorts: fig[8], refusedPeers: fig[9], sent: bytes[1], rcvd: bytes[2]}
}

// shoot writes a 1366×768 screenshot of the tab.
func shoot(t testing.TB, ctx context.Context, dir, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestConsole runs the daemon, feeds it softflowd's NetFlow v9 export of
// scan-mix over UDP, and opens every page of the console in Chromium: the
// scanner is first by refused ports, its page shows the truth's figures,
// its scan alert is listed, the exporter shows its template, a host name
// made of HTML is shown as text, and no page logs an error.
func TestConsole(t *testing.T) {
	browser := newBrowser(t)
	dir := t.TempDir()
	shots := t.TempDir()
	if *screenshots {
		shots = "../docs/screenshots"
		if err := os.MkdirAll(shots, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	d := startDaemon(t, consoleConfig(filepath.Join(dir, "alerts.json")))
	feed(t, d, "../testdata/softflowd-v9.pcap")
	truth := scanMixA(t)

	// The scan alert is engaged a tick after the reply window, and stays so
	// for two more ticks (10 s each): the pages are opened meanwhile.
	deadline := time.Now().Add(60 * time.Second)
	for {
		var page struct {
			Items []struct {
				Check string `json:"check"`
				Host  struct {
					IP string `json:"ip"`
				} `json:"host"`
			} `json:"items"`
		}
		d.getJSON(t, "/api/v1/alerts?state=engaged&check=scan_detection&limit=1000", &page)
		found := false
		for _, a := range page.Items {
			found = found || (a.Check == "scan_detection" && a.Host.IP == "10.99.0.10")
		}
		// The overview samples once a second: it counts the alert too.
		var overview struct {
			Current struct {
				Alerts map[string]int `json:"alerts"`
			} `json:"current"`
		}
		d.getJSON(t, "/api/v1/overview?since=0", &overview)
		if found && overview.Current.Alerts["critical"] > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no scan_detection alert for 10.99.0.10 within 60 s: %+v", page)
		}
		time.Sleep(200 * time.Millisecond)
	}
	base := "http://" + d.http + "/"
	ctx, plog := newTab(t, browser)
	var weights []string // bytes transferred per page, in the order opened
	visit := func(t *testing.T, name, hash, ready string) {
		t.Helper()
		// A fresh document per page (not a hash change), so that the bytes
		// counted are those of opening the page cold.
		if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
			t.Fatal(err)
		}
		plog.weight()
		if err := chromedp.Do(ctx, chromedp.Navigate(base+hash)); err != nil {
			t.Fatalf("open %s: %v", hash, err)
		}
		waitFor(t, ctx, fmt.Sprintf(`document.querySelector(%q) !== null`, ready))
		total, api, n := plog.weight()
		weights = append(weights, fmt.Sprintf("%s: %d responses, %.1f KB transferred (%.1f KB of API JSON)", name, n, total/1000, api/1000))
	}

	t.Run("overview", func(t *testing.T) {
		visit(t, "overview", "#/", "#cards .value")
		waitFor(t, ctx, `document.querySelectorAll('.chart canvas').length >= 6`)
		if got := text(t, ctx, "#card-exporters .value"); got != "1" {
			t.Errorf("exporters card = %q, want 1", got)
		}
		shoot(t, ctx, shots, "overview")
	})

	t.Run("hosts", func(t *testing.T) {
		visit(t, "hosts", "#/hosts", "#hosts tbody tr a.host")
		// The scanner is one click away: the tab sorting by refused ports.
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`.tabs a[data-sort="refused_ports"]`))); err != nil {
			t.Fatal(err)
		}
		waitFor(t, ctx, `document.querySelector('#hosts th.sorted a[data-sort="refused_ports"]') !== null`)
		hosts := texts(t, ctx, "#hosts tbody tr td:first-child")
		if len(hosts) < 2 || hosts[0] != "10.99.0.10" || hosts[1] != "10.99.0.30" {
			t.Fatalf("hosts by refused ports = %v, want 10.99.0.10 then 10.99.0.30 first", hosts)
		}
		// The hostile name is text in the table, and ran nothing.
		names := texts(t, ctx, "#hosts tbody tr td:nth-child(2)")
		if names[1] != hostileName {
			t.Errorf("name of 10.99.0.30 shown as %q, want the text %q", names[1], hostileName)
		}
		shoot(t, ctx, shots, "hosts")
		range_ := text(t, ctx, "#range")
		if !regexp.MustCompile(`^1–\d+ of \d+ hosts$`).MatchString(range_) {
			t.Errorf("pager says %q", range_)
		}
		// The scanner's page is one more click.
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#hosts tbody tr:first-child a.host"))); err != nil {
			t.Fatal(err)
		}
		waitFor(t, ctx, `document.querySelector('#host-ip')?.textContent === '10.99.0.10'`)
		// Filters: a CIDR that holds C's 20 addresses.
		visit(t, "hosts (filtered)", "#/hosts", "#hosts tbody tr a.host")
		if err := chromedp.Do(ctx, chromedp.SetValue(chromedp.CSS("#filter-q"), "10.99.0.30/31"), chromedp.Click(chromedp.CSS(`.filters button[type="submit"]`))); err != nil {
			t.Fatal(err)
		}
		waitFor(t, ctx, `(document.querySelector('#range')?.textContent || '').endsWith('of 2 hosts')`)
	})

	t.Run("host", func(t *testing.T) {
		visit(t, "host", "#/host/10.99.0.10", "#refused-ports .members span")
		for _, f := range []struct{ field, want string }{
			{"refused.server_ports", truth.refusedPorts},
			{"refused.peers_as_client", truth.refusedPeers},
			{"noreply.server_ports", truth.noReplyPorts},
			{"noreply.peers_as_client", truth.noReplyPeers},
			{"bytes_sent", truth.sent},
			{"bytes_rcvd", truth.rcvd},
		} {
			if got := text(t, ctx, fmt.Sprintf(`[data-field=%q]`, f.field)); digits(got) != digits(f.want) {
				t.Errorf("host page %s = %q, want %q (scan-mix-truth.md)", f.field, got, f.want)
			}
		}
		// The refused ports' set: its first members, and how many more.
		ports := texts(t, ctx, "#refused-ports .members span")
		if len(ports) < 100 || ports[0] != "1" || ports[1] != "2" {
			t.Errorf("refused ports shown: %d members starting %v, want the first 100 from 1", len(ports), ports[:min(len(ports), 5)])
		}
		if got := text(t, ctx, "#refused-ports .count"); digits(got) != digits(truth.refusedPorts) {
			t.Errorf("refused ports count = %q, want %q", got, truth.refusedPorts)
		}
		alerts := texts(t, ctx, "#host-alerts tbody td:nth-child(2), #host-recent tbody td:nth-child(2)")
		if !contains(alerts, "scan_detection") {
			t.Errorf("host page alerts %v lack scan_detection", alerts)
		}
		if score := text(t, ctx, "#host-score"); score == "0" {
			t.Errorf("score 0 with a scan alert")
		}
		shoot(t, ctx, shots, "host")
		// The host with the hostile name: the name is text.
		visit(t, "host (hostile name)", "#/host/10.99.0.30", "#host-name")
		if got := text(t, ctx, "#host-name"); got != hostileName {
			t.Errorf("hostile name shown as %q", got)
		}
	})

	t.Run("alerts", func(t *testing.T) {
		visit(t, "alerts", "#/alerts", "#alerts-engaged")
		waitFor(t, ctx, `document.querySelector('#alerts-released') !== null`)
		rows := texts(t, ctx, "#alerts-engaged tbody tr, #alerts-released tbody tr")
		found := false
		for _, r := range rows {
			found = found || (strings.Contains(r, "scan_detection") && strings.Contains(r, "10.99.0.10"))
		}
		if !found {
			t.Fatalf("alerts page lacks scan_detection on 10.99.0.10: %q", rows)
		}
		shoot(t, ctx, shots, "alerts")
		// A filter by check keeps only that check's alerts, and each links
		// to its host.
		visit(t, "alerts (filtered)", "#/alerts?check=scan_detection", "#alerts-engaged")
		waitFor(t, ctx, `document.querySelector('#alerts-released') !== null`)
		for _, c := range texts(t, ctx, "#alerts-engaged tbody td:nth-child(2), #alerts-released tbody td:nth-child(2)") {
			if c != "scan_detection" && c != "No engaged alert." && c != "No alert released recently." {
				t.Errorf("check filter shows %q", c)
			}
		}
		links := texts(t, ctx, `#alerts-engaged a.host, #alerts-released a.host`)
		if !contains(links, "10.99.0.10") {
			t.Errorf("no link to 10.99.0.10 among %v", links)
		}
	})

	t.Run("exporters", func(t *testing.T) {
		visit(t, "exporters", "#/exporters", "#exporters-table tbody tr")
		if got := text(t, ctx, "#exporters-table tbody tr td:first-child"); got != "127.0.0.1" {
			t.Errorf("exporter = %q, want 127.0.0.1", got)
		}
		// softflowd's v9 templates: 1024 (IPv4) and 1025 (ICMP) at least.
		ids := texts(t, ctx, `[id="templates-127.0.0.1"] tbody td:nth-child(3)`)
		if !contains(ids, "1024") {
			t.Errorf("templates %v lack 1024", ids)
		}
		if got := text(t, ctx, "#exporters-table tbody tr td:nth-child(2)"); got != "NetFlow v9" {
			t.Errorf("protocols = %q", got)
		}
		shoot(t, ctx, shots, "exporters")
	})

	t.Run("checks", func(t *testing.T) {
		visit(t, "checks", "#/checks", "#checks-table tbody tr")
		names := texts(t, ctx, "#checks-table tbody td:first-child")
		if !contains(names, "scan_detection") {
			t.Errorf("checks %v lack scan_detection", names)
		}
		shoot(t, ctx, shots, "checks")
	})

	// A filter the API refuses is said under the form; the browser logs
	// the 400 itself, and nothing else may be logged.
	t.Run("bad filter", func(t *testing.T) {
		for _, e := range plog.take() {
			t.Errorf("before the bad filter: %s", e)
		}
		visit(t, "bad filter", "#/hosts?q=10.0.0.0/99", "#hosts-error")
		if msg := text(t, ctx, "#hosts-error"); !strings.Contains(msg, "CIDR") {
			t.Errorf("error shown: %q", msg)
		}
		if n := len(texts(t, ctx, "#filter-q")); n != 1 {
			t.Errorf("the filter form is gone")
		}
		for _, e := range plog.take() {
			if !strings.Contains(e, "status of 400") {
				t.Errorf("logged: %s", e)
			}
		}
	})

	pwned, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.pwned !== undefined`))
	if err != nil || pwned {
		t.Errorf("the hostile host name ran as HTML (window.pwned set: %v, %v)", pwned, err)
	}
	if errs := plog.take(); len(errs) > 0 {
		t.Errorf("the console logged errors:\n%s", strings.Join(errs, "\n"))
	}
	for _, w := range weights {
		t.Log(w)
	}
}

// digits drops the thousands separators of a figure.
func digits(s string) string { return strings.ReplaceAll(s, ",", "") }

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
