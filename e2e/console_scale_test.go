package e2e

import (
	be "encoding/binary"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// v5Datagram is a NetFlow v5 export of n records from n distinct local
// sources (10.1.0.0 + first…) to one remote address, each one TCP flow
// whose size depends on its source so that orders are not all ties.
func v5Datagram(first, n int, seq uint32) []byte {
	b := make([]byte, 24+48*n)
	be.BigEndian.PutUint16(b[0:], 5)
	be.BigEndian.PutUint16(b[2:], uint16(n))
	be.BigEndian.PutUint32(b[4:], 1000)                      // sysUptime
	be.BigEndian.PutUint32(b[8:], uint32(time.Now().Unix())) // unix_secs
	be.BigEndian.PutUint32(b[16:], seq)
	for i := range n {
		r := b[24+48*i:]
		src := uint32(10<<24|1<<16) + uint32(first+i)
		be.BigEndian.PutUint32(r[0:], src)
		be.BigEndian.PutUint32(r[4:], 192<<24|0<<16|2<<8|1)
		be.BigEndian.PutUint32(r[16:], 1+uint32((first+i)%7))        // packets
		be.BigEndian.PutUint32(r[20:], 60+uint32((first+i)%10007))   // bytes
		be.BigEndian.PutUint32(r[24:], 900)                          // first
		be.BigEndian.PutUint32(r[28:], 1000)                         // last
		be.BigEndian.PutUint16(r[32:], uint16(1024+(first+i)%60000)) // src port
		be.BigEndian.PutUint16(r[34:], 443)
		r[37] = 0x1b // FIN SYN PSH ACK
		r[38] = 6
	}
	return b
}

// TestConsoleScale measures (and asserts nothing of) the hosts page with
// CONSOLE_SCALE_HOSTS hosts in the table (docs/performance.md: 100000): the
// API's answer time and the browser's time to render a page of 50 and of
// 1000 hosts, per order. It runs only when the variable is set.
func TestConsoleScale(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("CONSOLE_SCALE_HOSTS"))
	if n <= 0 {
		t.Skip("set CONSOLE_SCALE_HOSTS=100000 to measure the console with that many hosts")
	}
	browser := newBrowser(t)
	d := startDaemon(t, consoleConfig(filepath.Join(t.TempDir(), "alerts.json")))
	conn, err := net.Dial("udp", d.udp)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	for first, seq := 0, uint32(0); first < n; first += 30 {
		k := min(30, n-first)
		if _, err := conn.Write(v5Datagram(first, k, seq)); err != nil {
			t.Fatal(err)
		}
		seq += uint32(k)
		time.Sleep(100 * time.Microsecond)
	}
	for {
		var page struct {
			Total int `json:"total"`
		}
		d.getJSON(t, "/api/v1/hosts?limit=1", &page)
		if page.Total >= n+1 {
			break
		}
		if time.Since(start) > 2*time.Minute {
			t.Fatalf("%d hosts of %d after 2 min", page.Total, n+1)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("fed %d hosts in %v", n+1, time.Since(start).Round(time.Millisecond))

	// The API alone: the median of 5 answers per order.
	for _, sort := range []string{"bytes", "score", "refused_ports", "noreply_peers"} {
		for _, limit := range []int{50, 1000} {
			var times []time.Duration
			for range 5 {
				t0 := time.Now()
				resp, err := http.Get(fmt.Sprintf("http://%s/api/v1/hosts?sort=%s&limit=%d", d.http, sort, limit))
				if err != nil {
					t.Fatal(err)
				}
				body := make([]byte, 1<<20)
				size := 0
				for {
					k, err := resp.Body.Read(body)
					size += k
					if err != nil {
						break
					}
				}
				resp.Body.Close()
				times = append(times, time.Since(t0))
				if resp.StatusCode != 200 {
					t.Fatalf("hosts sort=%s: %d", sort, resp.StatusCode)
				}
				if limit == 1000 && len(times) == 1 {
					t.Logf("API hosts?limit=1000: %d KB of JSON", size/1000)
				}
			}
			slices.Sort(times)
			t.Logf("API hosts?sort=%s&limit=%d: median %v (min %v, max %v)", sort, limit, times[2].Round(time.Millisecond/10), times[0].Round(time.Millisecond/10), times[4].Round(time.Millisecond/10))
		}
	}

	ctx, plog := newTab(t, browser)
	base := "http://" + d.http + "/"
	t0 := time.Now()
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"#/hosts")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, `document.querySelectorAll('#hosts tbody tr').length === 50`)
	t.Logf("cold open of #/hosts (50 rows), navigation to rows drawn: %v", time.Since(t0).Round(time.Millisecond))
	// In the page: from the hash change to the table's rows in the DOM and
	// the next frame drawn, per order and page size; and of that, the time
	// until the API's answer had arrived (Resource Timing), the rest being
	// the console's own work (JSON parse, DOM, layout, paint).
	type sample struct{ Total, API float64 }
	sorts := []string{"score", "refused_ports", "noreply_peers", "bytes"}
	for _, size := range []int{50, 1000} {
		times := map[string][]sample{}
		// Each hash differs from the one before: the orders in turn.
		for round := range 3 {
			for _, sort := range sorts {
				js := fmt.Sprintf(`new Promise((resolve) => {
  performance.clearResourceTimings();
  const t0 = performance.now();
  const done = () => document.querySelector('#hosts th.sorted a[data-sort=%[1]q]') && document.querySelectorAll('#hosts tbody tr').length === %[2]d;
  const obs = new MutationObserver(() => {
    if (!done()) return;
    obs.disconnect();
    requestAnimationFrame(() => setTimeout(() => {
      const api = performance.getEntriesByType('resource').filter((e) => e.name.includes('api/v1/hosts?')).pop();
      resolve({Total: performance.now() - t0, API: api ? api.responseEnd - t0 : -1});
    }));
  });
  obs.observe(document.getElementById('view'), {childList: true, subtree: true});
  location.hash = '#/hosts?sort=%[1]s&size=%[2]d&round=%[3]d';
})`, sort, size, round)
				v, err := chromedp.Run(ctx, chromedp.Evaluate[sample](js, func(p *runtime.EvaluateParams) { p.AwaitPromise = new(true) }))
				if err != nil {
					t.Fatal(err)
				}
				times[sort] = append(times[sort], v)
			}
		}
		for _, sort := range sorts {
			ts := times[sort]
			slices.SortFunc(ts, func(a, b sample) int { return int(a.Total - b.Total) })
			m := ts[1]
			t.Logf("render #/hosts?sort=%s with %d rows: median %.0f ms (API answer in at %.0f ms, console %.0f ms; min %.0f, max %.0f)",
				sort, size, m.Total, m.API, m.Total-m.API, ts[0].Total, ts[2].Total)
		}
	}
	if errs := plog.take(); len(errs) > 0 {
		t.Errorf("the console logged errors:\n%v", errs)
	}
}
