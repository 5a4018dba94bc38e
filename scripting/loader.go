package scripting

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"regexp"
	"sort"
	"strings"

	lua "github.com/yuin/gopher-lua"
	"github.com/yuin/gopher-lua/parse"
)

// DefaultDir is the default script directory. When it does not exist
// relative to the working directory, the engine uses the scripts embedded in
// the binary (Dependencies.EmbeddedScripts).
const DefaultDir = "scripts"

// source is one script directory, read through an fs.FS so that a real
// directory and the embedded copy are loaded by the same code.
type source struct {
	// display is how paths of this source appear in logs ("scripts",
	// "embedded:scripts").
	display string
	// watch is the directory to watch for changes; empty for embedded.
	watch string
	fsys  fs.FS
}

// resolveSources maps the configured directories to sources.
func resolveSources(dirs []string, embedded fs.FS) ([]source, error) {
	out := make([]source, 0, len(dirs))
	for _, d := range dirs {
		st, err := os.Stat(d)
		switch {
		case err == nil && st.IsDir():
			out = append(out, source{display: d, watch: d, fsys: os.DirFS(d)})
		case err == nil:
			return nil, fmt.Errorf("dirs: %s is not a directory", d)
		case errors.Is(err, fs.ErrNotExist) && d == DefaultDir && embedded != nil:
			sub := embedded
			if st, err := fs.Stat(embedded, DefaultDir); err == nil && st.IsDir() {
				if sub, err = fs.Sub(embedded, DefaultDir); err != nil {
					return nil, fmt.Errorf("dirs: embedded scripts: %w", err)
				}
			}
			out = append(out, source{display: "embedded:" + DefaultDir, fsys: sub})
		default:
			return nil, fmt.Errorf("dirs: %w", err)
		}
	}
	return out, nil
}

// scriptFile is one compiled .lua file.
type scriptFile struct {
	// name is the file name without ".lua": the module name for require and
	// the check name.
	name string
	// path is the display path, for logs.
	path  string
	src   []byte
	proto *lua.FunctionProto
	// defaults are the params a check declares (readDefaults), set when
	// it is probed; nil for a module, or a check that declares none.
	defaults map[string]any
}

// readSources lists the .lua files of the sources; a name found in an
// earlier source hides later ones. Files are returned sorted by name.
func readSources(srcs []source) ([]scriptFile, error) {
	seen := map[string]bool{}
	var out []scriptFile
	for _, s := range srcs {
		entries, err := fs.ReadDir(s.fsys, ".")
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.display, err)
		}
		for _, e := range entries {
			n := e.Name()
			if e.IsDir() || !strings.HasSuffix(n, ".lua") || strings.HasPrefix(n, ".") {
				continue
			}
			name := strings.TrimSuffix(n, ".lua")
			if seen[name] {
				continue
			}
			b, err := fs.ReadFile(s.fsys, n)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", path.Join(s.display, n), err)
			}
			seen[name] = true
			out = append(out, scriptFile{name: name, path: path.Join(s.display, n), src: b})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, nil
}

// compile parses and compiles a file into a FunctionProto. Errors read
// "path:line:col: message", with a hint when the lines near the error use
// syntax of a later Lua (lua51Hints).
func compile(f *scriptFile) error {
	chunk, err := parse.Parse(bytes.NewReader(f.src), f.path)
	if err != nil {
		var pe *parse.Error
		if errors.As(err, &pe) {
			return fmt.Errorf("%s:%d:%d: %s near %q%s", f.path, pe.Pos.Line, pe.Pos.Column, pe.Message, pe.Token,
				hintsFor(f.src, pe.Pos.Line))
		}
		return fmt.Errorf("%s: %w%s", f.path, err, hintsFor(f.src, 0))
	}
	proto, err := lua.Compile(chunk, f.path)
	if err != nil {
		var ce *lua.CompileError
		if errors.As(err, &ce) {
			return fmt.Errorf("%s:%d: %s%s", f.path, ce.Line, ce.Message, hintsFor(f.src, ce.Line))
		}
		return fmt.Errorf("%s: %w", f.path, err)
	}
	f.proto = proto
	return nil
}

