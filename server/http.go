package server

import (
	"compress/gzip"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"strings"

	"github.com/flowcheck/flowcheck/aggregate"
	"github.com/flowcheck/flowcheck/alert"
	"github.com/flowcheck/flowcheck/server/console"
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
	// The web console: every path the API, metrics and probes do not take
	// (any method, so that /api/ stays the more specific pattern; the
	// console answers 405 to all but GET and HEAD).
	handle("/", "console", console.Handler().ServeHTTP)
	handle("GET /healthz", "healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, r, http.StatusOK, map[string]string{"status": "ok"})
	})
	handle("GET /readyz", "readyz", c.readyz)
	api("GET /api/v1/hosts", "hosts", c.hosts)
	api("GET /api/v1/hosts/{ip}", "host", c.host)
	api("GET /api/v1/alerts", "alerts", c.alertList)
	api("GET /api/v1/exporters", "exporters", c.exporters)
	api("GET /api/v1/checks", "checks", c.checks)
	api("GET /api/v1/overview", "overview", c.overview)
	mux.Handle("/api/", apiFallback(mux))
	return mux, nil
}

// apiFallback answers what no API route takes: 405 (with Allow) when the
// path has a route for GET, else 404, both as JSON errors.
func apiFallback(mux *http.ServeMux) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			probe := r.Clone(r.Context())
			probe.Method = http.MethodGet
			if _, pattern := mux.Handler(probe); pattern != "" && pattern != "/api/" {
				w.Header().Set("Allow", "GET, HEAD")
				writeError(w, r, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed: the API is read-only (GET)")
				return
			}
		}
		writeError(w, r, http.StatusNotFound, "no such endpoint: "+r.URL.Path+" (see docs/api.md)")
	}
}

// readyz answers 200 when every readiness condition holds, else 503 naming
// the conditions that do not.
func (c *Component) readyz(w http.ResponseWriter, r *http.Request) {
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
	writeJSON(w, r, code, map[string]any{"ready": ready, "checks": status})
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
	Multicast      bool         `json:"multicast"`
	Broadcast      bool         `json:"broadcast"`
	Blacklisted    bool         `json:"blacklisted"`
	RxOnly         bool         `json:"rx_only"`
	L7             []l7JSON     `json:"l7"`
	NoReply        contactsJSON `json:"noreply"`
	Refused        contactsJSON `json:"refused"`
	Unidirectional flowsJSON    `json:"unidirectional"`
	RefusedFlows   flowsJSON    `json:"refused_flows"`
	Sampling       samplingJSON `json:"sampling"`
	Sets           setsJSON     `json:"sets"`
	// Alerts are the host's engaged alerts; RecentAlerts its released
	// ones still in the history, newest first.
	Alerts       []alert.Event `json:"alerts"`
	RecentAlerts []alert.Event `json:"recent_alerts"`
}

// setJSON is one contact set: its size, whether it is still exact (not
// yet a sketch), and its first members (addresses or ports).
type setJSON struct {
	Count   uint64 `json:"count"`
	Exact   bool   `json:"exact"`
	Members any    `json:"members"`
}

// contactSetsJSON mirrors aggregate.ContactSets.
type contactSetsJSON struct {
	PeersAsClient setJSON `json:"peers_as_client"`
	ServerPorts   setJSON `json:"server_ports"`
	PeersAsServer setJSON `json:"peers_as_server"`
}

// setsJSON are the host's contact sets by kind.
type setsJSON struct {
	NoReply contactSetsJSON `json:"noreply"`
	Refused contactSetsJSON `json:"refused"`
}

func peerSet(s aggregate.ContactSet) setJSON {
	m := make([]string, len(s.Peers))
	for i, a := range s.Peers {
		m[i] = a.String()
	}
	return setJSON{Count: s.Count, Exact: s.Exact, Members: m}
}

func portSet(s aggregate.ContactSet) setJSON {
	m := s.Ports
	if m == nil {
		m = []uint16{}
	}
	return setJSON{Count: s.Count, Exact: s.Exact, Members: m}
}

func contactSetsOf(cs aggregate.ContactSets) contactSetsJSON {
	return contactSetsJSON{PeersAsClient: peerSet(cs.PeersAsClient), ServerPorts: portSet(cs.ServerPorts), PeersAsServer: peerSet(cs.PeersAsServer)}
}

// countsOnly describes sets by their counts alone, when no Contacts
// dependency lists members (exactness unknown: reported exact).
func countsOnly(c aggregate.ContactCounts) aggregate.ContactSets {
	return aggregate.ContactSets{PeersAsClient: aggregate.ContactSet{Count: c.PeersAsClient, Exact: true},
		ServerPorts: aggregate.ContactSet{Count: c.ServerPorts, Exact: true}, PeersAsServer: aggregate.ContactSet{Count: c.PeersAsServer, Exact: true}}
}

