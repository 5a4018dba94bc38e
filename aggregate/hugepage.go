package aggregate

import "unsafe"

// hugePage is the size of the huge pages hugePageSlice aligns to.
const hugePage = 2 << 20

// hugePageSlice returns a zeroed slice of n elements of a pointer-free type,
// which, when it spans 2 MiB or more, starts on a 2 MiB boundary and is
// offered to the kernel for huge pages (adviseHugePages): the tracker's
// tombstone cache is read at a random place per conversation, and with 4
// KiB pages each read may also miss the TLB.
func hugePageSlice[T any](n int) []T {
	var zero T
	size := int(unsafe.Sizeof(zero))
	if n*size < hugePage {
		return make([]T, n)
	}
	b := make([]T, n+hugePage/size)
	off := 0
	if rem := uintptr(unsafe.Pointer(&b[0])) % hugePage; rem != 0 {
		off = int(hugePage-rem) / size
	}
	b = b[off : off+n : off+n]
	adviseHugePages(unsafe.Pointer(&b[0]), n*size)
	return b
}
