package spool

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func open(t testing.TB, dir string, maxBytes, segBytes int64) (*Spool, Recovery) {
	t.Helper()
	s, rec, err := Open(Options{Dir: dir, MaxBytes: maxBytes, SegmentBytes: segBytes, Fsync: FsyncBatch})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s, rec
}

func recs(from, to int) [][]byte {
	var out [][]byte
	for i := from; i < to; i++ {
		out = append(out, fmt.Appendf(nil, "record-%04d", i))
	}
	return out
}

// drain reads everything left, batch by batch, committing as it goes.
func drain(t testing.TB, s *Spool, batch int) []string {
	t.Helper()
	var out []string
	for {
		got, cur, err := s.Peek(batch, 1<<20)
		if err != nil {
			t.Fatalf("Peek: %v", err)
		}
		if len(got) == 0 {
			return out
		}
		for _, g := range got {
			out = append(out, string(g))
		}
		if err := s.Commit(cur); err != nil {
			t.Fatalf("Commit: %v", err)
		}
	}
}

func strs(b [][]byte) []string {
	var out []string
	for _, x := range b {
		out = append(out, string(x))
	}
	return out
}

func TestFIFOAcrossSegments(t *testing.T) {
	for _, batch := range []int{1, 3, 100} {
		t.Run(fmt.Sprint(batch), func(t *testing.T) {
			dir := t.TempDir()
			s, _ := open(t, dir, 1<<20, 100) // ~4 records per segment
			for i := range 10 {
				if _, _, err := s.Append(recs(i*5, i*5+5)...); err != nil {
					t.Fatal(err)
				}
			}
			if s.Len() != 50 {
				t.Fatalf("Len = %d, want 50", s.Len())
			}
			got := drain(t, s, batch)
			if want := strs(recs(0, 50)); !slices.Equal(got, want) {
				t.Fatalf("got %v\nwant %v", got, want)
			}
			if s.Len() != 0 || s.Bytes() != 0 {
				t.Fatalf("after drain Len=%d Bytes=%d", s.Len(), s.Bytes())
			}
			entries, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
			if len(entries) != 0 {
				t.Fatalf("segments left after drain: %v", entries)
			}
			_ = s.Close()
		})
	}
}

