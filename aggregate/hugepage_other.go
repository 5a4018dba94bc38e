//go:build !linux

package aggregate

import "unsafe"

// adviseHugePages does nothing here: no transparent huge pages to ask for.
func adviseHugePages(p unsafe.Pointer, size int) {}
