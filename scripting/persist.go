package scripting

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flowcheck/flowcheck/aggregate"
	"github.com/flowcheck/flowcheck/alert"
)

// alertStore keeps the engaged alerts across restarts. A tick hands the
// alerts it changed to a writer goroutine (request), so that no tick waits
// for the disk's fsync; Stop writes the final state itself.
type alertStore struct {
	// path is the state file, "" when off; set by Start, read under runMu.
	path string
	// dirty is set when an alert engaged or released since the last write.
	dirty atomic.Bool
	// hosts is a buffer of collectAlerts, reused between writes.
	hosts []*hostEntry

	// next is the snapshot waiting for the writer, nil when none: a newer
	// one replaces it (it holds every engaged alert), so that one waits at
	// most whatever the disk's pace. wake (capacity 1) signals it.
	mu   sync.Mutex
	next *stateSnapshot
	wake chan struct{}
	// quit stops the writer (started by Start when there is a path); done
	// is closed when it returns.
	quit, done chan struct{}
	// writeMu serialises the writes of the file; closed, under it, is set
	// once the final state is written at stop, so that no older snapshot
	// lands after it.
	writeMu sync.Mutex
	closed  bool
}

// stateSnapshot is the content of one write of the state file.
type stateSnapshot struct {
	recs []savedAlert
	at   time.Time
}

// request hands a snapshot to the writer, replacing one still waiting.
func (s *alertStore) request(snap *stateSnapshot) {
	s.mu.Lock()
	s.next = snap
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default: // already signalled: the writer takes the latest
	}
}

// startWriter starts the writer goroutine. Called with runMu held.
func (e *Engine) startWriter() {
	s := &e.store
	s.wake = make(chan struct{}, 1)
	s.quit, s.done = make(chan struct{}), make(chan struct{})
	go e.runWriter(s.quit, s.done)
}

// runWriter writes the requested snapshots until quit.
func (e *Engine) runWriter(quit <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	s := &e.store
	for {
		select {
		case <-quit:
			return // Stop writes the final state
		case <-s.wake:
		}
		s.mu.Lock()
		snap := s.next
		s.next = nil
		s.mu.Unlock()
		if snap != nil {
			e.save(snap)
		}
	}
}

// stopWriter stops the writer and waits for it (or for ctx to end: a
// write in progress still holds writeMu, which the final write waits for).
// Called with runMu held, so that no tick requests a write meanwhile.
func (e *Engine) stopWriter(ctx context.Context) error {
	s := &e.store
	if s.quit == nil {
		return nil
	}
	close(s.quit)
	s.quit = nil
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("alert state writer: %w", ctx.Err())
	}
}

// save writes a snapshot to the state file, counting and logging (rate
// limited) what goes wrong; a failed write is tried again after the next
// tick.
func (e *Engine) save(snap *stateSnapshot) {
	s := &e.store
	s.writeMu.Lock()
	if s.closed {
		s.writeMu.Unlock()
		return
	}
	n, err := writeStateFile(s.path, stateMeta{Instance: e.instance, Saved: snap.at}, snap.recs, maxStatePayload)
	s.writeMu.Unlock()
	if err != nil {
		s.dirty.Store(true)
		e.metrics.stateErrors.WithLabelValues("save").Inc()
		e.logs.Log(slog.LevelError, stateLogKey, "cannot write the alert state file", "file", s.path, "error", err)
		return
	}
	if n < len(snap.recs) {
		e.metrics.stateOverflow.Add(float64(len(snap.recs) - n))
		e.logs.Log(slog.LevelWarn, stateLogKey, "alert state file full: the newest alerts are left out", "file", s.path,
			"saved", n, "left_out", len(snap.recs)-n)
	}
}

// pendingHosts holds the entries of alerts resumed at start whose host no
// tick has seen yet: a tick that finds the host in the table adopts its
// entry (hostMap.seen), and the alerts of a host still missing after the
// host expiry are released (sweepPending).
type pendingHosts struct {
	// n is len(m), read without the lock: most ticks have nothing pending.
	n  atomic.Int64
	mu sync.Mutex
	m  map[aggregate.HostKey]pendingHost
}

// pendingHost is a resumed entry and the time its host must be back by.
type pendingHost struct {
	h     *hostEntry
	until time.Time
}

