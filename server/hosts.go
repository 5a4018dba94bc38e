package server

import (
	"cmp"
	"container/heap"
	"net/http"
	"net/netip"
	"net/url"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/flowcheck/flowcheck/aggregate"
)

// maxHostWindow bounds offset+limit of /api/v1/hosts: a page keeps the best
// offset+limit hosts of its walk in a heap, so that memory and sorting
// follow the window, never the table. Deeper pages follow `next`, which
// then carries a cursor.
const maxHostWindow = 10_000

// shardedHosts is a Hosts whose keys can be read one shard at a time
// (aggregate.HostTable): a walk then holds one shard's keys, not the
// table's (32 bytes a host).
type shardedHosts interface {
	Shards() int
	AppendShardKeys(shard int, dst []aggregate.HostKey) []aggregate.HostKey
}

// counterHosts is a Hosts that can copy a host without its display name
// (aggregate.HostTable): a walk then formats names only for the hosts it
// answers.
type counterHosts interface {
	SnapshotCounters(key aggregate.HostKey, dst *aggregate.HostSnapshot) bool
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
	Blacklisted  bool      `json:"blacklisted"`
	BytesSent    uint64    `json:"bytes_sent"`
	BytesRcvd    uint64    `json:"bytes_rcvd"`
	PacketsSent  uint64    `json:"packets_sent"`
	PacketsRcvd  uint64    `json:"packets_rcvd"`
	Score        int       `json:"score"`
	NoReplyPeers uint64    `json:"noreply_peers"`
	NoReplyPorts uint64    `json:"noreply_ports"`
	RefusedPeers uint64    `json:"refused_peers"`
	RefusedPorts uint64    `json:"refused_ports"`
	FirstSeen    time.Time `json:"first_seen"`
	LastSeen     time.Time `json:"last_seen"`
}

func summarize(s *aggregate.HostSnapshot, score int) hostSummary {
	return hostSummary{
		key: s.Key, mac: s.MAC, VLAN: s.Key.VLAN, Name: s.Name, Local: s.Local, Blacklisted: s.Blacklisted,
		BytesSent: s.BytesSent, BytesRcvd: s.BytesRcvd, PacketsSent: s.PacketsSent, PacketsRcvd: s.PacketsRcvd,
		Score:        score,
		NoReplyPeers: s.NoReply.PeersAsClient, NoReplyPorts: s.NoReply.ServerPorts,
		RefusedPeers: s.Refused.PeersAsClient, RefusedPorts: s.Refused.ServerPorts,
		FirstSeen: s.FirstSeen, LastSeen: s.LastSeen,
	}
}

// format fills the fields shown as text.
func (h *hostSummary) format() {
	h.IP = h.key.Addr.String()
	h.MAC = h.mac.String() // zero MAC when unknown, as host.mac() and alerts say
}

// hostSorts are the orders of /api/v1/hosts: each maps a summary to a
// value sorted largest first (order=desc; ties by address, then VLAN).
var hostSorts = map[string]func(h *hostSummary) uint64{
	"bytes": func(h *hostSummary) uint64 { return h.BytesSent + h.BytesRcvd },
	// Flipping the sign bit orders signed scores as unsigned values.
	"score":         func(h *hostSummary) uint64 { return uint64(int64(h.Score)) ^ 1<<63 },
	"noreply_ports": func(h *hostSummary) uint64 { return h.NoReplyPorts },
	"noreply_peers": func(h *hostSummary) uint64 { return h.NoReplyPeers },
	"refused_ports": func(h *hostSummary) uint64 { return h.RefusedPorts },
	"refused_peers": func(h *hostSummary) uint64 { return h.RefusedPeers },
}

const sortError = "sort must be bytes, score, noreply_ports, noreply_peers, refused_ports or refused_peers"

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

// hostQuery is a parsed /api/v1/hosts request.
type hostQuery struct {
	sortBy string
	value  func(h *hostSummary) uint64
	// asc reverses the values (ties stay by ascending address).
	asc           bool
	offset, limit int
	after         *hostSummary
	// prefix keeps the hosts within it (an address is a /32 or /128).
	prefix netip.Prefix
	// local: 0 both, 1 local only, 2 remote only.
	local int
	vlan  int // -1: any
}

// parseHostQuery reads the parameters of /api/v1/hosts; the error is the
// one line answered with 400.
func parseHostQuery(q url.Values) (hostQuery, string) {
	hq := hostQuery{sortBy: "bytes", vlan: -1}
	var ok bool
	if hq.limit, ok = parseLimit(q); !ok {
		return hq, limitError
	}
	if s := q.Get("sort"); s != "" {
		hq.sortBy = s
	}
	if hq.value, ok = hostSorts[hq.sortBy]; !ok {
		return hq, sortError
	}
	switch q.Get("order") {
	case "", "desc":
	case "asc":
		hq.asc = true
	default:
		return hq, "order must be asc or desc"
	}
	if s := q.Get("offset"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return hq, "offset must be a non-negative integer"
		}
		hq.offset = n
	}
	if hq.offset+hq.limit > maxHostWindow {
		return hq, "offset+limit must be at most 10000: follow next for deeper pages"
	}
	if s := q.Get("cursor"); s != "" {
		if q.Has("offset") {
			return hq, "cursor and offset are exclusive"
		}
		cur, ok := parseHostCursor(s)
		if !ok {
			return hq, "cursor must be the next of a previous page"
		}
		hq.after = &cur
	}
	if q.Has("q") && q.Has("cidr") {
		return hq, "q and cidr are exclusive"
	}
	if s := q.Get("q"); s != "" {
		if a, err := netip.ParseAddr(s); err == nil {
			a = a.Unmap()
			hq.prefix = netip.PrefixFrom(a, a.BitLen())
		} else if p, err := netip.ParsePrefix(s); err == nil {
			hq.prefix = p.Masked()
		} else {
			return hq, "q must be an IP address or a CIDR prefix"
		}
	}
	if s := q.Get("cidr"); s != "" {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return hq, "cidr must be a prefix such as 10.0.0.0/8"
		}
		hq.prefix = p.Masked()
	}
	if hq.prefix.IsValid() && hq.prefix.Addr().Is4In6() {
		hq.prefix = netip.PrefixFrom(hq.prefix.Addr().Unmap(), max(0, hq.prefix.Bits()-96))
	}
	switch s := q.Get("local"); s {
	case "":
	default:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return hq, "local must be true or false"
		}
		hq.local = 2
		if b {
			hq.local = 1
		}
	}
	if s := q.Get("vlan"); s != "" {
		v, err := strconv.ParseUint(s, 10, 12)
		if err != nil {
			return hq, "vlan must be 0-4095"
		}
		hq.vlan = int(v)
	}
	return hq, ""
}

