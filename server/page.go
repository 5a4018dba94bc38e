package server

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/flowcheck/flowcheck/aggregate"
	"github.com/flowcheck/flowcheck/alert"
)

// Paging of the API's lists: a page holds at most limit items (default
// defaultPageLimit, at most maxPageLimit) and stops early once its items
// reach maxPageBytes of JSON, so that no answer grows with the table.
const (
	defaultPageLimit = 100
	maxPageLimit     = 1000
	maxPageBytes     = 2 << 20
	// alertSnapshotTTL is how long one copy of the engaged alerts serves
	// every request: alerts change once per tick, and copying tens of
	// thousands of them per request is what the API must not do.
	alertSnapshotTTL = time.Second
	// yieldEvery is how many hosts a walk reads between two looks at its
	// deadline, when it also lets other goroutines (the decoders) run.
	yieldEvery = 1024
)

// errTimeout ends a walk past http.request_timeout.
var errTimeout = errors.New("request timed out (http.request_timeout); narrow it or retry")

// page is the answer of every list endpoint.
type page struct {
	// Total is the number of items of the whole list (after filters).
	Total int `json:"total"`
	// Limit is the page size asked for (or the default).
	Limit int `json:"limit"`
	// Next is the path and query of the next page; null on the last.
	Next *string `json:"next"`
	// Items are the page's items.
	Items []json.RawMessage `json:"items"`
}

// scratch is the memory of one API slot, reused by every request that
// holds it.
type scratch struct {
	keys []aggregate.HostKey
	snap aggregate.HostSnapshot
	// top is the heap of a hosts page (at most maxHostWindow summaries).
	top []hostSummary
	// alerts are the filtered alerts of an alerts page.
	alerts []*alert.Event
}

type scratchKey struct{}

// limited runs an API handler only when one of http.max_concurrent slots is
// free, under http.request_timeout; otherwise it answers 503 with
// Retry-After at once and counts it. Queueing would keep goroutines and
// memory per waiting client; turning them away keeps the API's share of
// the CPU bounded, whatever the number of clients.
func (c *Component) limited(name string, h http.HandlerFunc) http.HandlerFunc {
	rejected := c.metrics.rejected.WithLabelValues(name)
	timeouts := c.metrics.timeouts.WithLabelValues(name)
	return func(w http.ResponseWriter, r *http.Request) {
		var sc *scratch
		select {
		case sc = <-c.slots:
		default:
			rejected.Inc()
			w.Header().Set("Retry-After", "1")
			writeError(w, r, http.StatusServiceUnavailable, "too many API requests at once (http.max_concurrent); retry later")
			return
		}
		defer func() { c.slots <- sc }()
		ctx, cancel := context.WithTimeout(context.WithValue(r.Context(), scratchKey{}, sc), c.config.RequestTimeout)
		defer cancel()
		h(w, r.WithContext(ctx))
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			timeouts.Inc()
		}
	}
}

// scratchOf returns the scratch of the slot a request holds.
func scratchOf(r *http.Request) *scratch {
	if sc, ok := r.Context().Value(scratchKey{}).(*scratch); ok {
		return sc
	}
	return &scratch{}
}

// parseLimit reads `limit`.
func parseLimit(q url.Values) (int, bool) {
	s := q.Get("limit")
	if s == "" {
		return defaultPageLimit, true
	}
	n, err := strconv.Atoi(s)
	return n, err == nil && n >= 1 && n <= maxPageLimit
}

// limitError words a bad `limit`.
const limitError = "limit must be an integer between 1 and 1000 (default 100)"

// fill marshals items 0..n-1 until limit of them or maxPageBytes of JSON
// (always at least one), and returns them.
func fill(n, limit int, item func(i int) any) ([]json.RawMessage, error) {
	out := make([]json.RawMessage, 0, min(n, limit))
	size := 0
	for i := 0; i < n && len(out) < limit; i++ {
		b, err := json.Marshal(item(i))
		if err != nil {
			return nil, err
		}
		if len(out) > 0 && size+len(b) > maxPageBytes {
			break
		}
		out = append(out, b)
		size += len(b)
	}
	return out, nil
}

// nextURL is the request's path and query with key set to value, the
// page size made explicit and the drop keys removed.
func nextURL(r *http.Request, key, value string, limit int, drop ...string) *string {
	q := r.URL.Query()
	for _, d := range drop {
		q.Del(d)
	}
	q.Set(key, value)
	q.Set("limit", strconv.Itoa(limit))
	s := r.URL.Path + "?" + q.Encode()
	return &s
}

// writeOffsetPage answers one page of a list of n items read by index,
// paged by `limit` and `offset`.
func writeOffsetPage(w http.ResponseWriter, r *http.Request, n int, item func(i int) any) {
	q := r.URL.Query()
	limit, ok := parseLimit(q)
	if !ok {
		writeError(w, r, http.StatusBadRequest, limitError)
		return
	}
	offset := 0
	if s := q.Get("offset"); s != "" {
		var err error
		if offset, err = strconv.Atoi(s); err != nil || offset < 0 {
			writeError(w, r, http.StatusBadRequest, "offset must be a non-negative integer")
			return
		}
	}
	offset = min(offset, n)
	items, err := fill(n-offset, limit, func(i int) any { return item(offset + i) })
	if err != nil {
		writeError(w, r, http.StatusInternalServerError, err.Error())
		return
	}
	p := page{Total: n, Limit: limit, Items: items}
	if end := offset + len(items); end < n {
		p.Next = nextURL(r, "offset", strconv.Itoa(end), limit)
	}
	writeJSON(w, r, http.StatusOK, p)
}

// alertSnapshot is one copy of the engaged alerts, sorted by host and
// check, shared by the requests of alertSnapshotTTL: paging offsets stay
// meaningful across the pages read within it, and many clients cost one
// copy.
type alertSnapshot struct {
	mu     sync.Mutex
	at     time.Time
	events []alert.Event
}

// get returns the snapshot, refreshed when older than alertSnapshotTTL.
// The slice is shared: callers only read it.
func (s *alertSnapshot) get(src Alerts) []alert.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.events != nil && time.Since(s.at) < alertSnapshotTTL {
		return s.events
	}
	events := slices.Clone(src.Engaged())
	slices.SortFunc(events, func(a, b alert.Event) int {
		if d := alertHostOrder(a, b.Host.IP, b.Host.VLAN); d != 0 {
			return d
		}
		return cmp.Compare(a.Check, b.Check)
	})
	if events == nil {
		events = []alert.Event{}
	}
	s.events, s.at = events, time.Now()
	return events
}

// alertHostOrder orders an alert against a host.
func alertHostOrder(a alert.Event, ip string, vlan uint16) int {
	if d := cmp.Compare(a.Host.IP, ip); d != 0 {
		return d
	}
	return cmp.Compare(a.Host.VLAN, vlan)
}

// ofHost returns the alerts of one host in a sorted snapshot.
func ofHost(events []alert.Event, ip string, vlan uint16) []alert.Event {
	i, _ := slices.BinarySearchFunc(events, 0, func(a alert.Event, _ int) int { return alertHostOrder(a, ip, vlan) })
	j := i
	for j < len(events) && alertHostOrder(events[j], ip, vlan) == 0 {
		j++
	}
	return events[i:j]
}
