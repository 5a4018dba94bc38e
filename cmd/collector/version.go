package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// buildInfo is what the binary knows of its own build, from the Go
// toolchain's build information: no linker flags to forget.
type buildInfo struct {
	// Version is the module version: a tag or pseudo-version with `go
	// install …@version`, the VCS-derived one with `go build` in a checkout
	// (+dirty when it had changes), "(devel)" when neither is known.
	Version string
	// Commit is the VCS revision, or the one a pseudo-version names, or
	// "unknown".
	Commit    string
	GoVersion string
}

// readBuildInfo reads the running binary's build information.
func readBuildInfo() buildInfo {
	b := buildInfo{Version: "(devel)", Commit: "unknown", GoVersion: runtime.Version()}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	if info.Main.Version != "" {
		b.Version = info.Main.Version
	}
	if info.GoVersion != "" {
		b.GoVersion = info.GoVersion
	}
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" && s.Value != "" {
			b.Commit = s.Value
		}
	}
	if b.Commit == "unknown" {
		b.Commit = pseudoVersionRev(b.Version)
	}
	return b
}

// pseudoVersionRev is the commit a pseudo-version ends with
// (v0.0.0-20261202190019-59af88d6e0b3: 59af88d6e0b3), or "unknown". A module
// fetched through the proxy has no VCS settings, only this.
func pseudoVersionRev(v string) string {
	v, _, _ = strings.Cut(v, "+")
	i := strings.LastIndexByte(v, '-')
	if i < 0 || len(v)-i-1 != 12 || strings.Trim(v[i+1:], "0123456789abcdef") != "" {
		return "unknown"
	}
	return v[i+1:]
}

// String is the one line `collector version` prints.
func (b buildInfo) String() string {
	return fmt.Sprintf("flowcheck collector %s (commit %s, %s %s/%s)", b.Version, b.Commit, b.GoVersion, runtime.GOOS, runtime.GOARCH)
}

// metric is flowcheck_build_info: 1, labelled with the build, so that a
// dashboard can tell which build each instance runs.
func (b buildInfo) metric() prometheus.Gauge {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace:   "flowcheck",
		Name:        "build_info",
		Help:        "Always 1, labelled with the running build's version, commit and Go version.",
		ConstLabels: prometheus.Labels{"version": b.Version, "commit": b.Commit, "goversion": b.GoVersion},
	})
	g.Set(1)
	return g
}

// runVersion is `collector version` (and `--version`).
func runVersion(args []string, stdout, stderr io.Writer) int {
	if len(args) != 0 {
		fmt.Fprintf(stderr, "collector version: unexpected argument %q\n", args[0])
		return exitConfig
	}
	fmt.Fprintln(stdout, readBuildInfo())
	return exitOK
}
