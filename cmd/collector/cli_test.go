package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/flowcheck/flowcheck/clock"
)

// TestHelp checks that every way of asking for help lists the subcommands,
// on stdout with status 0, and that a command's -h adds its flags.
func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}, {"-help"}, {"run", "-h"}, {"run", "--help"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := dispatch(args, &stdout, &stderr); code != exitOK {
				t.Fatalf("exit %d; stderr: %s", code, stderr.String())
			}
			out := stdout.String() + stderr.String()
			for _, want := range []string{"collector decode", "collector replay", "collector version", "FLOWCHECK_"} {
				if !strings.Contains(out, want) {
					t.Errorf("help lacks %q:\n%s", want, out)
				}
			}
			if args[0] == "run" && !strings.Contains(out, "-config") {
				t.Errorf("run -h lacks its flags:\n%s", out)
			}
		})
	}
	var stdout, stderr bytes.Buffer
	if code := dispatch([]string{"frobnicate"}, &stdout, &stderr); code != exitConfig || !strings.Contains(stderr.String(), `unknown command "frobnicate"`) {
		t.Fatalf("unknown command: exit %d, stderr %q", code, stderr.String())
	}
}

// TestVersion checks `version` and `--version`: one line with the version,
// the commit and the Go version.
func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}, {"-version"}} {
		var stdout, stderr bytes.Buffer
		if code := dispatch(args, &stdout, &stderr); code != exitOK {
			t.Fatalf("%v: exit %d; stderr: %s", args, code, stderr.String())
		}
		out := stdout.String()
		if strings.Count(out, "\n") != 1 || !strings.HasPrefix(out, "flowcheck collector ") ||
			!strings.Contains(out, "(commit ") || !strings.Contains(out, runtime.Version()) {
			t.Fatalf("%v: %q, want one line with the version, commit and Go version", args, out)
		}
	}
	var stdout, stderr bytes.Buffer
	if code := dispatch([]string{"version", "extra"}, &stdout, &stderr); code != exitConfig {
		t.Fatalf("version extra: exit %d", code)
	}
}

func TestPseudoVersionRev(t *testing.T) {
	for _, tc := range []struct{ version, want string }{
		{"v0.0.0-20261202190019-59af88d6e0b3", "59af88d6e0b3"},
		{"v0.0.0-20261202190019-59af88d6e0b3+dirty", "59af88d6e0b3"},
		{"v1.2.4-0.20261202190019-59af88d6e0b3", "59af88d6e0b3"},
		{"v1.2.3", "unknown"},
		{"v1.2.3-rc1", "unknown"},
		{"(devel)", "unknown"},
		{"", "unknown"},
	} {
		if got := pseudoVersionRev(tc.version); got != tc.want {
			t.Errorf("pseudoVersionRev(%q) = %q, want %q", tc.version, got, tc.want)
		}
	}
}

// TestBuildInfoMetric checks that the pipeline's registry holds
// flowcheck_build_info at 1 with the build's labels.
func TestBuildInfoMetric(t *testing.T) {
	cfg, err := loadConfig("", noEnv)
	if err != nil {
		t.Fatal(err)
	}
	p, err := build(cfg, clock.NewManual(time.Now()), slog.New(slog.DiscardHandler), io.Discard, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.engine.Stop(context.Background()) })
	families, err := p.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	b := readBuildInfo()
	for _, f := range families {
		if f.GetName() != "flowcheck_build_info" {
			continue
		}
		m := f.GetMetric()[0]
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if m.GetGauge().GetValue() != 1 || labels["version"] != b.Version || labels["commit"] != b.Commit || labels["goversion"] != runtime.Version() {
			t.Fatalf("flowcheck_build_info = %v %v", m.GetGauge().GetValue(), labels)
		}
		return
	}
	t.Fatal("no flowcheck_build_info")
}

// trailingWord is the word a message's segment ends with.
var trailingWord = regexp.MustCompile(`[a-z][a-z0-9_.]*$`)

// repeatedPrefix returns an error prefix said twice in a row ("http: http:
// …"), or "".
func repeatedPrefix(line string) string {
	segs := strings.Split(line, ": ")
	for i := 0; i+1 < len(segs); i++ {
		if w := trailingWord.FindString(segs[i]); w != "" && segs[i+1] == w {
			return w
		}
	}
	return ""
}

func TestRepeatedPrefix(t *testing.T) {
	for line, want := range map[string]string{
		`err="http: http: listen tcp"`:            "http",
		`err="scripting: scripting: x"`:           "scripting",
		`err="http: listen tcp 1.2.3.4:80: bind"`: "",
	} {
		if got := repeatedPrefix(line); got != want {
			t.Errorf("repeatedPrefix(%q) = %q, want %q", line, got, want)
		}
	}
}

// TestStartupErrorsOnce starts the daemon on configurations that fail at
// start-up, one per component, and checks that each error names its
// component once.
func TestStartupErrorsOnce(t *testing.T) {
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "bad.lua"), []byte("local x =\nreturn {}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := "http:\n  listen: 127.0.0.1:0\ncollector:\n  listeners:\n    - url: netflow://127.0.0.1:0\n"
	cases := []struct {
		name, yaml, want string
	}{
		{"http port taken", "http:\n  listen: " + tcp.Addr().String() + "\ncollector:\n  listeners:\n    - url: netflow://127.0.0.1:0\n", `err="http: `},
		{"udp port taken", "http:\n  listen: 127.0.0.1:0\ncollector:\n  listeners:\n    - url: netflow://" + udp.LocalAddr().String() + "\n", `err="collector: `},
		{"file sink cannot open", base + "sinks:\n  file:\n    enabled: true\n    path: " + filepath.Join(dir, "bad.lua", "alerts.json") + "\n", `err="sinks: `},
		{"no script compiles", base + "scripting:\n  dirs: [" + dir + "]\n", `err="scripting: `},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "config.yaml")
			if err := os.WriteFile(path, []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			var stderr bytes.Buffer
			done := make(chan int, 1)
			go func() { done <- dispatch([]string{"run", "--config", path}, io.Discard, &stderr) }()
			select {
			case code := <-done:
				if code != exitFailure {
					t.Fatalf("exit %d, want %d; stderr: %s", code, exitFailure, stderr.String())
				}
			case <-time.After(30 * time.Second):
				t.Fatal("the daemon started; the test configuration should not")
			}
			var line string
			for l := range strings.SplitSeq(stderr.String(), "\n") {
				if strings.Contains(l, `msg="cannot `) {
					line = l
					break
				}
			}
			if !strings.Contains(line, tc.want) {
				t.Fatalf("error line %q, want it to contain %q; stderr:\n%s", line, tc.want, stderr.String())
			}
			if m := repeatedPrefix(line); m != "" {
				t.Fatalf("error repeats its prefix (%q): %s", m, line)
			}
		})
	}
}
