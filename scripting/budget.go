package scripting

import (
	"context"
	"errors"
	rtmetrics "runtime/metrics"
	"sync"
	"sync/atomic"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// stopReason says why a call was stopped.
type stopReason uint32

const (
	stopNone stopReason = iota
	// stopSteps: the call used its instruction budget (max_instructions).
	stopSteps
	// stopCPU: the call ran longer than call_timeout (thread CPU time).
	stopCPU
	// stopMemory: the call allocated more than max_memory.
	stopMemory
	// stopCancel: the tick was cancelled (shutdown).
	stopCancel
)

// Errors a stopped call fails with.
var (
	errSteps  = errors.New("instruction budget exceeded (scripting.max_instructions)")
	errCPU    = errors.New("call timeout exceeded (scripting.call_timeout)")
	errMemory = errors.New("memory ceiling exceeded (scripting.max_memory)")
	errCancel = errors.New("tick cancelled")
)

func (r stopReason) err() error {
	switch r {
	case stopSteps:
		return errSteps
	case stopCPU:
		return errCPU
	case stopMemory:
		return errMemory
	case stopCancel:
		return errCancel
	}
	return nil
}

// budget is the context a VM runs with. gopher-lua calls Done() before
// every instruction: Done counts them (the deterministic budget, the same
// on every machine) and hands out a closed channel once the call has used
// its steps, so that the next instruction raises, and keeps raising until
// the call unwinds (pcall cannot swallow it). The built-ins that do work
// in Go charge their work as steps (charge). A watchdog closes the channel
// of a call that runs too long in CPU time, allocates too much, or whose
// tick is cancelled. Arming and disarming a call are two atomic increments
// and two stores: the per-call budget costs no allocation and no timer.
type budget struct {
	// steps counts the instructions and charged work of the call in
	// progress, limit is its cap. Only the VM's goroutine touches them.
	steps, limit int64
	// exhausted is closed at creation: what Done returns past the limit.
	exhausted chan struct{}

	done atomic.Pointer[chan struct{}]
	// seq is odd while a call runs; each call has its own pair of values.
	seq atomic.Uint64
	// fired is set by the watchdog before it looks at seq, and read by the
	// VM after it bumps seq (Dekker-style), so that a channel closed for a
	// finished call is always replaced before the next call.
	fired atomic.Bool
	// reason is why the watchdog stopped the call.
	reason atomic.Uint32
	// tid is the OS thread the VM's calls run on during a tick (0: not
	// pinned), for the watchdog's CPU clock.
	tid atomic.Int64
	// walk asks the VM to measure its checks' memory after its next call.
	walk atomic.Bool

	mu     sync.Mutex
	closed bool
}

func newBudget() *budget {
	b := &budget{exhausted: make(chan struct{})}
	close(b.exhausted)
	ch := make(chan struct{})
	b.done.Store(&ch)
	return b
}

// Deadline implements context.Context; the budget is enforced by Done and
// the watchdog.
func (b *budget) Deadline() (time.Time, bool) { return time.Time{}, false }

// Done implements context.Context; gopher-lua calls it before every
// instruction.
func (b *budget) Done() <-chan struct{} {
	b.steps++
	if b.steps > b.limit {
		return b.exhausted
	}
	return *b.done.Load()
}

// Err implements context.Context.
func (b *budget) Err() error {
	if b.steps > b.limit {
		return errSteps
	}
	select {
	case <-*b.done.Load():
		if err := stopReason(b.reason.Load()).err(); err != nil {
			return err
		}
		return context.Canceled
	default:
		return nil
	}
}

// Value implements context.Context.
func (b *budget) Value(any) any { return nil }

// arm marks the start of a call that may use limit steps.
func (b *budget) arm(limit int64) {
	b.steps, b.limit = 0, limit
	b.seq.Add(1)
}

// disarm marks the end of a call and reports why it was stopped
// (stopNone: it was not); it then gives the next call a fresh channel.
func (b *budget) disarm() stopReason {
	b.seq.Add(1)
	r := stopNone
	if b.steps > b.limit {
		r = stopSteps
	}
	if !b.fired.Load() {
		return r
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		if r == stopNone {
			r = stopReason(b.reason.Load())
		}
		ch := make(chan struct{})
		b.done.Store(&ch)
		b.closed = false
	}
	b.fired.Store(false)
	return r
}

// spent reports why the call in progress must stop, after charging n
// steps of work done in Go (stopNone: it may go on).
func (b *budget) spent(n int) stopReason {
	b.steps += int64(n)
	if b.steps > b.limit {
		return stopSteps
	}
	select {
	case <-*b.done.Load():
		return stopReason(b.reason.Load())
	default:
		return stopNone
	}
}

// charge charges n steps of work done by a built-in and raises the call's
// error when the budget is used up.
func (b *budget) charge(L *lua.LState, n int) {
	if r := b.spent(n); r != stopNone {
		L.RaiseError("%s", r.err())
	}
}

// fire stops the call numbered seq, if it still runs, for reason r.
func (b *budget) fire(seq uint64, r stopReason) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	b.fired.Store(true)
	if b.seq.Load() == seq {
		b.reason.Store(uint32(r))
		close(*b.done.Load())
		b.closed = true
		return
	}
	b.fired.Store(false)
}

