#!/usr/bin/env python3
"""labnet.py: the programs of the lab network (make-lab.sh runs them, one per namespace).

usage: labnet.py http   ADDR:PORT [ADDR:PORT...]         web/download/exporter server, HTTP/1.1 keep-alive
       labnet.py proxy  ADDR:PORT DNS SELF                forward proxy: every request is a new connection
                                                          from SELF to the origin (NAT-like fan-out)
       labnet.py clients DNS SECONDS SEED IP [IP...]      one browsing thread per client address
       labnet.py monitor DNS ROUNDS INTERVAL SELF TARGET...  polls every target (TARGET = kind:ip[:port])
       labnet.py sink    ADDR:PORT IDLE COUNTFILE          UDP sink for flow exports, stops IDLE s after the last datagram;
                                                          writes COUNTFILE.ready once bound

Stdlib only; every socket is an ordinary kernel socket bound to the host's own address.
Names resolve through the lab's DNS server (dnsmasq) with hand-built A queries.
"""
import http.client
import random
import socket
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# Names the lab's dnsmasq answers (make-lab.sh writes the same table into its hosts file).
NAMES = {"web1.lab": "10.77.0.11", "web2.lab": "10.77.0.12", "web3.lab": "10.77.0.13",
         "dl.lab": "10.77.0.20", "proxy.lab": "10.77.0.2"}
NAMES.update({f"o{i}.lab": f"10.77.2.{i}" for i in range(1, 31)})
FILLER = (b"<p>lorem ipsum dolor sit amet, consectetur adipiscing elit</p>\n" * 64)


