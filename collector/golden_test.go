package collector

import (
	"errors"
	"io"
	"testing"
	"time"

	"github.com/flowcheck/flowcheck/flow"
	"github.com/flowcheck/flowcheck/pcapsrc"
	"github.com/prometheus/client_golang/prometheus"
)

// captureTotals is what one capture decodes to.
type captureTotals struct {
	records, v4, v6        int
	packets, bytes         uint64
	revPackets, revBytes   uint64
	first, last            time.Time
	sampledUnknown, biflow int
}

// decodeCapture runs every UDP datagram of a capture through HandleDatagram.
func decodeCapture(t testing.TB, c *Component, path string, each func(flow.Record)) {
	t.Helper()
	r, err := pcapsrc.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for {
		d, err := r.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		c.HandleDatagram(d.Src, d.Payload, d.Time)
	}
}

func newTestComponent(t testing.TB, cfg Configuration, h flow.Handler) *Component {
	t.Helper()
	c, err := New(cfg, Dependencies{Registerer: prometheus.NewRegistry(), Flows: h})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func totalsOf(t testing.TB, path string) (captureTotals, *Component) {
	var tot captureTotals
	c := newTestComponent(t, DefaultConfiguration(), func(batch []flow.Record) {
		for _, r := range batch {
			tot.records++
			if r.SrcAddr.Is4() {
				tot.v4++
			} else {
				tot.v6++
			}
			tot.packets += r.Packets
			tot.bytes += r.Bytes
			tot.revPackets += r.ReversePackets
			tot.revBytes += r.ReverseBytes
			if r.Biflow {
				tot.biflow++
			}
			if r.SamplingRate == 0 {
				tot.sampledUnknown++
			}
			if tot.first.IsZero() || r.Start.Before(tot.first) {
				tot.first = r.Start
			}
			if r.End.After(tot.last) {
				tot.last = r.End
			}
			if r.End.Before(r.Start) {
				t.Errorf("record ends before it starts: %+v", r)
			}
		}
	})
	decodeCapture(t, c, path, nil)
	return tot, c
}

// TestGoldenCaptures checks the real exporter captures against the totals
// tshark and nfcapd decode from them (testdata/README in the shared
// reference folder, and filtered-scan.md).
func TestGoldenCaptures(t *testing.T) {
	scanMixStart := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) // only a sanity floor
	cases := []struct {
		file               string
		records, v4, v6    int
		packets, bytes     uint64
		revPackets, revByt uint64
		biflow             bool
		span               time.Duration // traffic duration upper bound
	}{
		{"softflowd-v5", 4856, 4856, 0, 5623, 2302590, 0, 0, false, 10 * time.Second},
		{"softflowd-v9", 4856, 4856, 0, 5623, 2302590, 0, 0, false, 10 * time.Second},
		{"softflowd-ipfix", 4856, 4856, 0, 5623, 2302590, 0, 0, false, 10 * time.Second},
		{"softflowd-ipfix-absms", 4856, 4856, 0, 5623, 2302590, 0, 0, false, 10 * time.Second},
		{"softflowd-ipfix-bidir", 2434, 2434, 0, 0, 0, 0, 0, true, 10 * time.Second},
		{"pmacctd-v5", 4856, 4856, 0, 5623, 2302590, 0, 0, false, 10 * time.Second},
		{"pmacctd-v9", 4856, 4856, 0, 5623, 2302590, 0, 0, false, 10 * time.Second},
		{"pmacctd-ipfix", 4856, 4856, 0, 5623, 2302590, 0, 0, false, 10 * time.Second},
		{"softflowd-filtered-v9", 769, 564, 205, 876, 80904, 0, 0, false, 10 * time.Second},
		{"softflowd-filtered-ipfix", 769, 564, 205, 876, 80904, 0, 0, false, 10 * time.Second},
		{"softflowd-filtered-ipfix-bidir", 758, 556, 202, 54, 8687, 822, 72217, true, 10 * time.Second},
		{"pmacctd-filtered-ipfix", 769, 564, 205, 876, 80904, 0, 0, false, 10 * time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel()
			got, c := totalsOf(t, "../testdata/"+tc.file+".pcap")
			if got.records != tc.records || got.v4 != tc.v4 || got.v6 != tc.v6 {
				t.Errorf("records %d (v4 %d, v6 %d), want %d (%d, %d)", got.records, got.v4, got.v6, tc.records, tc.v4, tc.v6)
			}
			if tc.biflow && tc.packets == 0 {
				// scan-mix biflow: only forward+reverse sums are known.
				if got.packets+got.revPackets != 5623 || got.bytes+got.revBytes != 2302590 {
					t.Errorf("fwd+rev packets %d bytes %d, want 5623 and 2302590",
						got.packets+got.revPackets, got.bytes+got.revBytes)
				}
			} else if got.packets != tc.packets || got.bytes != tc.bytes || got.revPackets != tc.revPackets || got.revBytes != tc.revByt {
				t.Errorf("packets %d bytes %d rev %d/%d, want %d %d rev %d/%d",
					got.packets, got.bytes, got.revPackets, got.revBytes, tc.packets, tc.bytes, tc.revPackets, tc.revByt)
			}
			if tc.biflow && got.biflow != got.records {
				t.Errorf("%d of %d records marked biflow", got.biflow, got.records)
			}
			if !tc.biflow && got.biflow != 0 {
				t.Errorf("%d records marked biflow in a unidirectional export", got.biflow)
			}
			if got.first.Before(scanMixStart) || got.last.Sub(got.first) > tc.span {
				t.Errorf("flow times %s .. %s, want within %s of each other, after %s", got.first, got.last, tc.span, scanMixStart)
			}
			for _, e := range c.Exporters() {
				if e.Errors != 0 {
					t.Errorf("exporter %s: %d decode errors", e.Address, e.Errors)
				}
			}
			t.Logf("%s: %d records, times %s .. %s", tc.file, got.records, got.first, got.last)
		})
	}
}
