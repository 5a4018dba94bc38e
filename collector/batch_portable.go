package collector

import (
	"net"
	"net/netip"
)

// portableReader reads a UDP socket one datagram at a time, into a buffer
// it owns, without allocating: the batchReader of systems without Linux's
// recvmmsg, with the same methods. It builds everywhere so that Linux's
// tests cover it too.
type portableReader struct {
	conn *net.UDPConn
	buf  []byte
	n    int
	src  netip.AddrPort
}

func newPortableReader(conn *net.UDPConn) *portableReader {
	return &portableReader{conn: conn, buf: make([]byte, maxDatagram)}
}

// read waits for a datagram and returns 1; it stays valid until the next
// read. The error wraps net.ErrClosed once the socket is closed.
func (b *portableReader) read() (int, error) {
	n, src, err := b.conn.ReadFromUDPAddrPort(b.buf)
	if err != nil {
		return 0, err
	}
	b.n, b.src = n, src
	return 1, nil
}

// close makes read return net.ErrClosed.
func (b *portableReader) close() { _ = b.conn.Close() }

// release does nothing: close released the socket.
func (b *portableReader) release() {}

// socketDrops returns 0: the kernel's drop count is Linux's (SO_RXQ_OVFL).
func (b *portableReader) socketDrops(int) uint32 { return 0 }

// payload returns the datagram of the last read.
func (b *portableReader) payload(int) []byte { return b.buf[:b.n] }

// from returns the sender of the datagram of the last read.
func (b *portableReader) from(int) (netip.AddrPort, error) { return b.src, nil }
