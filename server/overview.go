package server

import (
	"context"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// The overview keeps one sample a second for the last hour, in a ring of
// fixed size (historySamples × ~100 bytes, about 0.4 MB), read from the
// Prometheus gatherer the server already serves: the components need no
// interface of their own for it, and a sample costs one Gather.
const (
	historySamples = 3600
	// exporterWindow is the span, in samples, of an exporter's rates.
	exporterWindow = 10
)

// Metric families the sampler reads.
const (
	mFlows      = "flowcheck_collector_flows_total"
	mFlowBytes  = "flowcheck_collector_flow_bytes_total"
	mDatagrams  = "flowcheck_collector_datagrams_total"
	mDrops      = "flowcheck_collector_drops_total"
	mShed       = "flowcheck_collector_shed_records_total"
	mDecodeErrs = "flowcheck_collector_decode_errors_total"
	mExporters  = "flowcheck_collector_exporters"
	mHosts      = "flowcheck_aggregate_hosts"
	mTick       = "flowcheck_scripting_tick_duration_seconds"
	mEngaged    = "flowcheck_scripting_alerts_engaged"
)

// OverviewMetrics are the metric families, with the labels, the overview
// and the exporters' rates read: the daemon's tests check that its
// components export them, since a renamed one would only show as zeros.
var OverviewMetrics = map[string][]string{
	mFlows: {"exporter"}, mFlowBytes: nil, mDatagrams: {"exporter"}, mDrops: nil, mShed: nil,
	mDecodeErrs: {"exporter", "reason"}, mExporters: nil, mHosts: nil, mTick: nil, mEngaged: {"severity"},
}

// totals are the cumulative figures of one gather.
type totals struct {
	records, bytes, datagrams, drops, shed float64
	hosts, exporters                       float64
	tickSum, tickCount                     float64
	// alerts are the engaged alerts by severity, in severities' order.
	alerts [4]int32
	// perExporter are the counters of each exporter, by label.
	perExporter map[string]*exporterTotals
}

// exporterTotals are one exporter's counters.
type exporterTotals struct {
	records, datagrams float64
	decodeErrors       map[string]uint64
}

// sample is one second of the overview.
type sample struct {
	at                                     int64 // unix seconds
	records, bytes, datagrams, drops, shed float64
	hosts, exporters                       float64
	alerts                                 [4]int32 // by severity band
	tick                                   float64  // mean tick duration; NaN when none ended
}

// exporterRate is what the exporters endpoint adds to an exporter.
type exporterRate struct {
	recordsPerSecond, datagramsPerSecond float64
	decodeErrors                         map[string]uint64
}

// sampler takes the samples.
type sampler struct {
	mu   sync.Mutex
	ring [historySamples]sample
	next int
	n    int
	prev *totals
	// window holds the last exporterWindow+1 totals, for exporter rates.
	window   [exporterWindow + 1]*totals
	windowAt [exporterWindow + 1]int64
	wnext    int
	rates    map[string]exporterRate
	alerts   [4]int32
}

// readTotals gathers the figures the overview shows.
func (c *Component) readTotals() (*totals, error) {
	mfs, err := c.deps.Gatherer.Gather()
	if err != nil && len(mfs) == 0 {
		return nil, err
	}
	t := &totals{perExporter: map[string]*exporterTotals{}}
	exp := func(m *dto.Metric) *exporterTotals {
		label := labelOf(m, "exporter")
		e := t.perExporter[label]
		if e == nil {
			e = &exporterTotals{decodeErrors: map[string]uint64{}}
			t.perExporter[label] = e
		}
		return e
	}
	for _, mf := range mfs {
		switch mf.GetName() {
		case mFlows:
			for _, m := range mf.GetMetric() {
				v := m.GetCounter().GetValue()
				t.records += v
				exp(m).records += v
			}
		case mDatagrams:
			for _, m := range mf.GetMetric() {
				v := m.GetCounter().GetValue()
				t.datagrams += v
				exp(m).datagrams += v
			}
		case mDecodeErrs:
			for _, m := range mf.GetMetric() {
				if v := m.GetCounter().GetValue(); v > 0 {
					exp(m).decodeErrors[labelOf(m, "reason")] = uint64(v)
				}
			}
		case mFlowBytes:
			t.bytes = sumCounters(mf)
		case mDrops:
			t.drops = sumCounters(mf)
		case mShed:
			t.shed = sumCounters(mf)
		case mEngaged:
			for _, m := range mf.GetMetric() {
				for i, sev := range severities {
					if labelOf(m, "severity") == sev {
						t.alerts[i] = int32(m.GetGauge().GetValue())
					}
				}
			}
		case mHosts:
			t.hosts = sumGauges(mf)
		case mExporters:
			t.exporters = sumGauges(mf)
		case mTick:
			for _, m := range mf.GetMetric() {
				t.tickSum += m.GetHistogram().GetSampleSum()
				t.tickCount += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return t, nil
}

func labelOf(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func sumCounters(mf *dto.MetricFamily) float64 {
	s := 0.0
	for _, m := range mf.GetMetric() {
		s += m.GetCounter().GetValue()
	}
	return s
}

func sumGauges(mf *dto.MetricFamily) float64 {
	s := 0.0
	for _, m := range mf.GetMetric() {
		s += m.GetGauge().GetValue()
	}
	return s
}

// rate is a counter's increase per second; a counter that went down (an
// exporter evicted, its series deleted) counts as no increase.
func rate(now, prev, seconds float64) float64 {
	if seconds <= 0 || now < prev {
		return 0
	}
	return (now - prev) / seconds
}

// takeSample reads the totals at now and appends one sample.
func (c *Component) takeSample(now time.Time) {
	t, err := c.readTotals()
	if err != nil {
		c.deps.Logger.Warn("overview sample failed", "err", err)
		return
	}
	s := &c.sampler
	s.mu.Lock()
	s.alerts = t.alerts
	defer s.mu.Unlock()
	at := now.Unix()
	if s.prev != nil {
		prevAt := s.windowAt[(s.wnext+len(s.window)-1)%len(s.window)]
		dt := float64(at - prevAt)
		smp := sample{at: at, hosts: t.hosts, exporters: t.exporters, alerts: s.alerts, tick: math.NaN(),
			records: rate(t.records, s.prev.records, dt), bytes: rate(t.bytes, s.prev.bytes, dt),
			datagrams: rate(t.datagrams, s.prev.datagrams, dt), drops: rate(t.drops, s.prev.drops, dt),
			shed: rate(t.shed, s.prev.shed, dt)}
		if n := t.tickCount - s.prev.tickCount; n > 0 {
			smp.tick = (t.tickSum - s.prev.tickSum) / n
		}
		if dt > 0 {
			s.ring[s.next] = smp
			s.next = (s.next + 1) % historySamples
			s.n = min(s.n+1, historySamples)
		}
	}
	// Exporter rates over the window: from the oldest totals kept.
	oldest, oldestAt := s.window[s.wnext], s.windowAt[s.wnext]
	if oldest == nil {
		oldest, oldestAt = s.window[0], s.windowAt[0]
	}
	rates := make(map[string]exporterRate, len(t.perExporter))
	for label, e := range t.perExporter {
		r := exporterRate{decodeErrors: e.decodeErrors}
		if oldest != nil {
			if o := oldest.perExporter[label]; o != nil {
				dt := float64(at - oldestAt)
				r.recordsPerSecond = rate(e.records, o.records, dt)
				r.datagramsPerSecond = rate(e.datagrams, o.datagrams, dt)
			}
		}
		rates[label] = r
	}
	s.rates = rates
	s.window[s.wnext], s.windowAt[s.wnext] = t, at
	s.wnext = (s.wnext + 1) % len(s.window)
	s.prev = t
}

// runSampler takes a sample every second until ctx ends.
func (c *Component) runSampler(ctx context.Context) {
	tk := time.NewTicker(time.Second)
	defer tk.Stop()
	c.takeSample(time.Now())
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tk.C:
			c.takeSample(now)
		}
	}
}

// exporterRates returns the rates of an exporter, by label.
func (c *Component) exporterRates(label string) exporterRate {
	c.sampler.mu.Lock()
	defer c.sampler.mu.Unlock()
	return c.sampler.rates[label]
}

// nullable encodes NaN as null.
type nullable float64

func (f nullable) MarshalJSON() ([]byte, error) {
	if math.IsNaN(float64(f)) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, float64(f), 'g', -1, 64), nil
}

// overviewCurrent is the latest sample.
type overviewCurrent struct {
	RecordsPerSecond   float64          `json:"records_per_second"`
	BytesPerSecond     float64          `json:"bytes_per_second"`
	DatagramsPerSecond float64          `json:"datagrams_per_second"`
	DropsPerSecond     float64          `json:"drops_per_second"`
	ShedPerSecond      float64          `json:"shed_per_second"`
	Hosts              float64          `json:"hosts"`
	Exporters          float64          `json:"exporters"`
	Alerts             map[string]int32 `json:"alerts"`
	TickSeconds        nullable         `json:"tick_seconds"`
}

// overviewSeries are the samples, one array per figure (the form chart
// libraries take), oldest first.
type overviewSeries struct {
	Time               []int64    `json:"time"`
	RecordsPerSecond   []float64  `json:"records_per_second"`
	BytesPerSecond     []float64  `json:"bytes_per_second"`
	DatagramsPerSecond []float64  `json:"datagrams_per_second"`
	DropsPerSecond     []float64  `json:"drops_per_second"`
	ShedPerSecond      []float64  `json:"shed_per_second"`
	Hosts              []float64  `json:"hosts"`
	Exporters          []float64  `json:"exporters"`
	AlertsInfo         []int32    `json:"alerts_info"`
	AlertsWarning      []int32    `json:"alerts_warning"`
	AlertsError        []int32    `json:"alerts_error"`
	AlertsCritical     []int32    `json:"alerts_critical"`
	TickSeconds        []nullable `json:"tick_seconds"`
}

// overview answers the latest sample and the samples after `since` (unix
// seconds; default: the whole hour).
func (c *Component) overview(w http.ResponseWriter, r *http.Request) {
	since := int64(math.MinInt64)
	if s := r.URL.Query().Get("since"); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v < 0 {
			writeError(w, r, http.StatusBadRequest, "since must be a time in unix seconds")
			return
		}
		since = v
	}
	s := &c.sampler
	s.mu.Lock()
	var ser overviewSeries
	var cur overviewCurrent
	for i := s.n; i >= 1; i-- {
		smp := &s.ring[(s.next-i+historySamples)%historySamples]
		if smp.at <= since {
			continue
		}
		ser.Time = append(ser.Time, smp.at)
		ser.RecordsPerSecond = append(ser.RecordsPerSecond, smp.records)
		ser.BytesPerSecond = append(ser.BytesPerSecond, smp.bytes)
		ser.DatagramsPerSecond = append(ser.DatagramsPerSecond, smp.datagrams)
		ser.DropsPerSecond = append(ser.DropsPerSecond, smp.drops)
		ser.ShedPerSecond = append(ser.ShedPerSecond, smp.shed)
		ser.Hosts = append(ser.Hosts, smp.hosts)
		ser.Exporters = append(ser.Exporters, smp.exporters)
		ser.AlertsInfo = append(ser.AlertsInfo, smp.alerts[0])
		ser.AlertsWarning = append(ser.AlertsWarning, smp.alerts[1])
		ser.AlertsError = append(ser.AlertsError, smp.alerts[2])
		ser.AlertsCritical = append(ser.AlertsCritical, smp.alerts[3])
		ser.TickSeconds = append(ser.TickSeconds, nullable(smp.tick))
	}
	cur.TickSeconds = nullable(math.NaN())
	cur.Alerts = map[string]int32{}
	for i, sev := range severities {
		cur.Alerts[sev] = s.alerts[i]
	}
	if s.n > 0 {
		last := &s.ring[(s.next-1+historySamples)%historySamples]
		cur.RecordsPerSecond, cur.BytesPerSecond, cur.DatagramsPerSecond = last.records, last.bytes, last.datagrams
		cur.DropsPerSecond, cur.ShedPerSecond, cur.Hosts, cur.Exporters = last.drops, last.shed, last.hosts, last.exporters
		cur.TickSeconds = nullable(last.tick)
	}
	s.mu.Unlock()
	emptyIfNil(&ser)
	writeJSON(w, r, http.StatusOK, struct {
		Now             time.Time       `json:"now"`
		IntervalSeconds int             `json:"interval_seconds"`
		Current         overviewCurrent `json:"current"`
		Series          overviewSeries  `json:"series"`
	}{time.Now().UTC(), 1, cur, ser})
}

// emptyIfNil makes every series an array, never null.
func emptyIfNil(s *overviewSeries) {
	if s.Time != nil {
		return
	}
	*s = overviewSeries{Time: []int64{}, RecordsPerSecond: []float64{}, BytesPerSecond: []float64{},
		DatagramsPerSecond: []float64{}, DropsPerSecond: []float64{}, ShedPerSecond: []float64{}, Hosts: []float64{},
		Exporters: []float64{}, AlertsInfo: []int32{}, AlertsWarning: []int32{}, AlertsError: []int32{},
		AlertsCritical: []int32{}, TickSeconds: []nullable{}}
}
