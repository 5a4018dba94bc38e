//go:build !(linux && (amd64 || arm64))

package gen

import (
	"net"
	"net/netip"
)

// newWriter returns a writer of batches from conn to target; without
// sendmmsg(2) it sends one datagram per syscall whatever the batch size.
func newWriter(conn *net.UDPConn, target netip.AddrPort, _ int) (datagramWriter, error) {
	return &plainWriter{conn: conn, target: target}, nil
}
