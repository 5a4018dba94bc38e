package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/flowcheck/flowcheck/aggregate"
	"github.com/flowcheck/flowcheck/clock"
	"github.com/flowcheck/flowcheck/flow"
	"github.com/prometheus/client_golang/prometheus"
)

// filterHosts is a small table where each order puts a different host
// first.
func filterHosts() (fakeHosts, map[aggregate.HostKey]int) {
	mk := func(ip string, vlan uint16, local bool, bytes, nrPeers, nrPorts, rfPeers, rfPorts uint64) aggregate.HostSnapshot {
		k := key(ip, vlan)
		return aggregate.HostSnapshot{Key: k, Local: local, BytesSent: bytes,
			NoReply: aggregate.ContactCounts{PeersAsClient: nrPeers, ServerPorts: nrPorts},
			Refused: aggregate.ContactCounts{PeersAsClient: rfPeers, ServerPorts: rfPorts}}
	}
	list := []aggregate.HostSnapshot{
		mk("10.0.0.1", 0, true, 500, 1, 2, 3, 4),
		mk("10.0.0.2", 0, true, 100, 50, 1, 0, 0),
		mk("10.0.1.3", 7, true, 10, 0, 60, 0, 0),
		mk("192.0.2.4", 0, false, 1, 0, 0, 70, 5),
		mk("2001:db8::5", 0, false, 2, 0, 0, 0, 900),
	}
	hosts := fakeHosts{}
	for _, s := range list {
		hosts[s.Key] = s
	}
	return hosts, map[aggregate.HostKey]int{key("10.0.0.2", 0): 30, key("192.0.2.4", 0): -5}
}

// TestHostsParams is one row per parameter of /api/v1/hosts and its bad
// values: the hosts answered, in order, and the total.
func TestHostsParams(t *testing.T) {
	hosts, scores := filterHosts()
	ts, _ := serve(t, DefaultConfiguration(), Dependencies{Hosts: hosts, Alerts: fakeAlerts{scores: scores}})
	cases := []struct {
		query string
		code  int
		total int
		want  string // addresses in order, or a fragment of the error
	}{
		{"", 200, 5, "10.0.0.1 10.0.0.2 10.0.1.3 2001:db8::5 192.0.2.4"},
		{"sort=bytes&order=asc", 200, 5, "192.0.2.4 2001:db8::5 10.0.1.3 10.0.0.2 10.0.0.1"},
		{"sort=score&limit=2", 200, 5, "10.0.0.2 10.0.0.1"},
		{"sort=score&order=asc&limit=1", 200, 5, "192.0.2.4"},
		{"sort=noreply_peers&limit=1", 200, 5, "10.0.0.2"},
		{"sort=noreply_ports&limit=1", 200, 5, "10.0.1.3"},
		{"sort=refused_peers&limit=1", 200, 5, "192.0.2.4"},
		{"sort=refused_ports&limit=2", 200, 5, "2001:db8::5 192.0.2.4"},
		{"q=10.0.0.2", 200, 1, "10.0.0.2"},
		{"q=::ffff:10.0.0.2", 200, 1, "10.0.0.2"},
		{"q=10.0.0.0/24", 200, 2, "10.0.0.1 10.0.0.2"},
		{"q=10.0.0.0/16&sort=noreply_ports", 200, 3, "10.0.1.3 10.0.0.1 10.0.0.2"},
		{"cidr=2001:db8::/32", 200, 1, "2001:db8::5"},
		{"cidr=10.0.0.7/8", 200, 3, "10.0.0.1 10.0.0.2 10.0.1.3"},
		{"local=true", 200, 3, "10.0.0.1 10.0.0.2 10.0.1.3"},
		{"local=false", 200, 2, "2001:db8::5 192.0.2.4"},
		{"vlan=7", 200, 1, "10.0.1.3"},
		{"vlan=0&local=true", 200, 2, "10.0.0.1 10.0.0.2"},
		{"offset=1&limit=2", 200, 5, "10.0.0.2 10.0.1.3"},
		{"offset=4", 200, 5, "192.0.2.4"},
		{"offset=5", 200, 5, ""},
		{"offset=9000&limit=1000", 200, 5, ""},
		{"sort=size", 400, 0, "sort must be"},
		{"sort=", 200, 5, "10.0.0.1 10.0.0.2 10.0.1.3 2001:db8::5 192.0.2.4"},
		{"order=up", 400, 0, "order must be asc or desc"},
		{"q=10.0.0", 400, 0, "q must be an IP address or a CIDR prefix"},
		{"q=host.example", 400, 0, "q must be"},
		{"cidr=10.0.0.1", 400, 0, "cidr must be a prefix"},
		{"cidr=10.0.0.0/33", 400, 0, "cidr must be a prefix"},
		{"q=10.0.0.1&cidr=10.0.0.0/8", 400, 0, "exclusive"},
		{"local=maybe", 400, 0, "local must be true or false"},
		{"vlan=4096", 400, 0, "vlan must be 0-4095"},
		{"vlan=-1", 400, 0, "vlan must be"},
		{"vlan=x", 400, 0, "vlan must be"},
		{"offset=-1", 400, 0, "offset must be a non-negative integer"},
		{"offset=x", 400, 0, "offset must be"},
		{"offset=9901", 400, 0, "offset+limit must be at most 10000"},
		{"limit=0", 400, 0, "limit must be"},
		{"limit=1001", 400, 0, "limit must be"},
		{"cursor=1_10.0.0.1_0&offset=0", 400, 0, "exclusive"},
		{"cursor=nope", 400, 0, "cursor must be"},
	}
	for _, tc := range cases {
		t.Run(tc.query, func(t *testing.T) {
			code, body := get(t, ts, "/api/v1/hosts?"+tc.query)
			if code != tc.code {
				t.Fatalf("code %d, want %d: %s", code, tc.code, body)
			}
			if code != 200 {
				var e struct{ Error string }
				if err := json.Unmarshal([]byte(body), &e); err != nil || !strings.Contains(e.Error, tc.want) {
					t.Fatalf("error %q (%v), want it to hold %q", e.Error, err, tc.want)
				}
				return
			}
			var p pageOf[hostSummary]
			if err := json.Unmarshal([]byte(body), &p); err != nil {
				t.Fatal(err)
			}
			var ips []string
			for _, h := range p.Items {
				ips = append(ips, h.IP)
			}
			if got := strings.Join(ips, " "); got != tc.want || p.Total != tc.total {
				t.Fatalf("hosts %q total %d, want %q total %d", got, p.Total, tc.want, tc.total)
			}
		})
	}
}

