package aggregate

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// adviseHugePages asks the kernel to back the size bytes at p, p aligned
// on a huge page, with huge pages (transparent huge pages in "madvise"
// mode, the common default, only back memory so advised). A refusal
// changes nothing but the speed.
func adviseHugePages(p unsafe.Pointer, size int) {
	_ = unix.Madvise(unsafe.Slice((*byte)(p), size&^(hugePage-1)), unix.MADV_HUGEPAGE)
}
