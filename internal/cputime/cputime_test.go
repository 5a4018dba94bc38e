package cputime

import (
	"runtime"
	"testing"
	"time"
)

func TestProcessGrows(t *testing.T) {
	if runtime.GOOS == "windows" || runtime.GOOS == "plan9" {
		t.Skip("no rusage here")
	}
	before := Process()
	for end := time.Now().Add(20 * time.Millisecond); time.Now().Before(end); {
	}
	if after := Process(); after <= before {
		t.Fatalf("CPU time %v then %v after a busy loop", before, after)
	}
}
