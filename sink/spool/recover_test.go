package spool

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// segmentFile returns the only segment of dir.
func segmentFile(t testing.TB, dir string) string {
	t.Helper()
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	if len(segs) != 1 {
		t.Fatalf("segments: %v", segs)
	}
	return segs[0]
}

// recordOffset is where record i starts in a segment of recs(0, n).
func recordOffset(i int) int64 {
	return headerSize + int64(i)*int64(frameSizeV2+len("record-0000"))
}

func without(from, to int, skip ...int) []string {
	var out []string
	for i := from; i < to; i++ {
		if !slices.Contains(skip, i) {
			out = append(out, fmt.Sprintf("record-%04d", i))
		}
	}
	return out
}

// TestCorruptRecordSkipped damages record 500 of a 2 513-record segment in
// each part of its frame: recovery keeps the 2 512 others, counts one lost
// record with its file and offset, and repairs the file so that the next
// Open finds nothing wrong.
func TestCorruptRecordSkipped(t *testing.T) {
	const n, bad = 2513, 500
	cases := []struct {
		name   string
		at     int64 // byte of record bad to flip
		lost   []int
		length int // bytes to zero instead of flipping one
	}{
		{"magic", 1, []int{bad}, 0},
		{"length", 6, []int{bad}, 0},
		{"checksum", 9, []int{bad}, 0},
		{"payload", 15, []int{bad}, 0},
		{"zeroed across three records", 3, []int{bad, bad + 1, bad + 2}, 2 * (frameSizeV2 + 11)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s, _ := open(t, dir, 1<<30, 1<<20)
			if _, _, err := s.Append(recs(0, n)...); err != nil {
				t.Fatal(err)
			}
			_ = s.Close()
			path := segmentFile(t, dir)
			b, _ := os.ReadFile(path)
			off := recordOffset(bad) + tc.at
			if tc.length == 0 {
				b[off] ^= 0x10
			} else {
				clear(b[off : off+int64(tc.length)])
			}
			if err := os.WriteFile(path, b, 0o640); err != nil {
				t.Fatal(err)
			}
			s, rec := open(t, dir, 1<<30, 1<<20)
			if rec.Records != n-len(tc.lost) || rec.LostRecords != len(tc.lost) || len(rec.Damage) != 1 {
				t.Fatalf("recovery = %d records, %d lost, damage %v; want %d, %d",
					rec.Records, rec.LostRecords, rec.Damage, n-len(tc.lost), len(tc.lost))
			}
			if d := rec.Damage[0]; d.File != path || d.Offset != recordOffset(bad) {
				t.Fatalf("damage reported at %s:%d, want %s:%d", d.File, d.Offset, path, recordOffset(bad))
			}
			if got := drain(t, s, 300); !slices.Equal(got, without(0, n, tc.lost...)) {
				t.Fatalf("read %d records, want the %d others in order", len(got), n-len(tc.lost))
			}
			_ = s.Close()
		})
	}
}

// TestRepairCountedOnce reopens a repaired spool: the damage is not
// reported again, and the cursor of a partly consumed segment still holds.
func TestRepairCountedOnce(t *testing.T) {
	for _, tc := range []struct {
		name    string
		bad     int
		counted bool
	}{
		{"unconsumed", 60, true},
		{"consumed", 10, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s, _ := open(t, dir, 1<<20, 1<<16)
			if _, _, err := s.Append(recs(0, 100)...); err != nil {
				t.Fatal(err)
			}
			got, cur, err := s.Peek(30, 1<<20)
			if err != nil || len(got) != 30 {
				t.Fatalf("Peek: %d, %v", len(got), err)
			}
			if err := s.Commit(cur); err != nil {
				t.Fatal(err)
			}
			_ = s.Close()
			flipAt(t, segmentFile(t, dir), int(recordOffset(tc.bad)+15)-int(recordOffset(100)))
			s, rec := open(t, dir, 1<<20, 1<<16)
			want := without(30, 100)
			if tc.counted {
				want = without(30, 100, tc.bad)
				if rec.LostRecords != 1 {
					t.Fatalf("recovery = %+v", rec)
				}
			} else if rec.LostRecords != 0 || len(rec.Damage) != 0 {
				t.Fatalf("damage in consumed records counted: %+v", rec)
			}
			if rec.Records != len(want) {
				t.Fatalf("recovered %d, want %d", rec.Records, len(want))
			}
			_ = s.Close()
			s, rec = open(t, dir, 1<<20, 1<<16)
			defer s.Close()
			if rec.LostRecords != 0 || rec.Records != len(want) {
				t.Fatalf("second open: %+v", rec)
			}
			if got := drain(t, s, 7); !slices.Equal(got, want) {
				t.Fatalf("got %v\nwant %v", got, want)
			}
		})
	}
}

// TestPeekSkipsLaterDamage damages a record after Open: Peek skips it and
// reports it, Commit accounts for it, and the spool drains.
func TestPeekSkipsLaterDamage(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, dir, 1<<20, 1<<16)
	defer s.Close()
	if _, _, err := s.Append(recs(0, 50)...); err != nil {
		t.Fatal(err)
	}
	path := segmentFile(t, dir)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{'X'}, recordOffset(20)+14); err != nil {
		t.Fatal(err)
	}
	_ = f.Close()
	var got []string
	damaged := 0
	for s.Len() > 0 {
		recs, cur, err := s.Peek(8, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if d, ok := cur.Damage(); ok {
			damaged += d.Records
			if d.Offset != recordOffset(20) {
				t.Fatalf("damage at %d, want %d", d.Offset, recordOffset(20))
			}
		}
		got = append(got, strs(recs)...)
		if err := s.Commit(cur); err != nil {
			t.Fatal(err)
		}
	}
	if damaged != 1 || !slices.Equal(got, without(0, 50, 20)) {
		t.Fatalf("damaged %d, got %v", damaged, got)
	}
}

