package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"strings"
	"testing"

	"github.com/flowcheck/flowcheck/cmd/flowgen/gen"
)

func TestParseArgs(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		err   string
		check func(t *testing.T, c gen.Configuration, asJSON bool)
	}{
		{args: nil, check: func(t *testing.T, c gen.Configuration, _ bool) {
			if c.Version != gen.V9 || c.RecordsPerPacket != 25 || c.Target.String() != "127.0.0.1:2055" {
				t.Errorf("defaults: %+v", c)
			}
		}},
		{args: []string{"--version", "5"}, check: func(t *testing.T, c gen.Configuration, _ bool) {
			if c.Version != gen.V5 || c.RecordsPerPacket != 30 {
				t.Errorf("v5: version %d, %d records per packet", c.Version, c.RecordsPerPacket)
			}
		}},
		{args: []string{"--version", "v5", "--records-per-packet", "10"}, check: func(t *testing.T, c gen.Configuration, _ bool) {
			if c.RecordsPerPacket != 10 {
				t.Errorf("explicit records per packet lost: %d", c.RecordsPerPacket)
			}
		}},
		{args: []string{"--version", "IPFIX", "--json", "--target", "localhost:9995", "--mix", "dns=1", "--count", "5", "--duration", "0"},
			check: func(t *testing.T, c gen.Configuration, asJSON bool) {
				if c.Version != gen.IPFIX || !asJSON || c.Target.Addr().String() != "127.0.0.1" || c.Target.Port() != 9995 ||
					c.Population.Mix != (gen.Mix{DNS: 1}) || c.Count != 5 || c.Duration != 0 {
					t.Errorf("parsed %+v json=%v", c, asJSON)
				}
			}},
		{args: []string{"--target", "192.0.2.1:2055"}, err: "not a loopback"},
		{args: []string{"--target", "192.0.2.1:2055", "--allow-remote"}},
		{args: []string{"--version", "8"}, err: "version:"},
		{args: []string{"--mix", "gopher=1"}, err: "unknown application"},
		{args: []string{"--exporters", "9"}, err: "exporters:"},
		{args: []string{"--duration", "0"}, err: "set a duration or a count"},
		{args: []string{"extra"}, err: "unexpected argument"},
		{args: []string{"--nosuchflag"}, err: "nosuchflag"},
	} {
		c, asJSON, err := parseArgs(tc.args)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%v: error %v, want %q", tc.args, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%v: %v", tc.args, err)
			continue
		}
		if tc.check != nil {
			tc.check(t, c, asJSON)
		}
	}
}

func TestRunPrintsWhatItSent(t *testing.T) {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	target := conn.LocalAddr().String()

	var out bytes.Buffer
	if err := run(context.Background(), []string{"--target", target, "--count", "100", "--duration", "0", "--json", "--hosts", "50"}, &out); err != nil {
		t.Fatal(err)
	}
	var r report
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("%v: %q", err, out.String())
	}
	if r.Records != 100 || r.Packets != 4 || r.Bytes == 0 || r.Hosts != 50 || r.Version != 9 {
		t.Errorf("report %+v", r)
	}

	out.Reset()
	if err := run(context.Background(), []string{"--target", target, "--count", "60", "--duration", "0", "--version", "5"}, &out); err != nil {
		t.Fatal(err)
	}
	line := out.String()
	if !strings.HasPrefix(line, "flowgen: sent records=60 packets=2 ") || strings.Count(line, "\n") != 1 {
		t.Errorf("line %q", line)
	}
}
