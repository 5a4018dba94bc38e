package scripting

import (
	"strings"
	"testing"
	"time"

	"github.com/flowcheck/flowcheck/aggregate"
	"github.com/flowcheck/flowcheck/alert"
)

// The examples of host-lua-api.md, unchanged: section 2 is a whole module;
// the snippets of sections 6, 7 and 9 are the body of that module's check.
const seedSection2 = `-- scripts/lua/modules/host_checks/my_host_check.lua
local dirs = ntop.getDirs()
package.path = dirs.installdir .. "/scripts/lua/modules/?.lua;" .. package.path
local host_consts = require("host_consts")
local my_check = {}
-- Called once per tracked host by the engine
function my_check.check(host_info)
-- Guard: skip non-local or non-unicast hosts
if not host.is_local() then return end
if not host.is_unicast() then return end
-- Skip on first run (no baseline yet)
if host.isFirstCheckRun() then return end
local bytes = host.bytes()
local score = host.score()
if bytes > 1e9 then
host.triggerAlert(100, "Host transferred > 1 GB: " .. tostring(bytes))
  end
end
return my_check
`

const seedSection6 = `local l7 = host.l7()
if l7 and l7["BitTorrent"] then
local bt = l7["BitTorrent"]
if (bt.bytes_sent + bt.bytes_rcvd) > 100e6 then
host.triggerAlert(60, "Heavy BitTorrent usage detected")
  end
end
`

const seedSection7 = `local contacted_ports = host.getNumContactedTCPUDPServerPortsNoTX()
local contacted_peers = host.getNumContactedPeersAsClientTCPUDPNoTX()
if contacted_ports > 50 or contacted_peers > 100 then
host.triggerAlert(80, string.format( "Possible scan: %d ports / %d peers with no reply", contacted_ports, contacted_peers))
host.resetHostContacts() -- reset to avoid re-alerting next cycle
end
`

const seedSection9 = `-- After triggering an alert, suppress re-alerting for 1 hour
if should_alert then
host.triggerAlert(70, "Anomaly detected")
local one_hour_from_now = os.time() + 3600
host.skipVisitedHost(true, one_hour_from_now)
end
`

// seedModule wraps a snippet in section 2's boilerplate.
func seedModule(prelude, body string) string {
	return `local dirs = ntop.getDirs()
package.path = dirs.installdir .. "/scripts/lua/modules/?.lua;" .. package.path
local host_consts = require("host_consts")
local my_check = {}
function my_check.check(host_info)
` + prelude + body + `end
return my_check
`
}

func TestSeedExamples(t *testing.T) {
	big := aggregate.HostSnapshot{Key: key("10.0.0.1"), Local: true, BytesSent: 1.5e9, BytesRcvd: 0.5e9}
	remote := aggregate.HostSnapshot{Key: key("192.0.2.1"), BytesSent: 3e9}
	torrent := aggregate.HostSnapshot{Key: key("10.0.0.2"), Local: true,
		L7: []aggregate.L7Stat{{Name: "BitTorrent", BytesSent: 80e6, BytesRcvd: 40e6, Flows: 12}, {Name: "DNS", BytesSent: 1000}}}
	scanner := aggregate.HostSnapshot{Key: key("10.98.0.66"), Local: true,
		NoReply:        aggregate.ContactCounts{PeersAsClient: 1, ServerPorts: 531},
		Unidirectional: aggregate.UnidirectionalStats{EgressTCP: 498, EgressUDP: 50}}
	hosts := newFakeHosts(big, remote, torrent, scanner)
	h := newHarness(t, map[string]string{
		"host_consts": `return { answer = 42 }`,
		"seed2":       seedSection2,
		"seed6":       seedModule("", seedSection6),
		"seed7":       seedModule("", seedSection7),
		"seed9":       seedModule("local should_alert = host.ip() == \"10.0.0.1\"\n", seedSection9),
	}, hosts, nil)

	type got struct{ check, ip, state, msg string }
	summarize := func(evs []alert.Event) []got {
		var out []got
		for _, ev := range evs {
			out = append(out, got{ev.Check, ev.Host.IP, string(ev.State), ev.Message})
		}
		return out
	}
	// Tick 1: seed2 skips its first run; seed6 and seed7 fire; seed9 fires
	// and suppresses itself for an hour.
	h.tick()
	want := []got{
		{"seed9", "10.0.0.1", "engaged", "Anomaly detected"},
		{"seed6", "10.0.0.2", "engaged", "Heavy BitTorrent usage detected"},
		{"seed7", "10.98.0.66", "engaged", "Possible scan: 531 ports / 1 peers with no reply"},
	}
	if g := summarize(h.pub.take()); !equalGot(g, want) {
		t.Fatalf("tick 1: got %+v\nwant %+v", g, want)
	}
	if len(hosts.resets) != 1 || hosts.resets[0] != scanner.Key {
		t.Errorf("seed7 did not reset the scanner's contacts: %v", hosts.resets)
	}
	// Tick 2: seed2 fires on the local host only; seed7's counts were reset,
	// so its alert is released; seed9 is skipped, so its alert stays.
	h.tick()
	want = []got{
		{"seed2", "10.0.0.1", "engaged", "Host transferred > 1 GB: 2000000000"},
		{"seed7", "10.98.0.66", "released", "Possible scan: 531 ports / 1 peers with no reply"},
	}
	if g := summarize(h.pub.take()); !equalGot(g, want) {
		t.Fatalf("tick 2: got %+v\nwant %+v", g, want)
	}
	if s := h.e.Score(big.Key); s != 170 {
		t.Errorf("score of 10.0.0.1 = %d, want 100+70", s)
	}
	// An hour later seed9 runs again and triggers again: an update, no event.
	h.now = h.now.Add(time.Hour)
	h.tick()
	if g := summarize(h.pub.take()); len(g) != 0 {
		t.Fatalf("tick 3: got %+v, want nothing", g)
	}
	for _, ev := range h.e.Engaged() {
		if ev.Check == "seed9" && !ev.LastSeen.Equal(h.now) {
			t.Errorf("seed9 last seen %v, want %v", ev.LastSeen, h.now)
		}
	}
}

func equalGot[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestRequireAndDirs(t *testing.T) {
	h := newHarness(t, map[string]string{
		"host_consts": `return { answer = 42 }`,
		"lib_helper":  `local c = require("host_consts"); return { twice = function(x) return 2 * x + c.answer - 42 end }`,
		"uses": `local d = ntop.getDirs()
			assert(d.installdir == "/flowcheck", d.installdir)
			local helper = require("lib_helper")
			local ok, err = pcall(require, "nope")
			assert(not ok and string.find(err, "module 'nope' not found", 1, true), err)
			return { check = function() host.triggerAlert(helper.twice(21), package.path) end }`,
	}, newFakeHosts(hostA()), nil)
	h.tick()
	evs := h.pub.take()
	if len(evs) != 1 || evs[0].Value != 42 || !strings.HasPrefix(evs[0].Message, "/flowcheck/scripts/lua/modules/?.lua") {
		t.Fatalf("events %+v", evs)
	}
}