// frameV1 lays a record out in format version 1.
func frameV1(dst, payload []byte) []byte {
	var h [frameSizeV1]byte
	binary.BigEndian.PutUint32(h[:4], uint32(len(payload)))
	binary.BigEndian.PutUint32(h[4:], crc32.Checksum(payload, castagnoli))
	return append(append(dst, h[:]...), payload...)
}

// TestVersion1SegmentsRead: segments written by the previous format are
// replayed; new records go to a new segment behind them; a corrupt record
// there still ends the segment (no magic to resynchronise on), and the
// records lost are counted by size.
func TestVersion1SegmentsRead(t *testing.T) {
	for _, corrupt := range []bool{false, true} {
		t.Run(fmt.Sprint("corrupt=", corrupt), func(t *testing.T) {
			dir := t.TempDir()
			b := []byte(magicV1)
			for _, r := range recs(0, 10) {
				b = frameV1(b, r)
			}
			if corrupt {
				b[len(magicV1)+5*19+10] ^= 1 // record 5's payload
			}
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%016x%s", firstSegment, segmentExt)), b, 0o640); err != nil {
				t.Fatal(err)
			}
			s, rec := open(t, dir, 1<<20, 1<<10)
			defer s.Close()
			want := without(0, 10)
			if corrupt {
				want = without(0, 5)
				if rec.LostRecords != 5 || len(rec.Damage) != 1 { // records 5 to 9, by size
					t.Fatalf("recovery = %+v", rec)
				}
			}
			if rec.Records != len(want) {
				t.Fatalf("recovered %d, want %d", rec.Records, len(want))
			}
			if _, _, err := s.Append(recs(10, 13)...); err != nil {
				t.Fatal(err)
			}
			want = append(want, without(10, 13)...)
			if got := drain(t, s, 4); !slices.Equal(got, want) {
				t.Fatalf("got %v\nwant %v", got, want)
			}
		})
	}
}

// TestPrependCursor: committing the cursor Prepend returns removes exactly
// the prepended records, on an empty spool and before other records.
func TestPrependCursor(t *testing.T) {
	s, _ := open(t, t.TempDir(), 1<<20, 1<<10)
	defer s.Close()
	cur, err := s.Prepend(recs(0, 3)...)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Append(recs(3, 6)...); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(cur); err != nil {
		t.Fatal(err)
	}
	if got := drain(t, s, 4); !slices.Equal(got, without(3, 6)) {
		t.Fatalf("got %v", got)
	}
	if _, _, err := s.Append(recs(6, 8)...); err != nil {
		t.Fatal(err)
	}
	cur, err = s.Prepend(recs(100, 102)...)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(cur); err != nil {
		t.Fatal(err)
	}
	if got := drain(t, s, 4); !slices.Equal(got, without(6, 8)) {
		t.Fatalf("got %v", got)
	}
}

// FuzzSegmentDamage writes framed records, damages the segment where the
// fuzzer says and opens it twice: no panic, what is read back is the
// original records in order with some missing (never an invented or
// reordered one), and the repair leaves nothing to report the second time.
func FuzzSegmentDamage(f *testing.F) {
	f.Add(uint16(40), []byte{3, 0x10, 200, 0xff})
	f.Add(uint16(500), []byte{0, 0, 1, 0, 2, 0})
	f.Add(uint16(3), []byte{})
	f.Fuzz(func(t *testing.T, n uint16, edits []byte) {
		n %= 600
		dir := t.TempDir()
		want := recs(0, int(n))
		b := []byte(magicV2)
		for _, r := range want {
			b = frame(b, r)
		}
		// Each pair of edit bytes XORs one byte at a position spread
		// over the whole file; an odd last byte truncates.
		for i := 0; i+1 < len(edits); i += 2 {
			pos := int(edits[i]) * len(b) / 256
			b[pos] ^= edits[i+1]
		}
		if len(edits)%2 == 1 && len(b) > 0 {
			b = b[:int(edits[len(edits)-1])*len(b)/256]
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%016x%s", firstSegment, segmentExt)), b, 0o640); err != nil {
			t.Fatal(err)
		}
		o := Options{Dir: dir, MaxBytes: 1 << 24, SegmentBytes: 1 << 20, Fsync: FsyncNever}
		s, rec, err := Open(o)
		if err != nil {
			t.Fatal(err)
		}
		_ = s.Close()
		s, rec2, err := Open(o)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if rec2.LostRecords != 0 || rec2.Records != rec.Records {
			t.Fatalf("second open %+v after %+v", rec2, rec)
		}
		got := drain(t, s, 50)
		if len(got) != rec.Records {
			t.Fatalf("read %d, recovery said %d", len(got), rec.Records)
		}
		j := 0
		for _, g := range got {
			for j < len(want) && string(want[j]) != g {
				j++
			}
			if j == len(want) {
				t.Fatalf("record %q invented or out of order", g)
			}
			j++
		}
	})
}
