// Package e2e holds the end-to-end tests of the collector binary: built with
// go build, run with a real configuration file, fed by real exporters
// (softflowd, goflow2) or by captured export packets (collector replay),
// delivering to a Kafka cluster (kfake, in process or as its own process,
// internal/cmd/kfakebroker) read back with kcat. The cluster tests run the
// roles of issue 14 as separate processes: ingest, check and all.
//
// Tests needing an outside program skip when it is missing, unless CI is set
// (then they fail).
package e2e