func TestReopenKeepsCursor(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, dir, 1<<20, 120)
	if _, _, err := s.Append(recs(0, 20)...); err != nil {
		t.Fatal(err)
	}
	// Consume 7 records (spanning a segment boundary), then "restart".
	var consumed []string
	for len(consumed) < 7 {
		got, cur, err := s.Peek(7-len(consumed), 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		consumed = append(consumed, strs(got)...)
		if err := s.Commit(cur); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, rec := open(t, dir, 1<<20, 120)
	defer s.Close()
	if rec.Records != 13 || rec.CorruptSegments != 0 {
		t.Fatalf("recovery = %+v, want 13 records", rec)
	}
	if _, _, err := s.Append(recs(20, 25)...); err != nil {
		t.Fatal(err)
	}
	got := append(consumed, drain(t, s, 4)...)
	if want := strs(recs(0, 25)); !slices.Equal(got, want) {
		t.Fatalf("got %v\nwant %v", got, want)
	}
}

func TestCeilingDropsOldestFirst(t *testing.T) {
	dir := t.TempDir()
	// Records are 23 bytes framed; 4 fit in a 100-byte segment; the
	// ceiling holds 3 segments.
	s, _ := open(t, dir, 300, 100)
	defer s.Close()
	total := 0
	for i := range 40 {
		_, d, err := s.Append(recs(i, i+1)...)
		if err != nil {
			t.Fatal(err)
		}
		total += d
	}
	if s.Bytes() > 300 {
		t.Fatalf("Bytes = %d above ceiling", s.Bytes())
	}
	got := drain(t, s, 10)
	if total+len(got) != 40 {
		t.Fatalf("dropped %d + kept %d != 40", total, len(got))
	}
	if total == 0 {
		t.Fatal("no drop counted")
	}
	// What is kept is the newest, contiguous and in order.
	if want := strs(recs(40-len(got), 40)); !slices.Equal(got, want) {
		t.Fatalf("kept %v\nwant %v", got, want)
	}
}

func TestPrependReadFirst(t *testing.T) {
	s, _ := open(t, t.TempDir(), 1<<20, 1<<10)
	defer s.Close()
	if _, err := s.Prepend(recs(5, 8)...); err != nil { // empty spool: plain append
		t.Fatal(err)
	}
	if _, _, err := s.Append(recs(8, 10)...); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Prepend(recs(0, 5)...); err != nil {
		t.Fatal(err)
	}
	if want, got := strs(recs(0, 10)), drain(t, s, 3); !slices.Equal(got, want) {
		t.Fatalf("got %v\nwant %v", got, want)
	}
}

func TestCorruptTailRecovered(t *testing.T) {
	cases := []struct {
		name    string
		corrupt func(t *testing.T, path string)
		keep    int
	}{
		{"truncated payload", func(t *testing.T, path string) { truncateBy(t, path, 3) }, 9},
		{"truncated frame", func(t *testing.T, path string) { truncateBy(t, path, 23+23-4) }, 8}, // 11-byte payloads, 12-byte frames
		{"flipped byte in last", func(t *testing.T, path string) { flipAt(t, path, -2) }, 9},
		{"garbage appended", func(t *testing.T, path string) { appendBytes(t, path, []byte{0, 0, 0, 200, 1, 2, 3}) }, 10},
		{"huge length", func(t *testing.T, path string) { appendBytes(t, path, []byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}) }, 10},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s, _ := open(t, dir, 1<<20, 1<<10)
			if _, _, err := s.Append(recs(0, 10)...); err != nil {
				t.Fatal(err)
			}
			_ = s.Close()
			segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
			if len(segs) != 1 {
				t.Fatalf("segments: %v", segs)
			}
			tc.corrupt(t, segs[0])
			s, rec := open(t, dir, 1<<20, 1<<10)
			defer s.Close()
			if rec.Records != tc.keep {
				t.Fatalf("recovered %d records, want %d (%+v)", rec.Records, tc.keep, rec)
			}
			// A torn or garbage tail counts as one lost record.
			if rec.CorruptSegments != 1 || rec.DiscardedBytes == 0 || len(rec.Damage) != 1 || rec.LostRecords != 1 {
				t.Fatalf("recovery report = %+v", rec)
			}
			// Appending after recovery continues cleanly.
			if _, _, err := s.Append(recs(10, 12)...); err != nil {
				t.Fatal(err)
			}
			want := append(strs(recs(0, tc.keep)), strs(recs(10, 12))...)
			if got := drain(t, s, 5); !slices.Equal(got, want) {
				t.Fatalf("got %v\nwant %v", got, want)
			}
		})
	}
}

func truncateBy(t *testing.T, path string, n int64) {
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, st.Size()-n); err != nil {
		t.Fatal(err)
	}
}

func flipAt(t *testing.T, path string, at int) {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)+at] ^= 0x55
	if err := os.WriteFile(path, b, 0o640); err != nil {
		t.Fatal(err)
	}
}

func appendBytes(t *testing.T, path string, extra []byte) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(extra); err != nil {
		t.Fatal(err)
	}
}

func TestOptionsRejected(t *testing.T) {
	for _, o := range []Options{
		{Dir: t.TempDir(), MaxBytes: 100, SegmentBytes: 200, Fsync: FsyncNever},
		{Dir: t.TempDir(), MaxBytes: 100, SegmentBytes: 4, Fsync: FsyncNever},
		{Dir: t.TempDir(), MaxBytes: 1000, SegmentBytes: 200, Fsync: "sometimes"},
	} {
		if _, _, err := Open(o); err == nil {
			t.Errorf("Open(%+v) accepted", o)
		}
	}
}

