package aggregate

import (
	"math"
	"time"
)

// noLoss is HostTable.lastLoss before any ingest loss.
const noLoss = math.MinInt64

// IngestLost tells the table that lost datagrams of flow data were lost on
// ingest, and received were not, in the second before clock time at (the
// collector's Dependencies.Lost). Above ingest_loss_tolerance, and with
// withhold_after_ingest_loss, one-sided conversations whose reply window
// overlaps the loss are then withheld from the contact sets, since their
// reply may have been lost with it. It is safe for concurrent use.
func (t *HostTable) IngestLost(at time.Time, lost, received int) {
	if lost <= 0 || float64(lost) <= t.lossTolerance*float64(lost+received) {
		return
	}
	t.markLoss(at.UnixNano())
}

// markLoss records a loss at clock time at (ns); concurrent reports
// keep the latest.
func (t *HostTable) markLoss(at int64) {
	for {
		last := t.lastLoss.Load()
		if at <= last || t.lastLoss.CompareAndSwap(last, at) {
			return
		}
	}
}
