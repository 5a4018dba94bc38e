package collector

import (
	"math"
	"time"
)

// summaryInterval is how often the running collector logs its summary
// line.
const summaryInterval = time.Minute

// summaryState is what the previous summary line counted.
type summaryState struct {
	at                         time.Time
	datagrams, records, errors uint64
	drops                      [numDrops]float64
}

// summarize logs a summary line every c.summaryEvery until Stop, so that
// an operator sees what the collector is doing between start and the first
// alert (and that nothing arrives, if nothing does).
func (c *Component) summarize() {
	defer c.readers.Done()
	t := time.NewTicker(c.summaryEvery)
	defer t.Stop()
	var s summaryState
	c.takeSummary(&s, c.deps.Clock.Now())
	for {
		select {
		case <-c.quit:
			return
		case <-t.C:
			c.logSummary(&s, c.deps.Clock.Now())
		}
	}
}

// takeSummary reads the running totals into s, at now, and returns the
// previous ones.
func (c *Component) takeSummary(s *summaryState, now time.Time) summaryState {
	prev := *s
	s.at = now
	s.datagrams, s.records, s.errors = c.datagrams.Load(), c.records.Load(), c.decodeErrors.Load()
	for i := range s.drops {
		s.drops[i] = metricValue(c.metrics.drops[i])
	}
	return prev
}

// logSummary logs one info line of what was received since the previous
// one: datagrams and records per second, drops (by reason when any),
// decode errors, exporters and, with Dependencies.Hosts, hosts.
func (c *Component) logSummary(s *summaryState, now time.Time) {
	prev := c.takeSummary(s, now)
	secs := now.Sub(prev.at).Seconds()
	if secs <= 0 {
		return
	}
	perSec := func(n uint64) float64 { return math.Round(float64(n)/secs*10) / 10 }
	c.mu.RLock()
	exporters := len(c.exporters)
	c.mu.RUnlock()
	args := []any{
		"datagrams_per_s", perSec(s.datagrams - prev.datagrams),
		"records_per_s", perSec(s.records - prev.records),
		"exporters", exporters,
	}
	if c.deps.Hosts != nil {
		args = append(args, "hosts", c.deps.Hosts.Len())
	}
	var drops float64
	for i := range s.drops {
		drops += s.drops[i] - prev.drops[i]
	}
	args = append(args, "drops", drops)
	for i := range s.drops {
		if d := s.drops[i] - prev.drops[i]; d > 0 {
			args = append(args, "drops_"+dropReasons[i], d)
		}
	}
	args = append(args, "decode_errors", s.errors-prev.errors)
	if s.datagrams == 0 {
		args = append(args, "hint", "no flow export received yet: check the exporters' destination address and port, firewalls, and collector.exporters.allow",
			"listen", c.ListenAddrs())
	}
	c.deps.Logger.Info("ingest summary", args...)
}
