package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flowcheck/flowcheck/clock"
	"github.com/flowcheck/flowcheck/cluster"
	"github.com/flowcheck/flowcheck/flow"
)

// ingestConfigFile writes a configuration of role ingest publishing to
// broker.
func ingestConfigFile(t *testing.T, broker string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ingest.yaml")
	doc := "cluster:\n  role: ingest\n  brokers: [" + broker + "]\n  partitions: 4\n" +
		"  publish:\n    write_timeout: 2s\n    retry_backoff_max: 200ms\n"
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestReplayIngest: replay with role ingest publishes the capture's
// records to the flows topic and exits 0 once they are acknowledged; every
// message read back holds records, as many copies as it says it published.
func TestReplayIngest(t *testing.T) {
	kf, err := kfake.NewCluster(kfake.Ports(0))
	if err != nil {
		t.Fatal(err)
	}
	defer kf.Close()
	broker := kf.ListenAddrs()[0]
	var stdout, stderr bytes.Buffer
	code := dispatch([]string{"replay", "--config", ingestConfigFile(t, broker), "--pcap", "../../testdata/softflowd-v9.pcap"}, &stdout, &stderr)
	if code != exitOK {
		t.Fatalf("exit %d\n%s", code, stderr.String())
	}
	if stdout.Len() != 0 {
		t.Errorf("stdout: %q, want nothing (no sinks in role ingest)", stdout.String())
	}
	if !strings.Contains(stderr.String(), `msg="replay published"`) || !strings.Contains(stderr.String(), "dropped=0") {
		t.Errorf("stderr lacks the summary:\n%s", stderr.String())
	}
	_, after, _ := strings.Cut(stderr.String(), "record_copies_acknowledged=")
	want, _, _ := strings.Cut(after, " ")

	cl, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.ConsumeTopics("flowcheck.flows"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var d cluster.Decoder
	got := 0
	for ctx.Err() == nil && (got == 0 || want != strconv.Itoa(got)) {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			recs, err := d.Decode(r.Value)
			if err != nil {
				t.Fatal(err)
			}
			got += len(recs)
		})
	}
	if strconv.Itoa(got) != want || got < 9000 {
		t.Fatalf("read %d record copies back, replay said %s", got, want)
	}
}

// TestReplayIngestNoBroker: with no broker, replay ends (bounded by the
// write timeout) with status 1 and says what was not published.
func TestReplayIngestNoBroker(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	broker := ln.Addr().String()
	ln.Close()
	var stdout, stderr bytes.Buffer
	code := dispatch([]string{"replay", "--config", ingestConfigFile(t, broker), "--pcap", "../../testdata/softflowd-v9.pcap"}, &stdout, &stderr)
	if code != exitFailure {
		t.Fatalf("exit %d, want %d\n%s", code, exitFailure, stderr.String())
	}
	if !strings.Contains(stderr.String(), "some records were not published") {
		t.Errorf("stderr does not say so:\n%s", stderr.String())
	}
}

// TestIngestDaemon: role ingest runs the sockets and the publisher (no
// host table, no checks, no sinks), and /readyz follows the flows topic:
// ready once it is reached, not ready while it is away.
func TestIngestDaemon(t *testing.T) {
	kf, err := kfake.NewCluster(kfake.Ports(0))
	if err != nil {
		t.Fatal(err)
	}
	defer kf.Close()
	cfg, err := loadConfig(ingestConfigFile(t, kf.ListenAddrs()[0]), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	cfg.HTTP.Listen = "127.0.0.1:0"
	cfg.Collector.Listeners[0].URL = "auto://127.0.0.1:0"
	logger := slog.New(slog.DiscardHandler)
	p, err := build(cfg, clock.Live{}, logger, io.Discard, true)
	if err != nil {
		t.Fatal(err)
	}
	if p.table != nil || p.engine != nil || p.sinks != nil || p.publisher == nil {
		t.Fatalf("role ingest built table %v, engine %v, sinks %v, publisher %v", p.table != nil, p.engine != nil, p.sinks != nil, p.publisher != nil)
	}
	if err := p.start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer p.stop(logger)
	ready := func() bool {
		resp, err := http.Get("http://" + p.httpAddr() + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	wait := func(what string, want bool) {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for ready() != want {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	wait("ready", true)
	kf.Close()
	// Readiness follows writes: records must flow for the outage to show.
	p.publisher.Handle([]flow.Record{{
		SrcAddr: netip.MustParseAddr("192.0.2.1"), DstAddr: netip.MustParseAddr("198.51.100.2"),
		Proto: flow.ProtoTCP, Packets: 1, Bytes: 40, Start: time.Now(), End: time.Now(),
	}})
	wait("not ready with the broker away", false)
}
