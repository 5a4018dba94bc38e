// Package flowpb is the wire schema of a flowcheck cluster's flows topic
// (flows.proto, package flowcheck.flows.v1) and its generated Go code. The
// cluster package encodes and decodes it by hand on the hot path; the
// generated types are the schema's reference, which its tests hold that
// code to, and what another program can use to read the topic.
package flowpb

//go:generate protoc --go_out=. --go_opt=paths=source_relative flows.proto
