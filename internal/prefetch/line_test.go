package prefetch

import (
	"testing"
	"unsafe"
)

// TestLine runs the instruction on memory that exists, on nil and on an
// address past the end of a slice: a prefetch never faults.
func TestLine(t *testing.T) {
	b := make([]uint64, 1024)
	for i := range b {
		Line(unsafe.Pointer(&b[i]))
	}
	Line(nil)
	Line(unsafe.Add(unsafe.Pointer(&b[0]), 1<<30))
}

func BenchmarkLine(b *testing.B) {
	x := make([]uint64, 8)
	for range b.N {
		Line(unsafe.Pointer(&x[0]))
	}
}
