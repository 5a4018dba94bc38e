// Package spool is a bounded, append-only on-disk FIFO of opaque records. The
// Kafka sink writes alerts here while the broker is unreachable and replays
// them in order once it is back, so that a triggered alert is either delivered
// or visibly counted as dropped.
//
// Layout: a directory of segment files named by a hexadecimal sequence number
// (lower numbers are older) and a small "cursor" file telling how far the
// oldest segment has been consumed. Each segment starts with an 8-byte magic
// header followed by framed, checksummed records (format.go).
//
// A crash mid-write leaves a torn record at a segment's tail, and a disk can
// damage any byte: Open (and Peek, for damage that appears later) skips a
// corrupt record, resynchronises on the next valid one and reports what it
// skipped, in records, so that one bad byte costs one alert, not the rest of
// the segment.
package spool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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
	segmentExt   = ".seg"
	tmpExt       = ".tmp"
	cursorFile   = "cursor"
	firstSegment = uint64(1) << 32 // leaves room below for Prepend
	// MaxRecordSize bounds one record so that a corrupt length field can
	// never make Open or Peek allocate gigabytes.
	MaxRecordSize = 16 << 20
	readChunk     = 256 << 10
)

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
	// CorruptSegments counts segments with a bad header or a corrupt or
	// truncated record among their unconsumed ones.
	CorruptSegments int
	// DiscardedBytes is the number of bytes skipped.
	DiscardedBytes int64
	// LostRecords is how many unconsumed records the skipped ranges held
	// (estimated, see Damage).
	LostRecords int
	// Damage lists each skipped range, with its file and offset.
	Damage []Damage
	// Problems describes other findings (foreign files), one line each.
	Problems []string
}

type segment struct {
	id      uint64
	size    int64 // bytes on disk, header included
	records int   // records in the segment
	v1      bool  // written in format version 1: read-only
}

// Cursor marks the end of a Peek, to be passed to Commit once the records
// were delivered.
type Cursor struct {
	seg    uint64
	off    int64
	n      int
	lost   int
	damage *Damage
}

// Damage tells whether the Peek skipped a corrupt range (which Commit then
// counts as consumed) and which.
func (c Cursor) Damage() (Damage, bool) {
	if c.damage == nil {
		return Damage{}, false
	}
	return *c.damage, true
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
	// pending counts the unconsumed records (written under mu); Len
	// reads it without the lock, which an fsync may hold.
	pending  atomic.Int64
	lastSync time.Time
	dirty    bool
	// readBuf is reused by Peek across calls.
	readBuf []byte
	// syncTimer is the pending deferred sync of FsyncBatch.
	syncTimer *time.Timer
}

