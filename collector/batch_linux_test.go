package collector

import (
	"encoding/binary"
	"errors"
	"net"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestBatchReaderSocketDrops overflows a real socket's receive buffer and
// checks that the reader counts exactly the datagrams the kernel dropped.
func TestBatchReaderSocketDrops(t *testing.T) {
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var sockErr error
		err := rc.Control(func(fd uintptr) {
			sockErr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RXQ_OVFL, 1)
			if sockErr == nil {
				// The kernel's minimum: a few datagrams fit.
				sockErr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 1)
			}
		})
		if err != nil {
			return err
		}
		return sockErr
	}}
	pc, err := lc.ListenPacket(t.Context(), "udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conn := pc.(*net.UDPConn)
	to := conn.LocalAddr().(*net.UDPAddr)
	br, err := newBatchReader(conn)
	if err != nil {
		t.Fatal(err)
	}
	defer br.release()
	out, err := net.DialUDP("udp4", nil, to)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	const sent = 200
	msg := make([]byte, 1000)
	// Nothing reads while they are sent: most overflow the buffer.
	for range sent {
		if _, err := out.Write(msg); err != nil {
			t.Fatal(err)
		}
	}
	received, dropped := 0, uint32(0)
	readAll := func() {
		t.Helper()
		for {
			// The reader's socket blocks: read only what is queued.
			fds := []unix.PollFd{{Fd: int32(br.fd), Events: unix.POLLIN}}
			if ready, err := unix.Poll(fds, 200); err != nil || ready == 0 {
				return
			}
			n, err := br.read()
			if err != nil {
				t.Fatal(err)
			}
			received += n
			dropped += br.socketDrops(n)
		}
	}
	readAll()
	// A datagram tells of the drops before it: one more, now that there is
	// room, carries the final count.
	if _, err := out.Write(msg); err != nil {
		t.Fatal(err)
	}
	readAll()
	if dropped == 0 {
		t.Fatalf("no drop counted (received %d of %d)", received, sent+1)
	}
	if received+int(dropped) != sent+1 {
		t.Errorf("received %d + dropped %d != sent %d", received, dropped, sent+1)
	}
	if d := br.socketDrops(0); d != 0 {
		t.Errorf("a read of nothing counted %d drops", d)
	}
}

// cmsg builds one control message.
func cmsg(level, typ int32, data []byte) []byte {
	b := make([]byte, unix.CmsgSpace(len(data)))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level, h.Type = level, typ
	h.SetLen(unix.CmsgLen(len(data)))
	copy(b[unix.CmsgLen(0):], data)
	return b
}

func u32(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }

func TestRxqOverflow(t *testing.T) {
	other := cmsg(unix.SOL_SOCKET, unix.SO_TIMESTAMP, make([]byte, 16))
	bad := cmsg(unix.SOL_SOCKET, unix.SO_RXQ_OVFL, u32(7))
	(*unix.Cmsghdr)(unsafe.Pointer(&bad[0])).Len = 4 // shorter than a header
	huge := cmsg(unix.SOL_SOCKET, unix.SO_RXQ_OVFL, u32(7))
	(*unix.Cmsghdr)(unsafe.Pointer(&huge[0])).Len = 1<<63 + 16 // negative as an int (found by fuzzing)
	for _, tc := range []struct {
		name string
		oob  []byte
		want uint32
		ok   bool
	}{
		{"none", nil, 0, false},
		{"alone", cmsg(unix.SOL_SOCKET, unix.SO_RXQ_OVFL, u32(42)), 42, true},
		{"after another", append(other, cmsg(unix.SOL_SOCKET, unix.SO_RXQ_OVFL, u32(9))...), 9, true},
		{"other level", cmsg(unix.SOL_IP, unix.SO_RXQ_OVFL, u32(9)), 0, false},
		{"truncated header", cmsg(unix.SOL_SOCKET, unix.SO_RXQ_OVFL, u32(9))[:8], 0, false},
		{"length past the buffer", cmsg(unix.SOL_SOCKET, unix.SO_RXQ_OVFL, u32(9))[:unix.CmsgLen(2)], 0, false},
		{"length below a header", bad, 0, false},
		{"length past int's range", huge, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := rxqOverflow(tc.oob)
			if got != tc.want || ok != tc.ok {
				t.Errorf("rxqOverflow = %d, %v; want %d, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

// TestSocketDropsWrap checks the difference across the 32-bit count's
// wrap and that an older datagram's count never lowers it.
func TestSocketDropsWrap(t *testing.T) {
	br := &batchReader{kernelDrops: 1<<32 - 3}
	for i, v := range []uint32{1<<32 - 2, 2, 1} { // 1 is older than 2
		o := cmsg(unix.SOL_SOCKET, unix.SO_RXQ_OVFL, u32(v))
		copy(br.oob[i][:], o)
		br.hdrs[i].hdr.SetControllen(len(o))
	}
	if d := br.socketDrops(3); d != 5 {
		t.Errorf("socketDrops = %d, want 5", d)
	}
	if br.kernelDrops != 2 {
		t.Errorf("kernelDrops = %d, want 2", br.kernelDrops)
	}
}

// FuzzRxqOverflow feeds arbitrary control-message bytes to the parser: it
// must never read past them, and a count it finds must lie within them.
func FuzzRxqOverflow(f *testing.F) {
	f.Add(cmsg(unix.SOL_SOCKET, unix.SO_RXQ_OVFL, u32(42)))
	f.Add(append(cmsg(unix.SOL_SOCKET, unix.SO_TIMESTAMP, make([]byte, 16)), cmsg(unix.SOL_SOCKET, unix.SO_RXQ_OVFL, u32(9))...))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, oob []byte) {
		if v, ok := rxqOverflow(oob); !ok && v != 0 {
			t.Fatalf("no count found, yet %d", v)
		}
	})
}

// TestBatchReaderClose checks that close ends a read waiting on an empty
// socket, that later reads say closed, and that release frees the port.
func TestBatchReaderClose(t *testing.T) {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	addr := conn.LocalAddr().(*net.UDPAddr)
	br, err := newBatchReader(conn)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := br.read()
		done <- err
	}()
	br.close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("read after close: %v, want net.ErrClosed", err)
		}
	case <-t.Context().Done():
		t.Fatal("close did not end the waiting read")
	}
	if _, err := br.read(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second read: %v, want net.ErrClosed", err)
	}
	br.close() // twice: no effect
	br.release()
	again, err := net.ListenUDP("udp4", addr)
	if err != nil {
		t.Fatalf("port not freed by release: %v", err)
	}
	_ = again.Close()
}
