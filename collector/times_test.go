package collector

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestUptimeNanos checks the integer fast path of the uptime conversion
// against the time.Time one, wraps of the uptime counter included.
func TestUptimeNanos(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	cases := []struct {
		init, export time.Time
		up           uint32
	}{
		{time.UnixMilli(1), time.Unix(1, 0), 0},
		{time.UnixMilli(maxPlausibleSec*1000 - 1), time.Unix(maxPlausibleSec-1, 0), 1<<32 - 1},
		{time.UnixMilli(1), time.Unix(maxPlausibleSec-1, 999999999), 12345},
		{t0.Add(-200 * 24 * time.Hour), t0, 1<<32 - 1000},
		{t0, t0.Add(-time.Hour), 5000}, // init after export
	}
	for range 10000 {
		init := time.UnixMilli(1 + rng.Int64N(maxPlausibleSec*1000-1))
		export := time.Unix(1+rng.Int64N(maxPlausibleSec-1), rng.Int64N(1e9))
		cases = append(cases, struct {
			init, export time.Time
			up           uint32
		}{init, export, rng.Uint32()})
	}
	for _, tc := range cases {
		want := uptimeToTime(tc.init, tc.up, tc.export).UTC()
		got := uptimeNanos(tc.init.UnixNano(), tc.up, tc.export.UnixNano()).UTC()
		if got != want {
			t.Fatalf("init %v up %d export %v: %v, want %v", tc.init, tc.up, tc.export, got, want)
		}
	}
}
