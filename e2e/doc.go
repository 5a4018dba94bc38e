// Package e2e holds the end-to-end tests of the collector binary: built with
// go build, run with a real configuration file, fed by real exporters
// (softflowd) or by captured export packets (collector replay), delivering to
// an in-process Kafka cluster (kfake) read back with kcat.
//
// Tests needing an outside program skip when it is missing, unless CI is set
// (then they fail).
package e2e
