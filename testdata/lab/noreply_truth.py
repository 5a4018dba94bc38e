#!/usr/bin/env python3
"""noreply_truth.py (copy of shared/tools/noreply-truth.py; analyse() takes max_packets): ground truth "no reply" / "refused" figures from a raw traffic pcap.

usage: noreply-truth.py PCAP [--window 30] [--group NAME=ADDR[,ADDR|A.B.C.D-E]...]...
                             [--ports 6881,80] [--pairs] [--icmp-reply] [--json]

Stdlib only. Reads classic pcap (any byte order, us or ns) and pcapng; link types
Ethernet (VLAN tags skipped), Linux cooked v1/v2, raw IP, BSD loopback.

Semantics (packets are paired into conversations by 5-tuple, both directions):
  conversation  (client ip, client port, server ip, server port, proto), TCP or UDP.
                TCP client = sender of the first SYN without ACK (else of the first
                packet); UDP client = sender of the first packet. A packet on the same
                5-tuple more than WINDOW s after the previous one starts a new conversation.
  one-sided     the server sent NO packet back on that 5-tuple within WINDOW s of the
                conversation's first packet (a RST back counts as a reply; an ICMP error
                is a different 5-tuple and does NOT count, unless --icmp-reply).
  refused       TCP only: the server answered, but only with RST (no SYN-ACK) within WINDOW s.
Bytes are IP total lengths (IPv4 total length, IPv6 payload length + 40): what
NetFlow/IPFIX exporters count. They are correct for snaplen-truncated captures.

Per address it prints, as CLIENT:
  conv   conversations started        1side  one-sided conversations
  nrIP   distinct server IPs with >=1 one-sided conversation
  nrPort distinct server port numbers with a one-sided conversation (TCP and UDP merged),
         and split: nrTCP, nrUDP
  ref    refused conversations, refPort distinct refused server ports, refIP distinct refused servers
and as SERVER:
  conv, 1side, nrCli (distinct client IPs with >=1 one-sided conversation to it),
  ref, refCli (distinct clients refused)
then bytes sent/received per address, and per server port given with --ports.
--pairs adds one line per client -> server pair (per group if --group is given),
proto and IP version: first/last time, conversations, one-sided, refused, ports, bytes.
"""
import ipaddress, json, struct, sys
from collections import defaultdict

TCP, UDP, ICMP, ICMP6 = 6, 17, 1, 58
FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10


# ---------------------------------------------------------------- pcap reading
def read_packets(path):
    """yield (ts, linktype, bytes, orig_len)"""
    with open(path, "rb") as f:
        data = f.read()
    magic = data[:4]
    if magic == b"\x0a\x0d\x0d\x0a":
        yield from read_pcapng(data)
        return
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        e = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = ">"
    else:
        raise SystemExit(f"{path}: not a pcap/pcapng file")
    nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    linktype = struct.unpack(e + "I", data[20:24])[0] & 0x0FFFFFFF
    div = 1e9 if nano else 1e6
    off, n = 24, len(data)
    hdr = struct.Struct(e + "IIII")
    while off + 16 <= n:
        sec, frac, incl, orig = hdr.unpack_from(data, off)
        off += 16
        yield sec + frac / div, linktype, data[off:off + incl], orig
        off += incl


