package aggregate

import (
	"testing"
	"unsafe"
)

func TestHugePageSlice(t *testing.T) {
	cases := []struct {
		n       int
		aligned bool
	}{
		{1, false},
		{hugePage/16 - 1, false},
		{hugePage / 16, true},
		{16384 * 16, true}, // the default tombstone caches: 16 shards of 16384 slots
	}
	for _, tc := range cases {
		s := hugePageSlice[recentConv](tc.n)
		if len(s) != tc.n || cap(s) != tc.n {
			t.Fatalf("n=%d: len %d cap %d", tc.n, len(s), cap(s))
		}
		if addr := uintptr(unsafe.Pointer(&s[0])); tc.aligned && addr%hugePage != 0 {
			t.Errorf("n=%d: starts at %#x, not on a huge page", tc.n, addr)
		}
		for i := range s {
			if s[i] != (recentConv{}) {
				t.Fatalf("n=%d: slot %d not zero", tc.n, i)
			}
		}
		s[len(s)-1] = recentConv{hash: 1} // the last slot is ours
	}
}
