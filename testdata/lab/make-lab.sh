#!/bin/bash
# make-lab.sh: builds the lab network (network namespaces, veth, one bridge), runs its
# traffic with real programs on real sockets, captures it on the bridge, and tears it all
# down again. Run as root. Idempotent: a lab left behind by an earlier run is removed first.
#
#   usage: make-lab.sh [OUT.pcap]        (default: lab.pcap beside this script)
#
# Needs: iproute2, ethtool, nftables, tcpdump, nmap, dnsmasq, curl, busybox (ping), python3.
# Every namespace is named lab-*; the addresses (10.77.0.0/16) exist only inside them.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${1:-$HERE/lab.pcap}
RUN=${LAB_RUN:-/tmp/flowcheck-lab}
LABNET="python3 $HERE/labnet.py"
BROWSE_S=30   # how long the clients browse
NCLIENTS=36   # 10.77.1.1 .. 10.77.1.36
SNAPLEN=128   # headers only: exporters count the IP total length, not the captured length

HOSTS="web1 web2 web3 dns dl proxy origins clients mon scan1 scan2"

cleanup() {
	for n in $HOSTS sw; do
		if [ -e "/run/netns/lab-$n" ]; then
			# only our own programs run in these namespaces
			for p in $(ip netns pids "lab-$n"); do kill "$p" 2>/dev/null || true; done
		fi
	done
	sleep 0.5
	for n in $HOSTS sw; do
		if [ -e "/run/netns/lab-$n" ]; then
			for p in $(ip netns pids "lab-$n"); do kill -9 "$p" 2>/dev/null || true; done
			ip netns del "lab-$n"
		fi
	done
}

nsx() { local n=$1; shift; ip netns exec "lab-$n" "$@"; }

# host NAME ADDR...: a namespace with one veth on the bridge and the given /16 addresses
host() {
	local n=$1; shift
	ip netns add "lab-$n"
	nsx "$n" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
	ip link add "v-$n" netns lab-sw type veth peer name eth0 netns "lab-$n"
	nsx sw ip link set "v-$n" master br0 up
	for a in "$@"; do nsx "$n" ip addr add "$a/16" dev eth0; done
	nsx "$n" ip link set lo up
	nsx "$n" ip link set eth0 up
	# wire-size frames with real checksums: no segmentation or receive offloads
	nsx "$n" ethtool -K eth0 tso off gso off gro off tx off rx off >/dev/null 2>&1 || true
	nsx sw ethtool -K "v-$n" tso off gso off gro off tx off rx off >/dev/null 2>&1 || true
}

trap cleanup EXIT
cleanup
rm -rf "$RUN"; mkdir -p "$RUN"

# the switch
ip netns add lab-sw
nsx sw sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
nsx sw ip link add br0 type bridge stp_state 0 forward_delay 0 mcast_snooping 0
nsx sw ip link set br0 up

host web1 10.77.0.11
host web2 10.77.0.12
host web3 10.77.0.13
host dns 10.77.0.53
host dl 10.77.0.20
host proxy 10.77.0.2
host mon 10.77.0.9
host scan1 10.77.0.66
host scan2 10.77.0.67
host origins $(for i in $(seq 1 30); do echo 10.77.2.$i; done)
CLIENTS=$(for i in $(seq 1 $NCLIENTS); do echo 10.77.1.$i; done)
host clients $CLIENTS

# Firewalls.
# web2's admin port 8443 is for the monitor only; anyone else gets a TCP reset.
nsx web2 nft -f - <<'EOF'
table inet fw {
  chain input { type filter hook input priority filter; policy accept;
    tcp dport 8443 ip saddr != 10.77.0.9 reject with tcp reset
  }
}
EOF
# web3 silently drops the low ports except its web server: a vertical scan meets both
# silence (one-sided) and resets (refused).
nsx web3 nft -f - <<'EOF'
table inet fw {
  chain input { type filter hook input priority filter; policy accept;
    tcp dport 80 accept
    tcp dport 1-199 drop
  }
}
EOF
# the last nine client addresses drop SMB: part of the sweep goes unanswered.
nsx clients nft -f - <<'EOF'
table inet fw {
  chain input { type filter hook input priority filter; policy accept;
    ip daddr 10.77.1.28-10.77.1.36 tcp dport 445 drop
  }
}
EOF

