package flowcheck

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// docFiles are the documents whose names TestDocsNameWhatExists holds to
// the tree.
var docFiles = []string{"README.md", "docs/*.md", "deploy/*", "deploy/*/*.md"}

// notGo are names of the documents that look like Go identifiers but name
// something else: systemd directives, kernel counters, products, units.
var notGo = map[string]bool{
	"DynamicUser": true, "StateDirectory": true, "ProtectSystem": true, "WorkingDirectory": true,
	"RcvbufErrors": true, "UdpRcvbufErrors": true, "Udp6RcvbufErrors": true, "VmHWM": true, "VmRSS": true,
	"HyperLogLog": true, "NetFlow": true, "MikroTik": true, "RouterOS": true, "BitTorrent": true,
	"KiB": true, "MiB": true, "GiB": true, "NaN": true, "P2P": true, "FreeBSD": true, "OpenBSD": true,
}

// notFiles are file names of the documents that are patterns, not files.
var notFiles = map[string]bool{"NAME.lua": true}

var (
	// codeSpan is an inline code span (fenced blocks are removed first).
	codeSpan = regexp.MustCompile("`([^`\n]+)`")
	fence    = regexp.MustCompile("(?ms)^```.*?^```")
	// docPath is a file the documents name: a relative path ending in one
	// of the tree's own extensions (globs allowed).
	docPath = regexp.MustCompile(`^[A-Za-z0-9_.*/-]+\.(go|lua|yaml|md)$`)
	// goName is a Go-like name: CamelCase, optionally package-qualified
	// (aggregate.HostTable), optionally a method (Component.Start).
	goName = regexp.MustCompile(`^(?:([a-z][a-z0-9]*)\.)?([A-Z][a-z0-9]+[A-Za-z0-9]*)(?:\.([A-Z][A-Za-z0-9]*))?$`)
	// proseName is a Go-like name in running text: one with a capital
	// inside (HostTable), so that ordinary capitalised words pass.
	proseName = regexp.MustCompile(`(?:^|[^\w./-])((?:[a-z][a-z0-9]*\.)?[A-Z][a-z0-9]+[A-Z][A-Za-z0-9]*)\b`)
)

// TestDocsNameWhatExists checks that every file and every Go-like name the
// README, docs/ and deploy/ put in a code span exists in the tree, so that
// the documents do not outlive a rename or a deletion. Names of other
// worlds are listed in notGo.
func TestDocsNameWhatExists(t *testing.T) {
	decls, pkgs := goDecls(t)
	// declared tells whether a Go-like name is declared in the module: a
	// name of another package (time.Time) is not the module's to check; a
	// benchmark or test may be named without its prefix.
	declared := func(name string) bool {
		g := goName.FindStringSubmatch(name)
		if g == nil || notGo[name] || (g[1] != "" && !pkgs[g[1]]) {
			return true
		}
		found := false
		for _, prefix := range []string{"", "Benchmark", "Test", "Fuzz"} {
			found = found || decls[g[1]+"."+prefix+g[2]]
		}
		return found && (g[3] == "" || decls["."+g[3]])
	}
	for _, pattern := range docFiles {
		docs, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		for _, doc := range docs {
			if fi, err := os.Stat(doc); err == nil && fi.IsDir() {
				continue // deploy/grafana: its notes are read by deploy/*/*.md
			}
			text, err := os.ReadFile(doc)
			if err != nil {
				t.Fatal(err)
			}
			body := fence.ReplaceAllString(string(text), "")
			for _, m := range codeSpan.FindAllStringSubmatch(body, -1) {
				span := m[1]
				switch {
				case docPath.MatchString(span):
					if !notFiles[span] && !pathExists(doc, span) {
						t.Errorf("%s: `%s`: no such file", doc, span)
					}
				case !declared(span):
					t.Errorf("%s: `%s`: declared nowhere in the Go code (add it to notGo if it is not Go)", doc, span)
				}
			}
			if !strings.HasSuffix(doc, ".md") {
				continue // a systemd unit's directives are CamelCase
			}
			prose := codeSpan.ReplaceAllString(body, " ")
			for _, m := range proseName.FindAllStringSubmatch(prose, -1) {
				if !declared(m[1]) {
					t.Errorf("%s: %s: declared nowhere in the Go code (add it to notGo if it is not Go)", doc, m[1])
				}
			}
		}
	}
}

// pathExists tells whether a path a document names exists, relative to the
// repository or to the document, or, for a bare file name, anywhere in the
// tree.
func pathExists(doc, p string) bool {
	if strings.HasPrefix(p, "/") {
		return true // a path on the installed system
	}
	for _, c := range []string{p, path.Join(path.Dir(doc), p)} {
		if m, _ := filepath.Glob(c); len(m) > 0 {
			return true
		}
	}
	if strings.Contains(p, "/") {
		return false
	}
	found := false
	filepath.WalkDir(".", func(q string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() == p {
			found = true
			return fs.SkipAll
		}
		return nil
	})
	return found
}

