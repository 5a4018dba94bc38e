package server

import (
	"cmp"
	"container/heap"
	"encoding/json"
	"net/http"
	"net/netip"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/flowcheck/flowcheck/aggregate"
	"github.com/flowcheck/flowcheck/alert"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

func (c *Component) routes() (http.Handler, error) {
	m, err := newMetrics(c.deps.Registerer)
	if err != nil {
		return nil, err
	}
	c.metrics = m
	mux := http.NewServeMux()
	// Every route's series exist at zero from the start, so that alert
	// rules see them before the first request.
	handle := func(pattern, name string, h http.HandlerFunc) {
		counter := m.requests.MustCurryWith(prometheus.Labels{"handler": name})
		counter.WithLabelValues("200")
		mux.Handle(pattern, promhttp.InstrumentHandlerCounter(counter, h))
	}
	// The API walks the host table and copies alerts: it runs within the
	// http.max_concurrent slots. Metrics and probes do not.
	api := func(pattern, name string, h http.HandlerFunc) {
		m.rejected.WithLabelValues(name)
		m.timeouts.WithLabelValues(name)
		handle(pattern, name, c.limited(name, h))
	}
	mux.Handle("GET /metrics", c.promHandler())
	handle("GET /healthz", "healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	handle("GET /readyz", "readyz", c.readyz)
	api("GET /api/v1/hosts", "hosts", c.hosts)
	api("GET /api/v1/hosts/{ip}", "host", c.host)
	api("GET /api/v1/alerts", "alerts", func(w http.ResponseWriter, r *http.Request) {
		events := c.alerts.get(c.deps.Alerts)
		writeOffsetPage(w, r, len(events), func(i int) any { return events[i] })
	})
	api("GET /api/v1/exporters", "exporters", func(w http.ResponseWriter, r *http.Request) {
		list := c.deps.Exporters.Exporters()
		writeOffsetPage(w, r, len(list), func(i int) any { return list[i] })
	})
	return mux, nil
}

// readyz answers 200 when every readiness condition holds, else 503 naming
// the conditions that do not.
func (c *Component) readyz(w http.ResponseWriter, _ *http.Request) {
	status := make(map[string]bool, len(c.deps.Ready))
	ready := true
	for _, check := range c.deps.Ready {
		ok := check.Ready()
		status[check.Name] = ok
		ready = ready && ok
	}
	code := http.StatusOK
	if !ready {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, map[string]any{"ready": ready, "checks": status})
}

// hostSummary is one line of /api/v1/hosts.
type hostSummary struct {
	// key orders and identifies the host; IP and MAC are formatted only
	// for the hosts answered.
	key          aggregate.HostKey
	mac          aggregate.MAC
	sortValue    uint64
	IP           string    `json:"ip"`
	VLAN         uint16    `json:"vlan"`
	Name         string    `json:"name"`
	MAC          string    `json:"mac"`
	Local        bool      `json:"local"`
	BytesSent    uint64    `json:"bytes_sent"`
	BytesRcvd    uint64    `json:"bytes_rcvd"`
	PacketsSent  uint64    `json:"packets_sent"`
	PacketsRcvd  uint64    `json:"packets_rcvd"`
	Score        int       `json:"score"`
	NoReplyPeers uint64    `json:"noreply_peers"`
	NoReplyPorts uint64    `json:"noreply_ports"`
	RefusedPorts uint64    `json:"refused_ports"`
	FirstSeen    time.Time `json:"first_seen"`
	LastSeen     time.Time `json:"last_seen"`
}

func summarize(s *aggregate.HostSnapshot, score int) hostSummary {
	return hostSummary{
		key: s.Key, mac: s.MAC, VLAN: s.Key.VLAN, Name: s.Name, Local: s.Local,
		BytesSent: s.BytesSent, BytesRcvd: s.BytesRcvd, PacketsSent: s.PacketsSent, PacketsRcvd: s.PacketsRcvd,
		Score:        score,
		NoReplyPeers: s.NoReply.PeersAsClient, NoReplyPorts: s.NoReply.ServerPorts, RefusedPorts: s.Refused.ServerPorts,
		FirstSeen: s.FirstSeen, LastSeen: s.LastSeen,
	}
}

// format fills the fields shown as text.
func (h *hostSummary) format() {
	h.IP = h.key.Addr.String()
	h.MAC = h.mac.String() // zero MAC when unknown, as host.mac() and alerts say
}

// hostSorts are the orders of /api/v1/hosts: each maps a summary to a
// value sorted largest first (ties by address, then VLAN).
var hostSorts = map[string]func(h *hostSummary) uint64{
	"bytes": func(h *hostSummary) uint64 { return h.BytesSent + h.BytesRcvd },
	// Flipping the sign bit orders signed scores as unsigned values.
	"score":         func(h *hostSummary) uint64 { return uint64(int64(h.Score)) ^ 1<<63 },
	"noreply_ports": func(h *hostSummary) uint64 { return h.NoReplyPorts },
}

// hostOrder orders two summaries by their sort value, largest first, then
// by address and VLAN: a total order, so that a cursor is exact.
func hostOrder(a, b *hostSummary) int {
	if d := cmp.Compare(b.sortValue, a.sortValue); d != 0 {
		return d
	}
	if d := a.key.Addr.Compare(b.key.Addr); d != 0 {
		return d
	}
	return cmp.Compare(a.key.VLAN, b.key.VLAN)
}

// hostCursor is where a page of /api/v1/hosts ends: the sort value and key
// of its last host, written "value_ip_vlan".
func hostCursor(h *hostSummary) string {
	return strconv.FormatUint(h.sortValue, 10) + "_" + h.key.Addr.String() + "_" + strconv.Itoa(int(h.key.VLAN))
}

func parseHostCursor(s string) (hostSummary, bool) {
	parts := strings.SplitN(s, "_", 3)
	if len(parts) != 3 {
		return hostSummary{}, false
	}
	v, err1 := strconv.ParseUint(parts[0], 10, 64)
	addr, err2 := netip.ParseAddr(parts[1])
	vlan, err3 := strconv.ParseUint(parts[2], 10, 12)
	if err1 != nil || err2 != nil || err3 != nil {
		return hostSummary{}, false
	}
	return hostSummary{sortValue: v, key: aggregate.HostKey{Addr: addr, VLAN: uint16(vlan)}}, true
}

// hosts lists host summaries, sorted by a value, largest first, one page
// at a time: `cursor` (the `next` of the previous page) starts after the
// last host of that page. Each page walks the whole table, keeping only the
// best `limit` hosts past the cursor, so that memory follows the page, not
// the table; values are live, so a host whose value changes between two
// pages may move across the cursor.
func (c *Component) hosts(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, ok := parseLimit(q)
	if !ok {
		writeError(w, http.StatusBadRequest, limitError)
		return
	}
	sortBy := q.Get("sort")
	if sortBy == "" {
		sortBy = "bytes"
	}
	value, ok := hostSorts[sortBy]
	if !ok {
		writeError(w, http.StatusBadRequest, "sort must be bytes, score or noreply_ports")
		return
	}
	localOnly := false
	if s := q.Get("local"); s != "" {
		b, err := strconv.ParseBool(s)
		if err != nil {
			writeError(w, http.StatusBadRequest, "local must be true or false")
			return
		}
		localOnly = b
	}
	var after *hostSummary
	if s := q.Get("cursor"); s != "" {
		cur, ok := parseHostCursor(s)
		if !ok {
			writeError(w, http.StatusBadRequest, "cursor must be the next of a previous page")
			return
		}
		after = &cur
	}

	sc := scratchOf(r)
	sc.keys = c.deps.Hosts.AppendKeys(sc.keys[:0])
	top := &topHosts{items: make([]hostSummary, 0, min(limit, len(sc.keys))), order: hostOrder}
	total, remaining := 0, 0
	for i, k := range sc.keys {
		if i%yieldEvery == yieldEvery-1 {
			// The API yields to ingest, and gives up past its deadline.
			if r.Context().Err() != nil {
				writeError(w, http.StatusServiceUnavailable, errTimeout.Error())
				return
			}
			runtime.Gosched()
		}
		if !c.deps.Hosts.Snapshot(k, &sc.snap) || (localOnly && !sc.snap.Local) {
			continue
		}
		total++
		// The candidate lives in top, not in a local: its address goes to
		// an indirect call, which would move every summary to the heap.
		// The score is read for all hosts only when it is the order.
		top.cand = summarize(&sc.snap, 0)
		if sortBy == "score" {
			top.cand.Score = c.deps.Alerts.Score(k)
		}
		top.cand.sortValue = value(&top.cand)
		if after != nil && hostOrder(&top.cand, after) <= 0 {
			continue
		}
		remaining++
		if top.Len() < limit {
			top.items = append(top.items, top.cand)
			heap.Fix(top, top.Len()-1)
		} else if hostOrder(&top.cand, &top.items[0]) < 0 {
			top.items[0] = top.cand
			heap.Fix(top, 0)
		}
	}
	out := top.items
	slices.SortFunc(out, func(a, b hostSummary) int { return hostOrder(&a, &b) })
	for i := range out {
		if sortBy != "score" {
			out[i].Score = c.deps.Alerts.Score(out[i].key)
		}
		out[i].format()
	}
	items, err := fill(len(out), limit, func(i int) any { return &out[i] })
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	p := page{Total: total, Limit: limit, Items: items}
	if len(items) < remaining {
		p.Next = nextURL(r, "cursor", hostCursor(&out[len(items)-1]), limit)
	}
	writeJSON(w, http.StatusOK, p)
}

// topHosts is a heap whose root is the worst of the best summaries kept.
type topHosts struct {
	items []hostSummary
	cand  hostSummary
	order func(a, b *hostSummary) int
}

func (t *topHosts) Len() int           { return len(t.items) }
func (t *topHosts) Less(i, j int) bool { return t.order(&t.items[i], &t.items[j]) > 0 }
func (t *topHosts) Swap(i, j int)      { t.items[i], t.items[j] = t.items[j], t.items[i] }
func (t *topHosts) Push(x any)         { t.items = append(t.items, x.(hostSummary)) }

// Pop is never called (the heap only grows to its limit) but completes
// heap.Interface.
func (t *topHosts) Pop() any {
	last := t.items[len(t.items)-1]
	t.items = t.items[:len(t.items)-1]
	return last
}

// contactsJSON mirrors aggregate.ContactCounts.
type contactsJSON struct {
	PeersAsClient uint64 `json:"peers_as_client"`
	ServerPorts   uint64 `json:"server_ports"`
	PeersAsServer uint64 `json:"peers_as_server"`
}

// flowsJSON mirrors aggregate.UnidirectionalStats.
type flowsJSON struct {
	EgressTCP  uint64 `json:"egress_tcp"`
	EgressUDP  uint64 `json:"egress_udp"`
	IngressTCP uint64 `json:"ingress_tcp"`
	IngressUDP uint64 `json:"ingress_udp"`
	Egress     uint64 `json:"egress"`
	Ingress    uint64 `json:"ingress"`
}

// l7JSON mirrors aggregate.L7Stat.
type l7JSON struct {
	Name        string `json:"name"`
	BytesSent   uint64 `json:"bytes_sent"`
	BytesRcvd   uint64 `json:"bytes_rcvd"`
	PacketsSent uint64 `json:"packets_sent"`
	PacketsRcvd uint64 `json:"packets_rcvd"`
	Flows       uint64 `json:"flows"`
}

// hostDetail is /api/v1/hosts/{ip}: everything the Lua host.* API can read.
type hostDetail struct {
	hostSummary
	Multicast      bool          `json:"multicast"`
	Broadcast      bool          `json:"broadcast"`
	Blacklisted    bool          `json:"blacklisted"`
	RxOnly         bool          `json:"rx_only"`
	L7             []l7JSON      `json:"l7"`
	NoReply        contactsJSON  `json:"noreply"`
	Refused        contactsJSON  `json:"refused"`
	Unidirectional flowsJSON     `json:"unidirectional"`
	RefusedFlows   flowsJSON     `json:"refused_flows"`
	Alerts         []alert.Event `json:"alerts"`
}

func contacts(c aggregate.ContactCounts) contactsJSON {
	return contactsJSON{PeersAsClient: c.PeersAsClient, ServerPorts: c.ServerPorts, PeersAsServer: c.PeersAsServer}
}

func flows(u aggregate.UnidirectionalStats) flowsJSON {
	return flowsJSON{EgressTCP: u.EgressTCP, EgressUDP: u.EgressUDP, IngressTCP: u.IngressTCP, IngressUDP: u.IngressUDP, Egress: u.Egress(), Ingress: u.Ingress()}
}

// host shows one host in full.
func (c *Component) host(w http.ResponseWriter, r *http.Request) {
	addr, err := netip.ParseAddr(r.PathValue("ip"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "not an IP address: "+r.PathValue("ip"))
		return
	}
	key := aggregate.HostKey{Addr: addr.Unmap()}
	if s := r.URL.Query().Get("vlan"); s != "" {
		v, err := strconv.ParseUint(s, 10, 12)
		if err != nil {
			writeError(w, http.StatusBadRequest, "vlan must be 0-4095")
			return
		}
		key.VLAN = uint16(v)
	}
	var snap aggregate.HostSnapshot
	if !c.deps.Hosts.Snapshot(key, &snap) {
		writeError(w, http.StatusNotFound, "unknown host "+key.String())
		return
	}
	d := hostDetail{
		hostSummary: summarize(&snap, c.deps.Alerts.Score(key)),
		Multicast:   snap.Multicast, Broadcast: snap.Broadcast, Blacklisted: snap.Blacklisted, RxOnly: snap.RxOnly,
		L7:      make([]l7JSON, 0, len(snap.L7)),
		NoReply: contacts(snap.NoReply), Refused: contacts(snap.Refused),
		Unidirectional: flows(snap.Unidirectional), RefusedFlows: flows(snap.RefusedFlows),
		Alerts: []alert.Event{},
	}
	d.format()
	for _, l := range snap.L7 {
		d.L7 = append(d.L7, l7JSON{Name: l.Name, BytesSent: l.BytesSent, BytesRcvd: l.BytesRcvd, PacketsSent: l.PacketsSent, PacketsRcvd: l.PacketsRcvd, Flows: l.Flows})
	}
	d.Alerts = append(d.Alerts, ofHost(c.alerts.get(c.deps.Alerts), key.Addr.String(), key.VLAN)...)
	writeJSON(w, http.StatusOK, d)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // the client went away; nothing to do
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}
