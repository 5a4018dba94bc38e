package server

import (
	"cmp"
	"container/heap"
	"encoding/json"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/flowcheck/flowcheck/aggregate"
	"github.com/flowcheck/flowcheck/alert"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Limits of /api/v1/hosts: the answer is built in memory, so it is capped.
const (
	defaultHostLimit = 100
	maxHostLimit     = 10000
)

func (c *Component) routes() (http.Handler, error) {
	m, err := newMetrics(c.deps.Registerer)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	handle := func(pattern, name string, h http.HandlerFunc) {
		counter := m.requests.MustCurryWith(prometheus.Labels{"handler": name})
		mux.Handle(pattern, promhttp.InstrumentHandlerCounter(counter, h))
	}
	mux.Handle("GET /metrics", c.promHandler())
	handle("GET /healthz", "healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	handle("GET /readyz", "readyz", c.readyz)
	handle("GET /api/v1/hosts", "hosts", c.hosts)
	handle("GET /api/v1/hosts/{ip}", "host", c.host)
	handle("GET /api/v1/alerts", "alerts", func(w http.ResponseWriter, _ *http.Request) {
		events := c.deps.Alerts.Engaged()
		if events == nil {
			events = []alert.Event{}
		}
		writeJSON(w, http.StatusOK, events)
	})
	handle("GET /api/v1/exporters", "exporters", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, c.deps.Exporters())
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

// hosts lists host summaries, sorted by a key, largest first.
func (c *Component) hosts(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := defaultHostLimit
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxHostLimit {
			writeError(w, http.StatusBadRequest, "limit must be an integer between 1 and "+strconv.Itoa(maxHostLimit))
			return
		}
		limit = n
	}
	var less func(a, b *hostSummary) int
	switch q.Get("sort") {
	case "", "bytes":
		less = func(a, b *hostSummary) int { return cmp.Compare(b.BytesSent+b.BytesRcvd, a.BytesSent+a.BytesRcvd) }
	case "score":
		less = func(a, b *hostSummary) int { return cmp.Compare(b.Score, a.Score) }
	case "noreply_ports":
		less = func(a, b *hostSummary) int { return cmp.Compare(b.NoReplyPorts, a.NoReplyPorts) }
	default:
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

	// Keep only the best `limit` summaries while walking the table, so
	// that memory follows the answer's size, not the table's.
	order := func(a, b *hostSummary) int {
		if d := less(a, b); d != 0 {
			return d
		}
		if d := a.key.Addr.Compare(b.key.Addr); d != 0 {
			return d
		}
		return cmp.Compare(a.key.VLAN, b.key.VLAN)
	}
	top := &topHosts{items: []hostSummary{}, order: order}
	var snap aggregate.HostSnapshot
	for _, k := range c.deps.Hosts.AppendKeys(nil) {
		if !c.deps.Hosts.Snapshot(k, &snap) || (localOnly && !snap.Local) {
			continue
		}
		// The candidate lives in top, not in a local: its address goes to
		// an indirect call, which would move every summary to the heap.
		top.cand = summarize(&snap, c.deps.Alerts.Score(k))
		if top.Len() < limit {
			top.items = append(top.items, top.cand)
			heap.Fix(top, top.Len()-1)
		} else if order(&top.cand, &top.items[0]) < 0 {
			top.items[0] = top.cand
			heap.Fix(top, 0)
		}
	}
	out := top.items
	slices.SortFunc(out, func(a, b hostSummary) int { return order(&a, &b) })
	for i := range out {
		out[i].format()
	}
	writeJSON(w, http.StatusOK, out)
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
	want := alert.Host{IP: key.Addr.String(), VLAN: key.VLAN}.Key()
	for _, ev := range c.deps.Alerts.Engaged() {
		if ev.Host.Key() == want {
			d.Alerts = append(d.Alerts, ev)
		}
	}
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
