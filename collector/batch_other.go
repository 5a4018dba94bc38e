//go:build !linux

package collector

import (
	"net"
	"time"
)

// readBatch is how many datagrams one read returns: one, without Linux's
// recvmmsg.
const readBatch = 1

// batchReader is the portable reader off Linux.
type batchReader = portableReader

func newBatchReader(conn *net.UDPConn) (*batchReader, error) {
	return newPortableReader(conn), nil
}

// sleepThread is time.Sleep off Linux (where reads return one datagram, so
// a reader never pauses).
func sleepThread(d time.Duration, _ bool) { time.Sleep(d) }