// Open opens (creating if needed) the spool in opts.Dir, checks every
// segment, skips (and reports) corrupt records and positions the read
// cursor.
func Open(opts Options) (*Spool, Recovery, error) {
	var rec Recovery
	if opts.SegmentBytes <= headerSize+maxFrameSize || opts.MaxBytes < opts.SegmentBytes {
		return nil, rec, fmt.Errorf("spool: segment size %d must be > %d and ≤ ceiling %d",
			opts.SegmentBytes, headerSize+maxFrameSize, opts.MaxBytes)
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
		if strings.HasSuffix(name, segmentExt+tmpExt) {
			// A repair cut short by a crash; the segment is intact.
			_ = os.Remove(filepath.Join(opts.Dir, name))
			continue
		}
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
	s.cursor, err = os.OpenFile(filepath.Join(opts.Dir, cursorFile), os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, rec, fmt.Errorf("spool: %w", err)
	}
	if err := s.recover(ids, &rec); err != nil {
		_ = s.cursor.Close()
		return nil, rec, err
	}
	rec.Segments = len(s.segs)
	rec.Records = int(s.pending.Load())
	if rec.Records == 0 {
		s.reset()
	}
	return s, rec, nil
}

// syncDir makes a rename durable (unless the policy is never).
func (s *Spool) syncDir() {
	if s.opts.Fsync == FsyncNever {
		return
	}
	if d, err := os.Open(s.opts.Dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}

func (s *Spool) name(id uint64) string { return fmt.Sprintf("%016x%s", id, segmentExt) }
func (s *Spool) path(id uint64) string { return filepath.Join(s.opts.Dir, s.name(id)) }

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
	var id uint64
	if len(s.segs) > 0 {
		id = s.segs[0].id
	}
	return s.writeCursorAt(id, s.headOff)
}

func (s *Spool) writeCursorAt(id uint64, off int64) error {
	var b [20]byte
	binary.BigEndian.PutUint64(b[:8], id)
	binary.BigEndian.PutUint64(b[8:16], uint64(off))
	binary.BigEndian.PutUint32(b[16:], crc32.Checksum(b[:16], castagnoli))
	if _, err := s.cursor.WriteAt(b[:], 0); err != nil {
		return fmt.Errorf("spool: cursor: %w", err)
	}
	if s.opts.Fsync == FsyncAlways {
		return s.cursor.Sync()
	}
	return nil
}

// Append adds records at the tail, in order, with one write (and under
// FsyncAlways one fsync) per segment they fill. When the ceiling would be
// exceeded, whole oldest segments are dropped first; dropped tells how many
// unconsumed records were lost that way. On error, recs[:written] are in
// the spool and the others are not; with ErrRecordTooLarge, recs[written]
// is the record at fault.
func (s *Spool) Append(recs ...[]byte) (written, dropped int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(recs) > 0 {
		// Fill the current tail segment as far as it goes.
		if err := s.ensureTail(); err != nil {
			return written, dropped, err
		}
		t := &s.segs[len(s.segs)-1]
		want := 0
		for _, r := range recs {
			want += frameSizeV2 + len(r)
		}
		buf := make([]byte, 0, min(int64(want), s.opts.SegmentBytes))
		n := 0
		size := t.size
		for n < len(recs) {
			need := int64(frameSizeV2 + len(recs[n]))
			if len(recs[n]) > MaxRecordSize || headerSize+need > s.opts.SegmentBytes {
				if n > 0 {
					break // write the records before it first
				}
				return written, dropped, ErrRecordTooLarge
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
				return written, dropped, err
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
			return written, dropped, fmt.Errorf("spool: %w", err)
		}
		t = &s.segs[len(s.segs)-1]
		t.size = size
		t.records += n
		s.bytes += int64(len(buf))
		s.pending.Add(int64(n))
		s.dirty = true
		recs = recs[n:]
		written += n
		if err := s.maybeSync(); err != nil {
			// Written, not synced: readable until a machine crash.
			return written, dropped, err
		}
	}
	return written, dropped, nil
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
	if s.segs[len(s.segs)-1].v1 {
		// Records are never mixed: a version-1 tail is left as is.
		return s.roll()
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
	if _, err := f.Write([]byte(magicV2)); err != nil {
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
	s.pending.Add(-int64(lost))
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
// older than everything already spooled (a failed or slow live batch,
// shutdown). The sink only prepends while the head segment is unread; were
// it partly read, its consumed prefix would be replayed again after the
// prepended records (a duplicate, never a loss). The returned cursor covers
// exactly the prepended records: committing it removes them.
func (s *Spool) Prepend(recs ...[]byte) (Cursor, error) {
	if len(recs) == 0 {
		return Cursor{}, nil
	}
	var buf []byte
	for _, r := range recs {
		if len(r) > MaxRecordSize {
			return Cursor{}, ErrRecordTooLarge
		}
		buf = frame(buf, r)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	id := firstSegment
	if len(s.segs) > 0 {
		id = s.segs[0].id - 1
	}
	f, err := s.createFile(id)
	if err != nil {
		return Cursor{}, err
	}
	defer f.Close()
	if _, err := f.Write(buf); err != nil {
		_ = os.Remove(s.path(id))
		return Cursor{}, fmt.Errorf("spool: %w", err)
	}
	if s.opts.Fsync != FsyncNever {
		if err := f.Sync(); err != nil {
			return Cursor{}, fmt.Errorf("spool: %w", err)
		}
	}
	s.closeHead()
	s.pending.Add(int64(len(recs) + s.headRead))
	size := headerSize + int64(len(buf))
	s.segs = append([]segment{{id: id, size: size, records: len(recs)}}, s.segs...)
	s.bytes += size
	s.headOff, s.headRead = headerSize, 0
	return Cursor{seg: id, off: size, n: len(recs)}, s.writeCursor()
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
	r := &recordReader{f: s.head, v1: seg.v1, off: s.headOff, end: seg.size, buf: s.readBuf[:0]}
	defer func() { s.readBuf = r.buf[:0] }()
	var out [][]byte
	total := 0
	for len(out) < maxRecords && r.off < seg.size && (total < maxBytes || len(out) == 0) {
		start := r.off
		p, err := r.next()
		if err != nil {
			// Damaged since Open: skip to the next good record and
			// count the skipped ones as consumed.
			r.off = start
			lost := r.resync()
			d := Damage{File: s.path(seg.id), Offset: start, Bytes: r.off - start, Records: lost, Reason: err.Error()}
			lost = estimateLost(d, seg.size-headerSize, seg.records)
			rem := seg.records - s.headRead - len(out)
			if r.off >= seg.size {
				lost = rem
			}
			d.Records = max(0, min(lost, rem))
			return out, Cursor{seg: seg.id, off: r.off, n: len(out), lost: d.Records, damage: &d}, nil
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
	s.headRead += c.n + c.lost
	if s.pending.Add(-int64(c.n+c.lost)) == 0 {
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

// Len returns the number of unconsumed records. It never waits for the
// disk.
func (s *Spool) Len() int { return int(s.pending.Load()) }

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
