package collector

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/flowcheck/flowcheck/flow"
)

// fuzzDecode runs the datagram through a fresh collector after the
// template datagrams, so that data decoding is reached, and checks the
// invariants that must hold whatever the input: no panic, records carry
// the exporter's address.
func fuzzDecode(t *testing.T, prime [][]byte, payload []byte) {
	c := newTestComponent(t, DefaultConfiguration(), func(batch []flow.Record) {
		for _, r := range batch {
			if r.Exporter != exp1.Addr() {
				t.Fatalf("record with exporter %v", r.Exporter)
			}
		}
	})
	for _, p := range prime {
		c.HandleDatagram(exp1, p, t0)
	}
	c.HandleDatagram(exp1, payload, t0)
	c.HandleDatagram(exp1, payload, t0.Add(1e9)) // again, with its own templates learnt
	_ = c.Exporters()
}

// seeds returns the first datagrams of a capture and those that carry
// templates (set IDs 0-3).
func seeds(t testing.TB, file string, n int) (all, templates [][]byte) {
	for i, d := range loadCapture(t, "../testdata/"+file+".pcap") {
		if i < n {
			all = append(all, d.payload)
		}
		if len(d.payload) > 22 && (d.payload[1] == 9 && binary.BigEndian.Uint16(d.payload[20:]) <= 1 ||
			d.payload[1] == 10 && binary.BigEndian.Uint16(d.payload[16:]) <= 3) && len(templates) < 2 {
			templates = append(templates, d.payload)
		}
	}
	return all, templates
}

// v5Seeds returns the NetFlow v5 seed corpus.
func v5Seeds(f *testing.F) [][]byte {
	all, _ := seeds(f, "softflowd-v5", 4)
	return append(all,
		v5Msg(10000, 1000, 0x4000|100, v5Record("10.0.0.1", "10.0.0.2", 1, 2, 6, 2, 120, 9000, 9500)),
		// Uptime wrap, and trailing bytes after the records.
		append(v5Msg(5, 1000, 0, v5Record("10.0.0.1", "10.0.0.2", 1, 2, 17, 2, 120, 0xfffffff0, 3)), 1, 2, 3),
	)
}

func FuzzNetFlowV5(f *testing.F) {
	for _, s := range v5Seeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) >= 2 {
			b[0], b[1] = 0, 5
		}
		fuzzDecode(t, nil, b)
	})
}

// v9Seeds returns the NetFlow v9 seed corpus and the template datagrams
// that prime a collector before a fuzz input.
func v9Seeds(f *testing.F) (corpus, prime [][]byte) {
	all, tmpl := seeds(f, "softflowd-v9", 4)
	pm, _ := seeds(f, "pmacctd-v9", 4)
	corpus = append(all, pm...)
	corpus = append(corpus,
		v9Msg(0, 1000, 1000, templateSet(9, 256, append(v4Flow, ie{22, 0, 4}, ie{21, 0, 4}, ie{57591, 0, 8})...),
			dataSet(256, cat(v4FlowRecord("10.0.0.1", "10.0.0.2", 1, 2, 3, 4), be32(1), be32(2), []byte("HTTP\x00\x00\x00\x00")))),
		v9Msg(0, 0, 1000, templateSet(9, 256, ie{1, 0, 0}), dataSet(256, make([]byte, 16))),
		v9Msg(3, 10000, 1000,
			v9OptionsTemplateSet(257, []ie{{2, 0, 4}}, []ie{{48, 0, 1}, {34, 0, 4}}),
			dataSet(257, cat(be32(1), []byte{5}, be32(64)), cat(be32(1), []byte{6})),
			templateSet(9, 300, append(v4Flow, ie{48, 0, 1}, ie{57590, 0, 2})...),
			dataSet(300, cat(v4FlowRecord("10.0.0.1", "10.0.0.2", 1, 2, 100, 1), []byte{5}, be16(7)))),
	)
	return corpus, tmpl
}

func FuzzNetFlowV9(f *testing.F) {
	corpus, tmpl := v9Seeds(f)
	for _, s := range corpus {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) >= 2 {
			b[0], b[1] = 0, 9
		}
		fuzzDecode(t, tmpl, b)
	})
}