// watchLimits are what the watchdog enforces.
type watchLimits struct {
	// cpu is the CPU time a call may use (thread CPU time where the
	// platform has it, else wall time); 0 enforces none (replay).
	cpu time.Duration
	// memory is what a call may allocate, and how much the process may
	// allocate between two measures of the checks' memory.
	memory int64
}

// allocCounter reads the Go heap's cumulative allocated bytes, without
// stopping the world.
type allocCounter struct{ s []rtmetrics.Sample }

func newAllocCounter() *allocCounter {
	return &allocCounter{s: []rtmetrics.Sample{{Name: "/gc/heap/allocs:bytes"}}}
}

func (a *allocCounter) read() int64 {
	rtmetrics.Read(a.s)
	if a.s[0].Value.Kind() != rtmetrics.KindUint64 {
		return 0
	}
	return int64(a.s[0].Value.Uint64())
}

// watchdog polls the budgets of a tick's VMs until stop is closed. It stops
// a call that has used lim.cpu of CPU time (within lim.cpu + one period),
// one that has allocated more than lim.memory while it was watched (only a
// call that runs for a whole period can be charged: healthy calls take
// microseconds), and, once ctx is cancelled, every call in progress. Every
// lim.memory allocated by the process (walked holds the count at the last
// request, kept across ticks) it asks every VM to measure its checks'
// memory after its next call, so that what a check keeps grows by at most
// about lim.memory between two measures.
func watchdog(ctx context.Context, stop <-chan struct{}, budgets []*budget, lim watchLimits, walked *atomic.Int64) {
	period := lim.cpu / 8
	if lim.cpu == 0 {
		period = 5 * time.Millisecond
	}
	period = min(max(period, time.Millisecond), 10*time.Millisecond)
	type obs struct {
		seq    uint64
		cpu    time.Duration
		allocs int64
		wall   time.Duration
	}
	allocs := newAllocCounter()
	seen := make([]obs, len(budgets))
	t := time.NewTicker(period)
	defer t.Stop()
	// askWalk asks every VM to measure its checks once the process has
	// allocated lim.memory since the last request.
	askWalk := func(total int64) {
		if lim.memory > 0 && total-walked.Load() >= lim.memory {
			walked.Store(total)
			for _, b := range budgets {
				b.walk.Store(true)
			}
		}
	}
	for {
		select {
		case <-stop:
			// A tick shorter than a period is looked at once, at its end.
			askWalk(allocs.read())
			return
		case <-t.C:
		case <-ctx.Done():
		}
		cancelled := ctx.Err() != nil
		total := allocs.read()
		askWalk(total)
		for i, b := range budgets {
			s := b.seq.Load()
			if s%2 == 0 {
				seen[i] = obs{}
				continue
			}
			if cancelled {
				b.fire(s, stopCancel)
				continue
			}
			cpu, ok := threadCPU(b.tid.Load())
			if s != seen[i].seq {
				seen[i] = obs{seq: s, cpu: cpu, allocs: total}
				continue
			}
			o := &seen[i]
			o.wall += period
			used := o.wall
			if ok {
				used = cpu - o.cpu
			}
			switch {
			case lim.memory > 0 && total-o.allocs > lim.memory:
				b.fire(s, stopMemory)
			case lim.cpu > 0 && used+period >= lim.cpu:
				// The call ran for up to a period before it was first
				// seen: count that period.
				b.fire(s, stopCPU)
			}
		}
		if cancelled {
			// Keep stopping calls until the workers have returned, but
			// without spinning.
			select {
			case <-stop:
				askWalk(allocs.read())
				return
			case <-t.C:
			}
		}
	}
}
