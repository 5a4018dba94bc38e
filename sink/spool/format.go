package spool

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
)

// On-disk format. Version 2 (header "FCSPOOL2") frames each record as
//
//	magic "\xfe\xc5\x0f\xff" | length uint32 BE | crc32c(length ‖ payload) uint32 BE | payload
//
// The magic lets a reader find the next record after a corrupt one (0xfe and
// 0xff never occur in UTF-8, so not in the JSON payload), and the checksum
// covers the length, so a damaged length cannot send the reader astray.
// Version 1 (header "FCSPOOL1", before resynchronisation existed) framed
// records as length | crc32c(payload) | payload; its segments are still read,
// but a corrupt record there ends the segment.
const (
	magicV1      = "FCSPOOL1"
	magicV2      = "FCSPOOL2"
	headerSize   = int64(len(magicV2))
	recordMagic  = "\xfe\xc5\x0f\xff"
	frameSizeV1  = 8
	frameSizeV2  = 12
	maxFrameSize = frameSizeV2
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// frame appends one version-2 record to dst.
func frame(dst, payload []byte) []byte {
	var h [frameSizeV2]byte
	copy(h[:4], recordMagic)
	binary.BigEndian.PutUint32(h[4:8], uint32(len(payload)))
	sum := crc32.Update(0, castagnoli, h[4:8])
	binary.BigEndian.PutUint32(h[8:], crc32.Update(sum, castagnoli, payload))
	dst = append(dst, h[:]...)
	return append(dst, payload...)
}

// recordReader walks the records of a segment through a read buffer.
type recordReader struct {
	f        io.ReaderAt
	v1       bool
	off, end int64
	buf      []byte
	bufOff   int64
}

func (r *recordReader) frameSize() int64 {
	if r.v1 {
		return frameSizeV1
	}
	return frameSizeV2
}

// next returns the payload at r.off and advances past it. The slice is only
// valid until the next call.
func (r *recordReader) next() ([]byte, error) {
	fs := r.frameSize()
	fr, err := r.read(r.off, fs)
	if err != nil {
		return nil, errors.New("truncated record header")
	}
	if !r.v1 && string(fr[:4]) != recordMagic {
		return nil, errors.New("no record magic")
	}
	lenField := fr[fs-8 : fs-4]
	n := int64(binary.BigEndian.Uint32(lenField))
	want := binary.BigEndian.Uint32(fr[fs-4 : fs])
	var sum uint32
	if !r.v1 {
		sum = crc32.Update(0, castagnoli, lenField)
	}
	if n > MaxRecordSize {
		return nil, fmt.Errorf("record length %d out of range", n)
	}
	payload, err := r.read(r.off+fs, n)
	if err != nil {
		return nil, errors.New("truncated record")
	}
	if crc32.Update(sum, castagnoli, payload) != want {
		return nil, errors.New("checksum mismatch")
	}
	r.off += fs + n
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

// resync is called with r.off on a record that failed to read. It moves
// r.off to the next valid record (or to r.end when there is none) and
// returns how many records the skipped bytes held, estimated as one per
// record magic seen in them, at least one. Version 1 has no magic: the rest
// of the segment is skipped.
func (r *recordReader) resync() int {
	start := r.off
	lost := 1
	if r.v1 {
		r.off = r.end
		return lost
	}
	for p := start + 1; p+frameSizeV2 <= r.end; {
		chunk, err := r.read(p, min(readChunk, r.end-p))
		if err != nil || len(chunk) < len(recordMagic) {
			break
		}
		i := bytes.Index(chunk, []byte(recordMagic))
		if i < 0 {
			// The magic may straddle the chunk's end.
			p += int64(len(chunk) - len(recordMagic) + 1)
			continue
		}
		r.off = p + int64(i)
		if _, err := r.next(); err == nil {
			r.off = p + int64(i)
			return lost
		}
		lost++
		p += int64(i) + 1
	}
	r.off = r.end
	return lost
}

// Damage describes a corrupt range of a segment that was skipped.
type Damage struct {
	// File is the segment's path.
	File string
	// Offset and Bytes locate the skipped range.
	Offset, Bytes int64
	// Records is how many records it held (an estimate: one per record
	// magic found in it, at least one).
	Records int
	// Reason says what was wrong with its first record.
	Reason string
}

func (d Damage) String() string {
	return fmt.Sprintf("%s: %s at offset %d, %d bytes (about %d records) skipped",
		d.File, d.Reason, d.Offset, d.Bytes, d.Records)
}

// segmentScan is what scanSegment learns about one segment file.
type segmentScan struct {
	v1        bool
	badHeader bool
	size      int64    // file size
	records   int      // good records
	lastEnd   int64    // end of the last good record (headerSize if none)
	good      int64    // bytes of the good records, frames included
	starts    []int64  // good record starts, when asked for
	damage    []Damage // corrupt ranges, in file order
	file      *os.File // open read-write, for the caller to repair and close
}

// scanSegment reads every record of a segment. A segment whose header is
// unknown is read as version 2 (a damaged header must not cost the records
// behind it); one with no record at all is left for the caller to delete.
func scanSegment(path string, keepStarts bool) (segmentScan, error) {
	var sc segmentScan
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return sc, fmt.Errorf("spool: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return sc, fmt.Errorf("spool: %w", err)
	}
	sc.file, sc.size, sc.lastEnd = f, st.Size(), headerSize
	if sc.size == 0 {
		return sc, nil
	}
	hdr := make([]byte, headerSize)
	n, _ := f.ReadAt(hdr, 0)
	switch string(hdr[:n]) {
	case magicV1:
		sc.v1 = true
	case magicV2:
	default:
		sc.badHeader = true
	}
	r := &recordReader{f: f, v1: sc.v1, off: headerSize, end: sc.size}
	for r.off < sc.size {
		start := r.off
		if _, err := r.next(); err != nil {
			r.off = start
			lost := r.resync()
			sc.damage = append(sc.damage, Damage{
				File: path, Offset: start, Bytes: r.off - start, Records: lost, Reason: err.Error(),
			})
			continue
		}
		sc.records++
		sc.good += r.off - start
		sc.lastEnd = r.off
		if keepStarts {
			sc.starts = append(sc.starts, start)
		}
	}
	for i := range sc.damage {
		sc.damage[i].Records = estimateLost(sc.damage[i], sc.good, sc.records)
	}
	return sc, nil
}

// estimateLost refines a damaged range's record count (magics seen) with
// its size in records of the segment's average size: a damage that wiped
// several magics still counts each record it covered.
func estimateLost(d Damage, goodBytes int64, goodRecords int) int {
	if goodRecords == 0 {
		return d.Records
	}
	avg := goodBytes / int64(goodRecords)
	return max(d.Records, int((d.Bytes+avg/2)/avg))
}
