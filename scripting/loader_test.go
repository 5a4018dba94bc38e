package scripting

import (
	"strings"
	"testing"
)

// TestLua51Hints compiles scripts written for a later Lua and checks the
// hint the error carries, and that a hint is given only for a construct
// in code, not in a string or a comment.
func TestLua51Hints(t *testing.T) {
	cases := []struct {
		name, src string
		// hint is a part of the one hint expected; "" wants none.
		hint string
	}{
		{"integer division", "local x = 7 // 2\n", "`//` is Lua 5.3 integer division; flowcheck runs Lua 5.1 (gopher-lua): use math.floor(a / b)"},
		{"integer division, next line", "local x = 7 //\n  2\n", "`//` is Lua 5.3 integer division"},
		{"bitwise and", "local x = 7 & 2\n", "`&` and `|` are Lua 5.3 bitwise and/or"},
		{"bitwise or", "local x = 7 | 2\n", "`&` and `|` are Lua 5.3 bitwise and/or"},
		{"bitwise xor", "local x = 7 ~ 2\n", "`~` is Lua 5.3 bitwise xor/not"},
		{"bitwise not", "local x = ~7\n", "`~` is Lua 5.3 bitwise xor/not"},
		{"shift left", "local x = 1 << 4\n", "`<<` and `>>` are Lua 5.3 shifts"},
		{"shift right", "local x = 256 >> 4\n", "`<<` and `>>` are Lua 5.3 shifts"},
		{"const", "local x <const> = 5\n", "`<const>` and `<close>` are Lua 5.4 attributes"},
		{"close", "local f <close> = nil\n", "`<const>` and `<close>` are Lua 5.4 attributes"},
		{"hex float", "local x = 0x1p4\n", "hexadecimal floats (0x1p4) are Lua 5.2"},
		{"z escape", "local s = \"a\\z\n  b\"\n", "the `\\z` string escape is Lua 5.2"},
		// No hint: the construct is in a string or a comment, or there is
		// none.
		{"in a string", "local u = \"http://a|b&c~d\"\nlocal = 1\n", ""},
		{"in a comment", "-- a // b, a & b, a | b, ~a\nlocal = 1\n", ""},
		{"in a long comment", "--[==[ a // b\n a | b ]==]\nlocal = 1\n", ""},
		{"in a long string", "local s = [[\n a // b ]]\nlocal = 1\n", ""},
		{"plain syntax error", "if x then\n", ""},
		{"not equal is 5.1", "if a ~= b then x = 1 end end\n", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := &scriptFile{name: "c", path: "scripts/c.lua", src: []byte(tc.src)}
			err := compile(f)
			if err == nil {
				t.Fatal("compiled")
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "scripts/c.lua:") {
				t.Errorf("error %q does not start with the file", msg)
			}
			n := strings.Count(msg, "; hint: ")
			switch {
			case tc.hint == "" && n != 0:
				t.Errorf("error %q has a hint, want none", msg)
			case tc.hint != "" && (n != 1 || !strings.Contains(msg, "; hint: "+tc.hint)):
				t.Errorf("error %q, want one hint with %q", msg, tc.hint)
			}
		})
	}
}

// TestLua51Compiles checks what compiles as it is: // in a string and
// goto (gopher-lua implements Lua 5.2's goto).
func TestLua51Compiles(t *testing.T) {
	for _, src := range []string{
		"local u = \"http://x\" -- a // b\nreturn u\n",
		"for i = 1, 3 do\n  if i == 2 then goto continue end\n  ::continue::\nend\n",
	} {
		if err := compile(&scriptFile{name: "c", path: "c.lua", src: []byte(src)}); err != nil {
			t.Errorf("%q: %v", src, err)
		}
	}
}
