package scripting

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowcheck/flowcheck/aggregate"
	"github.com/flowcheck/flowcheck/alert"
	"github.com/flowcheck/flowcheck/clock"
)

// fakeHosts is an in-memory HostSource.
type fakeHosts struct {
	mu     sync.RWMutex
	m      map[aggregate.HostKey]*aggregate.HostSnapshot
	resets []aggregate.HostKey
}

func newFakeHosts(snaps ...aggregate.HostSnapshot) *fakeHosts {
	f := &fakeHosts{m: map[aggregate.HostKey]*aggregate.HostSnapshot{}}
	for _, s := range snaps {
		f.put(s)
	}
	return f
}

func (f *fakeHosts) put(s aggregate.HostSnapshot) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := s
	f.m[s.Key] = &c
}

func (f *fakeHosts) update(key aggregate.HostKey, fn func(s *aggregate.HostSnapshot)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f.m[key])
}

func (f *fakeHosts) remove(key aggregate.HostKey) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.m, key)
}

func (f *fakeHosts) AppendKeys(dst []aggregate.HostKey) []aggregate.HostKey {
	f.mu.Lock()
	defer f.mu.Unlock()
	start := len(dst)
	for k := range f.m {
		dst = append(dst, k)
	}
	ks := dst[start:]
	sort.Slice(ks, func(i, j int) bool {
		return ks[i].Addr.Less(ks[j].Addr) || (ks[i].Addr == ks[j].Addr && ks[i].VLAN < ks[j].VLAN)
	})
	return dst
}

func (f *fakeHosts) Snapshot(key aggregate.HostKey, dst *aggregate.HostSnapshot) bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	s, ok := f.m[key]
	if !ok {
		return false
	}
	l7 := append(dst.L7[:0], s.L7...)
	*dst = *s
	dst.L7 = l7
	return true
}

func (f *fakeHosts) ResetContacts(key aggregate.HostKey) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.resets = append(f.resets, key)
	if s, ok := f.m[key]; ok {
		s.NoReply, s.Refused = aggregate.ContactCounts{}, aggregate.ContactCounts{}
		s.Unidirectional, s.RefusedFlows = aggregate.UnidirectionalStats{}, aggregate.UnidirectionalStats{}
	}
}

// capture is a Publisher that keeps the events.
type capture struct {
	mu     sync.Mutex
	events []alert.Event
}

func (c *capture) Publish(ev alert.Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.events = append(c.events, ev)
}

// take returns and forgets the events so far, sorted by host then check.
func (c *capture) take() []alert.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.events
	c.events = nil
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Host.IP != out[j].Host.IP {
			return out[i].Host.IP < out[j].Host.IP
		}
		return out[i].Check < out[j].Check
	})
	return out
}

var t0 = time.Date(2026, 11, 27, 19, 13, 0, 0, time.UTC)

// harness is an engine on fake hosts.
type harness struct {
	e     *Engine
	hosts *fakeHosts
	pub   *capture
	clock *clock.Manual
	dir   string
	now   time.Time
}

// writeScripts writes name→source files into dir.
func writeScripts(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for name, src := range files {
		if err := os.WriteFile(filepath.Join(dir, name+".lua"), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// newHarness builds an engine on dir (a temp dir with files, or the shipped
// scripts when files is nil).
func newHarness(t testing.TB, files map[string]string, hosts *fakeHosts, tweak func(*Configuration)) *harness {
	t.Helper()
	cfg := DefaultConfiguration()
	cfg.Workers = 2
	// Generous, so that a loaded machine does not stop calls; the tests of
	// the budget set their own.
	cfg.CallTimeout = time.Second
	cfg.Instance = "test-collector"
	dir := "../scripts"
	if files != nil {
		dir = t.TempDir()
		writeScripts(t, dir, files)
		// Only the test's scripts, unless it asks for the shipped ones.
		cfg.Checks = map[string]CheckConfiguration{}
	}
	cfg.Dirs = []string{dir}
	if tweak != nil {
		tweak(&cfg)
	}
	h := &harness{hosts: hosts, pub: &capture{}, clock: clock.NewManual(t0), dir: dir, now: t0}
	e, err := New(cfg, Dependencies{
		Logger:     slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Registerer: prometheus.NewRegistry(),
		Clock:      h.clock,
		Hosts:      hosts,
		Alerts:     h.pub,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Stop(context.Background()) })
	h.e = e
	return h
}

// tick advances the clock by the interval and runs a tick.
func (h *harness) tick() TickStats {
	h.now = h.now.Add(h.e.Interval())
	h.clock.Set(h.now)
	return h.e.Tick(context.Background(), h.now, false)
}

func key(ip string) aggregate.HostKey {
	return aggregate.HostKey{Addr: netip.MustParseAddr(ip)}
}

// testWriter sends log lines to the test log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// newTextLogger logs to w.
func newTextLogger(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }

// waitReload waits until the engine counts more reloads of result ok than
// before (the watcher reloads on its own goroutine).
func waitReload(t *testing.T, h *harness, before float64) {
	t.Helper()
	ok := h.e.metrics.reloads.WithLabelValues("ok")
	for deadline := time.Now().Add(time.Minute); counterValue(ok) <= before; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the change was not reloaded")
		}
	}
}
