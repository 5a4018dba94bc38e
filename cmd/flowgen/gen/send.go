package gen

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// Stats is what a run sent.
type Stats struct {
	// Records, Packets and Bytes count what the kernel accepted (UDP
	// payload bytes); a datagram whose send failed is in SendErrors only.
	Records, Packets, Bytes uint64
	// SendErrors counts datagrams whose send failed (e.g. ENOBUFS).
	SendErrors uint64
	// Elapsed is the wall-clock time from the first send to the end.
	Elapsed time.Duration
}

// Rate is the achieved records per second.
func (s Stats) Rate() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Records) / s.Elapsed.Seconds()
}

// maxConsecutiveErrors ends a run whose sends all fail (an unreachable
// target) instead of spinning until the deadline.
const maxConsecutiveErrors = 10000

// Sender sends the population's record cycle to the target from one or more
// simulated exporters, round robin, one datagram each in turn.
type Sender struct {
	cfg     Configuration
	pop     *Population
	target  netip.AddrPort
	conns   []*net.UDPConn
	encs    []*Encoder
	writers []datagramWriter
}

// NewSender validates cfg, builds the population and opens one UDP socket
// per exporter. Close it when done.
func NewSender(cfg Configuration) (*Sender, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	pop, err := NewPopulation(cfg.Population)
	if err != nil {
		return nil, fmt.Errorf("population.%w", err)
	}
	s := &Sender{cfg: cfg, pop: pop, target: netip.AddrPortFrom(cfg.Target.Addr().Unmap(), cfg.Target.Port())}
	boot := time.Now().Add(-time.Hour)
	for i := range cfg.Exporters {
		local := ExporterAddr(s.target.Addr(), i)
		network := "udp4"
		if local.Is6() {
			network = "udp6"
		}
		conn, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(local, 0)))
		if err != nil {
			_ = s.Close()
			return nil, fmt.Errorf("exporter %d: bind %s: %w", i, local, err)
		}
		s.conns = append(s.conns, conn)
		if cfg.SendBuffer > 0 {
			if err := conn.SetWriteBuffer(cfg.SendBuffer); err != nil {
				_ = s.Close()
				return nil, fmt.Errorf("send_buffer: %w", err)
			}
		}
		enc, err := NewEncoder(cfg.Version, uint32(i+1), cfg.TemplateRefresh, boot)
		if err != nil {
			_ = s.Close()
			return nil, err
		}
		s.encs = append(s.encs, enc)
		w, err := newWriter(conn, s.target, cfg.Batch)
		if err != nil {
			_ = s.Close()
			return nil, err
		}
		s.writers = append(s.writers, w)
	}
	return s, nil
}

// ExporterAddr is the local address simulated exporter i sends from:
// 127.0.0.2 + i towards an IPv4 loopback target (every 127/8 address is
// local on Linux, so a collector sees distinct exporters), otherwise the
// unspecified address (the kernel picks; exporters then differ by port only).
func ExporterAddr(target netip.Addr, i int) netip.Addr {
	if target.Is4() && target.IsLoopback() {
		return netip.AddrFrom4([4]byte{127, 0, 0, byte(2 + i)})
	}
	if target.Is4() {
		return netip.IPv4Unspecified()
	}
	return netip.IPv6Unspecified()
}

// Population is the record cycle the sender walks.
func (s *Sender) Population() *Population { return s.pop }

// LocalAddrs returns each exporter socket's bound address.
func (s *Sender) LocalAddrs() []netip.AddrPort {
	out := make([]netip.AddrPort, len(s.conns))
	for i, c := range s.conns {
		out[i] = c.LocalAddr().(*net.UDPAddr).AddrPort()
	}
	return out
}

// Close closes the sockets.
func (s *Sender) Close() error {
	var errs []error
	for _, c := range s.conns {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// Run sends until the duration or count is reached or ctx is done, pacing to
// the configured rate in bursts of about a millisecond's worth of records.
// Each exporter in turn sends a batch of up to Batch datagrams.
// Cancelling ctx is a normal end, not an error.
func (s *Sender) Run(ctx context.Context) (Stats, error) {
	cfg := s.cfg
	rpp := uint64(cfg.RecordsPerPacket)
	// burst is how far ahead of schedule the sender may get before it
	// sleeps: about 1 ms of records, at least one datagram.
	burst := max(cfg.Rate/1000, float64(rpp))
	batch := cfg.Batch
	if cfg.Rate > 0 {
		// A batch goes out at once: keep it within a burst.
		batch = max(1, min(batch, int(burst)/int(rpp)))
	}
	scratch := make([]Flow, rpp)
	bufs := make([][]byte, batch)
	for i := range bufs {
		bufs[i] = make([]byte, 0, maxDatagram)
	}
	recs := make([]uint64, batch)
	var (
		st       Stats
		pos      int
		exporter int
		failures int
	)
	// One timer for every pause, so pacing allocates nothing either.
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	start := time.Now()
	for loop := 0; ; loop++ {
		if loop%64 == 0 && ctx.Err() != nil {
			break
		}
		now := time.Now()
		elapsed := now.Sub(start)
		if cfg.Duration > 0 && elapsed >= cfg.Duration {
			break
		}
		if cfg.Count > 0 && st.Records >= cfg.Count {
			break
		}
		if cfg.Rate > 0 && float64(st.Records) >= cfg.Rate*elapsed.Seconds() {
			wake := time.Duration((float64(st.Records) + burst) / cfg.Rate * float64(time.Second))
			if cfg.Duration > 0 {
				wake = min(wake, cfg.Duration)
			}
			sleep(ctx, timer, wake-elapsed)
			continue
		}
		// Encode a batch of datagrams of the current exporter...
		k, queued := 0, uint64(0)
		for k < batch {
			n := rpp
			if cfg.Count > 0 {
				n = min(n, cfg.Count-st.Records-queued)
			}
			if n == 0 {
				break
			}
			pos = s.pop.Fill(scratch[:n], pos)
			bufs[k] = s.encs[exporter].Append(bufs[k][:0], scratch[:n], now)
			recs[k] = n
			queued += n
			k++
		}
		// ...and send it; a datagram whose send fails is skipped.
		for off := 0; off < k; {
			m, err := s.writers[exporter].write(bufs[off:k])
			for j := off; j < off+m; j++ {
				st.Records += recs[j]
				st.Packets++
				st.Bytes += uint64(len(bufs[j]))
			}
			off += m
			if err == nil && m == 0 {
				err = errors.New("no datagram sent")
			}
			if err != nil {
				st.SendErrors++
				failures++
				off++
				if failures >= maxConsecutiveErrors {
					st.Elapsed = time.Since(start)
					return st, fmt.Errorf("%d consecutive send errors, last: %w", failures, err)
				}
				continue
			}
			failures = 0
		}
		exporter++
		if exporter == len(s.encs) {
			exporter = 0
		}
	}
	st.Elapsed = time.Since(start)
	return st, nil
}

// sleep waits for d or until ctx is done, on a stopped timer t (left stopped
// or fired; since Go 1.23 a Reset never sees a stale tick).
func sleep(ctx context.Context, t *time.Timer, d time.Duration) {
	if d <= 0 {
		return
	}
	t.Reset(d)
	select {
	case <-ctx.Done():
		t.Stop()
	case <-t.C:
	}
}
