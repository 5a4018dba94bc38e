package aggregate

import "slices"

// commit applies decided conversations to the contact sets of their client
// and server hosts. Hosts that are gone (expired, or refused at the
// ceiling) are skipped.
func (t *HostTable) commit(sc *applyScratch, ds []decision) {
	if len(ds) == 0 {
		return
	}
	sc.commits = sc.commits[:0]
	refused, withheld := 0, 0
	for i := range ds {
		d := &ds[i]
		if d.lossy && t.withholdAfterLoss {
			withheld++
			if !d.addFlow {
				continue
			}
			// Withheld from the sets, but the L7 flow is traffic,
			// not a verdict.
			d.verdict = verdictNone
		}
		// A conversation stitched from one host's copies commits to that
		// host only: the other's copies (its partition) decide for it.
		if d.only != onlyServer {
			c := hkey{d.client, d.vlan}
			hc := c.hash()
			sc.commits = append(sc.commits, hostOp{shardOp{uint32(hc & t.mask), int32(i), true}, hc})
		}
		if d.only != onlyClient {
			srv := hkey{d.server, d.vlan}
			hs := srv.hash()
			sc.commits = append(sc.commits, hostOp{shardOp{uint32(hs & t.mask), int32(i), false}, hs})
		}
		if d.verdict == verdictRefused {
			refused++
		}
	}
	// One atomic add per call, not per decision: the workers share the
	// counters' cache lines.
	t.commitRefused.Add(float64(refused))
	t.commitOneSided.Add(float64(len(ds) - refused - withheld))
	if withheld > 0 {
		t.withheld.Add(float64(withheld))
	}
	if len(sc.counts) != len(t.shards) {
		sc.counts = make([]int, len(t.shards))
	}
	sc.commits, sc.hostSort = sortOps(sc.commits, sc.hostSort, sc.counts)
	for runs := newShardRuns(sc.counts); runs.next(); {
		ops := sc.commits[runs.start:runs.end]
		sh := &t.shards[runs.shard]
		sh.mu.Lock()
		// As in Apply: look the hosts up, then read their contact sets,
		// then commit, so that the cache misses of each pass overlap
		// (under overload most conversations end here).
		sc.hosts = slices.Grow(sc.hosts[:0], len(ops))[:len(ops)]
		for j, op := range ops {
			d := &ds[op.i]
			key := hkey{d.server, d.vlan}
			if op.flag {
				key.addr = d.client
			}
			sc.hosts[j] = sh.hosts.get(key, op.hash)
		}
		for _, h := range sc.hosts {
			if h != nil && h.noReply != nil {
				// Both of its lines: the client's sets, then the
				// server's set and the counts.
				sc.touch += uint64(len(h.noReply.peersAsClient.exact)) + h.noReply.flows.EgressTCP
			}
		}
		for j, op := range ops {
			if h := sc.hosts[j]; h != nil {
				h.commit(&ds[op.i], op.flag, t.foldRefused, t.exactSetSize, t.maxL7)
			}
		}
		sh.mu.Unlock()
		clear(sc.hosts) // drop host pointers: the pool must not keep expired hosts alive
	}
}
