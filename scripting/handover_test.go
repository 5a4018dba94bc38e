package scripting

import (
	"testing"

	"github.com/flowcheck/flowcheck/aggregate"
	"github.com/flowcheck/flowcheck/alert"
)

// TestHandover hands a host's engaged alert from one engine to another, as
// cluster workers do when a partition moves: the old owner forgets the host
// without a release, the new one adopts the alert from the checkpoint
// (Engaged), continues it without a new engaged event, and releases it
// under the same id when it clears.
func TestHandover(t *testing.T) {
	scope := func(c *Configuration) { c.AlertScope = "flowcheck-check" }
	h1 := newHarness(t, map[string]string{"t": bytesScript}, newFakeHosts(trafficHost("10.0.0.1"), trafficHost("10.0.0.2")), scope)
	h1.tick()
	engaged := h1.pub.take()
	if len(engaged) != 2 {
		t.Fatalf("old owner: %d events, want 2 engaged", len(engaged))
	}
	checkpoint := h1.e.Engaged()

	// The partition of 10.0.0.1 moves: the old owner forgets it silently.
	h1.e.Forget([]aggregate.HostKey{key("10.0.0.1")})
	h1.hosts.remove(key("10.0.0.1"))
	h1.tick()
	if evs := h1.pub.take(); len(evs) != 0 {
		t.Errorf("old owner published %+v after forgetting the host", evs)
	}

	// The new owner adopts the checkpoint's alert of its host only.
	h2 := newHarness(t, map[string]string{"t": bytesScript}, newFakeHosts(trafficHost("10.0.0.1")), func(c *Configuration) {
		scope(c)
		c.Instance = "worker-2"
	})
	var mine []alert.Event
	for _, ev := range checkpoint {
		if ev.Host.IP == "10.0.0.1" {
			mine = append(mine, ev)
		}
	}
	if n := h2.e.Adopt(mine); n != 1 {
		t.Fatalf("adopted %d alerts, want 1", n)
	}
	if n := h2.e.Adopt(mine); n != 0 {
		t.Errorf("adopted a repeat: %d", n)
	}
	h2.tick()
	if evs := h2.pub.take(); len(evs) != 0 {
		t.Errorf("new owner published %+v for an adopted alert that still triggers", evs)
	}
	h2.hosts.update(key("10.0.0.1"), func(s *aggregate.HostSnapshot) { s.BytesSent = 0 })
	h2.tick()
	evs := h2.pub.take()
	if len(evs) != 1 || evs[0].State != alert.Released || evs[0].ID != engaged[0].ID || !evs[0].FirstSeen.Equal(engaged[0].FirstSeen) {
		t.Fatalf("new owner's events %+v, want the release of %s (first seen %v)", evs, engaged[0].ID, engaged[0].FirstSeen)
	}
	if evs[0].Collector != "worker-2" {
		t.Errorf("release stamped by %q, want the new owner", evs[0].Collector)
	}
}

// TestAlertIDScope: the id hashes the scope, not the instance, so that two
// workers of one group give one engagement one id.
func TestAlertIDScope(t *testing.T) {
	k := key("10.0.0.1")
	if a, b := alertID("g", "scan", k, t0), alertID("g", "scan", k, t0); a != b {
		t.Fatal("id not deterministic")
	}
	for _, other := range []string{alertID("h", "scan", k, t0), alertID("g", "flood", k, t0), alertID("g", "scan", key("10.0.0.2"), t0),
		alertID("g", "scan", k, t0.Add(1))} {
		if other == alertID("g", "scan", k, t0) {
			t.Errorf("id %s shared by different engagements", other)
		}
	}
	ids := map[string]string{}
	for _, inst := range []string{"w1", "w2"} {
		h := newHarness(t, map[string]string{"t": bytesScript}, newFakeHosts(trafficHost("10.0.0.1")), func(c *Configuration) {
			c.Instance, c.AlertScope = inst, "grp"
		})
		h.tick()
		ids[inst] = h.pub.take()[0].ID
	}
	if ids["w1"] != ids["w2"] {
		t.Errorf("two workers of one group gave ids %v", ids)
	}
}

// TestQuiet: the first quietTicks runs on a host handed over raise nothing
// and release nothing (an adopted alert stays); then the checks act.
func TestQuiet(t *testing.T) {
	h := newHarness(t, map[string]string{"t": bytesScript}, newFakeHosts(trafficHost("10.0.0.1"), trafficHost("10.0.0.2")), nil)
	adopted := alert.Event{State: alert.Engaged, ID: "0123456789abcdef", Check: "t", Host: alert.Host{IP: "10.0.0.2"}, Value: 50,
		FirstSeen: t0, LastSeen: t0}
	if h.e.Adopt([]alert.Event{adopted}) != 1 {
		t.Fatal("not adopted")
	}
	h.e.Quiet([]aggregate.HostKey{key("10.0.0.1"), key("10.0.0.2")})
	h.hosts.update(key("10.0.0.2"), func(s *aggregate.HostSnapshot) { s.BytesSent = 0 }) // clears
	for i := range quietTicks {
		h.tick()
		if evs := h.pub.take(); len(evs) != 0 {
			t.Fatalf("warm-up tick %d published %+v", i+1, evs)
		}
	}
	h.tick()
	evs := h.pub.take()
	if len(evs) != 2 || evs[0].State != alert.Engaged || evs[0].Host.IP != "10.0.0.1" ||
		evs[1].State != alert.Released || evs[1].ID != adopted.ID {
		t.Errorf("after the warm-up: %+v, want 10.0.0.1 engaged and the adopted alert of 10.0.0.2 released", evs)
	}
}
