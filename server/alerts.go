package server

import (
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"github.com/flowcheck/flowcheck/aggregate"
	"github.com/flowcheck/flowcheck/alert"
)

// severities are the bands of alert.Severity.
var severities = []string{"info", "warning", "error", "critical"}

// alertQuery is a parsed /api/v1/alerts request.
type alertQuery struct {
	engaged, released bool
	check, severity   string
	// host, when valid, keeps the alerts of one host.
	host    aggregate.HostKey
	hostSet bool
}

func parseAlertQuery(q url.Values) (alertQuery, string) {
	aq := alertQuery{engaged: true}
	switch q.Get("state") {
	case "", "engaged":
	case "released":
		aq.engaged, aq.released = false, true
	case "all":
		aq.released = true
	default:
		return aq, "state must be engaged, released or all"
	}
	aq.check = q.Get("check")
	if s := q.Get("severity"); s != "" {
		ok := false
		for _, v := range severities {
			ok = ok || s == v
		}
		if !ok {
			return aq, "severity must be info, warning, error or critical"
		}
		aq.severity = s
	}
	if s := q.Get("host"); s != "" {
		k, ok := parseHostKey(s)
		if !ok {
			return aq, "host must be an IP address, or ip@vlan"
		}
		aq.host, aq.hostSet = k, true
	}
	return aq, ""
}

// parseHostKey reads "ip" or "ip@vlan".
func parseHostKey(s string) (aggregate.HostKey, bool) {
	ip, vlan, tagged := strings.Cut(s, "@")
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return aggregate.HostKey{}, false
	}
	k := aggregate.HostKey{Addr: a.Unmap()}
	if tagged {
		v, err := strconv.ParseUint(vlan, 10, 12)
		if err != nil {
			return aggregate.HostKey{}, false
		}
		k.VLAN = uint16(v)
	}
	return k, true
}

// keeps reports whether an event passes the filters.
func (aq *alertQuery) keeps(ev *alert.Event, hostIP string) bool {
	return (aq.check == "" || ev.Check == aq.check) &&
		(aq.severity == "" || ev.Severity == aq.severity) &&
		(!aq.hostSet || (ev.Host.IP == hostIP && ev.Host.VLAN == aq.host.VLAN))
}

// alerts pages through the engaged alerts (sorted by host, then check) and
// the recently released ones (newest first), filtered. Filtering keeps
// pointers into the shared snapshot, not copies.
func (c *Component) alertList(w http.ResponseWriter, r *http.Request) {
	aq, msg := parseAlertQuery(r.URL.Query())
	if msg != "" {
		writeError(w, r, http.StatusBadRequest, msg)
		return
	}
	hostIP := ""
	if aq.hostSet {
		hostIP = aq.host.Addr.String()
	}
	sc := scratchOf(r)
	list := sc.alerts[:0]
	if aq.engaged {
		events := c.alerts.get(c.deps.Alerts)
		if aq.hostSet {
			events = ofHost(events, hostIP, aq.host.VLAN)
		}
		for i := range events {
			if aq.keeps(&events[i], hostIP) {
				list = append(list, &events[i])
			}
		}
	}
	if aq.released {
		events := c.deps.History.Released()
		for i := range events {
			if aq.keeps(&events[i], hostIP) {
				list = append(list, &events[i])
			}
		}
	}
	sc.alerts = list
	defer clear(sc.alerts) // hold no snapshot past the request
	writeOffsetPage(w, r, len(list), func(i int) any { return list[i] })
}

// recentOf returns the released alerts of one host still in the history,
// newest first.
func recentOf(events []alert.Event, ip string, vlan uint16) []alert.Event {
	out := []alert.Event{}
	for i := range events {
		if events[i].Host.IP == ip && events[i].Host.VLAN == vlan {
			out = append(out, events[i])
		}
	}
	return out
}
