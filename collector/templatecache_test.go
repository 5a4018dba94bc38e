package collector

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"
)

// TestTemplateResendNotReparsed checks the template cache: a stored
// template's wire form is the record it came from (so a resent record is
// recognised byte for byte), a resent set is applied without parsing (no
// allocation), and a changed record is parsed again. The differential
// tests compare the cached path against always parsing.
func TestTemplateResendNotReparsed(t *testing.T) {
	cases := []struct {
		name    string
		version uint16
		set     []byte
		changed []byte // same template ID, another layout
	}{
		{"v9", 9, templateSet(9, 300, v4Flow...), templateSet(9, 300, v4Flow[:3]...)},
		{"v9 options", 9, v9OptionsTemplateSet(301, []ie{{1, 0, 4}}, []ie{{34, 0, 4}, {48, 0, 1}}),
			v9OptionsTemplateSet(301, []ie{{1, 0, 4}}, []ie{{34, 0, 4}})},
		{"ipfix with enterprise fields", 10, templateSet(10, 256, append(v4Flow, ie{118, 35632, 2}, ie{119, 35632, 0xffff})...),
			templateSet(10, 256, append(v4Flow, ie{118, 35632, 2})...)},
		{"ipfix options", 10, ipfixOptionsTemplateSet(257, []ie{{302, 0, 4}}, []ie{{305, 0, 4}, {306, 0, 4}}),
			ipfixOptionsTemplateSet(257, []ie{{302, 0, 4}}, []ie{{305, 0, 4}})},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			msg := func(set []byte) []byte {
				if tc.version == 9 {
					return v9Msg(0, 1000, 1000, set)
				}
				return ipfixMsg(0, 1000, set)
			}
			h := newHarness(t, nil)
			h.send(exp1, t0, msg(tc.set))
			e := h.c.known(exp1.Addr())
			key := tmplKey{tc.version, 0, binary.BigEndian.Uint16(tc.set[4:])}
			entry := e.templates[key]
			if entry == nil {
				t.Fatal("template not stored")
			}
			// The set holds one record, padded to 4 bytes.
			if rec := tc.set[4:]; !bytes.Equal(entry.raw, rec[:len(entry.raw)]) || !allZero(rec[len(entry.raw):]) {
				t.Errorf("wire form %x, record %x", entry.raw, rec)
			}
			tmpl := entry.tmpl
			h.send(exp1, t0.Add(time.Minute), msg(tc.set))
			if entry.lastSeen != t0.Add(time.Minute) {
				t.Error("resent template not refreshed")
			}
			resend := msg(tc.set)
			// One decoder held, as a worker holds it: HandleDatagram takes
			// it from a sync.Pool, which under the race detector drops
			// items at random, and a new decoder would count here.
			d := newDecoder(h.c)
			if allocs := testing.AllocsPerRun(100, func() {
				d.handle(exp1, resend, t0.Add(time.Minute), kindAuto)
				d.flush()
			}); allocs != 0 {
				t.Errorf("%v allocations per resent template set", allocs)
			}
			for range 101 { // AllocsPerRun's runs: keep the reference path in step
				h.ref.send(exp1, resend, t0.Add(time.Minute))
			}
			h.send(exp1, t0.Add(2*time.Minute), msg(tc.changed))
			if entry := e.templates[key]; sameTemplate(entry.tmpl, tmpl) || !bytes.Equal(entry.raw, encodeTemplate(tc.version, entry.tmpl)) {
				t.Error("changed template not parsed again")
			}
		})
	}
}