def body(n):
    return (FILLER * (n // len(FILLER) + 1))[:n]


class Handler(BaseHTTPRequestHandler):
    """GET /b/N answers N bytes; /metrics about 700 B; anything else about 1 KB."""
    protocol_version = "HTTP/1.1"  # keep-alive unless the client says close

    def log_message(self, *a):
        pass

    def do_GET(self):
        p = self.path.split("?")[0]
        if p.startswith("/b/"):
            n = int(p[3:])
        elif p == "/metrics":
            n = 700
        else:
            n = 1024
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(n))
        self.end_headers()
        left = n
        while left > 0:
            k = min(left, 65536)
            self.wfile.write(body(k))
            left -= k


def serve(addrs, handler=Handler):
    servers = []
    for a in addrs:
        host, port = a.rsplit(":", 1)
        s = ThreadingHTTPServer((host, int(port)), handler)
        s.daemon_threads = True
        servers.append(s)
        threading.Thread(target=s.serve_forever, daemon=True).start()
    threading.Event().wait()


# ---------------------------------------------------------------- DNS
def dns_query(dns, name, src, timeout=1.0):
    """one A query from a fresh ephemeral port of src; returns True on an answer"""
    qid = random.getrandbits(16)
    q = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    q += b"".join(bytes([len(x)]) + x.encode() for x in name.split(".")) + b"\x00"
    q += struct.pack("!HH", 1, 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind((src, 0))
        s.settimeout(timeout)
        s.sendto(q, (dns, 53))
        r, _ = s.recvfrom(2048)
        return len(r) >= 12 and struct.unpack("!H", r[:2])[0] == qid and (r[3] & 0x0F) == 0
    except OSError:
        return False
    finally:
        s.close()


# ---------------------------------------------------------------- proxy
def proxy(addr, dns, self_ip):
    cache = {}
    lock = threading.Lock()

    class P(Handler):
        def do_GET(self):
            if not self.path.startswith("http://"):
                return Handler.do_GET(self)  # the monitor's health check
            host, _, path = self.path[7:].partition("/")
            now = time.monotonic()
            with lock:
                fresh = cache.get(host, -1e9) > now - 5.0  # a 5 s resolver cache
            if not fresh and dns_query(dns, host, self_ip):
                with lock:
                    cache[host] = now
            ip = NAMES.get(host)
            try:
                c = http.client.HTTPConnection(ip, 80, timeout=5, source_address=(self_ip, 0))
                c.request("GET", "/" + path, headers={"Connection": "close"})
                r = c.getresponse()
                data = r.read()
                c.close()
                code = r.status
            except OSError:
                data, code = b"bad gateway\n", 502
            self.send_response(code)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    serve([addr], P)


# ---------------------------------------------------------------- clients
def client(ip, dns, deadline, rng):
    webs = ["web1.lab", "web2.lab", "web3.lab"]
    time.sleep(rng.uniform(0, 2.0))
    while time.time() < deadline:
        r = rng.random()
        try:
            if r < 0.5:  # a page and its assets on one keep-alive connection
                name = rng.choice(webs)
                if rng.random() < 0.6:
                    dns_query(dns, name, ip)
                c = http.client.HTTPConnection(NAMES[name], 80, timeout=5, source_address=(ip, 0))
                for i in range(1 + rng.randint(2, 5)):
                    n = rng.randint(2000, 12000) if i == 0 else rng.randint(300, 6000)
                    c.request("GET", f"/b/{n}")
                    c.getresponse().read()
                c.close()
            elif r < 0.7:  # short API calls, one connection each
                name = rng.choice(webs)
                if rng.random() < 0.5:
                    dns_query(dns, name, ip)
                for _ in range(rng.randint(1, 3)):
                    c = http.client.HTTPConnection(NAMES[name], 80, timeout=5, source_address=(ip, 0))
                    c.request("GET", f"/b/{rng.randint(100, 400)}", headers={"Connection": "close"})
                    c.getresponse().read()
                    c.close()
            else:  # through the proxy to one of thirty origins, keep-alive to the proxy
                c = http.client.HTTPConnection(NAMES["proxy.lab"], 3128, timeout=5, source_address=(ip, 0))
                for _ in range(rng.randint(1, 3)):
                    o = f"o{rng.randint(1, 30)}.lab"
                    c.request("GET", f"http://{o}/b/{rng.randint(500, 5000)}")
                    c.getresponse().read()
                c.close()
        except OSError as e:
            print(f"client {ip}: {e}", file=sys.stderr)
        time.sleep(rng.uniform(1.5, 4.5))  # think time


def clients(dns, seconds, seed, ips):
    deadline = time.time() + seconds
    ts = [threading.Thread(target=client, args=(ip, dns, deadline, random.Random(seed * 1000 + k)))
          for k, ip in enumerate(ips)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


# ---------------------------------------------------------------- monitor
def icmp_checksum(b):
    if len(b) % 2:
        b += b"\x00"
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def ping_all(ips, seq):
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    s.settimeout(0.2)
    ident = random.getrandbits(16)
    for ip in ips:
        h = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + b"labmon" * 8
        h = h[:2] + struct.pack("!H", icmp_checksum(h)) + h[4:]
        s.sendto(h, (ip, 0))
    got, end = set(), time.time() + 1.0
    while time.time() < end and len(got) < len(ips):
        try:
            d, a = s.recvfrom(2048)
        except socket.timeout:
            continue
        if d[20] == 0:
            got.add(a[0])
    s.close()
    return len(got)


def poll(t, dns, self_ip):
    kind, ip, *rest = t.split(":")
    port = int(rest[0]) if rest else 80
    try:
        if kind == "http":
            c = http.client.HTTPConnection(ip, port, timeout=3, source_address=(self_ip, 0))
            c.request("GET", "/metrics", headers={"Connection": "close"})
            c.getresponse().read()
            c.close()
        elif kind == "tcp":  # connect check, then close
            s = socket.create_connection((ip, port), timeout=3, source_address=(self_ip, 0))
            s.close()
        elif kind == "dns":
            if not dns_query(ip, "web1.lab", self_ip):
                print(f"monitor: no DNS answer from {ip}", file=sys.stderr)
    except OSError as e:
        print(f"monitor {t}: {e}", file=sys.stderr)


def monitor(dns, rounds, interval, self_ip, targets):
    ips = sorted({t.split(":")[1] for t in targets})
    for r in range(rounds):
        t0 = time.time()
        n = ping_all(ips, r + 1)
        if n != len(ips):
            print(f"monitor: round {r}: {n}/{len(ips)} answered ping", file=sys.stderr)
        for k in range(0, len(targets), 8):  # eight checks at a time
            batch = [threading.Thread(target=poll, args=(t, dns, self_ip)) for t in targets[k:k + 8]]
            for b in batch:
                b.start()
            for b in batch:
                b.join()
        if r + 1 < rounds:
            time.sleep(max(0.0, interval - (time.time() - t0)))


# ---------------------------------------------------------------- export sink
def sink(addr, idle, countfile):
    host, port = addr.rsplit(":", 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, 33, 64 << 20)  # SO_RCVBUFFORCE: exporters send in bursts
    s.bind((host, int(port)))
    with open(countfile + ".ready", "w") as f:
        f.write("bound\n")
    n, nbytes, last = 0, 0, None
    s.settimeout(0.2)
    while True:
        try:
            d = s.recv(65535)
            n += 1
            nbytes += len(d)
            last = time.time()
        except socket.timeout:
            if last is not None and time.time() - last > idle:
                break
    with open(countfile, "w") as f:
        f.write(f"{n} {nbytes}\n")


def main():
    a = sys.argv[1:]
    if not a:
        print(__doc__)
        sys.exit(2)
    cmd = a[0]
    if cmd == "http":
        serve(a[1:])
    elif cmd == "proxy":
        proxy(a[1], a[2], a[3])
    elif cmd == "clients":
        clients(a[1], float(a[2]), int(a[3]), a[4:])
    elif cmd == "monitor":
        monitor(a[1], int(a[2]), float(a[3]), a[4], a[5:])
    elif cmd == "sink":
        sink(a[1], float(a[2]), a[3])
    else:
        print(__doc__)
        sys.exit(2)


if __name__ == "__main__":
    main()
