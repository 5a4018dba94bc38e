package scripting

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// budget is the context a VM runs with. gopher-lua polls Done() between
// instructions; a watchdog closes the channel of a call that has run past
// the budget. Arming and disarming a call are two atomic increments, so the
// per-call budget costs no allocation and no timer.
type budget struct {
	done atomic.Pointer[chan struct{}]
	// seq is odd while a call runs; each call has its own pair of values.
	seq atomic.Uint64
	// fired is set by the watchdog before it looks at seq, and read by the
	// VM after it bumps seq (Dekker-style), so that a channel closed for a
	// finished call is always replaced before the next call.
	fired atomic.Bool

	mu     sync.Mutex
	closed bool
}

func newBudget() *budget {
	b := &budget{}
	ch := make(chan struct{})
	b.done.Store(&ch)
	return b
}

// Deadline implements context.Context; the deadline is enforced by the
// watchdog.
func (b *budget) Deadline() (time.Time, bool) { return time.Time{}, false }

// Done implements context.Context.
func (b *budget) Done() <-chan struct{} { return *b.done.Load() }

// Err implements context.Context.
func (b *budget) Err() error {
	select {
	case <-b.Done():
		return context.DeadlineExceeded
	default:
		return nil
	}
}

// Value implements context.Context.
func (b *budget) Value(any) any { return nil }

// arm marks the start of a call.
func (b *budget) arm() { b.seq.Add(1) }

// disarm marks the end of a call and reports whether the watchdog stopped
// it; it then gives the next call a fresh channel.
func (b *budget) disarm() bool {
	b.seq.Add(1)
	if !b.fired.Load() {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	stopped := b.closed
	if stopped {
		ch := make(chan struct{})
		b.done.Store(&ch)
		b.closed = false
	}
	b.fired.Store(false)
	return stopped
}

// fire stops the call numbered seq if it still runs.
func (b *budget) fire(seq uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	b.fired.Store(true)
	if b.seq.Load() == seq {
		close(*b.done.Load())
		b.closed = true
		return
	}
	b.fired.Store(false)
}

// watchdog polls the budgets of a tick's VMs and stops calls that have run
// longer than timeout (they are stopped between timeout and timeout×1.25).
func watchdog(ctx context.Context, budgets []*budget, timeout time.Duration) {
	period := timeout / 4
	if period < time.Millisecond {
		period = time.Millisecond
	}
	type obs struct {
		seq     uint64
		elapsed time.Duration
	}
	seen := make([]obs, len(budgets))
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for i, b := range budgets {
			s := b.seq.Load()
			if s%2 == 0 {
				seen[i] = obs{}
				continue
			}
			if s != seen[i].seq {
				seen[i] = obs{seq: s}
				continue
			}
			seen[i].elapsed += period
			if seen[i].elapsed >= timeout {
				b.fire(s)
			}
		}
	}
}
