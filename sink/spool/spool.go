// Package spool is a bounded, append-only on-disk FIFO of opaque records. The
// Kafka sink writes alerts here while the broker is unreachable and replays
// them in order once it is back, so that a triggered alert is either delivered
// or visibly counted as dropped.
//
// Layout: a directory of segment files named by a hexadecimal sequence number
// (lower numbers are older) and a small "cursor" file telling how far the
// oldest segment has been consumed. Each segment starts with an 8-byte magic
// header followed by records framed as
//
//	length uint32 (big endian) | crc32c(payload) uint32 | payload
//
// A crash mid-write leaves a truncated or corrupt record at a segment's tail;
// Open detects it, keeps the good records before it and truncates the rest.
package spool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// FsyncPolicy says when appended records are forced to stable storage.
type FsyncPolicy string

// The fsync policies. Records are written with one write(2) per Append in
// every policy, so they survive a process crash; the policy only matters for
// a machine crash or power loss.
const (
	// FsyncAlways syncs after every Append (and cursor update).
	FsyncAlways FsyncPolicy = "always"
	// FsyncBatch syncs at most once per BatchSyncInterval, on segment roll
	// and on Close.
	FsyncBatch FsyncPolicy = "batch"
	// FsyncNever leaves flushing to the operating system.
	FsyncNever FsyncPolicy = "never"
)

// BatchSyncInterval is the longest time appended data stays unsynced under
// FsyncBatch while appends keep coming.
const BatchSyncInterval = time.Second

const (
	magic        = "FCSPOOL1"
	headerSize   = int64(len(magic))
	frameSize    = 8
	segmentExt   = ".seg"
	cursorFile   = "cursor"
	firstSegment = uint64(1) << 32 // leaves room below for Prepend
	// MaxRecordSize bounds one record so that a corrupt length field can
	// never make Open or Peek allocate gigabytes.
	MaxRecordSize = 16 << 20
	readChunk     = 256 << 10
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrRecordTooLarge is returned for a record above MaxRecordSize or one that
// could never fit under the spool ceiling.
var ErrRecordTooLarge = errors.New("spool: record too large")

// Options configures a spool.
type Options struct {
	// Dir holds the segment files; it is created if missing.
	Dir string
	// MaxBytes is the ceiling of the spool on disk. Appending beyond it
	// drops the oldest records first.
	MaxBytes int64
	// SegmentBytes is the size at which a new segment is started; it is
	// also the granularity of ceiling drops.
	SegmentBytes int64
	// Fsync is the fsync policy.
	Fsync FsyncPolicy
}

// Recovery reports what Open found on disk.
type Recovery struct {
	// Segments and Records count what was kept.
	Segments int
	Records  int
	// CorruptSegments counts segments with a bad or truncated record; each
	// was truncated right before it.
	CorruptSegments int
	// DiscardedBytes is the number of bytes truncated away.
	DiscardedBytes int64
	// Problems describes each problem found, one line each.
	Problems []string
}

type segment struct {
	id      uint64
	size    int64 // bytes on disk, header included
	records int   // records in the segment
}

// Cursor marks the end of a Peek, to be passed to Commit once the records
// were delivered.
type Cursor struct {
	seg uint64
	off int64
	n   int
}

// Spool is a bounded on-disk FIFO. It is safe for concurrent use.
type Spool struct {
	opts Options

	mu       sync.Mutex
	segs     []segment // oldest first; never empty after the first Append
	headOff  int64     // read offset in segs[0]
	headRead int       // records of segs[0] already consumed
	tail     *os.File  // open for append on segs[len-1], nil until needed
	head     *os.File  // open for reading segs[0]
	headID   uint64
	cursor   *os.File
	bytes    int64 // sum of segment sizes
	pending  int   // unconsumed records
	lastSync time.Time
	dirty    bool
	// readBuf is reused by Peek across calls.
	readBuf []byte
	// syncTimer is the pending deferred sync of FsyncBatch.
	syncTimer *time.Timer
}

// Open opens (creating if needed) the spool in opts.Dir, checks every
// segment, truncates corrupt tails and positions the read cursor.
func Open(opts Options) (*Spool, Recovery, error) {
	var rec Recovery
	if opts.SegmentBytes <= headerSize+frameSize || opts.MaxBytes < opts.SegmentBytes {
		return nil, rec, fmt.Errorf("spool: segment size %d must be > %d and ≤ ceiling %d",
			opts.SegmentBytes, headerSize+frameSize, opts.MaxBytes)
	}
	switch opts.Fsync {
	case FsyncAlways, FsyncBatch, FsyncNever:
	default:
		return nil, rec, fmt.Errorf("spool: unknown fsync policy %q", opts.Fsync)
	}
	if err := os.MkdirAll(opts.Dir, 0o750); err != nil {
		return nil, rec, fmt.Errorf("spool: %w", err)
	}
	s := &Spool{opts: opts}
	entries, err := os.ReadDir(opts.Dir)
	if err != nil {
		return nil, rec, fmt.Errorf("spool: %w", err)
	}
	var ids []uint64
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, segmentExt) || e.IsDir() {
			continue
		}
		id, err := strconv.ParseUint(strings.TrimSuffix(name, segmentExt), 16, 64)
		if err != nil {
			rec.Problems = append(rec.Problems, fmt.Sprintf("%s: not a segment name, ignored", name))
			continue
		}
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })

	curSeg, curOff, curOK := s.readCursor()
	var boundaries map[int64]int // record starts in the cursor's segment
	for _, id := range ids {
		seg, bounds, problem, discarded, err := s.check(id, id == curSeg)
		if err != nil {
			return nil, rec, err
		}
		if problem != "" {
			rec.CorruptSegments++
			rec.DiscardedBytes += discarded
			rec.Problems = append(rec.Problems, fmt.Sprintf("%s: %s", s.name(id), problem))
		}
		if seg.records == 0 {
			_ = os.Remove(s.path(id))
			continue
		}
		if id == curSeg {
			boundaries = bounds
		}
		s.segs = append(s.segs, seg)
		s.bytes += seg.size
		s.pending += seg.records
	}
	s.headOff = headerSize
	if n, ok := boundaries[curOff]; curOK && ok {
		// Segments before the cursor's are fully consumed leftovers (a
		// crash between cursor update and file removal).
		for s.segs[0].id < curSeg {
			s.dropHeadFile()
		}
		s.headOff, s.headRead = curOff, n
		s.pending -= n
	}
	s.cursor, err = os.OpenFile(filepath.Join(opts.Dir, cursorFile), os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, rec, fmt.Errorf("spool: %w", err)
	}
	rec.Segments = len(s.segs)
	rec.Records = s.pending
	if s.pending == 0 {
		s.reset()
	}
	return s, rec, nil
}

