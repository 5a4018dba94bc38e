package gen

import (
	"net"
	"net/netip"
)

// datagramWriter sends a batch of datagrams to the target. write returns
// how many were sent; fewer than len(bufs) with a nil error means "call
// again with the rest".
type datagramWriter interface {
	write(bufs [][]byte) (int, error)
}

// plainWriter sends one datagram per syscall.
type plainWriter struct {
	conn   *net.UDPConn
	target netip.AddrPort
}

func (w *plainWriter) write(bufs [][]byte) (int, error) {
	for i, b := range bufs {
		if _, err := w.conn.WriteToUDPAddrPort(b, w.target); err != nil {
			return i, err
		}
	}
	return len(bufs), nil
}
