// Package clock is the one time source of the pipeline. The daemon reads the
// wall clock; offline replay drives a Manual clock from capture timestamps, so
// that reply windows, host expiry and ticks run the same code in both modes.
package clock

import (
	"sync/atomic"
	"time"
)

// Clock tells the current time.
type Clock interface {
	Now() time.Time
}

// Live is the wall clock.
type Live struct{}

// Now returns time.Now().
func (Live) Now() time.Time { return time.Now() }

// Manual is a clock that only moves when told to. It is safe for concurrent
// use.
type Manual struct {
	ns atomic.Int64
}

// NewManual returns a Manual clock set to t.
func NewManual(t time.Time) *Manual {
	m := &Manual{}
	m.Set(t)
	return m
}

// Now returns the time last set.
func (m *Manual) Now() time.Time { return time.Unix(0, m.ns.Load()).UTC() }

// Set moves the clock to t. A t before the current time is ignored, so the
// clock never runs backwards when capture timestamps jitter.
func (m *Manual) Set(t time.Time) {
	n := t.UnixNano()
	for {
		cur := m.ns.Load()
		if n <= cur {
			return
		}
		if m.ns.CompareAndSwap(cur, n) {
			return
		}
	}
}

// Advance moves the clock forward by d.
func (m *Manual) Advance(d time.Duration) { m.Set(m.Now().Add(d)) }