func (s *Spool) name(id uint64) string { return fmt.Sprintf("%016x%s", id, segmentExt) }
func (s *Spool) path(id uint64) string { return filepath.Join(s.opts.Dir, s.name(id)) }

// check scans one segment, truncating it after its last good record. It
// returns the record-start offsets (with the count of records before each)
// when wantBounds is set.
func (s *Spool) check(id uint64, wantBounds bool) (segment, map[int64]int, string, int64, error) {
	seg := segment{id: id}
	f, err := os.OpenFile(s.path(id), os.O_RDWR, 0)
	if err != nil {
		return seg, nil, "", 0, fmt.Errorf("spool: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return seg, nil, "", 0, fmt.Errorf("spool: %w", err)
	}
	size := st.Size()
	var bounds map[int64]int
	if wantBounds {
		bounds = map[int64]int{}
	}
	if size == 0 {
		// Created but never written (crash right after creation).
		return seg, nil, "", 0, nil
	}
	hdr := make([]byte, headerSize)
	if _, err := f.ReadAt(hdr, 0); err != nil || string(hdr) != magic {
		// Not even a header: nothing to keep.
		return seg, nil, "bad or missing header, segment discarded", size, nil
	}
	r := &recordReader{f: f, off: headerSize, end: size}
	problem := ""
	for r.off < size {
		if bounds != nil {
			bounds[r.off] = seg.records
		}
		start := r.off
		if _, err := r.next(); err != nil {
			problem = fmt.Sprintf("%v at offset %d, %d bytes truncated", err, start, size-start)
			r.off = start
			break
		}
		seg.records++
	}
	if bounds != nil {
		bounds[r.off] = seg.records
	}
	seg.size = r.off
	if problem != "" {
		if err := f.Truncate(r.off); err != nil {
			return seg, nil, "", 0, fmt.Errorf("spool: truncate %s: %w", s.name(id), err)
		}
	}
	return seg, bounds, problem, size - r.off, nil
}

func (s *Spool) readCursor() (uint64, int64, bool) {
	b, err := os.ReadFile(filepath.Join(s.opts.Dir, cursorFile))
	if err != nil || len(b) != 20 {
		return 0, 0, false
	}
	if crc32.Checksum(b[:16], castagnoli) != binary.BigEndian.Uint32(b[16:]) {
		return 0, 0, false
	}
	return binary.BigEndian.Uint64(b[:8]), int64(binary.BigEndian.Uint64(b[8:16])), true
}

func (s *Spool) writeCursor() error {
	var b [20]byte
	if len(s.segs) > 0 {
		binary.BigEndian.PutUint64(b[:8], s.segs[0].id)
	}
	binary.BigEndian.PutUint64(b[8:16], uint64(s.headOff))
	binary.BigEndian.PutUint32(b[16:], crc32.Checksum(b[:16], castagnoli))
	if _, err := s.cursor.WriteAt(b[:], 0); err != nil {
		return fmt.Errorf("spool: cursor: %w", err)
	}
	if s.opts.Fsync == FsyncAlways {
		return s.cursor.Sync()
	}
	return nil
}

// recordReader walks the records of a segment through a read buffer.
type recordReader struct {
	f        *os.File
	off, end int64
	buf      []byte
	bufOff   int64
}

// next returns the payload at r.off and advances past it. The slice is only
// valid until the next call.
func (r *recordReader) next() ([]byte, error) {
	frame, err := r.read(r.off, frameSize)
	if err != nil {
		return nil, errors.New("truncated record header")
	}
	n := int64(binary.BigEndian.Uint32(frame[:4]))
	sum := binary.BigEndian.Uint32(frame[4:8])
	if n > MaxRecordSize {
		return nil, fmt.Errorf("record length %d out of range", n)
	}
	payload, err := r.read(r.off+frameSize, n)
	if err != nil {
		return nil, errors.New("truncated record")
	}
	if crc32.Checksum(payload, castagnoli) != sum {
		return nil, errors.New("checksum mismatch")
	}
	r.off += frameSize + n
	return payload, nil
}

func (r *recordReader) read(off, n int64) ([]byte, error) {
	if off+n > r.end {
		return nil, io.ErrUnexpectedEOF
	}
	if off >= r.bufOff && off+n <= r.bufOff+int64(len(r.buf)) {
		return r.buf[off-r.bufOff : off-r.bufOff+n], nil
	}
	size := max(n, readChunk)
	size = min(size, r.end-off)
	if int64(cap(r.buf)) < size {
		r.buf = make([]byte, size)
	}
	r.buf = r.buf[:size]
	if _, err := r.f.ReadAt(r.buf, off); err != nil {
		r.buf = r.buf[:0]
		return nil, err
	}
	r.bufOff = off
	return r.buf[:n], nil
}

func frame(dst, payload []byte) []byte {
	var h [frameSize]byte
	binary.BigEndian.PutUint32(h[:4], uint32(len(payload)))
	binary.BigEndian.PutUint32(h[4:], crc32.Checksum(payload, castagnoli))
	dst = append(dst, h[:]...)
	return append(dst, payload...)
}

// Append adds records at the tail, in order. When the ceiling would be
// exceeded, whole oldest segments are dropped first; dropped tells how many
// unconsumed records were lost that way.
func (s *Spool) Append(recs ...[]byte) (dropped int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(recs) > 0 {
		// Fill the current tail segment as far as it goes.
		if err := s.ensureTail(); err != nil {
			return dropped, err
		}
		t := &s.segs[len(s.segs)-1]
		want := 0
		for _, r := range recs {
			want += frameSize + len(r)
		}
		buf := make([]byte, 0, min(int64(want), s.opts.SegmentBytes))
		n := 0
		size := t.size
		for n < len(recs) {
			need := int64(frameSize + len(recs[n]))
			if len(recs[n]) > MaxRecordSize || headerSize+need > s.opts.SegmentBytes {
				return dropped, ErrRecordTooLarge
			}
			if size+need > s.opts.SegmentBytes && size > headerSize {
				break
			}
			buf = frame(buf, recs[n])
			size += need
			n++
		}
		if n == 0 {
			if err := s.roll(); err != nil {
				return dropped, err
			}
			continue
		}
		// Make room under the ceiling, oldest segments first; the tail
		// segment itself is never dropped.
		for s.bytes+int64(len(buf)) > s.opts.MaxBytes && len(s.segs) > 1 {
			dropped += s.dropHead()
		}
		if _, err := s.tail.Write(buf); err != nil {
			// A short write leaves a torn record that Open will truncate;
			// keep the in-memory view as it was before.
			return dropped, fmt.Errorf("spool: %w", err)
		}
		t = &s.segs[len(s.segs)-1]
		t.size = size
		t.records += n
		s.bytes += int64(len(buf))
		s.pending += n
		s.dirty = true
		recs = recs[n:]
		if err := s.maybeSync(); err != nil {
			return dropped, err
		}
	}
	return dropped, nil
}

func (s *Spool) maybeSync() error {
	switch s.opts.Fsync {
	case FsyncAlways:
	case FsyncBatch:
		if since := time.Since(s.lastSync); since < BatchSyncInterval {
			// Sync later, so that a burst followed by silence is not
			// left unsynced until the next append.
			if s.syncTimer == nil {
				s.syncTimer = time.AfterFunc(BatchSyncInterval-since, func() {
					s.mu.Lock()
					defer s.mu.Unlock()
					s.syncTimer = nil
					_ = s.syncTail()
				})
			}
			return nil
		}
	default:
		return nil
	}
	return s.syncTail()
}

func (s *Spool) syncTail() error {
	if s.tail == nil || !s.dirty {
		return nil
	}
	s.lastSync = time.Now()
	s.dirty = false
	if err := s.tail.Sync(); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	return nil
}

// ensureTail opens the tail segment for appending, creating the first one.
func (s *Spool) ensureTail() error {
	if s.tail != nil {
		return nil
	}
	if len(s.segs) == 0 {
		f, err := s.createFile(firstSegment)
		if err != nil {
			return err
		}
		s.segs = append(s.segs, segment{id: firstSegment, size: headerSize})
		s.bytes += headerSize
		s.tail = f
		return nil
	}
	f, err := os.OpenFile(s.path(s.segs[len(s.segs)-1].id), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	s.tail = f
	return nil
}

// createFile creates a segment file holding just the header.
func (s *Spool) createFile(id uint64) (*os.File, error) {
	f, err := os.OpenFile(s.path(id), os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	if _, err := f.Write([]byte(magic)); err != nil {
		_ = f.Close()
		_ = os.Remove(s.path(id))
		return nil, fmt.Errorf("spool: %w", err)
	}
	return f, nil
}

// roll closes the tail segment and starts a new one.
func (s *Spool) roll() error {
	if s.opts.Fsync != FsyncNever {
		if err := s.syncTail(); err != nil {
			return err
		}
	}
	if s.tail != nil {
		_ = s.tail.Close()
		s.tail = nil
	}
	id := s.segs[len(s.segs)-1].id + 1
	f, err := s.createFile(id)
	if err != nil {
		return err
	}
	s.segs = append(s.segs, segment{id: id, size: headerSize})
	s.bytes += headerSize
	s.tail = f
	return nil
}

// dropHead removes the oldest segment and returns how many unconsumed
// records it held.
func (s *Spool) dropHead() int {
	lost := s.dropHeadFile()
	_ = s.writeCursor()
	return lost
}

// dropHeadFile deletes the oldest segment, resets the read position to the
// start of the next one and returns how many unconsumed records were lost.
func (s *Spool) dropHeadFile() int {
	lost := s.segs[0].records - s.headRead
	s.pending -= lost
	s.closeHead()
	s.bytes -= s.segs[0].size
	_ = os.Remove(s.path(s.segs[0].id))
	s.segs = s.segs[1:]
	s.headOff, s.headRead = headerSize, 0
	return lost
}

func (s *Spool) closeHead() {
	if s.head != nil {
		_ = s.head.Close()
		s.head = nil
	}
}

// Prepend writes records in a new segment placed before every other one, so
// that they are read first. The sink uses it for in-memory records that are
// older than everything already spooled (a failed live batch, shutdown). The
// sink only prepends while the head segment is unread; were it partly read,
// its consumed prefix would be replayed again after the prepended records
// (a duplicate, never a loss).
func (s *Spool) Prepend(recs ...[]byte) error {
	if len(recs) == 0 {
		return nil
	}
	var buf []byte
	for _, r := range recs {
		if len(r) > MaxRecordSize {
			return ErrRecordTooLarge
		}
		buf = frame(buf, r)
	}
	s.mu.Lock()
	if len(s.segs) == 0 {
		s.mu.Unlock()
		_, err := s.Append(recs...)
		return err
	}
	defer s.mu.Unlock()
	id := s.segs[0].id - 1
	f, err := s.createFile(id)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Write(buf); err != nil {
		_ = os.Remove(s.path(id))
		return fmt.Errorf("spool: %w", err)
	}
	if s.opts.Fsync != FsyncNever {
		if err := f.Sync(); err != nil {
			return fmt.Errorf("spool: %w", err)
		}
	}
	s.closeHead()
	s.pending += len(recs) + s.headRead
	s.segs = append([]segment{{id: id, size: headerSize + int64(len(buf)), records: len(recs)}}, s.segs...)
	s.bytes += headerSize + int64(len(buf))
	s.headOff, s.headRead = headerSize, 0
	return s.writeCursor()
}

// Peek returns up to maxRecords records (and about maxBytes of payload, at least
// one record) from the head without consuming them. The returned slices are
// owned by the caller.
func (s *Spool) Peek(maxRecords, maxBytes int) ([][]byte, Cursor, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.segs) > 0 && s.headRead >= s.segs[0].records {
		if len(s.segs) == 1 {
			return nil, Cursor{}, nil
		}
		s.dropHeadFile()
	}
	if len(s.segs) == 0 {
		return nil, Cursor{}, nil
	}
	seg := s.segs[0]
	if s.head == nil || s.headID != seg.id {
		s.closeHead()
		f, err := os.Open(s.path(seg.id))
		if err != nil {
			return nil, Cursor{}, fmt.Errorf("spool: %w", err)
		}
		s.head, s.headID = f, seg.id
	}
	r := &recordReader{f: s.head, off: s.headOff, end: seg.size, buf: s.readBuf[:0]}
	defer func() { s.readBuf = r.buf[:0] }()
	var out [][]byte
	total := 0
	for len(out) < maxRecords && r.off < seg.size && (total < maxBytes || len(out) == 0) {
		p, err := r.next()
		if err != nil {
			return nil, Cursor{}, fmt.Errorf("spool: %s at offset %d: %w", s.name(seg.id), r.off, err)
		}
		out = append(out, append([]byte(nil), p...))
		total += len(p)
	}
	return out, Cursor{seg: seg.id, off: r.off, n: len(out)}, nil
}

// Commit marks the records of a Peek as consumed. A cursor whose segment was
// dropped by the ceiling meanwhile is ignored.
func (s *Spool) Commit(c Cursor) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.segs) == 0 || c.seg != s.segs[0].id || c.off <= s.headOff {
		return nil
	}
	s.headOff = c.off
	s.headRead += c.n
	s.pending -= c.n
	if s.pending == 0 {
		s.reset()
		return nil
	}
	if s.headRead >= s.segs[0].records && len(s.segs) > 1 {
		s.dropHeadFile()
	}
	return s.writeCursor()
}

// reset deletes every segment once all records are consumed, so that an idle
// spool takes no disk space.
func (s *Spool) reset() {
	s.closeHead()
	if s.tail != nil {
		_ = s.tail.Close()
		s.tail = nil
	}
	for _, seg := range s.segs {
		_ = os.Remove(s.path(seg.id))
	}
	s.segs = nil
	s.bytes = 0
	s.headOff, s.headRead = headerSize, 0
	s.dirty = false
	_ = s.writeCursor()
}

// Len returns the number of unconsumed records.
func (s *Spool) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pending
}

// Bytes returns the disk space the segments take.
func (s *Spool) Bytes() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bytes
}

// Close syncs (unless the policy is never) and closes the files.
func (s *Spool) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.syncTimer != nil {
		s.syncTimer.Stop()
		s.syncTimer = nil
	}
	var err error
	if s.opts.Fsync != FsyncNever {
		err = s.syncTail()
		if e := s.cursor.Sync(); err == nil && e != nil {
			err = e
		}
	}
	if s.tail != nil {
		_ = s.tail.Close()
		s.tail = nil
	}
	s.closeHead()
	_ = s.cursor.Close()
	return err
}
