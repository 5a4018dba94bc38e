//go:build !linux

package collector

import (
	"context"
	"net"
	"net/netip"
)

// portableReceive is true off Linux: one socket per listener (elsewhere
// SO_REUSEPORT does not spread a port's datagrams over its sockets), read
// one datagram at a time, and the datagrams the kernel drops when the
// socket's buffer is full are not counted.
const portableReceive = true

// rcvbufHint says how to raise the kernel's receive buffer cap.
const rcvbufHint = "raise the kern.ipc.maxsockbuf sysctl"

// listenUDP binds a listener's socket and asks for a receive buffer of
// rcvbuf bytes (0: the system default). It returns the buffer granted: what
// was asked, or 0 when the system refused it (the socket then keeps its
// default, and the caller warns).
func listenUDP(ctx context.Context, addr netip.AddrPort, rcvbuf int) (*net.UDPConn, int, error) {
	var lc net.ListenConfig
	pc, err := lc.ListenPacket(ctx, udpNetwork(addr), addr.String())
	if err != nil {
		return nil, 0, err
	}
	conn := pc.(*net.UDPConn)
	if rcvbuf > 0 && conn.SetReadBuffer(rcvbuf) == nil {
		return conn, rcvbuf, nil
	}
	return conn, 0, nil
}

// usableRcvbuf is the part of a granted receive buffer that holds data.
func usableRcvbuf(granted int) int { return granted }
