package collector

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/flowcheck/flowcheck/flow"
)

// startOn starts a collector of two sockets on url, stopped at the test's
// end.
func startOn(t *testing.T, url string) (*Component, error) {
	t.Helper()
	cfg := DefaultConfiguration()
	cfg.Listeners = []ListenerConfiguration{{URL: url, Sockets: 2}}
	c := newTestComponent(t, cfg, func([]flow.Record) {})
	if err := c.Start(context.Background()); err != nil {
		return c, err
	}
	t.Cleanup(func() { stopCollector(t, c) })
	return c, nil
}

// TestSecondInstanceRefused binds a port, then starts a collector on it:
// it is refused with an error naming the listener, whoever holds the port
// (a collector's SO_REUSEPORT sockets would otherwise let a second one in
// silently), and the first keeps receiving.
func TestSecondInstanceRefused(t *testing.T) {
	for _, tc := range []struct {
		name   string
		holder func(t *testing.T) netip.AddrPort // binds, returns the port held
		second string                            // listener URL, %d the port
	}{
		{"collector", func(t *testing.T) netip.AddrPort {
			c, err := startOn(t, "auto://127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			return c.ListenAddrs()[0]
		}, "netflow://127.0.0.1:%d"},
		{"collector on the wildcard address", func(t *testing.T) netip.AddrPort {
			c, err := startOn(t, "auto://0.0.0.0:0")
			if err != nil {
				t.Fatal(err)
			}
			return c.ListenAddrs()[0]
		}, "auto://127.0.0.1:%d"},
		{"another program", func(t *testing.T) netip.AddrPort {
			pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = pc.Close() })
			return pc.LocalAddr().(*net.UDPAddr).AddrPort()
		}, "sflow://127.0.0.1:%d"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			held := tc.holder(t)
			url := fmt.Sprintf(tc.second, held.Port())
			second, err := startOn(t, url)
			if err == nil || !strings.Contains(err.Error(), "already in use") || !strings.Contains(err.Error(), url) {
				t.Fatalf("second Start on a held port: %v", err)
			}
			if second.Ready() {
				t.Error("the refused collector says it is ready")
			}
		})
	}
}

// TestSecondInstanceRefusedAcrossProcesses holds a port with a collector in
// another process (this test binary, run as a helper) and starts one on it
// here.
func TestSecondInstanceRefusedAcrossProcesses(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperHoldPort$")
	cmd.Env = append(os.Environ(), "FLOWCHECK_TEST_HOLD_PORT=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = stdin.Close() // the helper stops when its stdin closes
		if err := cmd.Wait(); err != nil {
			t.Errorf("helper: %v", err)
		}
	}()
	var addr netip.AddrPort
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if a, ok := strings.CutPrefix(sc.Text(), "bound "); ok {
			addr = netip.MustParseAddrPort(a)
			break
		}
	}
	if !addr.IsValid() {
		t.Fatal("the helper did not bind")
	}
	go func() {
		for sc.Scan() { // drain the rest of its output
		}
	}()
	_, err = startOn(t, fmt.Sprintf("auto://%s", addr))
	if err == nil || !strings.Contains(err.Error(), "already in use") {
		t.Fatalf("Start on a port another process's collector holds: %v", err)
	}
}

// TestHelperHoldPort is the helper of TestSecondInstanceRefusedAcrossProcesses:
// it holds a port with a collector until its stdin closes.
func TestHelperHoldPort(t *testing.T) {
	if os.Getenv("FLOWCHECK_TEST_HOLD_PORT") == "" {
		t.Skip("helper process only")
	}
	c, err := startOn(t, "auto://127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("bound %s\n", c.ListenAddrs()[0])
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
}

// TestPortableReader reads loopback datagrams, IPv4 and IPv6, with the
// reader of systems without recvmmsg, and ends with net.ErrClosed.
func TestPortableReader(t *testing.T) {
	for _, network := range []string{"udp4", "udp6"} {
		t.Run(network, func(t *testing.T) {
			local := "127.0.0.1:0"
			if network == "udp6" {
				local = "[::1]:0"
			}
			pc, err := net.ListenPacket(network, local)
			if err != nil {
				t.Skip(err)
			}
			conn := pc.(*net.UDPConn)
			r := newPortableReader(conn)
			sender, err := net.DialUDP(network, nil, conn.LocalAddr().(*net.UDPAddr))
			if err != nil {
				t.Fatal(err)
			}
			defer sender.Close()
			want := sender.LocalAddr().(*net.UDPAddr).AddrPort()
			for _, payload := range []string{"first datagram", "2nd"} {
				if _, err := sender.Write([]byte(payload)); err != nil {
					t.Fatal(err)
				}
				n, err := r.read()
				if err != nil || n != 1 {
					t.Fatalf("read: %d, %v", n, err)
				}
				from, err := r.from(0)
				if got := string(r.payload(0)); got != payload || err != nil || from != want || r.socketDrops(1) != 0 {
					t.Errorf("read %q from %v (%v), want %q from %v", got, from, err, payload, want)
				}
			}
			allocs := testing.AllocsPerRun(100, func() {
				_, _ = sender.Write([]byte("x"))
				_, _ = r.read()
			})
			if allocs != 0 && !raceEnabled {
				t.Errorf("%v allocations per datagram", allocs)
			}
			r.close()
			if _, err := r.read(); !errors.Is(err, net.ErrClosed) {
				t.Errorf("read after close: %v", err)
			}
			r.release()
		})
	}
}

// TestErrorsUnprefixed checks that the collector's errors do not start
// with its name: the program adds it once, where it names the component.
func TestErrorsUnprefixed(t *testing.T) {
	_, errNew := New(DefaultConfiguration(), Dependencies{})
	bad := DefaultConfiguration()
	bad.Workers = 0
	_, errConfig := New(bad, Dependencies{Flows: func([]flow.Record) {}})
	c, err := startOn(t, "auto://127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	errTwice := c.Start(context.Background())
	_, errBind := startOn(t, fmt.Sprintf("auto://%s", c.ListenAddrs()[0]))
	for name, err := range map[string]error{"New without Flows": errNew, "New, bad configuration": errConfig,
		"Start twice": errTwice, "Start on a held port": errBind} {
		if err == nil || strings.HasPrefix(err.Error(), "collector") {
			t.Errorf("%s: %v", name, err)
		}
	}
}