// lua51Hints are the constructs of Lua 5.2 to 5.4 that gopher-lua, a Lua
// 5.1, does not parse, found in the code of a line (strings and comments
// blanked) or, for string escapes, in its text. Checks ported from a recent
// ntopng meet them first; the parser's own "syntax error near '/'" does
// not say why.
var lua51Hints = []struct {
	code *regexp.Regexp // matched against the code of the line
	text *regexp.Regexp // or against its text
	hint string
}{
	{code: regexp.MustCompile(`//`), hint: "`//` is Lua 5.3 integer division; flowcheck runs Lua 5.1 (gopher-lua): use math.floor(a / b)"},
	{code: regexp.MustCompile(`<<|>>`), hint: "`<<` and `>>` are Lua 5.3 shifts; flowcheck runs Lua 5.1 (gopher-lua), without bit operators: use a * 2^n and math.floor(a / 2^n)"},
	{code: regexp.MustCompile(`&|\|`), hint: "`&` and `|` are Lua 5.3 bitwise and/or; flowcheck runs Lua 5.1 (gopher-lua), without bit operators: use arithmetic (% 2^n, math.floor(a / 2^n))"},
	{code: regexp.MustCompile(`~([^=]|$)`), hint: "`~` is Lua 5.3 bitwise xor/not; flowcheck runs Lua 5.1 (gopher-lua), where only `~=` exists"},
	{code: regexp.MustCompile(`<\s*(const|close)\s*>`), hint: "`<const>` and `<close>` are Lua 5.4 attributes; flowcheck runs Lua 5.1 (gopher-lua): drop them"},
	{code: regexp.MustCompile(`\b0[xX][0-9a-fA-F]*\.?[0-9a-fA-F]*[pP]`), hint: "hexadecimal floats (0x1p4) are Lua 5.2; flowcheck runs Lua 5.1 (gopher-lua): write the decimal value"},
	{text: regexp.MustCompile(`\\z`), hint: "the `\\z` string escape is Lua 5.2; flowcheck runs Lua 5.1 (gopher-lua): concatenate strings instead"},
}

// hintsFor returns the hints of lua51Hints that apply to the error line
// and the line before it (a parse error is often reported at the next
// token), or to every line when the parser gave none (line < 1): "" or
// "; hint: ...".
func hintsFor(src []byte, line int) string {
	text := strings.Split(string(src), "\n")
	code := strings.Split(codeOnly(src), "\n")
	lo, hi := line-2, line-1
	if line < 1 || line > len(text) {
		lo, hi = 0, len(text)-1
	}
	lo = max(lo, 0)
	var b strings.Builder
	for _, h := range lua51Hints {
		for i := lo; i <= hi; i++ {
			if (h.code != nil && h.code.MatchString(code[i])) || (h.text != nil && h.text.MatchString(text[i])) {
				b.WriteString("; hint: ")
				b.WriteString(h.hint)
				break
			}
		}
	}
	return b.String()
}

