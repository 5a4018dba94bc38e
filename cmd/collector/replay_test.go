package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowcheck/flowcheck/alert"
	"github.com/flowcheck/flowcheck/pcapsrc"
)

// TestReplayInProcess runs the replay subcommand in the test process (so
// that -race sees the whole pipeline) over the IPv4+IPv6 filtered scan, paced
// at 100× the capture's speed.
func TestReplayInProcess(t *testing.T) {
	t.Setenv("FLOWCHECK_LOG_LEVEL", "debug")
	var stdout, stderr bytes.Buffer
	code := dispatch([]string{"replay", "--pcap", "../../testdata/softflowd-filtered-v9.pcap", "--port", "2055", "--speed", "100"}, &stdout, &stderr)
	if code != exitOK {
		t.Fatalf("exit %d\n%s", code, stderr.String())
	}
	scans := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		var ev alert.Event
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("stdout line is not an alert: %q", line)
		}
		if ev.Check == "scan_detection" && ev.State == alert.Engaged {
			scans[ev.Host.IP] = true
		}
	}
	if !scans["10.98.0.66"] || !scans["fd00:98::66"] || len(scans) != 2 {
		t.Fatalf("scan alerts for %v, want the scanner's two addresses", scans)
	}
	// The capture's own duration, first to last datagram, without the
	// reply window the replay waits at its end.
	span := captureSpan(t, "../../testdata/softflowd-filtered-v9.pcap", 2055)
	for _, want := range []string{"msg=tick", "msg=\"replay done\"", "datagrams=29", "capture_duration=" + span.String() + " "} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
}

// captureSpan returns the time from the first to the last datagram to
// port in a capture.
func captureSpan(t *testing.T, path string, port uint16) time.Duration {
	t.Helper()
	r, err := pcapsrc.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	r.SetPort(port)
	var first, last time.Time
	for {
		d, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if first.IsZero() {
			first = d.Time
		}
		last = d.Time
	}
	if last.Sub(first) <= 0 {
		t.Fatalf("%s: no span", path)
	}
	return last.Sub(first)
}

func TestReplayMissingCapture(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := dispatch([]string{"replay", "--pcap", "does-not-exist.pcap"}, &stdout, &stderr); code != exitFailure {
		t.Fatalf("exit %d, want %d", code, exitFailure)
	}
}

// TestReplayNothingToReplay: a port filter that matches nothing replays
// nothing, raises nothing and still exits 0.
func TestReplayNothingToReplay(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := dispatch([]string{"replay", "--pcap", "../../testdata/softflowd-v5.pcap", "--port", "9999"}, &stdout, &stderr)
	if code != exitOK || stdout.Len() != 0 || !strings.Contains(stderr.String(), "datagrams=0") ||
		!strings.Contains(stderr.String(), "no UDP datagram to port 9999; ports seen: 2055 (162)") {
		t.Fatalf("exit %d, stdout %q, stderr:\n%s", code, stdout.String(), stderr.String())
	}
}

// TestReplayTruncatedCapture: a capture cut mid-packet is replayed up to the
// cut, its alerts still delivered, and the exit status says it was incomplete.
func TestReplayTruncatedCapture(t *testing.T) {
	b, err := os.ReadFile("../../testdata/softflowd-filtered-v9.pcap")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "cut.pcap")
	if err := os.WriteFile(path, b[:len(b)-100], 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := dispatch([]string{"replay", "--pcap", path}, &stdout, &stderr)
	if code != exitFailure || !strings.Contains(stderr.String(), "capture read error") || !strings.Contains(stderr.String(), "replay done") {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr.String())
	}
}