// TestHostsOffsetThenCursor pages a table larger than the offset window by
// following next: offsets first, then a cursor past the window; every host
// comes once, in order.
func TestHostsOffsetThenCursor(t *testing.T) {
	hosts := fakeHosts{}
	for i := range 12_345 {
		k := aggregate.HostKey{Addr: netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})}
		hosts[k] = aggregate.HostSnapshot{Key: k, Refused: aggregate.ContactCounts{ServerPorts: uint64(i % 101)}}
	}
	ts, _ := serve(t, DefaultConfiguration(), Dependencies{Hosts: hosts})
	path := "/api/v1/hosts?sort=refused_ports&order=asc&limit=1000"
	var all []hostSummary
	offsets, cursors := 0, 0
	for path != "" {
		p := getPage[hostSummary](t, ts, path)
		if p.Total != len(hosts) {
			t.Fatalf("total %d", p.Total)
		}
		all = append(all, p.Items...)
		path = ""
		if p.Next != nil {
			path = *p.Next
			if strings.Contains(path, "cursor=") {
				cursors++
			} else {
				offsets++
			}
		}
	}
	if len(all) != len(hosts) || offsets != 9 || cursors != 3 {
		t.Fatalf("%d hosts over %d offset and %d cursor pages", len(all), offsets, cursors)
	}
	seen := map[string]bool{}
	for i, h := range all {
		if seen[h.IP] {
			t.Fatalf("%s twice", h.IP)
		}
		seen[h.IP] = true
		if i > 0 && all[i-1].RefusedPorts > h.RefusedPorts {
			t.Fatalf("out of order at %d", i)
		}
	}
}

// TestHostFields checks the summary's new fields and the detail's.
func TestHostFields(t *testing.T) {
	k := key("10.0.0.9", 0)
	hosts := fakeHosts{k: {Key: k, Blacklisted: true, Refused: aggregate.ContactCounts{PeersAsClient: 4},
		Sampling: aggregate.VerdictSampling{Rate: 10, Verdicts: 3}}}
	ts, _ := serve(t, DefaultConfiguration(), Dependencies{Hosts: hosts})
	for _, path := range []string{"/api/v1/hosts", "/api/v1/hosts/10.0.0.9"} {
		code, body := get(t, ts, path)
		for _, s := range []string{`"blacklisted": true`, `"refused_peers": 4`} {
			if code != http.StatusOK || !strings.Contains(body, s) {
				t.Errorf("%s: %d, lacks %s: %s", path, code, s, body)
			}
		}
	}
	_, body := get(t, ts, "/api/v1/hosts/10.0.0.9")
	if !strings.Contains(body, fmt.Sprintf(`"sampling": {%s"rate": 10,`, "\n    ")) || !strings.Contains(body, `"exact": false`) ||
		!strings.Contains(body, `"recent_alerts": []`) {
		t.Errorf("detail: %s", body)
	}
}

