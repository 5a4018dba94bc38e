package scripting

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/flowcheck/flowcheck/aggregate"
)

// pacedHarness is an engine with one trivial check on n hosts, whose live
// ticks spread their walk over spread of interval.
func pacedHarness(t *testing.T, n int, interval time.Duration, spread float64) *harness {
	t.Helper()
	hosts := newFakeHosts()
	for i := range n {
		k := aggregate.HostKey{Addr: netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})}
		hosts.put(aggregate.HostSnapshot{Key: k})
	}
	return newHarness(t, map[string]string{"noop": "return { check = function(h) end }"}, hosts, func(c *Configuration) {
		c.Interval, c.TickSpread = interval, spread
	})
}

// TestTickPacing checks that a paced tick spreads its walk over
// tick_spread of the interval and still evaluates every host, and that an
// unpaced one does not wait. Only lower bounds on time are asserted: a slow
// machine makes a tick longer, never shorter.
func TestTickPacing(t *testing.T) {
	const n = 10 * tickChunk
	h := pacedHarness(t, n, 2*time.Second, 0.5)
	st := h.e.Tick(context.Background(), t0, true)
	if st.Hosts != n || st.Calls != n || st.Errors != 0 {
		t.Fatalf("paced tick: %+v, want %d hosts and calls", st, n)
	}
	// The last chunk starts at 9/10 of the 1 s spread.
	if st.Paced != time.Second || st.Duration < 900*time.Millisecond {
		t.Fatalf("paced tick took %v over %v; want at least 900ms over 1s", st.Duration, st.Paced)
	}
	st = h.e.Tick(context.Background(), t0.Add(2*time.Second), false)
	if st.Hosts != n || st.Paced != 0 {
		t.Fatalf("unpaced tick: %+v", st)
	}
}

// TestTickPacingCancel checks that a paced tick stops waiting when its
// context ends (shutdown must not wait for the spread).
func TestTickPacingCancel(t *testing.T) {
	const n = 10 * tickChunk
	h := pacedHarness(t, n, time.Minute, 0.9)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	st := h.e.Tick(ctx, t0, true)
	if st.Duration > 30*time.Second || st.Hosts >= n {
		t.Fatalf("cancelled paced tick ran %v over %d hosts; want it to stop early", st.Duration, st.Hosts)
	}
}