def read_pcapng(data):
    off, n = 0, len(data)
    e = "<"
    ifaces = []  # (linktype, ts_divisor)
    while off + 12 <= n:
        btype = struct.unpack_from(e + "I", data, off)[0]
        if btype == 0x0A0D0D0A:
            bom = data[off + 8:off + 12]
            e = "<" if bom == b"\x4d\x3c\x2b\x1a" else ">"
            ifaces = []
        blen = struct.unpack_from(e + "I", data, off + 4)[0]
        if blen < 12:
            break
        body = data[off + 8:off + blen - 4]
        if btype == 1:  # IDB
            lt = struct.unpack_from(e + "H", body, 0)[0]
            div = 1e6
            o = 8
            while o + 4 <= len(body):
                code, ln = struct.unpack_from(e + "HH", body, o)
                if code == 0:
                    break
                if code == 9 and ln >= 1:
                    v = body[o + 4]
                    div = float(2 ** (v & 0x7F)) if v & 0x80 else float(10 ** v)
                o += 4 + ((ln + 3) & ~3)
            ifaces.append((lt, div))
        elif btype == 6:  # EPB
            iid, th, tl, incl, orig = struct.unpack_from(e + "IIIII", body, 0)
            lt, div = ifaces[iid]
            yield ((th << 32) | tl) / div, lt, body[20:20 + incl], orig
        elif btype == 3:  # SPB
            orig = struct.unpack_from(e + "I", body, 0)[0]
            lt, div = ifaces[0]
            yield 0.0, lt, body[4:4 + orig], orig
        off += blen


def l3(linktype, pkt):
    """return (ethertype, offset) of the network header, or None"""
    if linktype == 1:  # Ethernet
        if len(pkt) < 14:
            return None
        et = struct.unpack_from("!H", pkt, 12)[0]; off = 14
        while et in (0x8100, 0x88A8, 0x9100) and len(pkt) >= off + 4:
            et = struct.unpack_from("!H", pkt, off + 2)[0]; off += 4
        return et, off
    if linktype == 113:  # Linux cooked v1
        return (struct.unpack_from("!H", pkt, 14)[0], 16) if len(pkt) >= 16 else None
    if linktype == 276:  # Linux cooked v2
        return (struct.unpack_from("!H", pkt, 0)[0], 20) if len(pkt) >= 20 else None
    if linktype in (101, 12, 14, 228, 229):  # raw IP
        if not pkt:
            return None
        return (0x0800 if pkt[0] >> 4 == 4 else 0x86DD), 0
    if linktype == 0:  # BSD loopback
        if len(pkt) <= 4:
            return None
        return (0x0800 if pkt[4] >> 4 == 4 else 0x86DD), 4
    return None


def parse_ip(pkt, off, et):
    """-> (ver, src, dst, proto, l4off, iplen, first_fragment) or None"""
    if et == 0x0800 and len(pkt) >= off + 20:
        vihl = pkt[off]
        if vihl >> 4 != 4:
            return None
        ihl = (vihl & 15) * 4
        iplen = struct.unpack_from("!H", pkt, off + 2)[0]
        frag = struct.unpack_from("!H", pkt, off + 6)[0] & 0x1FFF
        return 4, pkt[off + 12:off + 16], pkt[off + 16:off + 20], pkt[off + 9], off + ihl, iplen, frag == 0
    if et == 0x86DD and len(pkt) >= off + 40:
        plen = struct.unpack_from("!H", pkt, off + 4)[0]
        nh = pkt[off + 6]; src = pkt[off + 8:off + 24]; dst = pkt[off + 24:off + 40]
        o = off + 40; first = True
        while nh in (0, 43, 44, 60, 51) and len(pkt) >= o + 8:
            if nh == 44:
                first = (struct.unpack_from("!H", pkt, o + 2)[0] >> 3) == 0
                nh = pkt[o]; o += 8
            elif nh == 51:
                nh, ln = pkt[o], (pkt[o + 1] + 2) * 4; o += ln
            else:
                nh, ln = pkt[o], (pkt[o + 1] + 1) * 8; o += ln
        return 6, src, dst, nh, o, plen + 40, first
    return None


def ipstr(b):
    return str(ipaddress.ip_address(b))


# ---------------------------------------------------------------- analysis
class Conv:
    __slots__ = ("cli", "cport", "srv", "sport", "proto", "ver", "t0", "tlast", "cpk", "spk",
                 "cby", "sby", "reply_t", "synack", "rst", "other", "icmp_err")

    def __init__(s, cli, cport, srv, sport, proto, ver, t):
        s.cli, s.cport, s.srv, s.sport, s.proto, s.ver = cli, cport, srv, sport, proto, ver
        s.t0 = s.tlast = t
        s.cpk = s.spk = s.cby = s.sby = 0
        s.reply_t = None; s.synack = s.rst = s.other = False; s.icmp_err = 0


