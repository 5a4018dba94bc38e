package aggregate

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
)

// reloadBlacklists re-reads the blacklist files of the running
// configuration (the watcher calls it when one changes).
func (t *HostTable) reloadBlacklists() {
	t.reloadMu.Lock()
	err := t.loadConfig(t.cfg)
	t.reloadMu.Unlock()
	if err != nil {
		t.log.Error("blacklist reload failed, keeping the previous one", "error", err)
		return
	}
	t.log.Info("blacklists reloaded", "entries", t.black.Len())
	t.reclassify()
}

func (t *HostTable) reportBadLines(bad []lineError) {
	t.metrics.blacklistBadLines.Add(float64(len(bad)))
	for i, b := range bad {
		if i == 10 {
			t.log.Warn("more bad blacklist lines skipped", "count", len(bad)-i)
			break
		}
		t.log.Warn("bad blacklist line skipped", "error", b.Error())
	}
}

// lineError is a bad blacklist line, reported as file:line.
type lineError struct {
	File string
	Line int
	Text string
}

func (e lineError) Error() string {
	return fmt.Sprintf("%s:%d: invalid address or CIDR %q", e.File, e.Line, e.Text)
}

// loadBlacklists reads every file into one set. A bad line is skipped and
// reported in bad; a file that cannot be read is an error.
func loadBlacklists(files []string) (set *prefixSet, bad []lineError, err error) {
	set = newPrefixSet()
	for i, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return nil, nil, fmt.Errorf("blacklists[%d]: %w", i, err)
		}
		b, err := parseBlacklist(f, name, set)
		f.Close()
		if err != nil {
			return nil, nil, fmt.Errorf("blacklists[%d]: %s: %w", i, name, err)
		}
		bad = append(bad, b...)
	}
	return set, bad, nil
}

// parseBlacklist adds the entries read from r to set. Each line holds one
// IP or CIDR; "#" starts a comment; blank lines are ignored.
func parseBlacklist(r io.Reader, name string, set *prefixSet) ([]lineError, error) {
	var bad []lineError
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		if i := strings.IndexByte(text, '#'); i >= 0 {
			text = text[:i]
		}
		text = strings.TrimSpace(text)
		if text == "" {
			continue
		}
		p, err := parsePrefixOrAddr(text)
		if err != nil {
			bad = append(bad, lineError{File: name, Line: line, Text: text})
			continue
		}
		set.add(p)
	}
	if err := sc.Err(); err != nil {
		return bad, err
	}
	return bad, nil
}

func parsePrefixOrAddr(s string) (netip.Prefix, error) {
	if strings.IndexByte(s, '/') >= 0 {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		if p.Addr().Is4In6() {
			return netip.Prefix{}, errors.New("IPv4-mapped prefix")
		}
		return p, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	if a.Zone() != "" {
		return netip.Prefix{}, errors.New("zoned address")
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}