// take removes and returns the entry of k, nil when there is none.
func (p *pendingHosts) take(k aggregate.HostKey) *hostEntry {
	if p.n.Load() == 0 {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	ph, ok := p.m[k]
	if !ok {
		return nil
	}
	delete(p.m, k)
	p.n.Add(-1)
	return ph.h
}

// get returns the entry of k, nil when there is none.
func (p *pendingHosts) get(k aggregate.HostKey) *hostEntry {
	if p.n.Load() == 0 {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.m[k].h
}

// put adds an entry whose host must be back by until.
func (p *pendingHosts) put(h *hostEntry, until time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = map[aggregate.HostKey]pendingHost{}
	}
	p.m[h.key()] = pendingHost{h: h, until: until}
	p.n.Store(int64(len(p.m)))
}

// appendTo appends every entry to dst.
func (p *pendingHosts) appendTo(dst []*hostEntry) []*hostEntry {
	if p.n.Load() == 0 {
		return dst
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, ph := range p.m {
		dst = append(dst, ph.h)
	}
	return dst
}

// resumeAlerts reads the state file back (Start, with reloadMu held): its
// alerts wait for their host in the pending set, and those of a check that
// no longer runs are released at once. A missing file is a first start; an
// unreadable one is logged, counted, set aside as FILE.bad, and the engine
// starts with no engaged alert. Only a file that cannot be written is an
// error, so that the problem shows at start rather than at stop.
func (e *Engine) resumeAlerts() error {
	path := e.cfg.AlertStateFile
	e.runMu.Lock()
	e.store.path = path
	e.runMu.Unlock()
	if path == "" {
		return nil
	}
	if err := probeWritable(path); err != nil {
		return fmt.Errorf("alert_state_file: %w", err)
	}
	e.runMu.Lock()
	e.startWriter()
	e.runMu.Unlock()
	meta, recs, err := readStateFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		e.logger.Info("no alert state file yet: no engaged alert to resume", "file", path)
		return nil
	case err != nil:
		e.metrics.stateErrors.WithLabelValues("load").Inc()
		bad := path + ".bad"
		if rerr := os.Rename(path, bad); rerr != nil {
			bad = rerr.Error()
		}
		e.logger.Error("alert state file unreadable: its alerts are not resumed", "file", path, "error", err, "moved_to", bad)
		return nil
	}
	if meta.Instance != e.instance {
		e.logger.Warn("alert state file written by another instance; resuming its alerts under this one",
			"file", path, "written_by", meta.Instance, "instance", e.instance)
	}
	now := e.now()
	skipped := 0
	for _, r := range recs {
		if !e.restore(r, now) {
			skipped++
		}
	}
	resumed := len(recs) - skipped
	e.metrics.resumed.Add(float64(resumed))
	if skipped > 0 {
		e.metrics.stateErrors.WithLabelValues("load").Inc()
	}
	e.logger.Info("engaged alerts resumed", "file", path, "alerts", resumed, "skipped", skipped, "saved", meta.Saved)
	e.sweepPending(now, e.set)
	return nil
}

// restore adds one saved alert to the pending set; false when the record
// is invalid or repeats an alert already restored.
func (e *Engine) restore(r savedAlert, now time.Time) bool {
	addr, err := netip.ParseAddr(r.Host.IP)
	if err != nil || r.ID == "" || r.Check == "" {
		return false
	}
	key := aggregate.HostKey{Addr: addr, VLAN: r.Host.VLAN}
	slot := e.slotFor(r.Check)
	p := &e.hosts.pending
	h := p.get(key)
	if h == nil {
		if e.hosts.get(key) != nil {
			return false
		}
		h = newHostEntry(key)
		h.ext = &hostExt{host: r.Host, local: r.Host.IsLocal}
		p.put(h, now.Add(e.hostExpiry(r.Host.IsLocal)))
	}
	// Adopt restores while the pending entries are visible to readers
	// (Engaged), which hold h.mu.
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.extSlot(slot)
	if s.alert != nil {
		return false
	}
	s.alert = &engagedAlert{id: r.ID, value: r.Value, message: r.Message, firstSeen: r.FirstSeen, lastSeen: r.LastSeen}
	h.ext.score += r.Value
	e.metrics.engaged[band(r.Value)].Inc()
	return true
}

// hostExpiry is how long a resumed alert waits for its host.
func (e *Engine) hostExpiry(local bool) time.Duration {
	exp := e.cfg.HostExpiry
	def := aggregate.DefaultConfiguration().IdleTimeout
	if local {
		if exp.Local > 0 {
			return exp.Local
		}
		return def.Local
	}
	if exp.Remote > 0 {
		return exp.Remote
	}
	return def.Remote
}

// sweepPending releases the resumed alerts whose host is not back by its
// deadline (host_expired) and those whose check does not run in set
// (check_removed, check_disabled).
func (e *Engine) sweepPending(now time.Time, set *scriptSet) {
	p := &e.hosts.pending
	if p.n.Load() == 0 {
		return
	}
	var evs []alert.Event
	defer func() { e.publish(evs) }() // after p.mu
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, ph := range p.m {
		h := ph.h
		h.mu.Lock()
		if !now.Before(ph.until) {
			h.dead = true
			e.releaseAll(h, alert.HostExpired, now, &evs)
		} else if h.ext != nil {
			for i := range h.ext.slots {
				if h.ext.slots[i].alert != nil && !set.active(i, h.ext.local) {
					e.release(h, i, e.slotName(i), set.inactiveReason(i), now, &evs)
				}
			}
			h.compact()
		}
		gone := h.dead || h.ext == nil
		h.mu.Unlock()
		if gone {
			delete(p.m, k)
		}
	}
	p.n.Store(int64(len(p.m)))
}

// stateLogKey is the rate-limited log key of the state file's lines; no
// check name starts with a NUL.
const stateLogKey = "\x00alert_state"

// afterTick ends a tick (with runMu held): resumed alerts past their
// deadline are released, unless the tick was cancelled before it could
// adopt every host that is back, and the state file is rewritten (by the
// writer) when the engaged alerts changed, so that a process killed
// without a graceful stop still leaves them to the next one.
func (e *Engine) afterTick(ctx context.Context, now time.Time, set *scriptSet) {
	if ctx.Err() == nil {
		e.sweepPending(now, set)
	}
	if e.store.wake == nil || !e.store.dirty.Swap(false) {
		return
	}
	e.store.request(&stateSnapshot{recs: records(e.collectAlerts()), at: now})
}

// shutdownAlerts ends the alerts at stop (with runMu held): they are saved
// to the state file for the next start, and those the file cannot take
// (no file configured, a write error, past its size limit) are released
// with reason shutdown, so that no consumer keeps an alert nobody will
// release.
func (e *Engine) shutdownAlerts() {
	now := e.now()
	all := e.collectAlerts()
	if e.store.path != "" {
		e.store.writeMu.Lock()
		n, err := writeStateFile(e.store.path, stateMeta{Instance: e.instance, Saved: now}, records(all), maxStatePayload)
		e.store.closed = true // no older snapshot after this one
		e.store.writeMu.Unlock()
		if err != nil {
			e.metrics.stateErrors.WithLabelValues("save").Inc()
			e.logger.Error("cannot save the engaged alerts: releasing them", "file", e.store.path, "alerts", len(all), "error", err)
		} else {
			e.logger.Info("engaged alerts saved for the next start", "file", e.store.path, "alerts", n)
			if n < len(all) {
				e.metrics.stateOverflow.Add(float64(len(all) - n))
				e.logger.Warn("alert state file full: releasing the alerts left out", "file", e.store.path, "released", len(all)-n)
			}
			all = all[n:]
		}
	}
	var evs []alert.Event
	for _, la := range all {
		la.h.mu.Lock()
		e.release(la.h, la.slot, la.rec.Check, alert.Shutdown, now, &evs)
		la.h.mu.Unlock()
	}
	e.publish(evs)
	e.store.dirty.Store(false)
}

// liveAlert is an engaged alert found by collectAlerts.
type liveAlert struct {
	h    *hostEntry
	slot int
	rec  savedAlert
}

// collectAlerts returns every engaged alert, the oldest first. Called with
// runMu held: no tick moves an entry out of the pending set meanwhile.
func (e *Engine) collectAlerts() []liveAlert {
	hosts := e.hosts.pending.appendTo(e.hosts.all(e.store.hosts[:0]))
	var out []liveAlert
	for _, h := range hosts {
		h.mu.Lock()
		if !h.dead && h.ext != nil {
			for i := range h.ext.slots {
				if a := h.ext.slots[i].alert; a != nil {
					out = append(out, liveAlert{h: h, slot: i, rec: savedAlert{
						ID: a.id, Check: e.slotName(i), Host: h.ext.host, Value: a.value,
						Message: a.message, FirstSeen: a.firstSeen, LastSeen: a.lastSeen,
					}})
				}
			}
		}
		h.mu.Unlock()
	}
	clear(hosts) // do not keep expired entries alive
	e.store.hosts = hosts[:0]
	sort.Slice(out, func(i, j int) bool {
		if !out[i].rec.FirstSeen.Equal(out[j].rec.FirstSeen) {
			return out[i].rec.FirstSeen.Before(out[j].rec.FirstSeen)
		}
		return out[i].rec.ID < out[j].rec.ID
	})
	return out
}

// records are the saved forms of alerts.
func records(all []liveAlert) []savedAlert {
	recs := make([]savedAlert, len(all))
	for i := range all {
		recs[i] = all[i].rec
	}
	return recs
}

// keepStateFile keeps the running state file in a reloaded configuration:
// it is read at start and written at stop, by the same path.
func (e *Engine) keepStateFile(cfg *Configuration) {
	if cfg.AlertStateFile != e.cfg.AlertStateFile {
		e.logger.Warn("alert_state_file changes at the next start", "running", e.cfg.AlertStateFile, "configured", cfg.AlertStateFile)
		cfg.AlertStateFile = e.cfg.AlertStateFile
	}
}
