#!/usr/bin/env python3
"""truth.py: per-host ground truth of the lab capture, from the raw packets.

usage: truth.py [LAB.pcap] [OUTDIR]     (defaults: lab.pcap, this script's directory)

Writes truth.json (read by the Go tests) and truth.md. The per-conversation semantics are
those of noreply_truth.py (a copy of shared/tools/noreply-truth.py): conversation = 5-tuple,
TCP client = sender of the first bare SYN, UDP client = sender of the first datagram;
one-sided = the server sent no packet back on the 5-tuple within 30 s (a RST is a reply, an
ICMP error is not); refused = TCP answered only by RST (no SYN-ACK). ICMP is not a
conversation here, but its bytes count. Bytes are IP total lengths.

Roles come from make-lab.sh (the table ROLES below must follow it); everything else is
computed from the packets.
"""
import json
import os
import struct
import sys
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import noreply_truth as nt  # noqa: E402

TCP, UDP = nt.TCP, nt.UDP
VERTICAL, HORIZONTAL = "10.77.0.66", "10.77.0.67"
SCANNERS = {VERTICAL: "vertical", HORIZONTAL: "horizontal"}
CLIENTS = [f"10.77.1.{i}" for i in range(1, 37)]
ORIGINS = [f"10.77.2.{i}" for i in range(1, 31)]
# sFlow at 1-in-1 (pmacctd 1.7.7 sfprobe) never sends its last, partly filled datagram:
# the export holds the capture's first 27,277 packets (see README.md).
SFLOW1_PACKETS = 27277


def roles():
    r = {
        "10.77.0.2": "gateway: forward proxy on TCP 3128 for the clients; fetches every request from one of 30 origin servers on a new connection (NAT-like fan-out) and resolves their names through DNS",
        "10.77.0.9": "monitoring: every 9 s pings every host, scrapes HTTP on every client (9100), web, download and origin server, connect-checks the proxy and web2:8443, queries DNS",
        "10.77.0.11": "web server (HTTP/1.1 on TCP 80)",
        "10.77.0.12": "web server (HTTP/1.1 on TCP 80); admin port TCP 8443 open to the monitor only, its firewall resets everyone else",
        "10.77.0.13": "web server (HTTP/1.1 on TCP 80); target of the vertical scan; its firewall drops TCP 1-199 except 80, the other closed ports answer RST",
        "10.77.0.20": "download server (HTTP on TCP 8080): the 5 MB download",
        "10.77.0.53": "DNS server (dnsmasq, UDP 53)",
        VERTICAL: "scanner: nmap -sS -p 1-1000 of 10.77.0.13",
        HORIZONTAL: "scanner: nmap -sS -p 22,445 of the 36 clients 10.77.1.1-36",
    }
    for c in CLIENTS:
        r[c] = "client: browses the three web servers (keep-alive pages and short API calls) and the origins through the proxy, resolves names through DNS; scraped by the monitor on TCP 9100; target of the horizontal sweep"
    r["10.77.1.1"] += "; makes the large download (5 MB from 10.77.0.20:8080)"
    r["10.77.1.36"] += "; tries 10.77.0.12:8443 five times and is refused by its firewall (TCP reset)"
    for c in CLIENTS[27:]:
        r[c] += "; drops TCP 445 (the sweep's 445 probe gets no answer)"
    for o in ORIGINS:
        r[o] = "origin web server (HTTP on TCP 80), fetched by the proxy and scraped by the monitor"
    return r


def label(a):
    """a short role name per address"""
    fixed = {"10.77.0.2": "proxy", "10.77.0.9": "monitor", "10.77.0.11": "web", "10.77.0.12": "web",
             "10.77.0.13": "web", "10.77.0.20": "download", "10.77.0.53": "dns",
             VERTICAL: "scanner", HORIZONTAL: "scanner"}
    if a in fixed:
        return fixed[a]
    return "client" if a in CLIENTS else "origin"


