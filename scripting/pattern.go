package scripting

import (
	"strings"

	lua "github.com/yuin/gopher-lua"
)

// Lua patterns, bounded.
//
// gopher-lua's matcher (package pm) runs in Go without looking at the call
// budget: one string.find with a backtracking pattern held a VM, and so a
// whole tick, for minutes. This is Lua 5.1's matcher (lstrlib.c) ported to
// Go with a step counter: every step of the match counts against the call's
// budget (polled every patternPoll steps), recursion is bounded as in Lua
// 5.2 (maxMatchDepth), and the strings gsub builds are capped at maxString.
// string.find/match/gmatch/gsub of the sandbox use it.

const (
	maxCaptures   = 32
	capUnfinished = -1
	capPosition   = -2
	// maxMatchDepth bounds the matcher's recursion (Lua 5.2's MAXCCALLS).
	maxMatchDepth = 200
	// patternPoll is how many steps the matcher takes between two looks at
	// the budget.
	patternPoll = 256
	// patternSpecials are the characters that make a pattern more than a
	// plain string.
	patternSpecials = "^$*+?.([%-"
)

// patternError is a malformed pattern or a stopped match, raised as a panic
// inside the matcher and returned by its entry points.
type patternError struct{ msg string }

func (e *patternError) Error() string { return e.msg }

// matchState is one match in progress.
type matchState struct {
	src, pat string
	level    int
	capture  [maxCaptures]struct{ init, len int }
	depth    int
	// b is the budget steps are charged to (nil: unbounded); n counts the
	// steps not yet charged.
	b *budget
	n int
}

func (ms *matchState) fail(msg string) { panic(&patternError{msg}) }

// step counts one step of work and stops the match when the budget is
// used up.
func (ms *matchState) step() {
	ms.n++
	if ms.n < patternPoll || ms.b == nil {
		return
	}
	r := ms.b.spent(ms.n)
	ms.n = 0
	if r != stopNone {
		ms.fail(r.err().Error())
	}
}

// flush charges the steps not yet charged.
func (ms *matchState) flush() {
	if ms.b != nil && ms.n > 0 {
		if r := ms.b.spent(ms.n); r != stopNone {
			ms.n = 0
			ms.fail(r.err().Error())
		}
	}
	ms.n = 0
}

func (ms *matchState) checkCapture(l byte) int {
	i := int(l) - '1'
	if i < 0 || i >= ms.level || ms.capture[i].len == capUnfinished {
		ms.fail("invalid capture index")
	}
	return i
}

func (ms *matchState) captureToClose() int {
	for level := ms.level - 1; level >= 0; level-- {
		if ms.capture[level].len == capUnfinished {
			return level
		}
	}
	ms.fail("invalid pattern capture")
	return 0
}

// classEnd returns the index just past the single-character class at p.
func (ms *matchState) classEnd(p int) int {
	pat := ms.pat
	c := pat[p]
	p++
	if c == '%' {
		if p >= len(pat) {
			ms.fail("malformed pattern (ends with '%')")
		}
		return p + 1
	}
	if c == '[' {
		if p < len(pat) && pat[p] == '^' {
			p++
		}
		for { // look for a ']'
			if p >= len(pat) {
				ms.fail("malformed pattern (missing ']')")
			}
			c := pat[p]
			p++
			if c == '%' {
				if p >= len(pat) {
					ms.fail("malformed pattern (missing ']')")
				}
				p++
			}
			if p < len(pat) && pat[p] == ']' {
				return p + 1
			}
			if p >= len(pat) {
				ms.fail("malformed pattern (missing ']')")
			}
		}
	}
	return p
}