// goDecls lists the names declared in the module's Go files (tests
// included), as "pkg.Name" and ".Name" (any package, methods and fields
// included), and the module's package names.
func goDecls(t *testing.T) (decls, pkgs map[string]bool) {
	t.Helper()
	decls, pkgs = map[string]bool{}, map[string]bool{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") && p != "." {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(p, ".go") {
			return nil
		}
		f, err := parser.ParseFile(fset, p, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		pkg := f.Name.Name
		pkgs[pkg] = true
		add := func(name string) {
			decls["."+name] = true
			decls[pkg+"."+name] = true
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.FuncDecl:
				add(n.Name.Name)
			case *ast.TypeSpec:
				add(n.Name.Name)
			case *ast.ValueSpec:
				for _, id := range n.Names {
					add(id.Name)
				}
			case *ast.Field:
				for _, id := range n.Names {
					add(id.Name)
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return decls, pkgs
}

// TestServiceUnit holds deploy/flowcheck.service to the tree: its
// Documentation= is the module's repository, the binary it starts is the
// one deploy/README.md installs, and the configuration keys and addresses
// its comments name are those of the default configuration.
func TestServiceUnit(t *testing.T) {
	units, err := filepath.Glob("deploy/*.service")
	if err != nil || len(units) < 3 {
		t.Fatalf("deploy/*.service: %v %v, want flowcheck.service and the cluster's template units", units, err)
	}
	for _, path := range units {
		t.Run(filepath.Base(path), func(t *testing.T) { checkUnit(t, path) })
	}
}

// checkUnit holds a systemd unit to go.mod, deploy/README.md and
// config.example.yaml.
func checkUnit(t *testing.T, path string) {
	unit, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	gomod, err := os.ReadFile("go.mod")
	if err != nil {
		t.Fatal(err)
	}
	deployDoc, err := os.ReadFile("deploy/README.md")
	if err != nil {
		t.Fatal(err)
	}
	module := regexp.MustCompile(`(?m)^module (\S+)$`).FindSubmatch(gomod)
	var tree map[string]any
	if err := yaml.Unmarshal(DefaultConfig, &tree); err != nil {
		t.Fatal(err)
	}
	var comments, defaults []string
	for line := range strings.SplitSeq(string(unit), "\n") {
		if c, ok := strings.CutPrefix(line, "#"); ok {
			comments = append(comments, c)
			// The value of a FLOWCHECK_ variable shown as an example is
			// not a default.
			if !strings.Contains(c, "FLOWCHECK_") {
				defaults = append(defaults, c)
			}
			continue
		}
		key, value, _ := strings.Cut(line, "=")
		switch key {
		case "Documentation":
			if want := "https://" + string(module[1]); value != want {
				t.Errorf("Documentation=%s, want %s", value, want)
			}
		case "ExecStart":
			bin := strings.Fields(value)[0]
			if !strings.Contains(string(deployDoc), "install -m 0755 bin/collector "+bin) {
				t.Errorf("ExecStart runs %s, which deploy/README.md does not install", bin)
			}
		}
	}
	text := strings.Join(comments, "\n")
	for _, addr := range regexp.MustCompile(`\b\d+\.\d+\.\d+\.\d+:\d+\b`).FindAllString(strings.Join(defaults, "\n"), -1) {
		if !strings.Contains(string(DefaultConfig), addr) {
			t.Errorf("the unit's comments name %s, which config.example.yaml does not", addr)
		}
	}
	// A dotted name after a slash is a file (docs/cluster.md), not a key.
	for _, m := range regexp.MustCompile(`(?:^|[^/\w])([a-z_]+(?:\.[a-z_]+(?:\[\])?)+)`).FindAllStringSubmatch(text, -1) {
		key := m[1]
		first, _, _ := strings.Cut(key, ".")
		if _, ok := tree[first]; !ok {
			continue // not a configuration key (net.core.rmem_max)
		}
		var node any = tree
		for _, k := range strings.Split(key, ".") {
			if l, ok := node.([]any); ok && len(l) > 0 {
				node = l[0]
			}
			m, ok := node.(map[string]any)
			if !ok {
				t.Errorf("the unit's comments name %s, which config.example.yaml does not have", key)
				break
			}
			if node, ok = m[strings.TrimSuffix(k, "[]")]; !ok {
				t.Errorf("the unit's comments name %s, which config.example.yaml does not have", key)
				break
			}
		}
	}
}