def host_sets(convs, keep=lambda c: True):
    """per address: the sets the checks reason about"""
    H = defaultdict(lambda: {"c_conv": 0, "c_1s": 0, "c_1s_peers": set(), "c_1s_ports": set(), "c_1s_tcp": set(),
                             "c_1s_udp": set(), "c_ref": 0, "c_ref_peers": set(), "c_ref_ports": set(),
                             "s_conv": 0, "s_1s": 0, "s_1s_cli": set(), "s_ref": 0, "s_ref_cli": set()})
    for c in convs:
        if not keep(c):
            continue
        cli, srv = nt.ipstr(c.cli), nt.ipstr(c.srv)
        hc, hs = H[cli], H[srv]
        hc["c_conv"] += 1
        hs["s_conv"] += 1
        if nt.one_sided(c):
            hc["c_1s"] += 1
            hc["c_1s_peers"].add(srv)
            hc["c_1s_ports"].add(c.sport)
            hc["c_1s_tcp" if c.proto == TCP else "c_1s_udp"].add(c.sport)
            hs["s_1s"] += 1
            hs["s_1s_cli"].add(cli)
        elif nt.refused(c):
            hc["c_ref"] += 1
            hc["c_ref_peers"].add(srv)
            hc["c_ref_ports"].add(c.sport)
            hs["s_ref"] += 1
            hs["s_ref_cli"].add(cli)
    return H


def addr_key(a):
    return tuple(int(x) for x in a.split("."))


def view(h):
    ips = lambda s: sorted(s, key=addr_key)  # noqa: E731
    return {
        "as_client": {"conversations": h["c_conv"], "one_sided": h["c_1s"],
                      "one_sided_peers": ips(h["c_1s_peers"]), "one_sided_ports": sorted(h["c_1s_ports"]),
                      "one_sided_tcp_ports": sorted(h["c_1s_tcp"]), "one_sided_udp_ports": sorted(h["c_1s_udp"]),
                      "refused": h["c_ref"], "refused_peers": ips(h["c_ref_peers"]),
                      "refused_ports": sorted(h["c_ref_ports"])},
        "as_server": {"conversations": h["s_conv"], "one_sided": h["s_1s"],
                      "one_sided_clients": ips(h["s_1s_cli"]), "refused": h["s_ref"],
                      "refused_clients": ips(h["s_ref_cli"])},
    }


def flow_keys(path, max_packets=None):
    """unidirectional flow keys as softflowd/pmacctd key them (ICMP by type and code)"""
    keys = set()
    for k, (ts, lt, pkt, orig) in enumerate(nt.read_packets(path)):
        if max_packets is not None and k >= max_packets:
            break
        r = nt.l3(lt, pkt)
        ip = r and nt.parse_ip(pkt, r[1], r[0])
        if not ip:
            continue
        ver, src, dst, proto, o, iplen, first = ip
        if proto in (TCP, UDP) and len(pkt) >= o + 4:
            keys.add((src, dst, proto) + struct.unpack_from("!HH", pkt, o))
        elif proto == nt.ICMP and len(pkt) >= o + 2:
            keys.add((src, dst, proto, pkt[o], pkt[o + 1]))
    return keys


def sumsq(path):
    """per address, the sums of squared IP lengths sent and received: under Bernoulli sampling
    at 1/N the scaled byte count has variance (N-1) * sumsq"""
    tx, rx = defaultdict(int), defaultdict(int)
    for ts, lt, pkt, orig in nt.read_packets(path):
        r = nt.l3(lt, pkt)
        ip = r and nt.parse_ip(pkt, r[1], r[0])
        if ip:
            tx[ip[1]] += ip[5] ** 2
            rx[ip[2]] += ip[5] ** 2
    return tx, rx


