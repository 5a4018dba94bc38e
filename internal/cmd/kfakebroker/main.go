// Command kfakebroker runs franz-go's kfake, an in-memory fake Kafka cluster
// of one broker that speaks the real wire protocol, as a process of its own,
// so that tests about processes (ingest and check workers, kcat, goflow2)
// share a broker that outlives any one of them. It binds 127.0.0.1 only,
// prints "listening ADDR" on stdout once it accepts connections and exits 0
// on SIGTERM or SIGINT. Everything it holds is in memory: a test bounds its
// volume.
//
//	kfakebroker -port 0 -partitions 8 -topic flowcheck.flows:8 -min-session-timeout 1s
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "kfakebroker:", err)
		os.Exit(2)
	}
}

// topicsFlag collects -topic NAME:PARTITIONS, repeatable.
type topicsFlag map[string]int32

func (f topicsFlag) String() string { return "" }

func (f topicsFlag) Set(s string) error {
	name, n, ok := strings.Cut(s, ":")
	p, err := strconv.ParseInt(n, 10, 32)
	if !ok || name == "" || err != nil || p < 1 {
		return fmt.Errorf("want NAME:PARTITIONS, got %q", s)
	}
	f[name] = int32(p)
	return nil
}

// run starts the cluster, says where it listens and holds it until ctx ends.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("kfakebroker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	port := fs.Int("port", 0, "TCP port on 127.0.0.1 (0: any free port)")
	partitions := fs.Int("partitions", 8, "partitions of an automatically created topic")
	minSession := fs.Duration("min-session-timeout", time.Second,
		"smallest consumer-group session timeout accepted (Kafka's default, 6s, makes failover tests slow)")
	topics := topicsFlag{}
	fs.Var(topics, "topic", "topic to create at start, NAME:PARTITIONS (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *partitions < 1 {
		return errors.New("-partitions must be at least 1")
	}
	opts := []kfake.Opt{
		kfake.Ports(*port),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(*partitions),
		kfake.GroupMinSessionTimeout(*minSession),
	}
	for name, n := range topics {
		opts = append(opts, kfake.SeedTopics(n, name))
	}
	cluster, err := kfake.NewCluster(opts...)
	if err != nil {
		return err
	}
	defer cluster.Close()
	fmt.Fprintf(stdout, "listening %s\n", cluster.ListenAddrs()[0])
	<-ctx.Done()
	return nil
}