def analyse(path, window=30.0, icmp_reply=False, max_packets=None):
    """max_packets: read only the first N packets of the file (None: all)"""
    convs_by_key = {}
    convs = []
    stats = defaultdict(int)
    bytes_tx = defaultdict(int); bytes_rx = defaultdict(int)
    pk_tx = defaultdict(int); pk_rx = defaultdict(int)
    icmp_errs = []  # (t, reporter, quoted 5-tuple)
    tfirst = tlast = None
    for k, (ts, lt, pkt, orig) in enumerate(read_packets(path)):
        if max_packets is not None and k >= max_packets:
            break
        r = l3(lt, pkt)
        if not r:
            stats["non_ip"] += 1; continue
        ip = parse_ip(pkt, r[1], r[0])
        if not ip:
            stats["non_ip"] += 1; continue
        ver, src, dst, proto, o, iplen, first = ip
        stats["packets"] += 1; stats[f"ipv{ver}"] += 1; stats["ipbytes"] += iplen
        tfirst = ts if tfirst is None else tfirst; tlast = ts
        bytes_tx[src] += iplen; bytes_rx[dst] += iplen; pk_tx[src] += 1; pk_rx[dst] += 1
        if proto in (ICMP, ICMP6):
            stats["icmp"] += 1
            if len(pkt) >= o + 8:
                t = pkt[o]
                err = (proto == ICMP and t in (3, 11, 12)) or (proto == ICMP6 and t in (1, 2, 3, 4))
                if err:
                    stats["icmp_errors"] += 1
                    q = parse_ip(pkt, o + 8, 0x0800 if proto == ICMP else 0x86DD)
                    if q and q[3] in (TCP, UDP) and len(pkt) >= q[4] + 4:
                        qs, qd = struct.unpack_from("!HH", pkt, q[4])
                        icmp_errs.append((ts, src, (q[1], qs, q[2], qd, q[3])))
            continue
        if proto not in (TCP, UDP):
            stats["other_proto"] += 1; continue
        if not first:
            stats["non_first_fragments"] += 1; continue
        if len(pkt) < o + 4:
            stats["truncated_l4"] += 1; continue
        sp, dp = struct.unpack_from("!HH", pkt, o)
        flags = 0
        if proto == TCP:
            stats["tcp"] += 1
            if len(pkt) >= o + 14:
                flags = pkt[o + 13]
        else:
            stats["udp"] += 1
        a, b = (src, sp), (dst, dp)
        key = (min(a, b), max(a, b), proto)
        c = convs_by_key.get(key)
        if c is not None and ts - c.tlast > window:
            c = None  # idle longer than the window: a new conversation on the same 5-tuple
        if c is None:
            if proto == TCP and (flags & (SYN | ACK)) == (SYN | ACK):
                c = Conv(dst, dp, src, sp, proto, ver, ts)  # saw the SYN-ACK first: receiver is client
            else:
                c = Conv(src, sp, dst, dp, proto, ver, ts)
            convs_by_key[key] = c; convs.append(c)
        c.tlast = ts
        if src == c.cli and sp == c.cport:
            c.cpk += 1; c.cby += iplen
        else:
            c.spk += 1; c.sby += iplen
            if ts - c.t0 <= window:
                if c.reply_t is None:
                    c.reply_t = ts
                if proto == TCP:
                    if (flags & (SYN | ACK)) == (SYN | ACK):
                        c.synack = True
                    elif flags & RST:
                        c.rst = True
                    else:
                        c.other = True
    # ICMP errors that quote a conversation's client->server packet
    for ts, rep, (qs, qsp, qd, qdp, qp) in icmp_errs:
        a, b = (qs, qsp), (qd, qdp)
        c = convs_by_key.get((min(a, b), max(a, b), qp))
        if c is not None and c.cli == qs:
            c.icmp_err += 1
            if icmp_reply and c.reply_t is None and ts - c.t0 <= window:
                c.reply_t = ts
    stats["conversations"] = len(convs)
    stats["duration_s"] = round((tlast - tfirst) if tfirst is not None else 0, 3)
    return convs, stats, (bytes_tx, bytes_rx, pk_tx, pk_rx), tfirst


