package aggregate

// Reload applies a new configuration's local networks, names and blacklist
// files (SIGHUP) and re-classifies every host; host state is kept. On error
// the running configuration stays. The other keys need a restart.
func (t *HostTable) Reload(cfg Configuration) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	t.reloadMu.Lock()
	err := t.loadConfig(cfg)
	if err == nil && t.watch != nil {
		t.watch.setFiles(cfg.Blacklists)
	}
	t.reloadMu.Unlock()
	if err != nil {
		return err
	}
	t.reclassify()
	return nil
}

// loadConfig reads the blacklists and swaps in the classifier built from
// cfg. On error nothing changes. The caller holds reloadMu (or is New).
func (t *HostTable) loadConfig(cfg Configuration) error {
	black, bad, err := loadBlacklists(cfg.Blacklists)
	if err != nil {
		t.metrics.blacklistReloads.WithLabelValues("error").Inc()
		return err
	}
	nc, err := newNetClass(cfg, black)
	if err != nil {
		return err
	}
	t.reportBadLines(bad)
	t.metrics.blacklistReloads.WithLabelValues("ok").Inc()
	t.metrics.blacklistEntries.Set(float64(black.Len()))
	t.cfg, t.black = cfg, black
	t.nc.Store(nc)
	return nil
}

// reclassify recomputes the address flags of every host.
func (t *HostTable) reclassify() {
	nc := t.nc.Load()
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		sh.hosts.each(func(h *host) bool {
			h.flags = nc.classify(addrOf16(h.key.addr))
			return false
		})
		sh.mu.Unlock()
	}
}