# Services.
{
	echo "10.77.0.11 web1.lab"; echo "10.77.0.12 web2.lab"; echo "10.77.0.13 web3.lab"
	echo "10.77.0.20 dl.lab"; echo "10.77.0.2 proxy.lab"
	for i in $(seq 1 30); do echo "10.77.2.$i o$i.lab"; done
} >"$RUN/hosts"
nsx dns dnsmasq -k --conf-file=/dev/null --no-resolv --no-hosts --addn-hosts="$RUN/hosts" \
	--listen-address=10.77.0.53 --bind-interfaces --local-ttl=5 --pid-file="$RUN/dnsmasq.pid" \
	--user=root >"$RUN/dnsmasq.log" 2>&1 &
nsx web1 $LABNET http 10.77.0.11:80 &
nsx web2 $LABNET http 10.77.0.12:80 10.77.0.12:8443 &
nsx web3 $LABNET http 10.77.0.13:80 &
nsx dl $LABNET http 10.77.0.20:8080 &
nsx origins $LABNET http 0.0.0.0:80 &
nsx clients $LABNET http 0.0.0.0:9100 &   # each client's metrics exporter
nsx proxy $LABNET proxy 10.77.0.2:3128 10.77.0.53 10.77.0.2 &
sleep 2

# ARP caches warm before the capture, so that nothing waits on resolution inside it
for ip in 10.77.0.11 10.77.0.12 10.77.0.13 10.77.0.20 10.77.0.53 10.77.0.2; do
	nsx clients busybox ping -c1 -W1 -q "$ip" >/dev/null || { echo "no route to $ip" >&2; exit 1; }
done

# Capture: IPv4 only (ARP left out), headers only.
ip netns exec lab-sw tcpdump -i br0 -s $SNAPLEN -B 16384 -n -w "$OUT" ip 2>"$RUN/tcpdump.log" &
TCPDUMP=$!
sleep 1.5
T0=$(date +%s.%N)
at() { python3 -c "import time; time.sleep(max(0.0, $T0 + $1 - time.time()))"; }

# the monitoring host: ping everything, HTTP-scrape every exporter and server, connect-check
# the proxy and web2's admin port, query DNS; four rounds nine seconds apart
TARGETS="dns:10.77.0.53 http:10.77.0.11:80 http:10.77.0.12:80 http:10.77.0.13:80 http:10.77.0.20:8080 \
	tcp:10.77.0.2:3128 tcp:10.77.0.12:8443 $(for c in $CLIENTS; do echo http:$c:9100; done) \
	$(for i in $(seq 1 30); do echo http:10.77.2.$i:80; done)"
( at 0.5; nsx mon $LABNET monitor 10.77.0.53 4 9 10.77.0.9 $TARGETS ) 2>"$RUN/monitor.log" &
MON=$!
( at 1; nsx clients $LABNET clients 10.77.0.53 $BROWSE_S 17 $CLIENTS ) 2>"$RUN/clients.log" &
CLI=$!
# the large download (5 MB)
( at 6; nsx clients curl -sS -o /dev/null --interface 10.77.1.1 http://10.77.0.20:8080/b/5000000 ) &
DL=$!
# 10.77.1.36 tries web2's admin port now and then and is refused by the firewall
( for t in 3 8.5 14 20.5 26; do at $t; nsx clients curl -sS -o /dev/null --max-time 2 \
	--interface 10.77.1.36 http://10.77.0.12:8443/ 2>/dev/null || true; done ) &
REF=$!
# the scanners: a vertical SYN scan of 1000 ports of web3, a horizontal sweep of the clients
( at 10; nsx scan1 nmap -sS -Pn -n --max-retries 0 -T4 -p 1-1000 10.77.0.13 >"$RUN/nmap-vertical.txt" ) &
S1=$!
( at 18; nsx scan2 nmap -sS -Pn -n --max-retries 0 -T4 -p 22,445 10.77.1.1-$NCLIENTS >"$RUN/nmap-sweep.txt" ) &
S2=$!

wait $MON $CLI $DL $REF $S1 $S2
sleep 2
kill -INT $TCPDUMP
wait $TCPDUMP || true
cat "$RUN/tcpdump.log" >&2
echo "clients: $(grep -c . "$RUN/clients.log" || true) errors; monitor: $(grep -c . "$RUN/monitor.log" || true) errors" >&2
grep -h "Nmap done\|open" "$RUN"/nmap-*.txt >&2 || true
echo "wrote $OUT" >&2