def one_sided(c):
    return c.reply_t is None


def refused(c):
    return c.proto == TCP and c.reply_t is not None and c.rst and not c.synack


def figures(convs, members=None):
    """per address (or per group if members maps addr->group) figures"""
    g = members or (lambda a: a)
    F = defaultdict(lambda: {"c_conv": 0, "c_1side": 0, "c_nr_ips": set(), "c_nr_ports": set(),
                             "c_nr_tcp": set(), "c_nr_udp": set(), "c_ref": 0, "c_ref_ports": set(),
                             "c_ref_ips": set(), "s_conv": 0, "s_1side": 0, "s_nr_cli": set(),
                             "s_ref": 0, "s_ref_cli": set()})
    for c in convs:
        cg, sg = g(c.cli), g(c.srv)
        fc, fs = F[cg], F[sg]
        fc["c_conv"] += 1; fs["s_conv"] += 1
        if one_sided(c):
            fc["c_1side"] += 1; fc["c_nr_ips"].add(c.srv); fc["c_nr_ports"].add(c.sport)
            fc["c_nr_tcp" if c.proto == TCP else "c_nr_udp"].add(c.sport)
            fs["s_1side"] += 1; fs["s_nr_cli"].add(c.cli)
        elif refused(c):
            fc["c_ref"] += 1; fc["c_ref_ports"].add(c.sport); fc["c_ref_ips"].add(c.srv)
            fs["s_ref"] += 1; fs["s_ref_cli"].add(c.cli)
    out = {}
    for k, f in F.items():
        out[k] = {x: (len(v) if isinstance(v, set) else v) for x, v in f.items()}
    return out


COLS = [("c_conv", "conv"), ("c_1side", "1side"), ("c_nr_ips", "nrIP"), ("c_nr_ports", "nrPort"),
        ("c_nr_tcp", "nrTCP"), ("c_nr_udp", "nrUDP"), ("c_ref", "ref"), ("c_ref_ports", "refPort"),
        ("c_ref_ips", "refIP"), ("s_conv", "conv"), ("s_1side", "1side"), ("s_nr_cli", "nrCli"),
        ("s_ref", "ref"), ("s_ref_cli", "refCli")]


def table(rows, keyname):
    w = max([len(keyname)] + [len(str(k)) for k in rows]) + 1
    head = f"{keyname:<{w}}| " + " ".join(f"{n:>7}" for _, n in COLS[:9]) + " | " + " ".join(f"{n:>7}" for _, n in COLS[9:])
    sub = f"{'':<{w}}| {'--- as client ---':^71} | {'--- as server ---':^39}"
    lines = [sub, head, "-" * len(head)]
    for k, f in rows.items():
        lines.append(f"{str(k):<{w}}| " + " ".join(f"{f[c]:>7}" for c, _ in COLS[:9]) + " | " + " ".join(f"{f[c]:>7}" for c, _ in COLS[9:]))
    return "\n".join(lines)


def parse_groups(specs):
    m = {}
    for spec in specs:
        name, _, addrs = spec.partition("=")
        for a in addrs.split(","):
            a = a.strip()
            if not a:
                continue
            if "-" in a and "." in a:  # A.B.C.D-E
                base, _, last = a.rpartition("-")
                pre = base.rsplit(".", 1)
                for i in range(int(pre[1]), int(last) + 1):
                    m[ipaddress.ip_address(f"{pre[0]}.{i}").packed] = name
            elif "/" in a:
                for x in ipaddress.ip_network(a, strict=False).hosts():
                    m[x.packed] = name
            else:
                m[ipaddress.ip_address(a).packed] = name
    return m


