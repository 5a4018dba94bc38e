#!/bin/bash
# export.sh: turns lab.pcap into flow exports with real exporters, each export captured on
# the loopback of a private network namespace (lab-exp) to its own pcap, UDP to 127.0.0.1:2055.
#
#   usage: export.sh [LAB.pcap] [OUTDIR]     (defaults: lab.pcap and this script's directory)
#
#   softflowd-v9.pcap            softflowd, NetFlow v9, unsampled
#   pmacctd-nf9-1.pcap  -10  -100  pmacctd nfprobe, NetFlow v9, sampling_rate 1, 10, 100
#   pmacctd-sflow-1.pcap -10 -100  pmacctd sfprobe, sFlow v5,   sampling_rate 1, 10, 100
#
# Run as root (namespace, capture). Needs softflowd, pmacctd, tcpdump, python3.
# pmacctd samples at random: a new run gives other 1-in-10 and 1-in-100 exports.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
PCAP=$(realpath "${1:-$HERE/lab.pcap}")
OUT=$(realpath "${2:-$HERE}")
RUN=${LAB_RUN:-/tmp/flowcheck-lab-export}
NS=lab-exp

cleanup() {
	if [ -e "/run/netns/$NS" ]; then
		for p in $(ip netns pids $NS); do kill "$p" 2>/dev/null || true; done
		sleep 0.3
		ip netns del $NS
	fi
}
trap cleanup EXIT
cleanup
rm -rf "$RUN"; mkdir -p "$RUN"
# the exporters write the file name into their exports: give them a plain relative one
cp "$PCAP" "$RUN/lab.pcap"
ip netns add $NS
ip netns exec $NS ip link set lo up

# export NAME COMMAND...: capture what COMMAND sends to 127.0.0.1:2055 into OUT/NAME.pcap
export_one() {
	local name=$1; shift
	local cap="$RUN/$name.pcap"
	ip netns exec $NS tcpdump -i lo -s 0 -B 65536 -n -w "$cap" udp dst port 2055 2>"$RUN/$name.tcpdump" &
	local td=$!
	sleep 1
	# the sink first: an ICMP port-unreachable would silence the exporter's connected socket
	ip netns exec $NS timeout 120 python3 "$HERE/labnet.py" sink 127.0.0.1:2055 3 "$RUN/$name.count" &
	local sink=$!
	for _ in $(seq 100); do [ -e "$RUN/$name.count.ready" ] && break; sleep 0.1; done
	# pmacctd 1.7.7 sometimes loses its plugin at the end of a savefile ("connection lost
	# to 'default_sfprobe-sfprobe'") and exits 1: such a run is not kept
	if ! (cd "$RUN" && ip netns exec $NS timeout 120 "$@") >"$RUN/$name.log" 2>&1; then
		echo "$name: exporter failed, retrying:" >&2; tail -3 "$RUN/$name.log" >&2
		kill $sink 2>/dev/null || true; wait $sink || true
		kill -INT $td; wait $td || true
		export_one "$name" "$@"
		return
	fi
	wait $sink
	sleep 0.5
	kill -INT $td; wait $td || true
	local got; got=$(cut -d' ' -f1 "$RUN/$name.count")
	local capd; capd=$(sed -n 's/^\([0-9]*\) packets captured/\1/p' "$RUN/$name.tcpdump")
	local drop; drop=$(sed -n 's/^\([0-9]*\) packets dropped by kernel/\1/p' "$RUN/$name.tcpdump")
	echo "$name: sink received $got datagrams, capture holds $capd, kernel dropped $drop" >&2
	if [ "$got" != "$capd" ] || [ "$drop" != 0 ] || [ "$got" = 0 ]; then
		echo "$name: capture incomplete" >&2; exit 1
	fi
	cp "$cap" "$OUT/$name.pcap"
}

pmacct_conf() { # KIND(nf|sf) RATE
	if [ "$1" = nf ]; then
		cat <<EOF
daemonize: false
pcap_savefile: lab.pcap
plugins: nfprobe
nfprobe_receiver: 127.0.0.1:2055
nfprobe_version: 9
aggregate: src_host, dst_host, src_port, dst_port, proto, tos, tcpflags
sampling_rate: $2
EOF
	else
		cat <<EOF
daemonize: false
pcap_savefile: lab.pcap
plugins: sfprobe
sfprobe_receiver: 127.0.0.1:2055
sfprobe_agentip: 127.0.0.1
sampling_rate: $2
EOF
	fi
}

export_one softflowd-v9 softflowd -d -r lab.pcap -n 127.0.0.1:2055 -v 9 -c none -a
for rate in 1 10 100; do
	pmacct_conf nf $rate >"$RUN/nf-$rate.conf"
	export_one pmacctd-nf9-$rate pmacctd -f "nf-$rate.conf"
	pmacct_conf sf $rate >"$RUN/sf-$rate.conf"
	export_one pmacctd-sflow-$rate pmacctd -f "sf-$rate.conf"
done
echo "exports in $OUT" >&2