def host_bytes(path, max_packets=None):
    _, stats, (btx, brx, ptx, prx), _ = nt.analyse(path, 30.0, False, max_packets)
    qtx, qrx = sumsq(path) if max_packets is None else ({}, {})
    out = {}
    for a in set(btx) | set(brx):
        out[nt.ipstr(a)] = {"bytes_sent": btx[a], "bytes_received": brx[a],
                            "packets_sent": ptx[a], "packets_received": prx[a]}
        if max_packets is None:
            out[nt.ipstr(a)].update({"bytes_sent_sumsq": qtx.get(a, 0), "bytes_received_sumsq": qrx.get(a, 0)})
    return out, stats


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "lab.pcap")
    outdir = sys.argv[2] if len(sys.argv) > 2 else here
    convs, stats, _, t0 = nt.analyse(path)
    hb, _ = host_bytes(path)
    full = host_sets(convs)
    benign_only = host_sets(convs, lambda c: nt.ipstr(c.cli) not in SCANNERS and nt.ipstr(c.srv) not in SCANNERS)
    R = roles()
    addrs = sorted(set(hb) | set(full), key=addr_key)
    missing = [a for a in addrs if a not in R]
    if missing:
        raise SystemExit(f"addresses without a role: {missing}")
    targets = defaultdict(list)
    for c in convs:
        s = nt.ipstr(c.cli)
        if s in SCANNERS:
            targets[nt.ipstr(c.srv)].append(s)
    hosts = {}
    for a in addrs:
        v = view(full[a])
        hosts[a] = {
            "role": label(a),
            "description": R[a],
            "benign": a not in SCANNERS,
            "scanner": SCANNERS.get(a, ""),
            "scanned_by": sorted(set(targets.get(a, []))),
            **v,
            "without_scanners": view(benign_only[a]),
            **hb[a],
        }
    # what the 1-in-1 sFlow export can show: the first SFLOW1_PACKETS packets
    hb1, st1 = host_bytes(path, SFLOW1_PACKETS)
    delta = {a: {k: hb[a][k] - hb1.get(a, {}).get(k, 0) for k in hb1.get(a, hb[a]) if not k.endswith("sumsq")} for a in hb}
    delta = {a: d for a, d in delta.items() if any(d.values())}
    c1, _, _, _ = nt.analyse(path, 30.0, False, SFLOW1_PACKETS)
    same_sets = {a: view(v) for a, v in host_sets(c1).items()} == {a: view(v) for a, v in full.items()}
    stats = dict(stats)
    stats["one_sided_conversations"] = sum(1 for c in convs if nt.one_sided(c))
    stats["refused_conversations"] = sum(1 for c in convs if nt.refused(c))
    stats["tcp_conversations"] = sum(1 for c in convs if c.proto == TCP)
    stats["udp_conversations"] = sum(1 for c in convs if c.proto == UDP)
    stats["unidirectional_flows"] = len(flow_keys(path))
    stats["first_packet_unix"] = round(t0, 6)
    doc = {
        "capture": os.path.basename(path),
        "semantics": "conversation = TCP/UDP 5-tuple (client: sender of the first bare SYN, else of the first packet); "
                     "one-sided = no packet back on the 5-tuple within 30 s (RST counts as a reply, ICMP errors do not); "
                     "refused = TCP answered only by RST; bytes = IP total length; ICMP counts in bytes/packets only. "
                     "without_scanners = the same figures over conversations with neither end a scanner. "
                     "bytes_*_sumsq = sum of squared IP lengths: at 1-in-N Bernoulli sampling the scaled byte count "
                     "has standard deviation sqrt((N-1) * sumsq).",
        "stats": stats,
        "scanners": {VERTICAL: {"kind": "vertical", "targets": [ "10.77.0.13"]},
                     HORIZONTAL: {"kind": "horizontal", "targets": CLIENTS}},
        "sflow_1in1": {"packets": st1["packets"], "bytes": st1["ipbytes"],
                       "host_deltas": delta, "sets_unchanged": same_sets,
                       "note": "pmacctd sfprobe at 1-in-1 exports every packet but the last 4 of the capture "
                               "(it never flushes its last datagram): host_deltas is what the export lacks per address"},
        "hosts": hosts,
    }
    with open(os.path.join(outdir, "truth.json"), "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    with open(os.path.join(outdir, "truth.md"), "w") as f:
        f.write(markdown(doc, path))


def markdown(doc, path):
    s = doc["stats"]
    L = ["# lab.pcap: per-host ground truth (computed from the packets by truth.py)", "",
         f"{s['packets']} packets (TCP {s['tcp']}, UDP {s['udp']}, ICMP {s['icmp']}), {s['ipbytes']:,} bytes of IP total length, "
         f"{s['duration_s']} s; {s['conversations']} conversations (TCP {s['tcp_conversations']}, UDP {s['udp_conversations']}), "
         f"{s['one_sided_conversations']} one-sided, {s['refused_conversations']} refused; "
         f"{s['unidirectional_flows']} unidirectional flow keys (5-tuple; ICMP by type and code).", "",
         doc["semantics"], "",
         "Columns as client: conv, 1side (one-sided conversations), nrPeer / nrPort (distinct one-sided servers / server ports), "
         "ref, refPeer / refPort (refused). As server: conv, 1side, nrCli (distinct clients left unanswered), ref, refCli. "
         "Benign hosts are all but the two scanners; the figures in brackets leave out the conversations with a scanner.", "",
         "| address | benign | conv | 1side | nrPeer | nrPort | ref | refPeer | refPort ‖ | srv conv | srv 1side | nrCli | srv ref | refCli | sent B | recv B | sent pk | recv pk | role |",
         "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]

    def fig(h, w, k):
        a, b = h[k], h["without_scanners"][k]
        v = len(a[w]) if isinstance(a[w], list) else a[w]
        u = len(b[w]) if isinstance(b[w], list) else b[w]
        return f"{v}" if v == u else f"{v} ({u})"
    for a, h in doc["hosts"].items():
        cells = [fig(h, k, "as_client") for k in ("conversations", "one_sided", "one_sided_peers", "one_sided_ports",
                                                  "refused", "refused_peers", "refused_ports")]
        cells += [fig(h, k, "as_server") for k in ("conversations", "one_sided", "one_sided_clients", "refused", "refused_clients")]
        L.append(f"| {a} | {'yes' if h['benign'] else '**no**'} | " + " | ".join(cells[:7]) + " ‖ | " + " | ".join(cells[7:]) +
                 f" | {h['bytes_sent']:,} | {h['bytes_received']:,} | {h['packets_sent']} | {h['packets_received']} | {h['role']} |")
    L += ["", "## Roles", ""]
    seen = set()
    for a, h in doc["hosts"].items():
        if h["description"] not in seen:
            seen.add(h["description"])
            L.append(f"- {a}: {h['description']}" + (" (likewise every address up to the next one listed)" if h["role"] in ("client", "origin") and a in ("10.77.1.2", "10.77.2.1") else ""))
    d = doc["sflow_1in1"]
    L += ["", "## Reading it", "",
          "- Every benign host has empty one-sided sets. The only benign refusals are 10.77.1.36's five attempts on 10.77.0.12:8443 "
          "(1 port, 1 peer) and, as servers, the sweep's probes of the clients.",
          "- The vertical scanner 10.77.0.66 meets silence on 198 ports (web3's firewall drops 1-199 but 80) and resets on 801; "
          "port 80 answers. The horizontal scanner 10.77.0.67 is reset on port 22 by all 36 clients and on 445 by 27 of them; "
          "445 on 10.77.1.28-36 is dropped (9 one-sided peers).",
          f"- sFlow at 1-in-1 holds {d['packets']} packets / {d['bytes']:,} bytes (the capture less its last 4 packets); "
          f"the one-sided and refused sets are {'unchanged' if d['sets_unchanged'] else 'CHANGED'}; per-address byte deltas: "
          + ", ".join(f"{a} sent {v['bytes_sent']} B / {v['packets_sent']} pk" for a, v in d["host_deltas"].items() if v["packets_sent"]) + ".",
          ""]
    return "\n".join(L)


if __name__ == "__main__":
    main()