def addr_sort(b):
    return (len(b), b)


def main():
    argv = sys.argv[1:]
    window, groups, ports, as_json, icmp_reply, pairs = 30.0, [], [], False, False, False
    path = None
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--window":
            window = float(argv[i + 1]); i += 2
        elif a == "--group":
            groups.append(argv[i + 1]); i += 2
        elif a == "--ports":
            ports = [int(p) for p in argv[i + 1].split(",") if p]; i += 2
        elif a == "--json":
            as_json = True; i += 1
        elif a == "--icmp-reply":
            icmp_reply = True; i += 1
        elif a == "--pairs":
            pairs = True; i += 1
        elif a in ("-h", "--help"):
            print(__doc__); return
        else:
            path = a; i += 1
    if not path:
        print(__doc__); sys.exit(2)
    convs, stats, (btx, brx, ptx, prx), t0 = analyse(path, window, icmp_reply)
    per_ip = figures(convs)
    per_ip = {ipstr(k): per_ip[k] for k in sorted(per_ip, key=addr_sort)}
    gm = parse_groups(groups)
    per_group = None
    if gm:
        order = []
        for spec in groups:
            order.append(spec.partition("=")[0])
        pg = figures(convs, lambda a: gm.get(a, ipstr(a)))
        per_group = {k: pg[k] for k in order if k in pg}
        per_group.update({k: v for k, v in pg.items() if k not in per_group})
    # bytes per address and per server port
    addrs = sorted(set(btx) | set(brx), key=addr_sort)
    host_bytes = {ipstr(a): {"sent_bytes": btx[a], "recv_bytes": brx[a], "sent_pkts": ptx[a], "recv_pkts": prx[a]} for a in addrs}
    port_bytes = {}
    for p in ports:
        d = {"conversations": 0, "client_to_server_bytes": 0, "server_to_client_bytes": 0,
             "client_to_server_pkts": 0, "server_to_client_pkts": 0, "by_pair": defaultdict(lambda: [0, 0, 0, 0])}
        for c in convs:
            if c.sport == p and c.proto == TCP:
                d["conversations"] += 1
                d["client_to_server_bytes"] += c.cby; d["server_to_client_bytes"] += c.sby
                d["client_to_server_pkts"] += c.cpk; d["server_to_client_pkts"] += c.spk
                k = f"{ipstr(c.cli)} -> {ipstr(c.srv)}"
                v = d["by_pair"][k]; v[0] += c.cby; v[1] += c.sby; v[2] += c.cpk; v[3] += c.spk
        d["total_bytes"] = d["client_to_server_bytes"] + d["server_to_client_bytes"]
        d["total_pkts"] = d["client_to_server_pkts"] + d["server_to_client_pkts"]
        d["by_pair"] = {k: {"c2s_bytes": v[0], "s2c_bytes": v[1], "c2s_pkts": v[2], "s2c_pkts": v[3]} for k, v in d["by_pair"].items()}
        port_bytes[f"tcp/{p}"] = d
    name = (lambda a: gm.get(a, ipstr(a))) if gm else ipstr
    pair_rows = {}
    if pairs:
        P = {}
        for c in convs:
            k = (name(c.cli), name(c.srv), "tcp" if c.proto == TCP else "udp", c.ver)
            d = P.setdefault(k, {"conv": 0, "one_sided": 0, "refused": 0, "ports": set(), "first": c.t0, "last": c.tlast,
                                 "c2s_pkts": 0, "c2s_bytes": 0, "s2c_pkts": 0, "s2c_bytes": 0})
            d["conv"] += 1; d["one_sided"] += one_sided(c); d["refused"] += refused(c); d["ports"].add(c.sport)
            d["first"] = min(d["first"], c.t0); d["last"] = max(d["last"], c.tlast)
            d["c2s_pkts"] += c.cpk; d["c2s_bytes"] += c.cby; d["s2c_pkts"] += c.spk; d["s2c_bytes"] += c.sby
        for k in sorted(P, key=lambda k: P[k]["first"]):
            d = P[k]
            pr = sorted(d["ports"])
            d["server_ports"] = len(pr)
            d["port_range"] = f"{pr[0]}" if len(pr) == 1 else (f"{pr[0]}-{pr[-1]}" if len(pr) > 3 else ",".join(map(str, pr)))
            del d["ports"]
            d["first"] = round(d["first"] - t0, 3); d["last"] = round(d["last"] - t0, 3)
            pair_rows[f"{k[0]} -> {k[1]} {k[2]}/v{k[3]}"] = d
    n1 = sum(1 for c in convs if one_sided(c)); nr = sum(1 for c in convs if refused(c))
    stats["one_sided_conversations"] = n1; stats["refused_conversations"] = nr
    stats["tcp_conversations"] = sum(1 for c in convs if c.proto == TCP)
    stats["udp_conversations"] = sum(1 for c in convs if c.proto == UDP)
    stats["icmp_errors_quoting_a_conversation"] = sum(c.icmp_err for c in convs)
    stats["window_s"] = window
    if as_json:
        json.dump({"stats": dict(stats), "per_ip": per_ip, "per_group": per_group,
                   "host_bytes": host_bytes, "port_bytes": port_bytes, "pairs": pair_rows}, sys.stdout, indent=1)
        print(); return
    print(f"file {path}")
    print("stats " + " ".join(f"{k}={v}" for k, v in stats.items()))
    print(f"\nper address (window {window:g} s; one-sided = no packet back on the 5-tuple; refused = TCP answered only by RST)")
    print(table(per_ip, "address"))
    if per_group:
        print("\nper host (addresses grouped)")
        print(table(per_group, "host"))
    print("\nbytes per address (IP total length)")
    w = max(len(a) for a in host_bytes) + 1 if host_bytes else 8
    print(f"{'address':<{w}} {'sent_bytes':>12} {'recv_bytes':>12} {'sent_pkts':>10} {'recv_pkts':>10}")
    for a, v in host_bytes.items():
        print(f"{a:<{w}} {v['sent_bytes']:>12} {v['recv_bytes']:>12} {v['sent_pkts']:>10} {v['recv_pkts']:>10}")
    for p, d in port_bytes.items():
        print(f"\nserver port {p}: conversations {d['conversations']} total_bytes {d['total_bytes']} total_pkts {d['total_pkts']}"
              f" (client->server {d['client_to_server_bytes']} B / {d['client_to_server_pkts']} pkts,"
              f" server->client {d['server_to_client_bytes']} B / {d['server_to_client_pkts']} pkts)")
        for k, v in d["by_pair"].items():
            print(f"  {k}: c2s {v['c2s_bytes']} B / {v['c2s_pkts']} pkts, s2c {v['s2c_bytes']} B / {v['s2c_pkts']} pkts")
    if pair_rows:
        print("\nclient -> server pairs (t in s from the first packet of the file; ports = distinct server ports)")
        w = max(len(k) for k in pair_rows) + 1
        print(f"{'pair':<{w}} {'first':>7} {'last':>7} {'conv':>5} {'1side':>5} {'refus':>5} {'ports':>5} {'port range':>11}"
              f" {'c2s_pkts':>8} {'c2s_bytes':>10} {'s2c_pkts':>8} {'s2c_bytes':>10}")
        for k, d in pair_rows.items():
            print(f"{k:<{w}} {d['first']:>7.3f} {d['last']:>7.3f} {d['conv']:>5} {d['one_sided']:>5} {d['refused']:>5}"
                  f" {d['server_ports']:>5} {d['port_range']:>11} {d['c2s_pkts']:>8} {d['c2s_bytes']:>10} {d['s2c_pkts']:>8} {d['s2c_bytes']:>10}")


if __name__ == "__main__":
    main()
