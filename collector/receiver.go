package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"syscall"
	"time"
)

// listener is one configured listening address and its sockets.
type listener struct {
	url     string
	kind    listenKind
	addr    netip.AddrPort
	sockets int
	rcvbuf  int
	bound   netip.AddrPort
	readers []*batchReader // one per socket
}

// close ends the listener's reads: its readers return net.ErrClosed.
func (l *listener) close() {
	for _, r := range l.readers {
		r.close()
	}
}

// release closes the listener's sockets, once no reader reads them.
func (l *listener) release() {
	for _, r := range l.readers {
		r.release()
	}
}

// maxDatagram is the largest UDP payload.
const maxDatagram = 65535

// bind opens the listener's sockets, which share its port. With port 0,
// the first socket picks the port and the others join it. A port another
// socket holds is refused (probeFree).
func (c *Component) bind(ctx context.Context, l *listener) error {
	if l.addr.Port() != 0 {
		if err := probeFree(ctx, l.addr); err != nil {
			return fmt.Errorf("listener %s: %w", l.url, err)
		}
	}
	sockets := l.sockets
	if portableReceive && sockets > 1 {
		c.deps.Logger.Warn("one socket per listener on this system: only Linux spreads a port's datagrams over several sockets (SO_REUSEPORT)",
			"listener", l.url, "sockets", sockets)
		sockets = 1
	}
	addr := l.addr
	for i := range sockets {
		conn, granted, err := listenUDP(ctx, addr, l.rcvbuf)
		if err != nil {
			return fmt.Errorf("listener %s: %w", l.url, err)
		}
		if i == 0 {
			l.bound = conn.LocalAddr().(*net.UDPAddr).AddrPort()
			l.bound = netip.AddrPortFrom(l.bound.Addr().Unmap(), l.bound.Port())
			addr = l.bound
			c.metrics.rcvbuf.WithLabelValues(l.url).Set(float64(granted))
			if l.rcvbuf > 0 && usableRcvbuf(granted) < l.rcvbuf {
				c.deps.Logger.Warn("socket receive buffer capped by the kernel; "+rcvbufHint+" to avoid drops in bursts",
					"listener", l.url, "asked", l.rcvbuf, "granted", usableRcvbuf(granted))
			}
		}
		br, err := newBatchReader(conn)
		if err != nil {
			return fmt.Errorf("listener %s: %w", l.url, err)
		}
		l.readers = append(l.readers, br)
	}
	return nil
}

// probeFree checks that no socket holds addr, by binding it for a moment
// without SO_REUSEPORT. Linux lets the SO_REUSEPORT sockets of one user
// share a port across processes: a second instance would otherwise bind
// the first one's port and silently take part of every exporter's
// datagrams. (Two instances started in the same instant can both pass.)
func probeFree(ctx context.Context, addr netip.AddrPort) error {
	var lc net.ListenConfig
	pc, err := lc.ListenPacket(ctx, udpNetwork(addr), addr.String())
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("UDP %s is already in use by another socket (another flowcheck, or another collector?)", addr)
	}
	if err != nil {
		return err
	}
	return pc.Close()
}

// udpNetwork is the network of a UDP address for net.Listen.
func udpNetwork(a netip.AddrPort) string {
	if a.Addr().Is6() {
		return "udp6"
	}
	return "udp4"
}

// read is a socket's read loop: it reads batches of datagrams into the
// batch reader's buffers, drops datagrams from outside the allow-list, and
// copies the rest into pooled packets queued to the exporter's worker
// (pick). A full queue drops the datagram (counted): the socket is never
// blocked. Datagrams the kernel dropped on the socket, its buffer full,
// are counted too, as soon as a later datagram tells of them.
func (c *Component) read(l *listener, br *batchReader) {
	defer c.readers.Done()
	defer br.release()
	// The rate limiter's keys, made once: a drop must not allocate.
	rcvbufKey, queueKey := "rcvbuf\x00"+l.url, "queue\x00"+l.url
	var loss lossWindow
	for {
		n, err := br.read()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			c.logs.LogAt(c.deps.Clock.Now(), slog.LevelWarn, "read\x00"+l.url, "UDP read error", "listener", l.url, "err", err)
			continue
		}
		// One clock reading per batch: its datagrams arrived together.
		now := c.deps.Clock.Now()
		kernelDrops := br.socketDrops(n)
		if kernelDrops > 0 {
			c.metrics.drops[dropSocketBuffer].Add(float64(kernelDrops))
			c.logs.LogAt(now, slog.LevelWarn, rcvbufKey, "socket receive buffer overflowed: datagrams dropped by the kernel (raise the listener's rcvbuf, or add workers or CPU)",
				"listener", l.url, "dropped", kernelDrops)
		}
		queueDrops, queued := 0, 0
		for i := range n {
			from, err := br.from(i)
			if err != nil {
				c.logs.LogAt(now, slog.LevelWarn, "addr\x00"+l.url, "UDP read error", "listener", l.url, "err", err)
				continue
			}
			addr := from.Addr().Unmap()
			if !c.allowed(addr) {
				c.notAllowed(addr, now)
				continue
			}
			p := c.getPacket()
			p.from, p.received, p.kind = from, now, l.kind
			p.buf = append(p.buf[:0], br.payload(i)...)
			q, spilled := c.pick(addr)
			select {
			case q <- p:
				queued++
				if spilled {
					c.metrics.spilled.Inc()
				}
			default:
				c.dropped(addr, dropQueueFull)
				queueDrops++
				c.putPacket(p)
			}
		}
		if queueDrops > 0 {
			// Once per read, not per datagram: logging boxes its
			// arguments, and an overloaded reader must not allocate.
			c.logs.LogAt(now, slog.LevelWarn, queueKey, "decode queue full: datagrams dropped (the workers are behind: add workers or CPU)",
				"listener", l.url, "dropped", queueDrops)
		}
		if lost, received, ok := loss.add(now, int(kernelDrops)+queueDrops, queued); ok && c.deps.Lost != nil {
			c.deps.Lost(now, lost, received)
		}
		if n < readBatch && c.config.ReadPause > 0 {
			// The socket is empty: let datagrams gather in its buffer
			// rather than wake up for each (collector.read_pause).
			sleepThread(c.config.ReadPause, c.pauseHoldsP)
		}
	}
}

// lossWindow sums a reader's lost and queued datagrams over about a
// second, for Dependencies.Lost.
type lossWindow struct {
	since          time.Time
	lost, received int
}

// add counts one read's datagrams at now; when the window is a second old
// it starts a new one and returns the old one's counts, ok when some were
// lost.
func (w *lossWindow) add(now time.Time, lost, received int) (int, int, bool) {
	if w.since.IsZero() {
		w.since = now
	}
	w.lost += lost
	w.received += received
	if now.Sub(w.since) < time.Second {
		return 0, 0, false
	}
	l, r := w.lost, w.received
	*w = lossWindow{since: now}
	if l == 0 {
		return 0, 0, false
	}
	return l, r, true
}