// samplingJSON mirrors aggregate.VerdictSampling.
type samplingJSON struct {
	Rate     uint32 `json:"rate"`
	Verdicts uint64 `json:"verdicts"`
	Exact    bool   `json:"exact"`
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
		writeError(w, r, http.StatusBadRequest, "not an IP address: "+r.PathValue("ip"))
		return
	}
	key := aggregate.HostKey{Addr: addr.Unmap()}
	if s := r.URL.Query().Get("vlan"); s != "" {
		v, err := strconv.ParseUint(s, 10, 12)
		if err != nil {
			writeError(w, r, http.StatusBadRequest, "vlan must be 0-4095")
			return
		}
		key.VLAN = uint16(v)
	}
	var snap aggregate.HostSnapshot
	if !c.deps.Hosts.Snapshot(key, &snap) {
		writeError(w, r, http.StatusNotFound, "unknown host "+key.String())
		return
	}
	d := hostDetail{
		hostSummary: summarize(&snap, c.deps.Alerts.Score(key)),
		Multicast:   snap.Multicast, Broadcast: snap.Broadcast, Blacklisted: snap.Blacklisted, RxOnly: snap.RxOnly,
		L7:      make([]l7JSON, 0, len(snap.L7)),
		NoReply: contacts(snap.NoReply), Refused: contacts(snap.Refused),
		Unidirectional: flows(snap.Unidirectional), RefusedFlows: flows(snap.RefusedFlows),
		Sampling: samplingJSON{Rate: snap.Sampling.Rate, Verdicts: snap.Sampling.Verdicts, Exact: snap.Sampling.Exact()},
		Alerts:   []alert.Event{},
	}
	d.format()
	hc := aggregate.HostContacts{NoReply: countsOnly(snap.NoReply), Refused: countsOnly(snap.Refused)}
	if c.deps.Contacts != nil {
		if got, ok := c.deps.Contacts.Contacts(key); ok {
			hc = got
		}
	}
	d.Sets = setsJSON{NoReply: contactSetsOf(hc.NoReply), Refused: contactSetsOf(hc.Refused)}
	for _, l := range snap.L7 {
		d.L7 = append(d.L7, l7JSON{Name: l.Name, BytesSent: l.BytesSent, BytesRcvd: l.BytesRcvd, PacketsSent: l.PacketsSent, PacketsRcvd: l.PacketsRcvd, Flows: l.Flows})
	}
	d.Alerts = append(d.Alerts, ofHost(c.alerts.get(c.deps.Alerts), d.IP, key.VLAN)...)
	d.RecentAlerts = recentOf(c.deps.History.Released(), d.IP, key.VLAN)
	writeJSON(w, r, http.StatusOK, d)
}

// writeJSON answers v as indented JSON (read with curl as often as by the
// console), gzipped when the client accepts it: a page of 1000 hosts is
// about 0.5 MB of JSON, and gzip takes most of it away.
func writeJSON(w http.ResponseWriter, r *http.Request, code int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Add("Vary", "Accept-Encoding")
	var out io.Writer = w
	if acceptsGzip(r) {
		h.Set("Content-Encoding", "gzip")
		zw, _ := gzip.NewWriterLevel(w, gzip.BestSpeed) // a valid level: no error
		defer zw.Close()
		out = zw
	}
	w.WriteHeader(code)
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // the client went away; nothing to do
}

// acceptsGzip reports whether the request's Accept-Encoding lists gzip with a
// quality above zero.
func acceptsGzip(r *http.Request) bool {
	for _, field := range r.Header.Values("Accept-Encoding") {
		for part := range strings.SplitSeq(field, ",") {
			name, params, _ := strings.Cut(part, ";")
			if !strings.EqualFold(strings.TrimSpace(name), "gzip") {
				continue
			}
			q, found := strings.CutPrefix(strings.TrimSpace(params), "q=")
			if !found {
				return true
			}
			quality, err := strconv.ParseFloat(q, 64)
			return err == nil && quality > 0
		}
	}
	return false
}

func writeError(w http.ResponseWriter, r *http.Request, code int, msg string) {
	writeJSON(w, r, code, map[string]string{"error": msg})
}

// promHandler serves the gatherer's metrics, counting its own failures.
func (c *Component) promHandler() http.Handler {
	opts := promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(c.deps.Logger.Handler(), slog.LevelWarn)}
	if c.deps.Registerer != nil {
		opts.Registry = c.deps.Registerer
	}
	return promhttp.HandlerFor(c.deps.Gatherer, opts)
}
