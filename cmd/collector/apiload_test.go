package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowcheck/flowcheck/clock"
	"github.com/flowcheck/flowcheck/cmd/flowgen/gen"
	"github.com/prometheus/client_golang/prometheus"
)

// TestAPIDoesNotStarveIngest runs 20 API clients hammering /api/v1/hosts
// and /api/v1/alerts over real HTTP while flowgen's NetFlow v9 stream comes
// in over a real UDP socket at a modest rate, and checks that every
// datagram sent was received and none dropped: the API's bounded
// concurrency (http.max_concurrent) turns the excess away with 503 instead
// of taking the decoders' CPU. No wall-clock assert: the rate is one a slow
// machine holds, and the test waits for the collector to count what was
// sent.
func TestAPIDoesNotStarveIngest(t *testing.T) {
	if testing.Short() {
		t.Skip("sends for a few seconds")
	}
	const (
		clients   = 20
		perSecond = 500 // datagrams, 25 records each
		duration  = 4 * time.Second
	)
	cfg, err := loadConfig("", noEnv)
	if err != nil {
		t.Fatal(err)
	}
	cfg.HTTP.Listen = "127.0.0.1:0"
	cfg.Collector.Listeners[0].URL = "auto://127.0.0.1:0"
	cfg.Sinks.Stdout.Enabled = "false"
	cfg.Scripting.Interval = time.Second
	logger := slog.New(slog.DiscardHandler)
	p, err := build(cfg, clock.Live{}, logger, io.Discard, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.stop(logger) })

	// A population of 10 000 hosts, encoded once, sent in a loop.
	pc := gen.DefaultPopulationConfiguration()
	pc.Hosts = 10_000
	pop, err := gen.NewPopulation(pc)
	if err != nil {
		t.Fatal(err)
	}
	boot := time.Now().Add(-time.Hour)
	enc, err := gen.NewEncoder(gen.V9, 0, 20, boot)
	if err != nil {
		t.Fatal(err)
	}
	scratch := make([]gen.Flow, gen.MaxRecordsPerPacket(gen.V9))
	var dgs [][]byte
	for pos := 0; len(dgs)*len(scratch) < pop.Len(); {
		pos = pop.Fill(scratch, pos)
		dgs = append(dgs, enc.Append(nil, scratch, time.Now()))
	}
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(p.collector.ListenAddrs()[0]))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	// The API clients, until ingest is over.
	base := "http://" + p.httpAddr()
	stop := make(chan struct{})
	var ok, busy, noRetryAfter, maxBody atomic.Int64
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Timeout: 30 * time.Second}
			paths := []string{"/api/v1/hosts?limit=1000", "/api/v1/alerts?limit=1000"}
			for n := i; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := client.Get(base + paths[n%2])
				if err != nil {
					continue
				}
				size, _ := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				switch resp.StatusCode {
				case http.StatusOK:
					ok.Add(1)
				case http.StatusServiceUnavailable:
					busy.Add(1)
					if resp.Header.Get("Retry-After") == "" {
						noRetryAfter.Add(1)
					}
				}
				for m := maxBody.Load(); size > m && !maxBody.CompareAndSwap(m, size); m = maxBody.Load() {
				}
			}
		}()
	}

	// Ingest, paced evenly: a few datagrams every few milliseconds.
	sent := 0
	tick := time.NewTicker(10 * time.Millisecond)
	for end := time.Now().Add(duration); time.Now().Before(end); <-tick.C {
		for range perSecond / 100 {
			if _, err := conn.Write(dgs[sent%len(dgs)]); err != nil {
				t.Fatal(err)
			}
			sent++
		}
	}
	tick.Stop()
	// Wait for the collector to count every datagram, or to stop counting.
	var received, dropped float64
	for last, still := -1.0, 0; still < 20; time.Sleep(100 * time.Millisecond) {
		received, dropped = counterSum(t, p.registry, "flowcheck_collector_datagrams_total"), counterSum(t, p.registry, "flowcheck_collector_drops_total")
		if int(received+dropped) >= sent {
			break
		}
		if received == last {
			still++
		} else {
			last, still = received, 0
		}
	}
	// SO_RXQ_OVFL tells of kernel drops with the next datagram read.
	if _, err := conn.Write(dgs[0]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	dropped = counterSum(t, p.registry, "flowcheck_collector_drops_total")
	close(stop)
	wg.Wait()
	t.Logf("sent %d datagrams, received %.0f, dropped %.0f; API: %d answered, %d turned away (503), largest body %d bytes",
		sent, received, dropped, ok.Load(), busy.Load(), maxBody.Load())
	if dropped != 0 || int(received) < sent {
		t.Errorf("ingest lost datagrams under API load: sent %d, received %.0f, dropped %.0f", sent, received, dropped)
	}
	if ok.Load() == 0 {
		t.Error("no API request answered")
	}
	if noRetryAfter.Load() != 0 {
		t.Errorf("%d answers 503 without Retry-After", noRetryAfter.Load())
	}
}

// counterSum adds every series of a counter family.
func counterSum(t *testing.T, g prometheus.Gatherer, name string) float64 {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, f := range families {
		if f.GetName() == name {
			for _, m := range f.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}
