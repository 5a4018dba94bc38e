package sink

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flowcheck/flowcheck/alert"
	"github.com/flowcheck/flowcheck/clock"
	"github.com/flowcheck/flowcheck/internal/ratelog"
)

// lineBatch is how many queued alerts one write takes at most.
const lineBatch = 256

// lineWriter writes JSON lines (each without its newline).
type lineWriter interface {
	writeLines(lines [][]byte) error
	Close() error
}

// lineSink writes alerts as JSON lines through a bounded queue drained by
// one goroutine. There is no spool behind it: stdout and a local file are
// not expected to go away, so a full queue is a counted, logged drop.
type lineSink struct {
	name  string
	out   lineWriter
	queue chan []byte
	m     *metrics
	log   *slog.Logger
	logs  *ratelog.Logger[logKey]

	mu      sync.RWMutex // guards closed against Enqueue racing with Close
	closed  bool
	started atomic.Bool
	healthy atomic.Bool
	done    chan struct{}
}

func newLineSink(name string, out lineWriter, queueSize int, m *metrics, log *slog.Logger, clk clock.Clock) *lineSink {
	s := &lineSink{
		name:  name,
		out:   out,
		queue: make(chan []byte, queueSize),
		m:     m,
		log:   log.With("sink", name),
		done:  make(chan struct{}),
	}
	s.logs = newLogs(s.log, clk)
	s.healthy.Store(true)
	m.zeroLines(name)
	return s
}

func (s *lineSink) Name() string { return s.name }

func (s *lineSink) Start(context.Context) error {
	if s.started.Swap(true) {
		return errors.New("already started")
	}
	go s.run()
	return nil
}

func (s *lineSink) Ready() bool { return s.started.Load() && s.healthy.Load() }

func (s *lineSink) Enqueue(_ *alert.Event, value []byte) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		s.drop("stopped", 1)
		return
	}
	select {
	case s.queue <- value:
		s.m.produced.WithLabelValues(s.name, "").Inc()
	default:
		s.drop("queue_full", 1)
	}
}

func (s *lineSink) drop(reason string, n int) {
	s.m.dropped.WithLabelValues(s.name, "", reason).Add(float64(n))
	s.logs.Log(slog.LevelWarn, logKey{"drop", reason}, "alerts dropped", "reason", reason, "count", n)
}

func (s *lineSink) run() {
	defer close(s.done)
	lines := make([][]byte, 0, lineBatch)
	for v := range s.queue {
		lines = append(lines[:0], v)
	more:
		for len(lines) < lineBatch {
			select {
			case v, ok := <-s.queue:
				if !ok {
					break more
				}
				lines = append(lines, v)
			default:
				break more
			}
		}
		start := time.Now()
		if err := s.out.writeLines(lines); err != nil {
			s.healthy.Store(false)
			s.m.dropped.WithLabelValues(s.name, "", "write_error").Add(float64(len(lines)))
			s.logs.Log(slog.LevelError, logKey{event: "write"}, "cannot write alerts, dropped", "count", len(lines), "error", err)
			continue
		}
		s.healthy.Store(true)
		s.m.latency.WithLabelValues(s.name).Observe(time.Since(start).Seconds())
		s.m.delivered.WithLabelValues(s.name, "").Add(float64(len(lines)))
	}
}

func (s *lineSink) Stop(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.queue)
	s.mu.Unlock()
	if !s.started.Load() {
		// Never started: what was queued is not going anywhere.
		if n := len(s.queue); n > 0 {
			s.drop("stopped", n)
		}
		return s.out.Close()
	}
	select {
	case <-s.done:
		return s.out.Close()
	case <-ctx.Done():
		n := len(s.queue)
		s.drop("stopped", n)
		return fmt.Errorf("about %d alerts not written within the grace period", n)
	}
}

// writerLines writes lines to an io.Writer (stdout) in one call per batch.
type writerLines struct{ w io.Writer }

func (w writerLines) writeLines(lines [][]byte) error {
	n := 0
	for _, l := range lines {
		n += len(l) + 1
	}
	buf := make([]byte, 0, n)
	for _, l := range lines {
		buf = append(buf, l...)
		buf = append(buf, '\n')
	}
	_, err := w.w.Write(buf)
	return err
}

// Close does not close the writer: stdout belongs to the process.
func (writerLines) Close() error { return nil }

// rotatingFile appends lines to path, renaming it to path.1 (path.1 to
// path.2…, keeping maxFiles rotated files) before a line would take it over
// maxBytes.
type rotatingFile struct {
	path     string
	maxBytes int64
	maxFiles int
	f        *os.File
	size     int64
}

func openRotating(path string, maxBytes int64, maxFiles int) (*rotatingFile, error) {
	r := &rotatingFile{path: path, maxBytes: maxBytes, maxFiles: maxFiles}
	return r, r.open()
}

func (r *rotatingFile) open() error {
	f, err := os.OpenFile(r.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return err
	}
	r.f, r.size = f, st.Size()
	return nil
}

func (r *rotatingFile) rotate() error {
	if err := r.f.Close(); err != nil {
		return err
	}
	r.f = nil
	if r.maxFiles == 0 {
		if err := os.Remove(r.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return r.open()
	}
	_ = os.Remove(fmt.Sprintf("%s.%d", r.path, r.maxFiles))
	for i := r.maxFiles - 1; i >= 1; i-- {
		err := os.Rename(fmt.Sprintf("%s.%d", r.path, i), fmt.Sprintf("%s.%d", r.path, i+1))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	if err := os.Rename(r.path, r.path+".1"); err != nil {
		return err
	}
	return r.open()
}

func (r *rotatingFile) writeLines(lines [][]byte) error {
	if r.f == nil {
		// A failed rotation left no file open: try again.
		if err := r.open(); err != nil {
			return err
		}
	}
	var buf []byte
	flush := func() error {
		if len(buf) == 0 {
			return nil
		}
		n, err := r.f.Write(buf)
		r.size += int64(n)
		buf = buf[:0]
		return err
	}
	for _, l := range lines {
		need := int64(len(l) + 1)
		if r.size+int64(len(buf))+need > r.maxBytes && r.size+int64(len(buf)) > 0 {
			if err := flush(); err != nil {
				return err
			}
			if err := r.rotate(); err != nil {
				return fmt.Errorf("rotate: %w", err)
			}
		}
		buf = append(buf, l...)
		buf = append(buf, '\n')
	}
	return flush()
}

func (r *rotatingFile) Close() error {
	if r.f == nil {
		return nil
	}
	return r.f.Close()
}