func isalpha(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
func isdigit(c byte) bool { return '0' <= c && c <= '9' }
func islower(c byte) bool { return 'a' <= c && c <= 'z' }
func isupper(c byte) bool { return 'A' <= c && c <= 'Z' }
func isspace(c byte) bool { return c == ' ' || '\t' <= c && c <= '\r' }
func iscntrl(c byte) bool { return c < 0x20 || c == 0x7f }
func ispunct(c byte) bool {
	return 0x21 <= c && c <= 0x2f || 0x3a <= c && c <= 0x40 || 0x5b <= c && c <= 0x60 || 0x7b <= c && c <= 0x7e
}
func isxdigit(c byte) bool { return isdigit(c) || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }

func matchClass(c, cl byte) bool {
	var res bool
	switch cl | 0x20 {
	case 'a':
		res = isalpha(c)
	case 'c':
		res = iscntrl(c)
	case 'd':
		res = isdigit(c)
	case 'l':
		res = islower(c)
	case 'p':
		res = ispunct(c)
	case 's':
		res = isspace(c)
	case 'u':
		res = isupper(c)
	case 'w':
		res = isalpha(c) || isdigit(c)
	case 'x':
		res = isxdigit(c)
	case 'z':
		res = c == 0
	default:
		return cl == c
	}
	if isupper(cl) {
		return !res
	}
	return res
}

// matchBracketClass matches c against the set [p, ec] (pat[ec] is ']').
func (ms *matchState) matchBracketClass(c byte, p, ec int) bool {
	pat := ms.pat
	sig := true
	if pat[p+1] == '^' {
		sig = false
		p++
	}
	for p++; p < ec; p++ {
		if pat[p] == '%' {
			p++
			if matchClass(c, pat[p]) {
				return sig
			}
		} else if p+2 < ec && pat[p+1] == '-' {
			if pat[p] <= c && c <= pat[p+2] {
				return sig
			}
			p += 2
		} else if pat[p] == c {
			return sig
		}
	}
	return !sig
}

func (ms *matchState) singleMatch(c byte, p, ep int) bool {
	switch ms.pat[p] {
	case '.':
		return true
	case '%':
		return matchClass(c, ms.pat[p+1])
	case '[':
		return ms.matchBracketClass(c, p, ep-1)
	}
	return ms.pat[p] == c
}

func (ms *matchState) matchBalance(s, p int) int {
	if p+1 >= len(ms.pat) {
		ms.fail("unbalanced pattern")
	}
	if s >= len(ms.src) || ms.src[s] != ms.pat[p] {
		return -1
	}
	b, e := ms.pat[p], ms.pat[p+1]
	cont := 1
	for s++; s < len(ms.src); s++ {
		ms.step()
		switch ms.src[s] {
		case e:
			if cont--; cont == 0 {
				return s + 1
			}
		case b:
			cont++
		}
	}
	return -1
}

func (ms *matchState) maxExpand(s, p, ep int) int {
	i := 0
	for s+i < len(ms.src) && ms.singleMatch(ms.src[s+i], p, ep) {
		ms.step()
		i++
	}
	// Try with the most repetitions, then fewer.
	for ; i >= 0; i-- {
		if res := ms.match(s+i, ep+1); res != -1 {
			return res
		}
	}
	return -1
}

func (ms *matchState) minExpand(s, p, ep int) int {
	for {
		if res := ms.match(s, ep+1); res != -1 {
			return res
		}
		if s < len(ms.src) && ms.singleMatch(ms.src[s], p, ep) {
			s++
		} else {
			return -1
		}
	}
}

func (ms *matchState) startCapture(s, p, what int) int {
	if ms.level >= maxCaptures {
		ms.fail("too many captures")
	}
	ms.capture[ms.level].init = s
	ms.capture[ms.level].len = what
	ms.level++
	res := ms.match(s, p)
	if res == -1 {
		ms.level--
	}
	return res
}

func (ms *matchState) endCapture(s, p int) int {
	l := ms.captureToClose()
	ms.capture[l].len = s - ms.capture[l].init
	res := ms.match(s, p)
	if res == -1 {
		ms.capture[l].len = capUnfinished
	}
	return res
}

func (ms *matchState) matchCapture(s int, l byte) int {
	i := ms.checkCapture(l)
	if ms.capture[i].len < 0 {
		// A position capture: as in Lua, its length (size_t)-2 never fits.
		return -1
	}
	c := ms.src[ms.capture[i].init : ms.capture[i].init+ms.capture[i].len]
	if len(ms.src)-s >= len(c) && ms.src[s:s+len(c)] == c {
		return s + len(c)
	}
	return -1
}

// match matches the pattern from p against the subject from s and returns
// the end of the match, -1 when there is none.
func (ms *matchState) match(s, p int) int {
	ms.depth++
	if ms.depth > maxMatchDepth {
		ms.fail("pattern too complex")
	}
	defer func() { ms.depth-- }()
	pat := ms.pat
	for {
		ms.step()
		if p >= len(pat) {
			return s
		}
		switch pat[p] {
		case '(':
			if p+1 < len(pat) && pat[p+1] == ')' {
				return ms.startCapture(s, p+2, capPosition)
			}
			return ms.startCapture(s, p+1, capUnfinished)
		case ')':
			return ms.endCapture(s, p+1)
		case '%':
			if p+1 < len(pat) {
				switch c := pat[p+1]; {
				case c == 'b':
					s = ms.matchBalance(s, p+2)
					if s == -1 {
						return -1
					}
					p += 4
					continue
				case c == 'f':
					p += 2
					if p >= len(pat) || pat[p] != '[' {
						ms.fail("missing '[' after '%f' in pattern")
					}
					ep := ms.classEnd(p)
					var prev, cur byte
					if s > 0 {
						prev = ms.src[s-1]
					}
					if s < len(ms.src) {
						cur = ms.src[s]
					}
					if ms.matchBracketClass(prev, p, ep-1) || !ms.matchBracketClass(cur, p, ep-1) {
						return -1
					}
					p = ep
					continue
				case isdigit(c):
					s = ms.matchCapture(s, c)
					if s == -1 {
						return -1
					}
					p += 2
					continue
				}
			}
		case '$':
			if p+1 == len(pat) {
				if s == len(ms.src) {
					return s
				}
				return -1
			}
		}
		ep := ms.classEnd(p)
		m := s < len(ms.src) && ms.singleMatch(ms.src[s], p, ep)
		if ep < len(pat) {
			switch pat[ep] {
			case '?':
				if m {
					if res := ms.match(s+1, ep+1); res != -1 {
						return res
					}
				}
				p = ep + 1
				continue
			case '*':
				return ms.maxExpand(s, p, ep)
			case '+':
				if !m {
					return -1
				}
				return ms.maxExpand(s+1, p, ep)
			case '-':
				return ms.minExpand(s, p, ep)
			}
		}
		if !m {
			return -1
		}
		s++
		p = ep
	}
}

// capture returns capture i of a match of [s, e) as a Lua value; the whole
// match when the pattern has no capture and i is 0.
func (ms *matchState) captureValue(i, s, e int) lua.LValue {
	if i >= ms.level {
		if i != 0 {
			ms.fail("invalid capture index")
		}
		return lua.LString(ms.src[s:e])
	}
	c := ms.capture[i]
	if c.len == capUnfinished {
		ms.fail("unfinished capture")
	}
	if c.len == capPosition {
		return lua.LNumber(c.init + 1)
	}
	return lua.LString(ms.src[c.init : c.init+c.len])
}

// pushCaptures pushes the captures of a match (the whole match when
// wholeIfNone and there is none) and returns their number.
func (ms *matchState) pushCaptures(L *lua.LState, s, e int, wholeIfNone bool) int {
	n := ms.level
	if n == 0 && wholeIfNone {
		n = 1
	}
	for i := range n {
		L.Push(ms.captureValue(i, s, e))
	}
	return n
}

// run calls fn, turning a matcher panic into a Lua error.
func runPattern(L *lua.LState, fn func() int) int {
	var perr *patternError
	n := func() (n int) {
		defer func() {
			if r := recover(); r != nil {
				e, ok := r.(*patternError)
				if !ok {
					panic(r)
				}
				perr = e
			}
		}()
		return fn()
	}()
	if perr != nil {
		L.RaiseError("%s", perr.msg)
	}
	return n
}

// posrelat converts a Lua string position (negative from the end) to a
// 0-based offset before which the search starts.
func posrelat(pos, n int) int {
	if pos < 0 {
		pos += n + 1
	}
	return pos
}

// strFindAux is string.find (find) and string.match (!find).
func (v *vm) strFindAux(L *lua.LState, find bool) int {
	src := L.CheckString(1)
	pat := L.CheckString(2)
	init := posrelat(L.OptInt(3, 1), len(src)) - 1
	if init < 0 {
		init = 0
	} else if init > len(src) {
		L.Push(lua.LNil)
		return 1
	}
	if find && (L.ToBool(4) || !strings.ContainsAny(pat, patternSpecials)) {
		v.budget.charge(L, (len(src)-init)/64)
		if i := strings.Index(src[init:], pat); i >= 0 {
			L.Push(lua.LNumber(init + i + 1))
			L.Push(lua.LNumber(init + i + len(pat)))
			return 2
		}
		L.Push(lua.LNil)
		return 1
	}
	return runPattern(L, func() int {
		ms := &matchState{src: src, pat: pat, b: v.budget}
		p, anchor := 0, len(pat) > 0 && pat[0] == '^'
		if anchor {
			p = 1
		}
		for s := init; ; s++ {
			ms.level = 0
			if e := ms.match(s, p); e != -1 {
				ms.flush()
				if find {
					L.Push(lua.LNumber(s + 1))
					L.Push(lua.LNumber(e))
					return ms.pushCaptures(L, -1, -1, false) + 2
				}
				return ms.pushCaptures(L, s, e, true)
			}
			if s >= len(src) || anchor {
				break
			}
		}
		ms.flush()
		L.Push(lua.LNil)
		return 1
	})
}

// strGmatch is string.gmatch: the iterator matches lazily, one match per
// call, each within the budget of the call that runs it.
func (v *vm) strGmatch(L *lua.LState) int {
	src := L.CheckString(1)
	pat := L.CheckString(2)
	pos := 0
	L.Push(L.NewFunction(func(L *lua.LState) int {
		return runPattern(L, func() int {
			ms := &matchState{src: src, pat: pat, b: v.budget}
			for s := pos; s <= len(src); s++ {
				ms.level = 0
				if e := ms.match(s, 0); e != -1 {
					ms.flush()
					pos = e
					if e == s {
						pos++ // empty match: go on past it
					}
					return ms.pushCaptures(L, s, e, true)
				}
			}
			ms.flush()
			pos = len(src) + 1
			return 0
		})
	}))
	return 1
}

// strGsub is string.gsub, with its result capped at maxString.
func (v *vm) strGsub(L *lua.LState) int {
	src := L.CheckString(1)
	pat := L.CheckString(2)
	L.CheckTypes(3, lua.LTNumber, lua.LTString, lua.LTTable, lua.LTFunction)
	repl := L.Get(3)
	maxN := L.OptInt(4, len(src)+1)
	return runPattern(L, func() int {
		ms := &matchState{src: src, pat: pat, b: v.budget}
		p, anchor := 0, len(pat) > 0 && pat[0] == '^'
		if anchor {
			p = 1
		}
		var out strings.Builder
		add := func(s string) {
			if out.Len()+len(s) > maxString {
				ms.fail("string.gsub: result longer than " + itoa(maxString) + " bytes")
			}
			ms.n += len(s) / 64
			out.WriteString(s)
		}
		s, n := 0, 0
		for n < maxN {
			ms.level = 0
			e := ms.match(s, p)
			if e != -1 {
				n++
				ms.flush()
				add(v.gsubValue(L, ms, repl, s, e))
			}
			switch {
			case e != -1 && e > s:
				s = e
			case s < len(src):
				add(src[s : s+1])
				s++
			default:
				s = len(src) + 1
			}
			if s > len(src) || anchor {
				break
			}
		}
		if s < len(src) {
			add(src[s:])
		}
		ms.flush()
		L.Push(lua.LString(out.String()))
		L.Push(lua.LNumber(n))
		return 2
	})
}

// gsubValue is the replacement of the match [s, e).
func (v *vm) gsubValue(L *lua.LState, ms *matchState, repl lua.LValue, s, e int) string {
	var val lua.LValue
	switch r := repl.(type) {
	case lua.LString, lua.LNumber:
		news := r.String()
		if !strings.Contains(news, "%") {
			return news
		}
		var b strings.Builder
		for i := 0; i < len(news); i++ {
			c := news[i]
			if c != '%' || i+1 == len(news) {
				b.WriteByte(c)
				continue
			}
			i++
			switch c := news[i]; {
			case !isdigit(c):
				b.WriteByte(c)
			case c == '0':
				b.WriteString(ms.src[s:e])
			default:
				b.WriteString(ms.captureValue(int(c-'1'), s, e).String())
			}
			if b.Len() > maxString {
				ms.fail("string.gsub: result longer than " + itoa(maxString) + " bytes")
			}
		}
		return b.String()
	case *lua.LTable:
		val = L.GetTable(r, ms.captureValue(0, s, e))
	case *lua.LFunction:
		top := L.GetTop()
		L.Push(r)
		n := ms.pushCaptures(L, s, e, true)
		L.Call(n, 1)
		val = L.Get(-1)
		L.SetTop(top)
	}
	switch x := val.(type) {
	case lua.LString:
		return string(x)
	case lua.LNumber:
		return x.String()
	case *lua.LNilType:
		return ms.src[s:e]
	case lua.LBool:
		if !x {
			return ms.src[s:e]
		}
	}
	ms.fail("invalid replacement value (a " + val.Type().String() + ")")
	return ""
}

// itoa formats a small non-negative int.
func itoa(n int) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		if n /= 10; n == 0 {
			return string(b[i:])
		}
	}
}
