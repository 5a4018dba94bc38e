package aggregate

import (
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
)

// LookupAddrFunc resolves an address to host names (net.Resolver.LookupAddr).
type LookupAddrFunc func(ctx context.Context, addr string) ([]string, error)

// resolver is the optional asynchronous reverse DNS: a bounded queue,
// a fixed number of workers, a bounded cache of answers (failures cached as
// "" so that a silent address is not asked again and again).
type resolver struct {
	cfg     ReverseDNSConfiguration
	lookup  LookupAddrFunc
	metrics *metrics
	log     *slog.Logger
	queue   chan netip.Addr

	mu       sync.Mutex
	cache    map[netip.Addr]string
	inflight map[netip.Addr]struct{}

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newResolver(cfg ReverseDNSConfiguration, lookup LookupAddrFunc, m *metrics, log *slog.Logger) *resolver {
	return &resolver{
		cfg:      cfg,
		lookup:   lookup,
		metrics:  m,
		log:      log,
		queue:    make(chan netip.Addr, cfg.QueueSize),
		cache:    make(map[netip.Addr]string),
		inflight: make(map[netip.Addr]struct{}),
	}
}

// cached returns the remembered answer for a ("" when the lookup failed).
func (r *resolver) cached(a netip.Addr) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n, ok := r.cache[a]
	return n, ok
}

// request queues a lookup unless it is cached, queued, or the queue is
// full (counted). It never blocks: it runs under a host shard lock.
func (r *resolver) request(a netip.Addr) {
	r.mu.Lock()
	_, done := r.cache[a]
	_, queued := r.inflight[a]
	if done || queued {
		r.mu.Unlock()
		return
	}
	r.inflight[a] = struct{}{}
	r.mu.Unlock()
	select {
	case r.queue <- a:
	default:
		r.metrics.rdnsQueueOverflows.Inc()
		r.mu.Lock()
		delete(r.inflight, a)
		r.mu.Unlock()
	}
}

func (r *resolver) start() {
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	for range r.cfg.Workers {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case a := <-r.queue:
					r.resolve(ctx, a)
				}
			}
		}()
	}
}

func (r *resolver) stop() {
	if r.cancel != nil {
		r.cancel()
		r.wg.Wait()
		r.cancel = nil
	}
}

func (r *resolver) resolve(ctx context.Context, a netip.Addr) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	names, err := r.lookup(ctx, a.String())
	cancel()
	name := ""
	if err != nil || len(names) == 0 {
		r.metrics.rdnsLookups.WithLabelValues("error").Inc()
	} else {
		r.metrics.rdnsLookups.WithLabelValues("ok").Inc()
		name = strings.TrimSuffix(names[0], ".")
	}
	r.mu.Lock()
	delete(r.inflight, a)
	if len(r.cache) >= r.cfg.CacheSize {
		// Evict an arbitrary entry: Go's map order is random enough to
		// keep the cache bounded without bookkeeping.
		for k := range r.cache {
			delete(r.cache, k)
			break
		}
	}
	r.cache[a] = name
	r.mu.Unlock()
}