// ipfixSeeds returns the IPFIX seed corpus and the template datagrams that
// prime a collector before a fuzz input.
func ipfixSeeds(f *testing.F) (corpus, prime [][]byte) {
	for _, file := range []string{"softflowd-ipfix", "softflowd-ipfix-bidir", "pmacctd-ipfix"} {
		all, tmpl := seeds(f, file, 3)
		corpus = append(corpus, all...)
		prime = append(prime, tmpl...)
	}
	corpus = append(corpus,
		ipfixMsg(0, 1000,
			templateSet(10, 256, append(v4Flow, ie{118, penNtop, 2}, ie{119, penNtop, 0xffff}, ie{1, penReverse, 8})...),
			dataSet(256, cat(v4FlowRecord("10.0.0.1", "10.0.0.2", 1, 443, 100, 1), be16(91), varLen([]byte("TLS")), be64(5)))),
		ipfixMsg(0, 1000, ipfixOptionsTemplateSet(300, []ie{{302, 0, 4}}, []ie{{305, 0, 4}, {306, 0, 4}}),
			dataSet(300, cat(be32(7), be32(1), be32(99)))),
		ipfixMsg(0, 1000, templateSet(10, 256, ie{8, 0, 0}), dataSet(256, make([]byte, 64))),
		// Variable-length fields: one long (3-byte prefix), one cut
		// short by the end of the set, a template of only
		// variable-length fields, and an options record without room
		// for its options.
		ipfixMsg(0, 1000,
			templateSet(10, 258, ie{8, 0, 4}, ie{119, penNtop, 0xffff}, ie{12, 0, 4}),
			dataSet(258, cat(ip("10.0.0.1"), varLen(make([]byte, 300)), ip("10.0.0.2")), cat(ip("10.0.0.3"), []byte{9, 1}))),
		ipfixMsg(0, 1000, templateSet(10, 259, ie{27, 0, 0xffff}), dataSet(259, varLen(ip("2001:db8::1")))),
		ipfixMsg(0, 1000, ipfixOptionsTemplateSet(301, []ie{{160, 0, 0xffff}}, []ie{{34, 0, 4}}),
			dataSet(301, varLen(be64(1767225600000)))),
	)
	return corpus, prime
}

func FuzzIPFIX(f *testing.F) {
	corpus, prime := ipfixSeeds(f)
	for _, s := range corpus {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) >= 2 {
			b[0], b[1] = 0, 10
		}
		fuzzDecode(t, prime, b)
	})
}

func FuzzSFlow(f *testing.F) {
	f.Add(sflowMsg(sflowFlowSample(256, 1518, cat(
		[]byte{1, 2, 3, 4, 5, 6, 6, 5, 4, 3, 2, 1, 0x08, 0},
		[]byte{0x45, 0, 0x05, 0xdc, 0, 0, 0x40, 0, 64, 6, 0, 0}, ip("10.1.0.1"), ip("10.1.0.2"),
		be16(33000), be16(443), be32(0), be32(0), []byte{0x50, 0x18, 0, 0}, be32(0)))))
	f.Add(sflowMsg())
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) >= 4 {
			copy(b, []byte{0, 0, 0, 5})
		}
		fuzzDecode(t, nil, b)
	})
}

// FuzzTemplateFlood sends the input, as NetFlow v9 or IPFIX (by its first
// byte), after datagrams of real exports into a registry of 8 templates,
// at receive times that expire templates, through both decode paths (the
// compiled plans, and goflow2's data set decoder reading the registry
// through GetTemplate): the paths must agree, and the registry stay
// consistent and within its cap.
func FuzzTemplateFlood(f *testing.F) {
	rec := v4FlowRecord("10.0.0.1", "10.0.0.2", 1, 2, 3, 4)
	for _, v := range []uint16{9, 10} {
		f.Add(floodTemplates(v, 0, 256, 40)[0])
		f.Add(floodTemplates(v, 5, 1024, 40)[0])
		f.Add(msg(v, 0, templateSet(v, 256, v4Flow...), dataSet(256, rec), templateSet(v, 1024, v4Flow...), dataSet(1024, rec)))
	}
	f.Add(ipfixMsg(0, 1000, set(setIPFIXTemplate, cat(be16(2), be16(0))), templateSet(10, 256, v4Flow...)))
	f.Add(ipfixMsg(0, 1000, ipfixOptionsTemplateSet(300, []ie{{302, 0, 4}}, []ie{{305, 0, 4}}), set(setIPFIXOptions, cat(be16(300), be16(0)))))
	f.Add(v9Msg(0, 1000, 1000, v9OptionsTemplateSet(301, []ie{{1, 0, 4}}, []ie{{34, 0, 4}}), dataSet(301, cat(be32(1), be32(100)))))
	v9, _ := seeds(f, "softflowd-v9", 2)
	ipfix, _ := seeds(f, "softflowd-ipfix", 2)
	prime := append(v9, ipfix...)
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) >= 2 {
			b[0], b[1] = 0, 9+b[0]&1
		}
		h := newHarness(t, func(c *Configuration) {
			c.Templates.Max = 8
			c.Templates.Lifetime = time.Minute
		})
		for _, at := range []time.Duration{0, time.Second, 2 * time.Minute} {
			h.send(exp1, t0.Add(at), prime...)
			h.send(exp1, t0.Add(at), b)
			checkRegistry(t, h.c.known(exp1.Addr()))
		}
	})
}
