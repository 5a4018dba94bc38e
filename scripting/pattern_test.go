package scripting

import (
	"fmt"
	"strings"
	"testing"

	"github.com/yuin/gopher-lua/pm"
)

// ourFind is string.find's search without Lua: the first match of pat in
// src, its bounds (0-based, end exclusive) and captures.
func ourFind(src, pat string) (start, end int, caps []string, err error) {
	defer func() {
		if r := recover(); r != nil {
			pe, ok := r.(*patternError)
			if !ok {
				panic(r)
			}
			err = pe
		}
	}()
	ms := &matchState{src: src, pat: pat}
	p, anchor := 0, len(pat) > 0 && pat[0] == '^'
	if anchor {
		p = 1
	}
	for s := 0; ; s++ {
		ms.level = 0
		if e := ms.match(s, p); e != -1 {
			for i := range ms.level {
				caps = append(caps, ms.captureValue(i, s, e).String())
			}
			return s, e, caps, nil
		}
		if s >= len(src) || anchor {
			return -1, -1, nil, nil
		}
	}
}

// pmFind is the same search with gopher-lua's matcher.
func pmFind(src, pat string) (start, end int, caps []string, err error) {
	mds, err := pm.Find(pat, []byte(src), 0, 1)
	if err != nil {
		return 0, 0, nil, err
	}
	if len(mds) == 0 {
		return -1, -1, nil, nil
	}
	md := mds[0]
	for i := 2; i < md.CaptureLength(); i += 2 {
		if md.IsPosCapture(i) {
			caps = append(caps, fmt.Sprint(md.Capture(i)))
		} else {
			caps = append(caps, src[md.Capture(i):md.Capture(i+1)])
		}
	}
	return md.Capture(0), md.Capture(1), caps, nil
}

// patternSeeds are ordinary patterns of host checks and the Lua manual.
var patternSeeds = [][2]string{
	{"hello world", "o w"},
	{"hello world", "(%w+) (%w+)"},
	{"key = value", "^(%w+)%s*=%s*(%w+)$"},
	{"10.0.0.1", "^(%d+)%.(%d+)%.(%d+)%.(%d+)$"},
	{"fe80::1%eth0", "^[%x:]+"},
	{"THE (quick) fox", "%((%a+)%)"},
	{"abc", "()b()"},
	{"aaa", "a-b"},
	{"aaab", "a-b"},
	{"aaab", "a*"},
	{"[[x]]", "%[(.-)%]"},
	{"f(a(b)c)d", "%b()"},
	{"x-y", "[a-z]-[a-z]"},
	{"x]y", "[]]"},
	{"a.b", "%."},
	{"  trim  ", "^%s*(.-)%s*$"},
	{"abcabc", "(abc)%1"},
	{"host.example.com", "[^.]+$"},
	{"", ".*"},
	{"abc", "c$"},
	{"a$c", "a$c"},
	{"TLS", "^[A-Z]+$"},
}

// TestPatternDifferential compares the bounded matcher with gopher-lua's
// on ordinary patterns.
func TestPatternDifferential(t *testing.T) {
	for _, c := range patternSeeds {
		comparePatterns(t, c[0], c[1])
	}
}

// FuzzPatternDifferential compares the bounded matcher with gopher-lua's on
// small, non-pathological inputs where both accept the pattern.
func FuzzPatternDifferential(f *testing.F) {
	for _, c := range patternSeeds {
		f.Add(c[0], c[1])
	}
	f.Fuzz(func(t *testing.T, src, pat string) {
		if len(src) > 32 || len(pat) > 12 || strings.Contains(pat, "%f") || strings.Contains(pat, "%z") ||
			strings.Contains(pat, "%b") || strings.Count(pat, "-")+strings.Count(pat, "*") > 3 ||
			strings.Contains(pat, "()") && strings.ContainsAny(pat, "123456789") ||
			strings.Contains(pat, "[") && strings.Contains(pat, "-") {
			// pm matches a back-reference to a position capture, and reads
			// ranges in sets such as [0--y] its own way; Lua (and this
			// matcher) does not.
			return
		}
		comparePatterns(t, src, pat)
	})
}

func comparePatterns(t *testing.T, src, pat string) {
	t.Helper()
	s1, e1, c1, err1 := ourFind(src, pat)
	s2, e2, c2, err2 := pmFind(src, pat)
	if err1 != nil || err2 != nil {
		return // malformed: the two report it differently
	}
	if s1 != s2 || e1 != e2 || fmt.Sprint(c1) != fmt.Sprint(c2) {
		t.Fatalf("find(%q, %q): ours %d,%d %q; pm %d,%d %q", src, pat, s1, e1, c1, s2, e2, c2)
	}
}

// TestPatternBounded: a backtracking pattern stops at the budget, and the
// recursion at maxMatchDepth, with an error instead of running on.
func TestPatternBounded(t *testing.T) {
	b := newBudget()
	b.arm(1_000_000)
	ms := &matchState{src: strings.Repeat("a", 30), pat: "(.-)(.-)(.-)(.-)(.-)(.-)b", b: b}
	func() {
		defer func() {
			r := recover()
			if pe, ok := r.(*patternError); !ok || pe.msg != errSteps.Error() {
				t.Fatalf("recovered %v, want the budget's error", r)
			}
		}()
		for s := 0; s <= len(ms.src); s++ {
			ms.level = 0
			ms.match(s, 0)
		}
		t.Fatal("the match ran to its end")
	}()
	if b.disarm() != stopSteps {
		t.Fatal("budget not used up")
	}
	if _, _, _, err := ourFind("x", strings.Repeat("(", 300)+"x"+strings.Repeat(")", 300)); err == nil {
		t.Fatal("no error for a pattern nested 300 deep")
	}
}
