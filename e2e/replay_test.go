package e2e

import (
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Hosts of the captures (see the testdata READMEs).
var (
	scanMixScanners  = []string{"10.99.0.10", "10.99.0.30"}
	filteredScanners = []string{"10.98.0.66", "fd00:98::66"}
	// Hosts that only did normal HTTP/SSH as clients, or only answered.
	filteredNormal = []string{"10.98.0.10", "fd00:98::10"}
)

// scanMixSweepTargets are 10.99.0.31–.49: they only answered A's sweep.
func scanMixSweepTargets() []string {
	var out []string
	for i := 31; i <= 49; i++ {
		out = append(out, "10.99.0."+strconv.Itoa(i))
	}
	return out
}

// TestReplay runs `collector replay` with the shipped example configuration
// over every export of scan-mix.pcap and filtered-scan.pcap: each scanner the
// READMEs name gets an engaged scan_detection alert on stdout, and no host
// that only did normal traffic gets any alert.
func TestReplay(t *testing.T) {
	cases := []struct {
		pcap     string
		scanners []string
		quiet    []string
	}{
		{"softflowd-v5.pcap", scanMixScanners, scanMixSweepTargets()},
		{"softflowd-v9.pcap", scanMixScanners, scanMixSweepTargets()},
		{"softflowd-ipfix.pcap", scanMixScanners, scanMixSweepTargets()},
		{"softflowd-ipfix-bidir.pcap", scanMixScanners, scanMixSweepTargets()},
		{"softflowd-ipfix-absms.pcap", scanMixScanners, scanMixSweepTargets()},
		{"pmacctd-v5.pcap", scanMixScanners, scanMixSweepTargets()},
		{"pmacctd-v9.pcap", scanMixScanners, scanMixSweepTargets()},
		{"pmacctd-ipfix.pcap", scanMixScanners, scanMixSweepTargets()},
		{"softflowd-filtered-v9.pcap", filteredScanners, filteredNormal},
		{"softflowd-filtered-ipfix.pcap", filteredScanners, filteredNormal},
		{"softflowd-filtered-ipfix-bidir.pcap", filteredScanners, filteredNormal},
		{"pmacctd-filtered-ipfix.pcap", filteredScanners, filteredNormal},
	}
	bin := binary(t)
	for _, tc := range cases {
		t.Run(strings.TrimSuffix(tc.pcap, ".pcap"), func(t *testing.T) {
			t.Parallel()
			stdout, stderr, err := run(t, ".", 2*time.Minute, bin,
				"replay", "--config", "../config.example.yaml", "--pcap", "../testdata/"+tc.pcap, "--port", "2055")
			if err != nil {
				t.Fatalf("replay: %v\n%s", err, stderr)
			}
			engaged := engagedBy(parseAlerts(t, stdout))
			for _, ip := range tc.scanners {
				if !engaged[ip]["scan_detection"] {
					t.Errorf("no engaged scan_detection alert for scanner %s; alerts: %v", ip, summary(engaged))
				}
			}
			scanners := map[string]bool{}
			for _, ip := range tc.scanners {
				scanners[ip] = true
			}
			for ip, checks := range engaged {
				if checks["scan_detection"] && !scanners[ip] {
					t.Errorf("scan_detection alert for %s, which did not scan", ip)
				}
			}
			for _, ip := range tc.quiet {
				if len(engaged[ip]) > 0 {
					t.Errorf("alerts for %s, which only did normal traffic: %v", ip, engaged[ip])
				}
			}
			if !strings.Contains(stderr, "replay done") {
				t.Errorf("no end-of-replay log on stderr:\n%s", stderr)
			}
		})
	}
}

func summary(engaged map[string]map[string]bool) string {
	var parts []string
	for ip, checks := range engaged {
		var names []string
		for c := range checks {
			names = append(names, c)
		}
		sort.Strings(names)
		parts = append(parts, ip+"="+strings.Join(names, "+"))
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}
