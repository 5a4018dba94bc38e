package scripting

import (
	"testing"

	"github.com/flowcheck/flowcheck/aggregate"
)

// TestReusedResultTables checks that the tables a VM reuses for
// getUnidirectionalTCPUDPFlowsStats, getRefusedTCPFlowsStats and l7(name)
// carry each call's own values, even after a script vandalised them.
func TestReusedResultTables(t *testing.T) {
	a, b := hostA(), hostA()
	b.Key = key("10.99.0.11")
	b.Unidirectional = aggregate.UnidirectionalStats{EgressTCP: 7, IngressUDP: 2}
	b.RefusedFlows = aggregate.UnidirectionalStats{EgressTCP: 9}
	b.L7[0].Flows = 5
	h := newHarness(t, map[string]string{"c": `return { check = function(info)
		local u = host.getUnidirectionalTCPUDPFlowsStats()
		local r = host.getRefusedTCPFlowsStats()
		local l = host.l7("HTTP")
		host.triggerAlert(1, string.format("%d %d %d %d %d %d", u.num_egress, u.as_client.tcp,
			u.as_client.udp, u.as_server.udp, r.as_client.tcp, l.flows))
		-- Break them: the next call must not see this.
		u.as_client = nil; u.num_egress = -1; r.as_client.tcp = -1; l.flows = nil
	end }`}, newFakeHosts(a, b), func(c *Configuration) { c.Workers = 1 })
	want := map[string]string{"10.99.0.10": "6 0 6 0 1079 336", "10.99.0.11": "7 7 0 2 9 5"}
	checkMessages(t, h, want)
}

// checkMessages runs a tick of one check on the hosts of want and checks
// that it raised one alert per host, with the message wanted, and no error
// (a check that errors raises none, and must not pass for one that works).
func checkMessages(t *testing.T, h *harness, want map[string]string) {
	t.Helper()
	if st := h.tick(); st.Calls != len(want) || st.Errors != 0 {
		t.Errorf("tick: %d calls, %d errors; want %d calls, no error", st.Calls, st.Errors, len(want))
	}
	got := map[string]string{}
	for _, ev := range h.pub.take() {
		got[ev.Host.IP] = ev.Message
	}
	if len(got) != len(want) {
		t.Errorf("alerts on %d hosts (%v), want %d", len(got), got, len(want))
	}
	for ip, msg := range want {
		if got[ip] != msg {
			t.Errorf("%s: %q, want %q", ip, got[ip], msg)
		}
	}
}
