package collector

import (
	"context"
	"net"
	"net/netip"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// portableReceive is false on Linux: a listener's sockets share its port
// (SO_REUSEPORT spreads the datagrams over them), are read with recvmmsg,
// and count the datagrams the kernel dropped (SO_RXQ_OVFL).
const portableReceive = false

// rcvbufHint says how to raise the kernel's receive buffer cap.
const rcvbufHint = "raise the net.core.rmem_max sysctl (or run as root)"

// listenUDP binds one of a listener's SO_REUSEPORT sockets and asks for a
// receive buffer of rcvbuf bytes (0: the system default). It returns the
// buffer the kernel granted, as getsockopt reports it.
func listenUDP(ctx context.Context, addr netip.AddrPort, rcvbuf int) (*net.UDPConn, int, error) {
	var granted int
	var sockErr error
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		err := rc.Control(func(fd uintptr) {
			sockErr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
			if sockErr == nil {
				// Datagrams then carry the socket's drop count.
				sockErr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RXQ_OVFL, 1)
			}
			if sockErr == nil && rcvbuf > 0 {
				granted, sockErr = setRcvbuf(int(fd), rcvbuf)
			}
		})
		if err != nil {
			return err
		}
		return sockErr
	}}
	pc, err := lc.ListenPacket(ctx, udpNetwork(addr), addr.String())
	if err != nil {
		return nil, 0, err
	}
	return pc.(*net.UDPConn), granted, nil
}

// usableRcvbuf is the part of a granted receive buffer that holds data:
// Linux reports twice the size asked (it counts its bookkeeping).
func usableRcvbuf(granted int) int { return granted / 2 }

// setRcvbuf asks for a receive buffer of n bytes: SO_RCVBUFFORCE first,
// which ignores net.core.rmem_max when running with CAP_NET_ADMIN, then
// SO_RCVBUF. It returns what the kernel granted.
func setRcvbuf(fd, n int) (int, error) {
	if os.Geteuid() != 0 || unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, n) != nil {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, n); err != nil {
			return 0, err
		}
	}
	return unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF)
}
