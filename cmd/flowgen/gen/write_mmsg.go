//go:build linux && (amd64 || arm64)

package gen

import (
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mmsghdr is struct mmsghdr of 64-bit Linux: a msghdr and the length the
// kernel sent, padded to 8 bytes.
type mmsghdr struct {
	hdr syscall.Msghdr
	len uint32
	_   [4]byte
}

// mmsgWriter sends a batch of datagrams to one address with one
// sendmmsg(2): on loopback the syscall entry is a good part of the cost of a
// datagram, more so in a VM. All its buffers are reused: it allocates
// nothing per batch.
type mmsgWriter struct {
	rc   syscall.RawConn
	sa4  syscall.RawSockaddrInet4
	sa6  syscall.RawSockaddrInet6
	name *byte
	nlen uint32
	hdrs []mmsghdr
	iovs []syscall.Iovec
	// State of the call in progress, set by write and read back after
	// rc.Write returns.
	n     int
	sent  int
	errno syscall.Errno
	// fn is the rc.Write callback, built once so that no closure is
	// allocated per batch.
	fn func(fd uintptr) bool
}

// newWriter returns a writer of batches of up to batch datagrams from conn
// to target: sendmmsg(2) when batch > 1, one sendto per datagram otherwise.
func newWriter(conn *net.UDPConn, target netip.AddrPort, batch int) (datagramWriter, error) {
	if batch <= 1 {
		return &plainWriter{conn: conn, target: target}, nil
	}
	rc, err := conn.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("batch: %w", err)
	}
	w := &mmsgWriter{rc: rc, hdrs: make([]mmsghdr, batch), iovs: make([]syscall.Iovec, batch)}
	port := (*[2]byte)(unsafe.Pointer(&w.sa4.Port))
	if target.Addr().Is4() {
		w.sa4.Family = syscall.AF_INET
		w.sa4.Addr = target.Addr().As4()
		w.name, w.nlen = (*byte)(unsafe.Pointer(&w.sa4)), syscall.SizeofSockaddrInet4
	} else {
		w.sa6.Family = syscall.AF_INET6
		w.sa6.Addr = target.Addr().As16()
		port = (*[2]byte)(unsafe.Pointer(&w.sa6.Port))
		w.name, w.nlen = (*byte)(unsafe.Pointer(&w.sa6)), syscall.SizeofSockaddrInet6
	}
	port[0], port[1] = byte(target.Port()>>8), byte(target.Port())
	w.fn = func(fd uintptr) bool {
		r, _, e := syscall.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&w.hdrs[0])), uintptr(w.n), 0, 0, 0)
		if e == syscall.EAGAIN {
			return false // the runtime waits until the socket is writable
		}
		w.sent, w.errno = int(r), e
		return true
	}
	return w, nil
}

// write sends bufs (at most the batch size) and returns how many datagrams
// the kernel took; fewer than len(bufs) with a nil error means "call again
// with the rest".
func (w *mmsgWriter) write(bufs [][]byte) (int, error) {
	if len(bufs) == 0 {
		return 0, nil
	}
	for i, b := range bufs {
		w.iovs[i].Base = &b[0]
		w.iovs[i].SetLen(len(b))
		w.hdrs[i] = mmsghdr{hdr: syscall.Msghdr{Name: w.name, Namelen: w.nlen, Iov: &w.iovs[i], Iovlen: 1}}
	}
	w.n, w.sent, w.errno = len(bufs), 0, 0
	err := w.rc.Write(w.fn)
	runtime.KeepAlive(bufs)
	if err != nil {
		return 0, err
	}
	if w.errno != 0 {
		return 0, w.errno
	}
	return w.sent, nil
}
