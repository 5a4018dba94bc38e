//go:build unix

package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// lineWriter hands each write of run to the test while run goes on.
type lineWriter struct {
	ch chan string
}

func (b *lineWriter) Write(p []byte) (int, error) {
	b.ch <- string(p)
	return len(p), nil
}

// TestRun starts the broker with a seeded topic, reads its address from
// stdout, checks the topic's partitions and an automatically created topic's
// through a real client, and stops it by cancelling the context (as SIGTERM
// does).
func TestRun(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	out := &lineWriter{ch: make(chan string, 4)}
	var stderr bytes.Buffer
	done := make(chan error, 1)
	report := make(chan os.Signal, 1)
	go func() {
		done <- run(ctx, []string{"-partitions", "3", "-topic", "seeded:5", "-report", "auto", "-report-group", "g"}, report, out, &stderr)
	}()
	var line string
	select {
	case line = <-out.ch:
	case err := <-done:
		t.Fatalf("run: %v\n%s", err, stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatal("no address printed")
	}
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening ")
	if !ok || !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Fatalf("first line %q, want listening 127.0.0.1:PORT", line)
	}

	client := &kafka.Client{Addr: kafka.TCP(addr), Timeout: 10 * time.Second}
	meta, err := client.Metadata(context.Background(), &kafka.MetadataRequest{Topics: []string{"seeded"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(meta.Topics) != 1 || len(meta.Topics[0].Partitions) != 5 {
		t.Fatalf("seeded topic: %+v, want 5 partitions", meta.Topics)
	}
	w := &kafka.Writer{Addr: kafka.TCP(addr), Topic: "auto", AllowAutoTopicCreation: true, RequiredAcks: kafka.RequireAll}
	defer w.Close()
	var werr error
	for range 50 { // the first write may race the topic's creation
		if werr = w.WriteMessages(context.Background(), kafka.Message{Value: []byte("x")}); werr == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if werr != nil {
		t.Fatal(werr)
	}
	meta, err = client.Metadata(context.Background(), &kafka.MetadataRequest{Topics: []string{"auto"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(meta.Topics) != 1 || len(meta.Topics[0].Partitions) != 3 {
		t.Fatalf("auto topic: %+v, want 3 partitions", meta.Topics)
	}
	// A group member reads the message and commits it: no lag left.
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{addr}, GroupID: "g", Topic: "auto", MaxWait: 100 * time.Millisecond})
	defer r.Close()
	rctx, rcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer rcancel()
	if _, err := r.ReadMessage(rctx); err != nil {
		t.Fatal(err)
	}
	report <- syscall.SIGUSR1
	for _, want := range []string{"topic auto partitions 3 messages 1 bytes ", "group g state Stable members 1 lag 0\n"} {
		select {
		case line := <-out.ch:
			if !strings.HasPrefix(line, want) || strings.HasSuffix(line, " bytes 0\n") {
				t.Errorf("report %q, want %q (bytes > 0)", line, want)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("no report after SIGUSR1")
		}
	}

	cancel()
	select {
	case <-out.ch: // the report at exit
	case <-time.After(30 * time.Second):
		t.Fatal("no report at exit")
	}
	<-out.ch
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not return after cancel")
	}
}

// TestBadFlags refuses what it cannot run.
func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-topic", "x"},
		{"-topic", "x:0"},
		{"-partitions", "0"},
		{"extra"},
	} {
		var out, errb bytes.Buffer
		if err := run(context.Background(), args, nil, &out, &errb); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}
