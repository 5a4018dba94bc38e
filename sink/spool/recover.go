package spool

import (
	"fmt"
	"os"
	"slices"
)

// recover scans the segments, removes those the cursor says are consumed,
// repairs damaged ones and builds the in-memory view.
func (s *Spool) recover(ids []uint64, rec *Recovery) error {
	curSeg, curOff, curOK := s.readCursor()
	// The cursor is trusted only if it points at a record boundary of an
	// existing segment; otherwise everything is replayed (duplicates, not
	// losses).
	var curScan *segmentScan
	consumedBelow := uint64(0)
	if curOK && slices.Contains(ids, curSeg) {
		sc, err := scanSegment(s.path(curSeg), true)
		if err != nil {
			return err
		}
		valid := curOff == headerSize || curOff == sc.lastEnd
		if _, found := slices.BinarySearch(sc.starts, curOff); found {
			valid = true
		}
		for _, d := range sc.damage {
			valid = valid || d.Offset == curOff
		}
		if valid {
			curScan, consumedBelow = &sc, curSeg
		} else {
			_ = sc.file.Close()
		}
	}
	s.headOff = headerSize
	for _, id := range ids {
		if id < consumedBelow {
			// Fully consumed leftover (a crash between cursor update
			// and file removal).
			_ = os.Remove(s.path(id))
			continue
		}
		var sc segmentScan
		from := headerSize
		if id == consumedBelow && curScan != nil {
			sc, from = *curScan, curOff
		} else {
			var err error
			if sc, err = scanSegment(s.path(id), false); err != nil {
				return err
			}
		}
		seg, headOff, headRead, err := s.repair(id, sc, from, id == consumedBelow && curScan != nil, rec)
		if err != nil {
			return err
		}
		if seg.records-headRead == 0 {
			_ = os.Remove(s.path(id))
			continue
		}
		if len(s.segs) == 0 {
			s.headOff, s.headRead = headOff, headRead
		}
		s.segs = append(s.segs, seg)
		s.bytes += seg.size
		s.pending.Add(int64(seg.records - headRead))
	}
	return nil
}

// repair accounts for the damage of one scanned segment from offset from
// (records before it are consumed) and fixes the file: a damaged tail is
// truncated, damage elsewhere rewrites the segment with its good unconsumed
// records. It returns the segment and its read position.
func (s *Spool) repair(id uint64, sc segmentScan, from int64, isCursor bool, rec *Recovery) (segment, int64, int, error) {
	defer sc.file.Close()
	seg := segment{id: id, size: sc.size, records: sc.records, v1: sc.v1}
	consumed := 0
	if isCursor {
		consumed, _ = slices.BinarySearch(sc.starts, from)
	}
	var counted []Damage
	for _, d := range sc.damage {
		if d.Offset >= from {
			counted = append(counted, d)
		}
	}
	if len(counted) > 0 || sc.badHeader {
		rec.CorruptSegments++
	}
	for _, d := range counted {
		rec.LostRecords += d.Records
		rec.DiscardedBytes += d.Bytes
		rec.Damage = append(rec.Damage, d)
	}
	if sc.size == 0 {
		return seg, from, consumed, nil
	}
	if sc.badHeader && sc.records == 0 {
		rec.Problems = append(rec.Problems, fmt.Sprintf("%s: bad header and no record, segment discarded", s.name(id)))
		return segment{id: id}, from, 0, nil
	}
	tailOnly := len(counted) == 1 && counted[0].Offset+counted[0].Bytes == sc.size
	switch {
	case len(counted) == 0 && !sc.badHeader:
		return seg, from, consumed, nil
	case tailOnly && !sc.badHeader:
		if err := sc.file.Truncate(counted[0].Offset); err != nil {
			return seg, 0, 0, fmt.Errorf("spool: truncate %s: %w", s.name(id), err)
		}
		seg.size = counted[0].Offset
		return seg, from, consumed, nil
	}
	// Rewrite with the good records after from. For the cursor's segment
	// the cursor is moved to the new file's start first: a crash between
	// the two replays consumed records again, it never skips any.
	if sc.badHeader {
		rec.Problems = append(rec.Problems, fmt.Sprintf("%s: bad header, segment rewritten", s.name(id)))
	}
	size, n, err := s.rewrite(id, sc, from)
	if err != nil {
		return seg, 0, 0, err
	}
	if isCursor {
		if err := s.writeCursorAt(id, headerSize); err != nil {
			return seg, 0, 0, err
		}
	}
	if err := os.Rename(s.path(id)+tmpExt, s.path(id)); err != nil {
		return seg, 0, 0, fmt.Errorf("spool: %w", err)
	}
	s.syncDir()
	return segment{id: id, size: size, records: n}, headerSize, 0, nil
}

// rewrite copies the good records of a version-2 segment from offset from
// into a new file beside it (renamed over it by the caller).
func (s *Spool) rewrite(id uint64, sc segmentScan, from int64) (int64, int, error) {
	f, err := os.OpenFile(s.path(id)+tmpExt, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return 0, 0, fmt.Errorf("spool: %w", err)
	}
	defer f.Close()
	buf := []byte(magicV2)
	r := &recordReader{f: sc.file, off: from, end: sc.size}
	n := 0
	for r.off < sc.size {
		p, err := r.next()
		if err != nil {
			r.resync()
			continue
		}
		buf = frame(buf, p)
		n++
		if len(buf) >= readChunk {
			if _, err := f.Write(buf); err != nil {
				return 0, 0, fmt.Errorf("spool: %w", err)
			}
			buf = buf[:0]
		}
	}
	if _, err := f.Write(buf); err != nil {
		return 0, 0, fmt.Errorf("spool: %w", err)
	}
	if s.opts.Fsync != FsyncNever {
		if err := f.Sync(); err != nil {
			return 0, 0, fmt.Errorf("spool: %w", err)
		}
	}
	st, err := f.Stat()
	if err != nil {
		return 0, 0, fmt.Errorf("spool: %w", err)
	}
	return st.Size(), n, nil
}
