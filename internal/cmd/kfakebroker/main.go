//go:build unix

// Command kfakebroker runs franz-go's kfake, an in-memory fake Kafka cluster
// of one broker that speaks the real wire protocol, as a process of its own,
// so that tests about processes (ingest and check workers, kcat, goflow2)
// share a broker that outlives any one of them. It binds 127.0.0.1 only,
// prints "listening ADDR" on stdout once it accepts connections and exits 0
// on SIGTERM or SIGINT. Everything it holds is in memory: a test bounds its
// volume. For benchmarks, -report TOPIC prints on SIGUSR1 and at exit what a
// topic holds: "topic NAME partitions P messages M bytes B", bytes being
// the record batches as stored (compressed); -report-group GROUP adds
// "group NAME state S members N lag L", L being the messages of the
// reported topics past the group's committed offsets.
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
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	if err := run(ctx, os.Args[1:], usr1, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "kfakebroker:", err)
		os.Exit(2)
	}
}

// listFlag collects -report TOPIC, repeatable.
type listFlag []string

func (f *listFlag) String() string { return strings.Join(*f, ",") }

func (f *listFlag) Set(s string) error {
	*f = append(*f, s)
	return nil
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

// run starts the cluster, says where it listens and holds it until ctx
// ends, reporting the topics asked for at each value of report and at the
// end.
func run(ctx context.Context, args []string, report <-chan os.Signal, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("kfakebroker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	port := fs.Int("port", 0, "TCP port on 127.0.0.1 (0: any free port)")
	partitions := fs.Int("partitions", 8, "partitions of an automatically created topic")
	minSession := fs.Duration("min-session-timeout", time.Second,
		"smallest consumer-group session timeout accepted (Kafka's default, 6s, makes failover tests slow)")
	topics := topicsFlag{}
	fs.Var(topics, "topic", "topic to create at start, NAME:PARTITIONS (repeatable)")
	var reported, groups listFlag
	fs.Var(&reported, "report", "topic whose messages and bytes are printed on SIGUSR1 and at exit (repeatable)")
	fs.Var(&groups, "report-group", "consumer group whose members and lag on the -report topics are printed with them (repeatable)")
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
	for {
		select {
		case <-report:
			printReport(stdout, cluster, reported, groups)
		case <-ctx.Done():
			printReport(stdout, cluster, reported, groups)
			return nil
		}
	}
}

// printReport prints one line per topic: its partitions, the messages it
// holds and their bytes as stored; then one line per group: its state,
// members and lag on those topics.
func printReport(w io.Writer, cluster *kfake.Cluster, topics, groups []string) {
	for _, topic := range topics {
		var messages, bytes int64
		parts := cluster.PartitionInfos(topic)
		for _, p := range parts {
			if p != nil {
				messages += p.HighWatermark - p.LogStartOffset
				bytes += p.NumBytes
			}
		}
		fmt.Fprintf(w, "topic %s partitions %d messages %d bytes %d\n", topic, len(parts), messages, bytes)
	}
	for _, group := range groups {
		g := cluster.GroupInfo(group)
		if g == nil {
			fmt.Fprintf(w, "group %s state none members 0 lag -1\n", group)
			continue
		}
		var lag int64
		for _, topic := range topics {
			for _, p := range cluster.PartitionInfos(topic) {
				from := p.LogStartOffset
				if c, ok := g.Commits[topic][p.Partition]; ok {
					from = max(from, c.Offset)
				}
				lag += max(0, p.HighWatermark-from)
			}
		}
		fmt.Fprintf(w, "group %s state %s members %d lag %d\n", group, g.State, len(g.Members), lag)
	}
}
