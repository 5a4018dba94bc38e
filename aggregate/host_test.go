package aggregate

import (
	"testing"
	"unsafe"
)

// TestHostSize holds host in the 192-byte size class: its objects start on
// a cache line, so that an update reads the two lines the layout plans.
func TestHostSize(t *testing.T) {
	if s := unsafe.Sizeof(host{}); s > 192 || s <= 128 {
		t.Fatalf("host is %d bytes, outside the 192-byte size class", s)
	}
}
