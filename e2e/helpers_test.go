package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/flowcheck/flowcheck/alert"
)

// builds are the programs built for this test run, by package path.
var (
	buildMu  sync.Mutex
	buildDir string
	builds   = map[string]*build{}
)

// build is one program built once per test run.
type build struct {
	once sync.Once
	path string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// binary builds the collector once per test run and returns its path.
func binary(t *testing.T) string {
	t.Helper()
	return built(t, "./cmd/collector")
}

// built builds the program of a package of this module (a path relative to
// the module root) once per test run and returns its path.
func built(t *testing.T, pkg string) string {
	t.Helper()
	buildMu.Lock()
	var err error
	if buildDir == "" {
		buildDir, err = os.MkdirTemp("", "flowcheck-e2e-")
	}
	b := builds[pkg]
	if b == nil {
		b = &build{}
		builds[pkg] = b
	}
	dir := buildDir
	buildMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	b.once.Do(func() {
		b.path = filepath.Join(dir, filepath.Base(pkg))
		cmd := exec.Command("go", "build", "-o", b.path, pkg)
		cmd.Dir = ".."
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// tool finds an outside program, skipping the test when it is missing
// outside CI and failing it under CI.
func tool(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is required under CI (Debian package %s)", name, name)
	}
	t.Skipf("%s not installed (Debian package %s); skipping outside CI", name, name)
	return ""
}

// syncBuffer is a bytes.Buffer safe to write from a process's pipe while the
// test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// daemon is a running `collector run`.
type daemon struct {
	cmd    *exec.Cmd
	stdout *syncBuffer
	stderr *syncBuffer
	done   chan error
	// udp and http are the bound addresses, read from the JSON logs.
	udp, http string
}

// startDaemon writes the configuration and starts the daemon, waiting until
// it logs its bound addresses. The configuration must log in JSON and bind
// port 0.
func startDaemon(t *testing.T, config string) *daemon {
	t.Helper()
	return startProcess(t, config, nil, true)
}

// startProcess starts `collector run` on the configuration with the test's
// environment plus env (FLOWCHECK_* overrides), and waits until it logs that
// it runs, with its HTTP address and, when udp is set, its first UDP
// listener's address.
func startProcess(t *testing.T, config string, env []string, udp bool) *daemon {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	d := &daemon{stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan error, 1)}
	d.cmd = exec.Command(binary(t), "run", "--config", path)
	d.cmd.Stdout, d.cmd.Stderr = d.stdout, d.stderr
	d.cmd.Env = append(withoutFlowcheckEnv(), env...)
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.done <- d.cmd.Wait() }()
	t.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			_ = d.cmd.Process.Kill()
			<-d.done
		}
		if t.Failed() {
			t.Logf("%v stderr:\n%s", env, d.stderr.String())
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		for _, line := range logLines(d.stderr.String()) {
			switch line["msg"] {
			case "http server listening":
				d.http, _ = line["addr"].(string)
			case "running":
				if l, ok := line["listen"].([]any); ok && len(l) > 0 {
					d.udp, _ = l[0].(string)
				}
			}
		}
		if (d.udp != "" || !udp) && d.http != "" {
			return d
		}
		select {
		case err := <-d.done:
			t.Fatalf("daemon %v exited early: %v\n%s", env, err, d.stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("daemon %v did not report its addresses:\n%s", env, d.stderr.String())
	return nil
}

// stop sends SIGTERM and returns the exit status.
func (d *daemon) stop(t *testing.T) int {
	t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-d.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("daemon did not stop within 30 s of SIGTERM")
	}
	return d.cmd.ProcessState.ExitCode()
}

// getJSON fetches an API path from the daemon into v.
func (d *daemon) getJSON(t *testing.T, path string, v any) int {
	t.Helper()
	resp, err := http.Get("http://" + d.http + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if v != nil && resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, v); err != nil {
			t.Fatalf("GET %s: %v\n%s", path, err, body)
		}
	}
	return resp.StatusCode
}

// withoutFlowcheckEnv is the test's environment minus FLOWCHECK_* overrides,
// so that the developer's shell cannot change a test's configuration.
func withoutFlowcheckEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "FLOWCHECK_") {
			env = append(env, kv)
		}
	}
	return env
}

// logLines parses JSON log lines, ignoring anything else.
func logLines(s string) []map[string]any {
	var out []map[string]any
	for _, l := range strings.Split(s, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// parseAlerts reads JSON lines of alert events.
func parseAlerts(t *testing.T, s string) []alert.Event {
	t.Helper()
	var out []alert.Event
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var ev alert.Event
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("not an alert JSON line: %q: %v", line, err)
		}
		out = append(out, ev)
	}
	return out
}

// engagedBy returns, per host IP, the checks engaged on it.
func engagedBy(events []alert.Event) map[string]map[string]bool {
	out := map[string]map[string]bool{}
	for _, ev := range events {
		if ev.State != alert.Engaged {
			continue
		}
		if out[ev.Host.IP] == nil {
			out[ev.Host.IP] = map[string]bool{}
		}
		out[ev.Host.IP][ev.Check] = true
	}
	return out
}

// copyFile copies src into dir and returns the new path.
func copyFile(t *testing.T, src, dir string) string {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, filepath.Base(src))
	if err := os.WriteFile(dst, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return dst
}

// run runs a program with a deadline and returns its stdout.
func run(t *testing.T, dir string, timeout time.Duration, name string, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = withoutFlowcheckEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}
