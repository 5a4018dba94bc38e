// Package cputime reads the process's CPU time, for benchmarks that report
// CPU per record beside wall time (several goroutines, or an in-process
// broker, share the CPUs).
package cputime

import "time"

// Process is the CPU time (user and system) the process has used so far;
// zero where the system does not say.
func Process() time.Duration { return process() }