// keyWanted applies the filters that need no snapshot.
func (hq *hostQuery) keyWanted(k aggregate.HostKey) bool {
	if hq.vlan >= 0 && int(k.VLAN) != hq.vlan {
		return false
	}
	return !hq.prefix.IsValid() || hq.prefix.Contains(k.Addr)
}

// hosts lists host summaries, sorted by a value, one page at a time, by
// `offset` (within the first maxHostWindow hosts) or by `cursor` (the `next`
// of a previous page, past any depth). Each page walks the whole table,
// keeping only the best offset+limit hosts past the cursor in a heap, so
// that memory follows the page, not the table; values are live, so a host
// whose value changes between two pages may move across the page boundary.
func (c *Component) hosts(w http.ResponseWriter, r *http.Request) {
	hq, msg := parseHostQuery(r.URL.Query())
	if msg != "" {
		writeError(w, r, http.StatusBadRequest, msg)
		return
	}
	window := hq.offset + hq.limit
	sc := scratchOf(r)
	top := &topHosts{items: sc.top[:0], order: hostOrder}
	total, remaining, i := 0, 0, 0
	snapshot := c.deps.Hosts.Snapshot
	counters, named := c.deps.Hosts.(counterHosts)
	if named {
		snapshot = counters.SnapshotCounters
	}
	sharded, byShard := c.deps.Hosts.(shardedHosts)
	shards := 1
	if byShard {
		shards = sharded.Shards()
	}
	for shard := range shards {
		if byShard {
			sc.keys = sharded.AppendShardKeys(shard, sc.keys[:0])
		} else {
			sc.keys = c.deps.Hosts.AppendKeys(sc.keys[:0])
		}
		for _, k := range sc.keys {
			if i++; i%yieldEvery == 0 {
				// The API yields to ingest, and gives up past its deadline.
				if r.Context().Err() != nil {
					writeError(w, r, http.StatusServiceUnavailable, errTimeout.Error())
					return
				}
				runtime.Gosched()
			}
			if !hq.keyWanted(k) || !snapshot(k, &sc.snap) ||
				(hq.local == 1 && !sc.snap.Local) || (hq.local == 2 && sc.snap.Local) {
				continue
			}
			total++
			// The candidate lives in top, not in a local: its address goes to
			// an indirect call, which would move every summary to the heap.
			// The score is read for all hosts only when it is the order.
			top.cand = summarize(&sc.snap, 0)
			if hq.sortBy == "score" {
				top.cand.Score = c.deps.Alerts.Score(k)
			}
			top.cand.sortValue = hq.value(&top.cand)
			if hq.asc {
				top.cand.sortValue = ^top.cand.sortValue
			}
			if hq.after != nil && hostOrder(&top.cand, hq.after) <= 0 {
				continue
			}
			remaining++
			if top.Len() < window {
				top.items = append(top.items, top.cand)
				heap.Fix(top, top.Len()-1)
			} else if hostOrder(&top.cand, &top.items[0]) < 0 {
				top.items[0] = top.cand
				heap.Fix(top, 0)
			}
		}
	}
	sc.top = top.items
	out := top.items
	slices.SortFunc(out, func(a, b hostSummary) int { return hostOrder(&a, &b) })
	out = out[min(hq.offset, len(out)):]
	for i := range out[:min(len(out), hq.limit)] {
		if hq.sortBy != "score" {
			out[i].Score = c.deps.Alerts.Score(out[i].key)
		}
		out[i].format()
		if named {
			// The name only: the figures stay those the page was sorted by.
			out[i].Name = out[i].IP
			if c.deps.Hosts.Snapshot(out[i].key, &sc.snap) {
				out[i].Name = sc.snap.Name
			}
		}
	}
	items, err := fill(len(out), hq.limit, func(i int) any { return &out[i] })
	if err != nil {
		writeError(w, r, http.StatusInternalServerError, err.Error())
		return
	}
	p := hostsPage{page: page{Total: total, Limit: hq.limit, Items: items}}
	if end := hq.offset + len(items); end < remaining {
		if hq.after == nil && end+hq.limit <= maxHostWindow {
			p.Next = nextURL(r, "offset", strconv.Itoa(end), hq.limit)
		} else {
			p.Next = nextURL(r, "cursor", hostCursor(&out[len(items)-1]), hq.limit, "offset")
		}
	}
	if c.deps.Partitions != nil {
		owned := c.deps.Partitions()
		p.Partitions = &owned
	}
	writeJSON(w, r, http.StatusOK, p)
}

// hostsPage is a page of /api/v1/hosts: in cluster role check it says which
// partitions of the flows topic this worker holds the hosts of (the hosts
// of the others are on other workers).
type hostsPage struct {
	page
	Partitions *[]int `json:"partitions,omitempty"`
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
