package aggregate

import "github.com/flowcheck/flowcheck/flow"

// sideState is what one direction of a conversation showed: whether it
// carried a packet, and the OR of its TCP flags.
type sideState struct {
	seen  bool
	flags uint8
}

// verdict is the outcome of a conversation.
type verdict uint8

const (
	// verdictNone: answered (or nothing the client sent), no effect.
	verdictNone verdict = iota
	// verdictOneSided: the server sent no packet back.
	verdictOneSided
	// verdictRefused: TCP, the server answered only with RST (no SYN-ACK).
	verdictRefused
)

// The values of decision.only.
const (
	onlyClient = 1
	onlyServer = 2
)

// decision is a decided conversation that changes contact sets.
type decision struct {
	client, server [16]byte // 16-byte forms, as in convKey
	sport          uint16
	proto          uint8
	vlan           uint16
	verdict        verdict
	// rate is the sampling rate behind the verdict: 1 for a conversation
	// seen unsampled, N for a sampled service contact (each stands for N
	// conversations).
	rate uint32
	// app and addFlow: the only record of a one-sided UDP conversation
	// came from the lower port, so countsFlow took it for the server's
	// direction and counted no flow, while the tracker made its sender
	// the client; the L7 entry app of both hosts then gains the flow.
	app     l7ID
	addFlow bool
	// only is the one host to commit to (onlyClient, onlyServer), or 0
	// for both: see convKey's onlyA and onlyB.
	only uint8
	// lossy: one-sided, and ingest lost datagrams during the reply
	// window (or a window before it, when a reply may come first), so
	// the reply may have been lost rather than never sent.
	lossy bool
}

// synOnly reports whether a direction's flags show a SYN without an ACK:
// the mark of the side that opened the connection.
func synOnly(f uint8) bool { return f&(flow.TCPSyn|flow.TCPAck) == flow.TCPSyn }

// decide applies the no-reply semantics to the two sides of a conversation.
// It returns the verdict and whether endpoint a is the client.
//
// Roles: for TCP, the side whose flags show SYN without ACK is the client
// (when exactly one side does). Otherwise the side with the lower port is
// the server; on equal ports the lower address (endpoint a) is the client.
// A conversation seen in one direction only is one-sided with the sender as
// client, except a TCP sender whose flags lack SYN-without-ACK and whose
// port is the lower one: that is a server talking to a silent client
// (backscatter, or a lost client record), not an attempt, so it has no
// effect. UDP has no flags: a lone UDP sender is always the client.
func decide(proto uint8, a, b sideState, pa, pb uint16) (verdict, bool) {
	switch {
	case a.seen && b.seen:
		aClient := roleAIsClient(proto, a, b, pa, pb)
		srv := b
		if !aClient {
			srv = a
		}
		if proto == flow.ProtoTCP && srv.flags&flow.TCPRst != 0 && srv.flags&flow.TCPSyn == 0 {
			return verdictRefused, aClient
		}
		return verdictNone, aClient
	case a.seen || b.seen:
		sender, sp, rp := a, pa, pb
		aSent := a.seen
		if !aSent {
			sender, sp, rp = b, pb, pa
		}
		if proto == flow.ProtoTCP && !synOnly(sender.flags) && sp < rp {
			return verdictNone, !aSent
		}
		return verdictOneSided, aSent
	}
	return verdictNone, true
}

// decideKey decides conversation k from its two sides: decide for a
// 5-tuple, decideSampled for a sampled service contact (whose endpoint a
// is the client).
func decideKey(k *convKey, a, b sideState) (verdict, bool) {
	if k.sampled() {
		return decideSampled(a, b), true
	}
	return decide(k.proto(), a, b, k.pa(), k.pb())
}

// decideSampled decides a sampled TCP service contact from the OR of the
// flags its client (cli) and server (srv) sent in the sampled packets of
// one reply window. Only what was sampled is evidence; the absence of a
// reply is not, unless the client only ever tried to connect:
//   - refused: the server sent RST, and neither SYN nor data flags (PSH,
//     FIN, URG), and the client never acknowledged anything (no ACK);
//   - one-sided: the client sent only connection attempts (SYN without
//     ACK or RST) and nothing of the server was sampled;
//   - otherwise answered: a SYN-ACK or data from the server, or an ACK
//     from the client (an established connection), was sampled, or the
//     client's packets were not attempts.
func decideSampled(cli, srv sideState) verdict {
	const data = flow.TCPSyn | flow.TCPFin | flow.TCPPsh | flow.TCPUrg
	switch {
	case srv.seen:
		if srv.flags&flow.TCPRst != 0 && srv.flags&data == 0 && (!cli.seen || cli.flags&flow.TCPAck == 0) {
			return verdictRefused
		}
	case cli.seen && synOnly(cli.flags) && cli.flags&flow.TCPRst == 0:
		return verdictOneSided
	}
	return verdictNone
}

// roleAIsClient tells whether endpoint a is the client of a conversation
// seen in both directions.
func roleAIsClient(proto uint8, a, b sideState, pa, pb uint16) bool {
	if proto == flow.ProtoTCP {
		as, bs := synOnly(a.flags), synOnly(b.flags)
		if as && !bs {
			return true
		}
		if bs && !as {
			return false
		}
	}
	if pa != pb {
		return pa > pb
	}
	return true
}

// makeDecision turns a verdict on key into a decision; ok is false when
// there is nothing to commit. app is the application of the
// conversation's records (noApp when unknown: pairs, biflows).
func makeDecision(k *convKey, v verdict, aClient bool, app l7ID) (decision, bool) {
	if v == verdictNone {
		return decision{}, false
	}
	d := decision{proto: k.proto(), vlan: k.vlan(), verdict: v, rate: k.rate(), app: app}
	var cport uint16
	if aClient {
		d.client, d.server, d.sport, cport = k.a, k.b, k.pb(), k.pa()
	} else {
		d.client, d.server, d.sport, cport = k.b, k.a, k.pa(), k.pb()
	}
	switch o := k.only(); {
	case o == 0:
	case (o == onlyA) == aClient:
		d.only = onlyClient
	default:
		d.only = onlyServer
	}
	// countsFlow counts a UDP record as a flow when it comes from the
	// higher port (the lower address on equal ports): the only record of
	// a one-sided conversation that does not was counted by nobody.
	d.addFlow = app != noApp && v == verdictOneSided && d.proto == flow.ProtoUDP && !k.sampled() &&
		(cport < d.sport || (cport == d.sport && !aClient))
	return d, true
}

// decideBiflow decides a biflow record at once: its forward side is src
// (endpoint a when srcIsA), its reverse side dst.
func decideBiflow(r *flow.Record, k *convKey, srcIsA bool) (decision, bool) {
	fwdFlags, revFlags := r.TCPFlags, r.ReverseTCPFlags
	if r.ClientTCPFlags|r.ServerTCPFlags != 0 {
		// nProbe's per-role flags are more precise than the OR of both.
		fwdFlags, revFlags = r.ClientTCPFlags, r.ServerTCPFlags
	}
	fwd := sideState{seen: r.Packets > 0, flags: fwdFlags}
	rev := sideState{seen: r.ReversePackets > 0, flags: revFlags}
	a, b := fwd, rev
	if !srcIsA {
		a, b = rev, fwd
	}
	v, aClient := decide(k.proto(), a, b, k.pa(), k.pb())
	return makeDecision(k, v, aClient, noApp)
}
