package scripting

import (
	"strings"
	"testing"
	"time"

	"github.com/flowcheck/flowcheck/aggregate"
)

// probeScript records every host.* function's result outside a host (at
// module load) and inside (in check), and reports both in its alert message.
// probePrelude lists the host.* functions that take no argument and defines
// flat, which prints any value (tables with sorted keys) on one line; both
// probe scripts start with it.
const probePrelude = `
local names = {"ip","mac","name","vlan_id","is_local","is_unicast","is_multicast","is_broadcast",
  "is_blacklisted","is_rx_only","bytes","bytes_sent","bytes_rcvd",
  "getNumContactedPeersAsClientTCPUDPNoTX","getNumContactsFromPeersAsServerTCPUDPNoTX",
  "getNumContactedTCPUDPServerPortsNoTX","getNumContactedPeersAsClientTCPRefused",
  "getNumContactedTCPServerPortsRefused","getNumContactsFromPeersAsServerTCPRefused",
  "score","isFirstCheckRun"}
local function flat(v)
  if type(v) ~= "table" then return tostring(v) end
  local keys = {}
  for k in pairs(v) do keys[#keys+1] = k end
  table.sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do parts[#parts+1] = k .. ":" .. flat(v[k]) end
  return "{" .. table.concat(parts, ",") .. "}"
end
`

const probeScript = probePrelude + `
local function probe()
  local r = {}
  for _, n in ipairs(names) do r[#r+1] = n .. "=" .. flat(host[n]()) end
  r[#r+1] = "l7=" .. flat(host.l7())
  r[#r+1] = "uni=" .. flat(host.getUnidirectionalTCPUDPFlowsStats())
  r[#r+1] = "refusedflows=" .. flat(host.getRefusedTCPFlowsStats())
  r[#r+1] = "skip=" .. tostring(host.skipVisitedHost(false))
  r[#r+1] = "trigger=" .. tostring(host.triggerAlert(5, "outside"))
  return r
end
local outside = probe()
outside[#outside+1] = "reset=" .. tostring(host.resetHostContacts())
local M = {}
function M.check(info)
  local inside = probe()
  inside[#inside+1] = "info=" .. flat({ip=info.ip, vlan=info.vlan, mac=info.mac, name=info.name, is_local=info.is_local})
  host.triggerAlert(7, "OUT|" .. table.concat(outside, "|") .. "|IN|" .. table.concat(inside, "|"))
end
return M
`

// hostA is host A of scan-mix.pcap as its truth table gives it (refused as
// client 1001 ports / 21 peers, 6 one-sided UDP probes to 3 ports of B).
func hostA() aggregate.HostSnapshot {
	return aggregate.HostSnapshot{
		Key:       key("10.99.0.10"),
		MAC:       aggregate.MAC{0x02, 0x00, 0x0a, 0x63, 0x00, 0x0a},
		Name:      "host-a",
		Local:     true,
		BytesSent: 61854, BytesRcvd: 1898834, PacketsSent: 1326, PacketsRcvd: 1283,
		FirstSeen: t0, LastSeen: t0.Add(10 * time.Second),
		L7: []aggregate.L7Stat{
			{Name: "HTTP", BytesSent: 9842, BytesRcvd: 1852370, PacketsSent: 100, PacketsRcvd: 200, Flows: 336},
		},
		NoReply:        aggregate.ContactCounts{PeersAsClient: 1, ServerPorts: 3},
		Refused:        aggregate.ContactCounts{PeersAsClient: 21, ServerPorts: 1001},
		Unidirectional: aggregate.UnidirectionalStats{EgressUDP: 6},
		RefusedFlows:   aggregate.UnidirectionalStats{EgressTCP: 1079},
	}
}

func parseProbe(t *testing.T, msg string) (outside, inside map[string]string) {
	t.Helper()
	out, in, ok := strings.Cut(strings.TrimPrefix(msg, "OUT|"), "|IN|")
	if !ok {
		t.Fatalf("bad probe message %q", msg)
	}
	split := func(s string) map[string]string {
		m := map[string]string{}
		for _, kv := range strings.Split(s, "|") {
			k, v, _ := strings.Cut(kv, "=")
			m[k] = v
		}
		return m
	}
	return split(out), split(in)
}

