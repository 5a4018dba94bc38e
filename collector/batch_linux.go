package collector

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// readBatch is how many datagrams one recvmmsg call may return. Each slot
// holds a full-size datagram, so a socket's reader owns readBatch×64 KiB.
const readBatch = 32

// mmsghdr is Linux's struct mmsghdr; Go lays it out as C does (the length,
// then padding to the struct's alignment).
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
}

// batchReader reads datagrams from a UDP socket readBatch at a time with
// recvmmsg(2), into buffers it owns, without allocating: x/net's
// ReadBatch allocates two objects per datagram for the sender's address.
type batchReader struct {
	// buf holds the datagrams, maxDatagram bytes apart. It is allocated
	// apart from the headers so that the GC never scans its 2 MiB.
	buf   []byte
	iovs  [readBatch]unix.Iovec
	names [readBatch]unix.RawSockaddrInet6 // large enough for IPv4 too
	hdrs  [readBatch]mmsghdr
	// oob receives each datagram's control messages: the socket's drop
	// count (SO_RXQ_OVFL), which the kernel attaches once it is not zero.
	oob   [readBatch][oobSize]byte
	zones map[uint32]string
	// kernelDrops is the highest socket drop count seen so far.
	kernelDrops uint32

	// fd is the socket, outside Go's netpoller (newBatchReader); closed
	// is set by close, after which read returns net.ErrClosed.
	fd     int
	closed atomic.Bool
}

// newBatchReader takes conn over: its socket is read through a duplicate
// descriptor in blocking mode, and conn is closed, which takes the socket
// out of Go's netpoller. There, every datagram that arrives while the
// reader is busy or pausing (read_pause) would wake the netpoller's thread
// for nothing: about one wake-up and one epoll_pwait per datagram at
// 30 k datagrams/s (docs/performance.md).
func newBatchReader(conn *net.UDPConn) (*batchReader, error) {
	defer conn.Close()
	rc, err := conn.SyscallConn()
	if err != nil {
		return nil, err
	}
	fd := -1
	if cerr := rc.Control(func(s uintptr) { fd, err = unix.Dup(int(s)) }); cerr != nil {
		return nil, cerr
	}
	if err != nil {
		return nil, fmt.Errorf("dup: %w", err)
	}
	unix.CloseOnExec(fd)
	if err := unix.SetNonblock(fd, false); err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("blocking mode: %w", err)
	}
	b := &batchReader{fd: fd, buf: make([]byte, readBatch*maxDatagram), zones: make(map[uint32]string)}
	for i := range b.hdrs {
		b.iovs[i].Base = &b.buf[i*maxDatagram]
		b.iovs[i].SetLen(maxDatagram)
		b.hdrs[i].hdr.Iov = &b.iovs[i]
		b.hdrs[i].hdr.SetIovlen(1)
		b.hdrs[i].hdr.Name = (*byte)(unsafe.Pointer(&b.names[i]))
		b.hdrs[i].hdr.Control = &b.oob[i][0]
	}
	return b, nil
}

// read waits for datagrams and returns how many were read; they stay
// valid until the next read. The error wraps net.ErrClosed once close was
// called.
func (b *batchReader) read() (int, error) {
	for i := range b.hdrs {
		// The kernel writes back the address length and flags.
		b.hdrs[i].hdr.Namelen = unix.SizeofSockaddrInet6
		b.hdrs[i].hdr.SetControllen(oobSize)
		b.hdrs[i].hdr.Flags = 0
	}
	for {
		// MSG_WAITFORONE: block for the first datagram only, then take
		// what is queued.
		n, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(b.fd), uintptr(unsafe.Pointer(&b.hdrs[0])),
			readBatch, unix.MSG_WAITFORONE, 0, 0)
		if b.closed.Load() {
			return 0, net.ErrClosed
		}
		switch errno {
		case 0:
			return int(n), nil
		case unix.EINTR, unix.EAGAIN:
			continue
		}
		return 0, errno
	}
}

// close makes read return net.ErrClosed, waking a read that waits: a
// shutdown of the socket ends its wait (Linux does so even for an
// unconnected UDP socket, while reporting ENOTCONN). It is safe to call
// during a read, and more than once.
func (b *batchReader) close() {
	if !b.closed.Swap(true) {
		_ = unix.Shutdown(b.fd, unix.SHUT_RD)
	}
}

// release closes the socket. Its owner calls it once no read runs: closing
// a descriptor another thread waits on would let a new socket reuse it.
func (b *batchReader) release() { _ = unix.Close(b.fd) }