// TestHostSets builds a real host table where a scanner is refused on 150
// ports of one victim: its host page lists the victim and the first 100
// ports, and the victim lists the scanner.
func TestHostSets(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	clk := clock.NewManual(t0)
	table, err := aggregate.New(aggregate.DefaultConfiguration(), aggregate.Dependencies{Registerer: prometheus.NewRegistry(), Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	scanner, victim := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	var recs []flow.Record
	for p := uint16(1); p <= 150; p++ {
		recs = append(recs,
			flow.Record{SrcAddr: scanner, DstAddr: victim, SrcPort: 50000, DstPort: p, Proto: 6, TCPFlags: flow.TCPSyn, Bytes: 40, Packets: 1},
			flow.Record{SrcAddr: victim, DstAddr: scanner, SrcPort: p, DstPort: 50000, Proto: 6, TCPFlags: flow.TCPRst | flow.TCPAck, Bytes: 40, Packets: 1})
	}
	table.Apply(recs)
	table.Advance(t0.Add(time.Minute))
	ts, _ := serve(t, DefaultConfiguration(), Dependencies{Hosts: table, Contacts: table})
	type set struct {
		Count   uint64
		Exact   bool
		Members []any
	}
	type sets struct {
		PeersAsClient set `json:"peers_as_client"`
		ServerPorts   set `json:"server_ports"`
		PeersAsServer set `json:"peers_as_server"`
	}
	var d struct {
		Sets struct{ NoReply, Refused sets }
	}
	_, body := get(t, ts, "/api/v1/hosts/192.0.2.1")
	if err := json.Unmarshal([]byte(body), &d); err != nil {
		t.Fatal(err)
	}
	r := d.Sets.Refused
	if r.ServerPorts.Count != 150 || !r.ServerPorts.Exact || len(r.ServerPorts.Members) != 100 || r.ServerPorts.Members[0] != 1.0 || r.ServerPorts.Members[99] != 100.0 {
		t.Fatalf("refused ports %+v", r.ServerPorts)
	}
	if r.PeersAsClient.Count != 1 || len(r.PeersAsClient.Members) != 1 || r.PeersAsClient.Members[0] != "192.0.2.2" {
		t.Fatalf("refused peers %+v", r.PeersAsClient)
	}
	if n := d.Sets.NoReply.PeersAsClient; n.Count != 0 || n.Members == nil || len(n.Members) != 0 {
		t.Fatalf("one-sided peers %+v", n)
	}
	_, body = get(t, ts, "/api/v1/hosts/192.0.2.2")
	if !strings.Contains(body, `"peers_as_server": {`+"\n"+`        "count": 1,`) || !strings.Contains(body, `"192.0.2.1"`) {
		t.Fatalf("victim: %s", body)
	}
	// The list walks without names, then names the page's hosts.
	p := getPage[hostSummary](t, ts, "/api/v1/hosts?sort=refused_ports")
	if len(p.Items) != 2 || p.Items[0].Name != "192.0.2.1" || p.Items[1].Name != "192.0.2.2" {
		t.Fatalf("hosts %+v", p.Items)
	}
	// Without Contacts, the sets show their counts.
	ts2, _ := serve(t, DefaultConfiguration(), Dependencies{Hosts: table})
	_, body = get(t, ts2, "/api/v1/hosts/192.0.2.1")
	if err := json.Unmarshal([]byte(body), &d); err != nil || d.Sets.Refused.ServerPorts.Count != 150 || len(d.Sets.Refused.ServerPorts.Members) != 0 {
		t.Fatalf("counts only: %+v %v", d.Sets.Refused, err)
	}
}

// TestHostsPartitions: in cluster role check the hosts page says which
// partitions the worker holds; otherwise it says nothing of partitions.
func TestHostsPartitions(t *testing.T) {
	k := key("10.0.0.9", 0)
	hosts := fakeHosts{k: {Key: k}}
	cases := []struct {
		name  string
		parts func() []int
		want  string // in the body; "" for no partitions key
	}{
		{"role all", nil, ""},
		{"check worker", func() []int { return []int{0, 3} }, `"partitions": [`},
		{"check worker owning none", func() []int { return []int{} }, `"partitions": []`},
	}
	for _, tc := range cases {
		ts, _ := serve(t, DefaultConfiguration(), Dependencies{Hosts: hosts, Partitions: tc.parts})
		code, body := get(t, ts, "/api/v1/hosts")
		if code != http.StatusOK || strings.Contains(body, `"partitions"`) != (tc.want != "") || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d %s", tc.name, code, body)
		}
	}
}
