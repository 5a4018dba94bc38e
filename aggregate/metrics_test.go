package aggregate

import "testing"

// TestLabelledCountersAtZero checks that every labelled series exists from
// start-up, before anything counted it.
func TestLabelledCountersAtZero(t *testing.T) {
	_, _, reg := newTestTable(t, DefaultConfiguration(), Dependencies{})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := make(map[string]float64)
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				got[mf.GetName()+"/"+lp.GetValue()] = m.GetCounter().GetValue()
			}
		}
	}
	for _, tc := range []struct {
		series string
		want   float64
	}{
		{"flowcheck_aggregate_hosts_refused_total/local", 0},
		{"flowcheck_aggregate_hosts_refused_total/remote", 0},
		{"flowcheck_aggregate_conversations_committed_total/one_sided", 0},
		{"flowcheck_aggregate_conversations_committed_total/refused", 0},
		{"flowcheck_aggregate_blacklist_reloads_total/ok", 1}, // New loaded them
		{"flowcheck_aggregate_blacklist_reloads_total/error", 0},
		{"flowcheck_aggregate_rdns_lookups_total/ok", 0},
		{"flowcheck_aggregate_rdns_lookups_total/error", 0},
	} {
		v, ok := got[tc.series]
		if !ok {
			t.Errorf("%s: missing", tc.series)
		} else if v != tc.want {
			t.Errorf("%s = %v, want %v", tc.series, v, tc.want)
		}
	}
}
