package scripting

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
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
// "path:line:col: message".
func compile(f *scriptFile) error {
	chunk, err := parse.Parse(bytes.NewReader(f.src), f.path)
	if err != nil {
		var pe *parse.Error
		if errors.As(err, &pe) {
			return fmt.Errorf("%s:%d:%d: %s near %q", f.path, pe.Pos.Line, pe.Pos.Column, pe.Message, pe.Token)
		}
		return fmt.Errorf("%s: %w", f.path, err)
	}
	proto, err := lua.Compile(chunk, f.path)
	if err != nil {
		var ce *lua.CompileError
		if errors.As(err, &ce) {
			return fmt.Errorf("%s:%d: %s", f.path, ce.Line, ce.Message)
		}
		return fmt.Errorf("%s: %w", f.path, err)
	}
	f.proto = proto
	return nil
}
