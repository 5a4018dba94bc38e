package ratelog

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowcheck/flowcheck/clock"
)

var t0 = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

// capture returns a logger writing text lines without time into a
// buffer, and a function returning the lines so far.
func capture() (*slog.Logger, func() []string) {
	var mu sync.Mutex
	var buf bytes.Buffer
	h := slog.NewTextHandler(lockedWriter{&mu, &buf}, &slog.HandlerOptions{
		Level: slog.LevelDebug,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	})
	return slog.New(h), func() []string {
		mu.Lock()
		defer mu.Unlock()
		s := strings.TrimSpace(buf.String())
		if s == "" {
			return nil
		}
		return strings.Split(s, "\n")
	}
}

type lockedWriter struct {
	mu  *sync.Mutex
	buf *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

// step is one line offered to the logger, after moving the clock.
type step struct {
	advance time.Duration
	key     string
	want    string // the line logged, "" if held back
}

func TestLogger(t *testing.T) {
	cases := []struct {
		name    string
		maxKeys int
		steps   []step
	}{
		{"once per period", 8, []step{
			{0, "a", `level=WARN msg=m key=a`},
			{time.Second, "a", ""},
			{8 * time.Second, "a", ""},
			{time.Second, "a", `level=WARN msg=m key=a suppressed=2`},
			{10 * time.Second, "a", `level=WARN msg=m key=a`},
		}},
		{"keys apart", 8, []step{
			{0, "a", `level=WARN msg=m key=a`},
			{0, "b", `level=WARN msg=m key=b`},
			{time.Second, "a", ""},
			{time.Second, "b", ""},
			{time.Second, "b", ""},
			{9 * time.Second, "b", `level=WARN msg=m key=b suppressed=2`},
			{0, "a", `level=WARN msg=m key=a suppressed=1`},
		}},
		{"beyond maxKeys the others share one key", 2, []step{
			{0, "a", `level=WARN msg=m key=a`},
			{0, "b", `level=WARN msg=m key=b`},
			{0, "c", `level=WARN msg=m key=c keys_told_apart=2`},
			{0, "d", ""},
			{0, "c", ""},
			{0, "a", ""},
			{10 * time.Second, "a", `level=WARN msg=m key=a suppressed=1`},
			{0, "b", `level=WARN msg=m key=b`},
			{0, "d", `level=WARN msg=m key=d suppressed=2 keys_told_apart=2`},
		}},
		{"keys silent for a period make room, their untold lines told by the shared key", 2, []step{
			{0, "a", `level=WARN msg=m key=a`},
			{0, "a", ""},
			{0, "b", `level=WARN msg=m key=b`},
			{0, "c", `level=WARN msg=m key=c keys_told_apart=2`},
			{10 * time.Second, "b", `level=WARN msg=m key=b`},
			{0, "d", `level=WARN msg=m key=d`}, // a pruned, b kept
			{0, "e", `level=WARN msg=m key=e suppressed=1 keys_told_apart=2`},
			{0, "b", ""},
		}},
		{"a clock that goes back logs", 8, []step{
			{0, "a", `level=WARN msg=m key=a`},
			{-time.Second, "a", `level=WARN msg=m key=a`},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			logger, lines := capture()
			l := New[string](logger, clock.Live{}, 10*time.Second, tc.maxKeys)
			now := t0
			for i, s := range tc.steps {
				now = now.Add(s.advance)
				before := len(lines())
				l.LogAt(now, slog.LevelWarn, s.key, "m", "key", s.key)
				got := lines()
				switch {
				case s.want == "" && len(got) != before:
					t.Errorf("step %d (%s): logged %q, want held back", i, s.key, got[len(got)-1])
				case s.want != "" && (len(got) != before+1 || got[len(got)-1] != s.want):
					t.Errorf("step %d (%s): lines %q, want %q", i, s.key, got[before:], s.want)
				}
			}
		})
	}
}

// TestLoggerClock checks that Log reads the logger's clock, the level
// given, and a key type other than string.
func TestLoggerClock(t *testing.T) {
	logger, lines := capture()
	clk := clock.NewManual(t0)
	type key struct{ sink, reason string }
	l := New[key](logger, clk, time.Minute, 4)
	for range 3 {
		l.Log(slog.LevelError, key{"kafka", "spool"}, "cannot spool")
	}
	l.Log(slog.LevelInfo, key{"kafka", "up"}, "connected")
	clk.Advance(time.Minute)
	l.Log(slog.LevelError, key{"kafka", "spool"}, "cannot spool")
	want := []string{
		`level=ERROR msg="cannot spool"`,
		`level=INFO msg=connected`,
		`level=ERROR msg="cannot spool" suppressed=2`,
	}
	if got := lines(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("lines %q, want %q", got, want)
	}
}

// TestLoggerHeldBackAllocates checks that a line held back, args
// included, allocates nothing, for a key of its own or the shared one:
// callers log from the receive path.
func TestLoggerHeldBackAllocates(t *testing.T) {
	url, n := "netflow://127.0.0.1:2055", 12345
	key := "queue\x00" + url
	byName := New[string](slog.New(slog.DiscardHandler), clock.Live{}, time.Hour, 4)
	senders := New[netip.Addr](slog.New(slog.DiscardHandler), clock.Live{}, time.Hour, 1).KeyAs("sender")
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::2")
	cases := []struct {
		name string
		line func()
	}{
		{"string key, string and int args", func() {
			byName.Log(slog.LevelWarn, key, "decode queue full", "listener", url, "dropped", n)
		}},
		{"address key as attribute", func() { senders.Log(slog.LevelWarn, a, "dropped", "count", n) }},
		{"address key beyond maxKeys", func() { senders.Log(slog.LevelWarn, b, "dropped", "count", n) }},
	}
	for _, tc := range cases {
		tc.line()
		if allocs := testing.AllocsPerRun(100, tc.line); allocs != 0 {
			t.Errorf("%s: %v allocations per line held back", tc.name, allocs)
		}
	}
}

// TestLoggerKeyAs checks that KeyAs puts the key first on each line.
func TestLoggerKeyAs(t *testing.T) {
	logger, lines := capture()
	clk := clock.NewManual(t0)
	l := New[netip.Addr](logger, clk, time.Minute, 4).KeyAs("sender")
	a := netip.MustParseAddr("192.0.2.1")
	l.Log(slog.LevelWarn, a, "dropped", "port", 9)
	l.Log(slog.LevelWarn, a, "dropped", "port", 9)
	clk.Advance(time.Minute)
	l.Log(slog.LevelWarn, a, "dropped", "port", 9)
	want := []string{`level=WARN msg=dropped sender=192.0.2.1 port=9`, `level=WARN msg=dropped sender=192.0.2.1 port=9 suppressed=1`}
	if got := lines(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("lines %q, want %q", got, want)
	}
}

// TestLoggerConcurrent logs one key from several goroutines: exactly one
// line gets through in a period, and the next one tells the rest.
func TestLoggerConcurrent(t *testing.T) {
	logger, lines := capture()
	clk := clock.NewManual(t0)
	l := New[string](logger, clk, time.Minute, 4)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 100 {
				l.Log(slog.LevelWarn, "k", "m")
			}
		})
	}
	wg.Wait()
	clk.Advance(time.Minute)
	l.Log(slog.LevelWarn, "k", "m")
	want := []string{`level=WARN msg=m`, `level=WARN msg=m suppressed=399`}
	if got := lines(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("lines %q, want %q", got, want)
	}
}