// codeOnly returns src with the contents of comments and string literals
// replaced by spaces, line breaks kept, so that `//` in a URL or `|` in a
// comment is no hint. Long brackets ([[ ]], [==[ ]==]) are followed; an
// unterminated literal blanks the rest of the file.
func codeOnly(src []byte) string {
	out := []byte(string(src))
	blank := func(from, to int) {
		for i := from; i < to && i < len(out); i++ {
			if out[i] != '\n' {
				out[i] = ' '
			}
		}
	}
	// longEnd returns the index after the long bracket closing the one
	// opening at i ("[" "="* "["), or -1 when i opens none.
	longEnd := func(i int) int {
		j := i + 1
		for j < len(src) && src[j] == '=' {
			j++
		}
		if j >= len(src) || src[j] != '[' {
			return -1
		}
		closing := "]" + strings.Repeat("=", j-i-1) + "]"
		k := bytes.Index(src[j+1:], []byte(closing))
		if k < 0 {
			return len(src)
		}
		return j + 1 + k + len(closing)
	}
	for i := 0; i < len(src); {
		switch c := src[i]; {
		case c == '-' && i+1 < len(src) && src[i+1] == '-':
			end := -1
			if i+2 < len(src) && src[i+2] == '[' {
				end = longEnd(i + 2)
			}
			if end < 0 {
				end = i + bytes.IndexByte(src[i:], '\n')
				if end < i {
					end = len(src)
				}
			}
			blank(i, end)
			i = end
		case c == '[':
			end := longEnd(i)
			if end < 0 {
				i++
				continue
			}
			blank(i, end)
			i = end
		case c == '"' || c == '\'':
			j := i + 1
			for j < len(src) && src[j] != c && src[j] != '\n' {
				if src[j] == '\\' {
					j++
				}
				j++
			}
			blank(i, j+1)
			i = j + 1
		default:
			i++
		}
	}
	return string(out)
}

// readDefaults returns the params a check module declares in its
// `defaults` field, as configuration values (numbers as float64, strings,
// booleans, tables as []any when their keys are 1..n, else
// map[string]any); nil when it declares none.
func readDefaults(mod *lua.LTable) (map[string]any, error) {
	lv := mod.RawGetString("defaults")
	if lv == lua.LNil {
		return nil, nil
	}
	t, ok := lv.(*lua.LTable)
	if !ok {
		return nil, fmt.Errorf("defaults is a %s, not a table of params", lv.Type())
	}
	v, err := fromLua(t, 0)
	if err != nil {
		return nil, fmt.Errorf("defaults%w", err)
	}
	switch v := v.(type) {
	case map[string]any:
		return v, nil
	case []any:
		if len(v) == 0 {
			return map[string]any{}, nil
		}
	}
	return nil, errors.New("defaults: params are named (name = value), not a list")
}

// maxDefaultsDepth bounds the nesting of a default value (and stops a
// table that holds itself).
const maxDefaultsDepth = 8

// fromLua converts a default value; errors start with the path below the
// value (".name", "[2]").
func fromLua(lv lua.LValue, depth int) (any, error) {
	switch lv := lv.(type) {
	case lua.LNumber:
		return float64(lv), nil
	case lua.LString:
		return string(lv), nil
	case lua.LBool:
		return bool(lv), nil
	case *lua.LTable:
		if depth >= maxDefaultsDepth {
			return nil, fmt.Errorf(": nested deeper than %d tables", maxDefaultsDepth)
		}
		n := lv.MaxN()
		if n > 0 && n == lv.Len() {
			list := make([]any, n)
			for i := range n {
				e, err := fromLua(lv.RawGetInt(i+1), depth+1)
				if err != nil {
					return nil, fmt.Errorf("[%d]%w", i+1, err)
				}
				list[i] = e
			}
			count := 0
			lv.ForEach(func(lua.LValue, lua.LValue) { count++ })
			if count == n {
				return list, nil
			}
		}
		m := map[string]any{}
		var err error
		lv.ForEach(func(k, e lua.LValue) {
			if err != nil {
				return
			}
			ks, ok := k.(lua.LString)
			if !ok {
				err = fmt.Errorf(": key %s is a %s, not a name", k, k.Type())
				return
			}
			var v any
			if v, err = fromLua(e, depth+1); err != nil {
				err = fmt.Errorf(".%s%w", ks, err)
				return
			}
			m[string(ks)] = v
		})
		if err != nil {
			return nil, err
		}
		return m, nil
	}
	return nil, fmt.Errorf(": a %s is not a param value (number, string, boolean or table)", lv.Type())
}