// oobSize holds one control message of a 32-bit value (SO_RXQ_OVFL's):
// unix.CmsgSpace(4), as a constant.
const oobSize = unix.SizeofCmsghdr + int(unsafe.Sizeof(uintptr(0)))

// socketDrops returns how many datagrams the kernel dropped on the socket
// (its receive buffer full) since the previous call, as the drop counts
// of the last read's datagrams tell. A datagram carries the count of its
// socket when it was queued, so drops show with the next datagram after
// them. Sockets without SO_RXQ_OVFL report nothing.
func (b *batchReader) socketDrops(n int) uint32 {
	latest, seen := b.kernelDrops, false
	for i := range n {
		if v, ok := rxqOverflow(b.oob[i][:min(int(b.hdrs[i].hdr.Controllen), oobSize)]); ok {
			// The count is 32 bits and wraps: compare by difference.
			if !seen || int32(v-latest) > 0 {
				latest, seen = v, true
			}
		}
	}
	d := latest - b.kernelDrops
	b.kernelDrops = latest
	return d
}

// rxqOverflow finds the SO_RXQ_OVFL drop count among control messages,
// without allocating (unix.ParseSocketControlMessage would).
func rxqOverflow(oob []byte) (uint32, bool) {
	for len(oob) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		// Compared as unsigned: a length past int's range must not turn
		// negative.
		if uint64(h.Len) < unix.SizeofCmsghdr || uint64(h.Len) > uint64(len(oob)) {
			return 0, false
		}
		if h.Level == unix.SOL_SOCKET && h.Type == unix.SO_RXQ_OVFL && int(h.Len) >= unix.CmsgLen(4) {
			return binary.NativeEndian.Uint32(oob[unix.CmsgLen(0):]), true
		}
		next := unix.CmsgSpace(int(h.Len) - unix.SizeofCmsghdr)
		if next > len(oob) {
			return 0, false
		}
		oob = oob[next:]
	}
	return 0, false
}

// payload returns datagram i of the last read.
func (b *batchReader) payload(i int) []byte {
	return b.buf[i*maxDatagram:][:b.hdrs[i].len]
}

// errNoAddress is returned for a datagram without a usable sender address.
var errNoAddress = errors.New("datagram without an IP sender address")

// from returns the sender of datagram i of the last read.
func (b *batchReader) from(i int) (netip.AddrPort, error) {
	sa := &b.names[i]
	// The port is in network byte order in both address families.
	port := (*[2]byte)(unsafe.Pointer(&sa.Port))
	p := uint16(port[0])<<8 | uint16(port[1])
	switch {
	case sa.Family == unix.AF_INET && b.hdrs[i].hdr.Namelen >= unix.SizeofSockaddrInet4:
		v4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(v4.Addr), p), nil
	case sa.Family == unix.AF_INET6 && b.hdrs[i].hdr.Namelen >= unix.SizeofSockaddrInet6:
		a := netip.AddrFrom16(sa.Addr)
		if sa.Scope_id != 0 {
			a = a.WithZone(b.zone(sa.Scope_id))
		}
		return netip.AddrPortFrom(a, p), nil
	}
	return netip.AddrPort{}, errNoAddress
}

// maxZones bounds the interface name cache.
const maxZones = 256

// zone names an IPv6 scope (interface index) as the net package does, once
// per index.
func (b *batchReader) zone(id uint32) string {
	if z, ok := b.zones[id]; ok {
		return z
	}
	z := strconv.FormatUint(uint64(id), 10)
	if ifi, err := net.InterfaceByIndex(int(id)); err == nil {
		z = ifi.Name
	}
	if len(b.zones) >= maxZones {
		clear(b.zones)
	}
	b.zones[id] = z
	return z
}

// sleepThread pauses the calling goroutine's thread in the kernel
// (nanosleep) for a reader's read_pause. time.Sleep would park the
// goroutine on the runtime's timers, whose wake-up goes through the
// netpoller and other scheduler threads (docs/performance.md). With holdP
// the thread keeps its P through a raw system call: in an ordinary one the
// runtime's monitor hands the P to another thread after 20 µs and polls
// every 20 µs while pauses recur, ~25 % of the CPU per datagram at 30 k
// datagrams/s. A signal may cut the pause short, which does no harm.
func sleepThread(d time.Duration, holdP bool) {
	ts := unix.NsecToTimespec(int64(d))
	if holdP {
		_, _, _ = unix.RawSyscall(unix.SYS_NANOSLEEP, uintptr(unsafe.Pointer(&ts)), 0, 0)
		return
	}
	_ = unix.Nanosleep(&ts, nil)
}