func TestHostAPI(t *testing.T) {
	hosts := newFakeHosts(hostA())
	h := newHarness(t, map[string]string{"probe": probeScript}, hosts, nil)
	h.tick()
	evs := h.pub.take()
	if len(evs) != 1 {
		t.Fatalf("got %d events, want 1: %+v", len(evs), evs)
	}
	outside, inside := parseProbe(t, evs[0].Message)
	cases := []struct{ fn, outside, inside string }{
		{"ip", "nil", "10.99.0.10"},
		{"mac", "nil", "02:00:0a:63:00:0a"},
		{"name", "nil", "host-a"},
		{"vlan_id", "nil", "0"},
		{"is_local", "false", "true"},
		{"is_unicast", "false", "true"},
		{"is_multicast", "false", "false"},
		{"is_broadcast", "false", "false"},
		{"is_blacklisted", "false", "false"},
		{"is_rx_only", "false", "false"},
		{"bytes", "nil", "1960688"},
		{"bytes_sent", "nil", "61854"},
		{"bytes_rcvd", "nil", "1898834"},
		{"l7", "nil", "{HTTP:{bytes_rcvd:1852370,bytes_sent:9842,flows:336,packets_rcvd:200,packets_sent:100}}"},
		{"getNumContactedPeersAsClientTCPUDPNoTX", "nil", "1"},
		{"getNumContactsFromPeersAsServerTCPUDPNoTX", "nil", "0"},
		{"getNumContactedTCPUDPServerPortsNoTX", "nil", "3"},
		{"uni", "nil", "{as_client:{tcp:0,udp:6},as_server:{tcp:0,udp:0},num_egress:6,num_ingress:0}"},
		{"getNumContactedPeersAsClientTCPRefused", "nil", "21"},
		{"getNumContactedTCPServerPortsRefused", "nil", "1001"},
		{"getNumContactsFromPeersAsServerTCPRefused", "nil", "0"},
		{"refusedflows", "nil", "{as_client:{tcp:1079,udp:0},as_server:{tcp:0,udp:0},num_egress:1079,num_ingress:0}"},
		{"score", "nil", "0"},
		{"isFirstCheckRun", "false", "true"},
		{"skip", "nil", "nil"},
		{"trigger", "nil", "nil"},
		{"reset", "nil", ""},
		{"info", "", "{ip:10.99.0.10,is_local:true,mac:02:00:0a:63:00:0a,name:host-a,vlan:0}"},
	}
	for _, c := range cases {
		if c.outside != "" && outside[c.fn] != c.outside {
			t.Errorf("outside host: %s() = %q, want %q", c.fn, outside[c.fn], c.outside)
		}
		if c.inside != "" && inside[c.fn] != c.inside {
			t.Errorf("inside host: %s() = %q, want %q", c.fn, inside[c.fn], c.inside)
		}
	}
	// triggerAlert outside a host engaged nothing; resetHostContacts outside
	// reset nothing.
	if len(hosts.resets) != 0 {
		t.Errorf("resetHostContacts outside a host reset %v", hosts.resets)
	}
	if evs[0].Value != 7 || evs[0].Score != 7 {
		t.Errorf("value/score = %d/%d, want 7/7", evs[0].Value, evs[0].Score)
	}
}

func TestHostAPIResetAndFlags(t *testing.T) {
	// resetHostContacts reaches the host table, and the checks that run after
	// it in the same tick see zero.
	s := hostA()
	s.Key = aggregate.HostKey{Addr: s.Key.Addr, VLAN: 42}
	s.Local, s.Blacklisted, s.RxOnly, s.Multicast = false, true, true, true
	s.L7 = nil
	hosts := newFakeHosts(s)
	h := newHarness(t, map[string]string{
		"a_reset": `return { check = function() host.resetHostContacts() end }`,
		"b_read": `return { check = function(info)
			host.triggerAlert(1, string.format("%s %d %d %d %s %s %s %s %s", tostring(host.l7()),
				host.getNumContactedTCPServerPortsRefused(), host.getNumContactedTCPUDPServerPortsNoTX(),
				host.vlan_id(), tostring(host.is_unicast()), tostring(host.is_blacklisted()),
				tostring(host.is_rx_only()), tostring(host.is_local()), tostring(info.vlan)))
		end }`,
	}, hosts, nil)
	h.tick()
	evs := h.pub.take()
	if len(evs) != 1 || evs[0].Message != "nil 0 0 42 false true true false 42" {
		t.Fatalf("events %+v", evs)
	}
	if len(hosts.resets) != 1 || hosts.resets[0] != s.Key {
		t.Errorf("resets = %v", hosts.resets)
	}
}

func TestTriggerAlertArguments(t *testing.T) {
	cases := []struct {
		name, call string
		wantValue  int
		wantErr    bool
	}{
		{"clamp high", `host.triggerAlert(1000, "m")`, 255, false},
		{"clamp low", `host.triggerAlert(-5, "m")`, 0, false},
		{"fraction", `host.triggerAlert(42.9, "m")`, 42, false},
		{"nan", `host.triggerAlert(0/0, "m")`, 0, false},
		{"table value", `host.triggerAlert({}, "m")`, 0, true},
		{"nil value", `host.triggerAlert(nil, "m")`, 0, true},
		{"table message", `host.triggerAlert(10, {})`, 0, true},
		{"boolean message", `host.triggerAlert(10, true)`, 0, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, map[string]string{
				"x":    `return { check = function() ` + c.call + ` end }`,
				"good": `return { check = function() host.triggerAlert(3, "fine") end }`,
			}, newFakeHosts(hostA()), nil)
			st := h.tick()
			evs := h.pub.take()
			if c.wantErr {
				if st.Errors != 1 || len(evs) != 1 || evs[0].Check != "good" {
					t.Fatalf("stats %+v events %+v", st, evs)
				}
				return
			}
			if st.Errors != 0 || len(evs) != 2 || evs[1].Check != "x" || evs[1].Value != c.wantValue {
				t.Fatalf("stats %+v events %+v", st, evs)
			}
		})
	}
}
