package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"time"

	"github.com/flowcheck/flowcheck/clock"
	"github.com/flowcheck/flowcheck/pcapsrc"
)

// runReplay is `collector replay --config FILE --pcap FILE [--port N]
// [--speed N|max]`: the whole pipeline over a capture of export packets,
// with the clock following the capture's timestamps, so that reply windows,
// expiry and ticks happen in capture time. At the end the clock moves past
// the reply window so pending conversations are decided, a last tick runs,
// and the sinks flush. Alerts go to the configured sinks (stdout in the
// example configuration); logs go to stderr. With cluster.role ingest the
// records are published to the flows topic instead, and replay exits once
// the brokers acknowledged them all (status 1 when some were not).
func runReplay(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "configuration `file` (YAML); the embedded example when empty")
	pcapPath := fs.String("pcap", "", "capture `file` of export packets (pcap or pcapng)")
	port := fs.Uint("port", 0, "only replay UDP datagrams sent to this `port` (0: every UDP datagram)")
	speedArg := fs.String("speed", "max", "`N` times the capture's pace, or max (as fast as possible)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: collector replay --config FILE --pcap FILE [--port N] [--speed N|max]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitConfig
	}
	speed, err := parseSpeed(*speedArg)
	if err != nil || *pcapPath == "" || fs.NArg() != 0 || *port > 65535 {
		if err != nil {
			fmt.Fprintf(stderr, "collector replay: %v\n", err)
		}
		fs.Usage()
		return exitConfig
	}

	cfg, err := loadConfig(*configPath, environment())
	if err != nil {
		fmt.Fprintf(stderr, "collector: configuration: %v\n", err)
		return exitConfig
	}
	logger := newLogger(cfg.Log, stderr)

	r, err := pcapsrc.Open(*pcapPath)
	if err != nil {
		logger.Error("cannot open capture", "err", err)
		return exitFailure
	}
	defer r.Close()
	r.SetPort(uint16(*port))

	// The clock starts at the first datagram, so that components built now
	// already live in capture time.
	first, readErr := r.Next()
	if errors.Is(readErr, io.EOF) {
		logger.Warn("nothing to replay", "pcap", *pcapPath, "why", whyNothing(r.Stats(), uint16(*port), nil))
	} else if readErr != nil {
		logger.Error("cannot read capture", "err", readErr)
		return exitFailure
	}
	start := first.Time
	if readErr != nil {
		start = time.Now()
	}
	clk := clock.NewManual(start)

	p, err := build(cfg, clk, logger, stdout, false)
	if err != nil {
		return buildFailed(logger, stderr, err)
	}
	if err := p.start(context.Background()); err != nil {
		logger.Error("cannot start", "err", err)
		p.stop(logger)
		return exitFailure
	}

	wallStart := time.Now()
	datagrams := 0
	// last is the capture time of the last datagram: the capture's
	// duration ends there, not after the reply window added below.
	last := start
	for dg := first; readErr == nil; dg, readErr = r.Next() {
		if speed > 0 {
			// Pace: capture time elapsed / speed should have passed.
			due := wallStart.Add(time.Duration(float64(dg.Time.Sub(start)) / speed))
			if d := time.Until(due); d > 0 {
				time.Sleep(d)
			}
		}
		clk.Set(dg.Time)
		p.collector.HandleDatagram(dg.Src, dg.Payload, dg.Time)
		if p.sched != nil {
			p.sched.advance(clk.Now())
		}
		datagrams++
		last = dg.Time
	}
	status := exitOK
	if !errors.Is(readErr, io.EOF) {
		logger.Error("capture read error; finishing with what was read", "err", readErr)
		status = exitFailure
	}

	if p.publisher != nil {
		return finishPublish(p, logger, status, datagrams, last.Sub(start), wallStart)
	}

	// End of capture: every pending conversation is decided, and a last tick
	// checks the result.
	clk.Set(clk.Now().Add(cfg.Aggregate.ReplyWindow + time.Second))
	p.sched.finish(clk.Now())
	stats := r.Stats()
	logger.Info("replay done", "datagrams", datagrams, "frames", stats.Frames, "skipped", stats.Skipped,
		"hosts", p.table.Len(), "engaged_alerts", len(p.engine.Engaged()),
		"capture_duration", last.Sub(start), "wall", time.Since(wallStart).Round(time.Millisecond))
	if err := p.stop(logger); err != nil {
		logger.Error("stopped with errors", "err", err)
		return exitFailure
	}
	return status
}

// finishPublish ends the replay of role ingest: the publisher sends what
// it holds and waits for the brokers' acknowledgements. The status is a
// failure when some records were not acknowledged or were dropped.
func finishPublish(p *pipeline, logger *slog.Logger, status, datagrams int, captured time.Duration, wallStart time.Time) int {
	err := p.stop(logger)
	pub := p.publisher
	logger.Info("replay published", "datagrams", datagrams, "record_copies_acknowledged", pub.Acknowledged(),
		"dropped", pub.Dropped(), "capture_duration", captured, "wall", time.Since(wallStart).Round(time.Millisecond))
	if err != nil || pub.Dropped() > 0 {
		logger.Error("some records were not published", "err", err, "dropped", pub.Dropped())
		return exitFailure
	}
	return status
}

// parseSpeed reads --speed: "max" (0: no pacing) or a positive factor.
func parseSpeed(s string) (float64, error) {
	if s == "max" {
		return 0, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f <= 0 || f > 1e6 {
		return 0, fmt.Errorf("--speed must be max or a positive number, got %q", s)
	}
	return f, nil
}