// FuzzOpen feeds arbitrary segment contents to Open: it must never panic,
// and whatever it keeps must read back cleanly.
func FuzzOpen(f *testing.F) {
	f.Add([]byte{})
	f.Add(frame([]byte(magicV2), []byte("hello")))
	f.Add(append(frame(frame([]byte(magicV2), []byte("a")), []byte("bb")), 0, 0, 0, 9))
	f.Add([]byte("FCSPOOL2\xfe\xc5\x0f\xff\xff\xff\xff\xff\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%016x%s", firstSegment, segmentExt)), data, 0o640); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, cursorFile), data[:min(len(data), 20)], 0o640); err != nil {
			t.Fatal(err)
		}
		s, rec, err := Open(Options{Dir: dir, MaxBytes: 1 << 20, SegmentBytes: 1 << 16, Fsync: FsyncNever})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		got := drain(t, s, 7)
		if len(got) > rec.Records {
			t.Fatalf("read %d records, recovery said %d", len(got), rec.Records)
		}
	})
}

func BenchmarkAppendPeekCommit(b *testing.B) {
	for _, policy := range []FsyncPolicy{FsyncNever, FsyncBatch} {
		b.Run(string(policy), func(b *testing.B) {
			s, _, err := Open(Options{Dir: b.TempDir(), MaxBytes: 1 << 30, SegmentBytes: 8 << 20, Fsync: policy})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			rec := make([]byte, 400) // about one alert's JSON
			batch := make([][]byte, 100)
			for i := range batch {
				batch[i] = rec
			}
			b.SetBytes(int64(len(rec)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i += len(batch) {
				if _, _, err := s.Append(batch...); err != nil {
					b.Fatal(err)
				}
				got, cur, err := s.Peek(len(batch), 1<<20)
				if err != nil || len(got) != len(batch) {
					b.Fatalf("Peek: %d, %v", len(got), err)
				}
				if err := s.Commit(cur); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestEmptyAndHeaderlessSegments(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%016x%s", firstSegment, segmentExt)), nil, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%016x%s", firstSegment+1, segmentExt)), []byte("garbage!!"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "notes.seg"), []byte("x"), 0o640); err != nil {
		t.Fatal(err)
	}
	s, rec := open(t, dir, 1<<20, 1<<10)
	defer s.Close()
	if rec.Records != 0 || rec.CorruptSegments != 1 || len(rec.Problems) != 2 {
		t.Fatalf("recovery = %+v", rec)
	}
	if _, _, err := s.Append(recs(0, 3)...); err != nil {
		t.Fatal(err)
	}
	if got := drain(t, s, 10); !slices.Equal(got, strs(recs(0, 3))) {
		t.Fatalf("got %v", got)
	}
}

// TestAppendWritten: a batch with a record too large for a segment writes
// the records before it and says where it stopped, so that the caller can
// drop that one record and append the rest.
func TestAppendWritten(t *testing.T) {
	s, _ := open(t, t.TempDir(), 1<<20, 100)
	defer s.Close()
	batch := recs(0, 6) // 23 bytes framed: 4 fit in a 100-byte segment
	big := make([]byte, 100)
	batch = slices.Insert(batch, 5, big)
	written, dropped, err := s.Append(batch...)
	if !errors.Is(err, ErrRecordTooLarge) || written != 5 || dropped != 0 {
		t.Fatalf("Append = %d, %d, %v; want 5, 0, ErrRecordTooLarge", written, dropped, err)
	}
	if written, _, err := s.Append(batch[written+1:]...); err != nil || written != 1 {
		t.Fatalf("Append rest = %d, %v", written, err)
	}
	if got := drain(t, s, 10); !slices.Equal(got, strs(recs(0, 6))) {
		t.Fatalf("got %v", got)
	}
}
