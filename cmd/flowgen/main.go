// Command flowgen sends synthetic NetFlow v5, v9 or IPFIX to a collector, at
// a target rate or as fast as it can, from one or several simulated
// exporters, deterministically from a seed. It prints what it sent as one
// line (or JSON). Only loopback targets are allowed unless --allow-remote.
//
//	flowgen --target 127.0.0.1:2055 --version 9 --rate 500000 --duration 10s
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/flowcheck/flowcheck/cmd/flowgen/gen"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "flowgen:", err)
		os.Exit(2)
	}
}

// report is the JSON form of a run's result.
type report struct {
	Version    int     `json:"version"`
	Target     string  `json:"target"`
	Exporters  int     `json:"exporters"`
	Records    uint64  `json:"records"`
	Packets    uint64  `json:"packets"`
	Bytes      uint64  `json:"bytes"`
	SendErrors uint64  `json:"send_errors"`
	ElapsedSec float64 `json:"elapsed_seconds"`
	Rate       float64 `json:"records_per_second"`
	TargetRate float64 `json:"target_rate"`
	Hosts      int     `json:"hosts"`
	Cycle      int     `json:"cycle_records"`
	Seed       uint64  `json:"seed"`
}

// run parses args, sends, and writes the result line to out.
func run(ctx context.Context, args []string, out io.Writer) error {
	cfg, asJSON, err := parseArgs(args)
	if err != nil {
		return err
	}
	s, err := gen.NewSender(cfg)
	if err != nil {
		return err
	}
	defer s.Close()
	st, runErr := s.Run(ctx)
	r := report{
		Version: cfg.Version, Target: cfg.Target.String(), Exporters: cfg.Exporters,
		Records: st.Records, Packets: st.Packets, Bytes: st.Bytes, SendErrors: st.SendErrors,
		ElapsedSec: st.Elapsed.Seconds(), Rate: st.Rate(), TargetRate: cfg.Rate,
		Hosts: s.Population().Hosts(), Cycle: s.Population().Len(), Seed: cfg.Population.Seed,
	}
	if asJSON {
		if err := json.NewEncoder(out).Encode(r); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(out, "flowgen: sent records=%d packets=%d bytes=%d send_errors=%d elapsed=%.3fs rate=%.0f rec/s (%.0f pkt/s) version=%d exporters=%d target=%s\n",
			r.Records, r.Packets, r.Bytes, r.SendErrors, r.ElapsedSec, r.Rate,
			float64(r.Packets)/max(r.ElapsedSec, 1e-9), r.Version, r.Exporters, r.Target)
	}
	return runErr
}

// parseArgs turns the command line into a generator configuration.
func parseArgs(args []string) (gen.Configuration, bool, error) {
	cfg := gen.DefaultConfiguration()
	fs := flag.NewFlagSet("flowgen", flag.ContinueOnError)
	target := fs.String("target", cfg.Target.String(), "collector UDP address (host:port)")
	version := fs.String("version", "9", "export format: 5, 9, 10 or ipfix")
	mix := fs.String("mix", cfg.Population.Mix.String(), "L7 mix weights (http, tls, dns, ssh, bittorrent)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	fs.BoolVar(&cfg.AllowRemote, "allow-remote", false, "allow a non-loopback target")
	fs.Float64Var(&cfg.Rate, "rate", 0, "target records per second (0: as fast as possible)")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "stop after this long (0: no limit, needs --count)")
	fs.Uint64Var(&cfg.Count, "count", 0, "stop after this many records (0: no limit)")
	fs.IntVar(&cfg.Exporters, "exporters", cfg.Exporters, "simulated exporters, 1-8 (127.0.0.2-127.0.0.9 on loopback)")
	fs.IntVar(&cfg.RecordsPerPacket, "records-per-packet", cfg.RecordsPerPacket, "flow records per datagram")
	fs.IntVar(&cfg.TemplateRefresh, "template-refresh", cfg.TemplateRefresh, "resend the v9/IPFIX template every N datagrams per exporter")
	fs.IntVar(&cfg.Batch, "batch", cfg.Batch, "datagrams per sendmmsg(2) call (1: one sendto each)")
	fs.IntVar(&cfg.SendBuffer, "sndbuf", 0, "SO_SNDBUF bytes per socket (0: system default)")
	fs.Uint64Var(&cfg.Population.Seed, "seed", cfg.Population.Seed, "seed of the host population")
	fs.IntVar(&cfg.Population.Hosts, "hosts", cfg.Population.Hosts, "distinct hosts")
	fs.IntVar(&cfg.Population.Conversations, "conversations", 0, "distinct conversations in the cycle, 0 or >= hosts (0: max(hosts, 1024))")
	fs.Float64Var(&cfg.Population.LocalShare, "local-share", cfg.Population.LocalShare, "share of local (10.x) hosts")
	fs.Float64Var(&cfg.Population.OneSidedShare, "one-sided", cfg.Population.OneSidedShare, "share of conversations without a reverse record")
	fs.IntVar(&cfg.Population.ReplyDelay, "reply-delay", 0, "records between a conversation's forward and reverse records (0: adjacent, as softflowd sends them)")
	if err := fs.Parse(args); err != nil {
		return cfg, false, err
	}
	if fs.NArg() > 0 {
		return cfg, false, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var err error
	if cfg.Version, err = parseVersion(*version); err != nil {
		return cfg, false, err
	}
	if cfg.Population.Mix, err = gen.ParseMix(*mix); err != nil {
		return cfg, false, err
	}
	if cfg.Target, err = resolveTarget(*target); err != nil {
		return cfg, false, err
	}
	// v5 exporters fill datagrams to the format's limit of 30 records.
	if cfg.Version == gen.V5 && !flagSet(fs, "records-per-packet") {
		cfg.RecordsPerPacket = 30
	}
	return cfg, *asJSON, cfg.Validate()
}

// flagSet reports whether name was given on the command line.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// parseVersion reads "5", "9", "10", "v9", "ipfix".
func parseVersion(s string) (int, error) {
	switch strings.TrimPrefix(strings.ToLower(s), "v") {
	case "5":
		return gen.V5, nil
	case "9":
		return gen.V9, nil
	case "10", "ipfix":
		return gen.IPFIX, nil
	}
	return 0, fmt.Errorf("version: %q is not 5, 9, 10 or ipfix", s)
}

// resolveTarget accepts an IP literal or a host name (e.g. localhost, looked
// up once, IPv4 preferred) with a port.
func resolveTarget(s string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap, nil
	}
	ua, err := net.ResolveUDPAddr("udp4", s)
	if err != nil {
		if ua, err = net.ResolveUDPAddr("udp", s); err != nil {
			return netip.AddrPort{}, fmt.Errorf("target: %w", err)
		}
	}
	ap := ua.AddrPort()
	if !ap.IsValid() {
		return netip.AddrPort{}, errors.New("target: no address")
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}
