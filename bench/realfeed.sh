#!/usr/bin/env bash
# Real-feed side-by-side benchmark: a real exporter's capture (softflowd
# NetFlow v9 by default) replayed with tcpreplay at fixed datagram rates and
# at top speed to flowcheck, nfcapd (nfdump), nfacctd (pmacct) and goflow2's
# CLI, one collector at a time, each in a fresh process.
#
# The capture is port-mapped with tcprewrite to the collector's port and
# replayed on the loopback interface of a private network namespace
# (unshare --net), where route_localnet and accept_local let the kernel
# take the injected 127.0.0.1 datagrams; the machine's own settings are not
# touched, and the namespace's UDP counters (/proc/net/snmp) are the
# collector's alone, which gives the kernel's drops per run. The capture is
# looped as many times as the rate and DURATION ask, so the records sent
# are known exactly (records per loop from `collector decode`).
#
# Prints one Markdown table: per rate and collector, loss (records not
# counted by the collector), shed (flowcheck's records accounted without
# stitching), kernel drops (datagrams, UDP RcvbufErrors), flowcheck's
# queue drops (datagrams its reader dropped, the worker behind), CPU seconds
# (utime+stime of the collector's process group), records per CPU-second
# and its ratio to nfcapd's, CPU per datagram received, system calls and
# context switches per datagram received (perf stat), peak RSS (VmHWM).
#
# Not part of CI (it measures the machine). Needs root (network namespace,
# tcpreplay). Run by hand:
#
#   bench/realfeed.sh                               # 3 rates x 4 collectors x 4 s: ~2 min
#   RATES="30000 60000" PEERS="flowcheck nfcapd" RUNS=3 bench/realfeed.sh
#
# Environment:
#   RATES      datagrams/s, "max" = tcpreplay --topspeed (default "30000 60000 max")
#   DURATION   seconds of sending per fixed rate (default 4)
#   MAX_LOOPS  loops of the capture at top speed (default 4000: ~620 k datagrams)
#   RUNS       repeat the whole sweep (default 1)
#   PEERS      collectors to run (default "flowcheck nfcapd nfacctd goflow2")
#   FEED       export capture (default testdata/softflowd-v9.pcap)
#   PERF       1: count the collector's system calls and context switches
#              with perf stat (default 1; 0 without perf)
#   FEED_PORT  UDP port the capture's datagrams go to (default 2055)
#   SETTLE, SETTLE_MAX, RCVBUF, FC_SOCKETS, PORT, BENCH_BIN, IDLE_WAIT,
#   IDLE_LOAD, FLOWCHECK_EXTRA, NFACCTD_EXTRA, KEEP: as in bench/peers.sh
set -euo pipefail

RATES=${RATES:-"30000 60000 max"}
DURATION=${DURATION:-4}
MAX_LOOPS=${MAX_LOOPS:-4000}
RUNS=${RUNS:-1}
PEERS=${PEERS:-"flowcheck nfcapd nfacctd goflow2"}
SETTLE=${SETTLE:-2}
SETTLE_MAX=${SETTLE_MAX:-20}
RCVBUF=${RCVBUF:-67108864}
FC_SOCKETS=${FC_SOCKETS:-1}
PORT=${PORT:-29650}
FEED_PORT=${FEED_PORT:-2055}
BENCH_BIN=${BENCH_BIN:-${TMPDIR:-/tmp}/flowcheck-bench-bin}
KEEP=${KEEP:-0}
IDLE_WAIT=${IDLE_WAIT:-0}
IDLE_LOAD=${IDLE_LOAD:-1}
PERF=${PERF:-1}
command -v perf >/dev/null 2>&1 || PERF=0

root=$(cd "$(dirname "$0")/.." && pwd)
FEED=${FEED:-$root/testdata/softflowd-v9.pcap}
export PATH="$PATH:/usr/sbin:/sbin:$BENCH_BIN"
clk_tck=$(getconf CLK_TCK)

# shellcheck source=bench/collectors.sh
. "$(dirname "$0")/collectors.sh"

current_pid=""
if [ -z "${REALFEED_NS:-}" ]; then
	# ------------------------------------------------------------ outside
	# Install and build with the machine's network, then run the rest in
	# a private network namespace.
	[ "$(id -u)" = 0 ] || { log "realfeed.sh needs root (network namespace, tcpreplay on lo)"; exit 1; }
	work=$(mktemp -d "${TMPDIR:-/tmp}/flowcheck-realfeed.XXXXXX")
	cleanup() {
		if [ "$KEEP" = 1 ]; then log "work directory kept: $work"; else rm -rf "$work"; fi
	}
	trap cleanup EXIT
	trap 'exit 130' INT TERM
	if ! command -v tcpreplay >/dev/null 2>&1; then
		log "installing tcpreplay"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tcpreplay >&2
	fi
	install_peers
	build_flowcheck
	[ "$have_flowcheck" = 1 ] || PEERS=${PEERS//flowcheck/}
	# The feed's datagrams and records per loop, as flowcheck decodes it
	# (the shared captures' README gives the same totals).
	"$work/flowcheck" decode --pcap "$FEED" --port "$FEED_PORT" 2>"$work/decode.txt" >/dev/null || {
		cat "$work/decode.txt" >&2
		exit 1
	}
	read -r dgrams records < <(sed -n 's/.* \([0-9]*\) UDP datagrams, .* \([0-9]*\) flow records,.*/\1 \2/p' "$work/decode.txt")
	[ -n "${records:-}" ] && [ "$records" -gt 0 ] || { log "no flow records in $FEED"; exit 1; }
	wait_idle
	REALFEED_NS=1 work=$work PEERS=$PEERS FEED=$FEED feed_dgrams=$dgrams feed_records=$records load_start=$load_start \
		unshare --net -- "$0" "$@"
	exit
fi

# ---------------------------------------------------------------- inside
cleanup() {
	stop_group "$current_pid"
	current_pid=""
}
trap cleanup EXIT
trap 'exit 130' INT TERM
ip link set lo up
sysctl -qw net.ipv4.conf.lo.route_localnet=1 net.ipv4.conf.lo.accept_local=1 \
	net.ipv4.conf.all.route_localnet=1 net.ipv4.conf.all.accept_local=1

# udp_counter NAME: a Udp counter of this namespace (/proc/net/snmp).
udp_counter() {
	awk -v n="$1" '$1 == "Udp:" && !h {for (i = 2; i <= NF; i++) c[$i] = i; h = 1; next} $1 == "Udp:" {print $c[n]}' /proc/net/snmp
}

results="$work/results.tsv"
: >"$results"
port=$PORT
for run in $(seq "$RUNS"); do
	for rate in $RATES; do
		if [ "$rate" = max ]; then
			loops=$MAX_LOOPS pace=(--topspeed)
		else
			loops=$(((rate * DURATION + feed_dgrams - 1) / feed_dgrams)) pace=(--pps="$rate")
		fi
		for peer in $PEERS; do
			dir="$work/$peer-$rate-$run"
			mkdir -p "$dir"
			port=$((port + 2))
			udp=$port http=$((port + 1))
			tcprewrite --portmap="$FEED_PORT:$udp" --fixcsum -i "$FEED" -o "$dir/feed.pcap" 2>/dev/null
			"start_$peer" "$dir" "$udp" "$http"
			if ! "ready_$peer" "$dir" "$udp" "$http"; then
				log "$peer did not start; its log:"
				sed 's/^/    /' "$dir/log" >&2 || true
				stop_group "$current_pid"
				current_pid=""
				continue
			fi
			sleep 0.5
			cpu0=$(group_cpu "$current_pid")
			kdrop0=$(udp_counter RcvbufErrors)
			perf_pid=""
			if [ "$PERF" = 1 ]; then
				# Counted in the kernel, so independent of how busy
				# the machine is: every thread of the collector.
				perf stat -x, -e raw_syscalls:sys_enter,context-switches -p "$(group_pids "$current_pid" | paste -sd,)" \
					-o "$dir/perf.csv" 2>/dev/null &
				perf_pid=$!
			fi
			TIMEFORMAT='%U %S'
			{ time tcpreplay -i lo "${pace[@]}" --loop="$loops" --preload-pcap "$dir/feed.pcap" >"$dir/tcpreplay.txt" 2>&1; } 2>"$dir/tcpreplay.time"
			if [ "$peer" = flowcheck ] || [ "$peer" = goflow2 ]; then
				wait_stable "$peer" "$dir" "$udp" "$http"
			else
				sleep "$SETTLE"
			fi
			cpu1=$(group_cpu "$current_pid")
			sys=- cs=-
			if [ -n "$perf_pid" ]; then
				kill -INT "$perf_pid" 2>/dev/null || true
				wait "$perf_pid" 2>/dev/null || true
				sys=$(awk -F, '$3 == "raw_syscalls:sys_enter" {print $1}' "$dir/perf.csv")
				cs=$(awk -F, '$3 == "context-switches" {print $1}' "$dir/perf.csv")
			fi
			rss=$(group_hwm_mib "$current_pid")
			stop_counted "$peer" "$dir" "$udp" "$http"
			kdrop=$(($(udp_counter RcvbufErrors) - kdrop0))
			rm -rf "$dir/flows" "$dir/feed.pcap"
			sent_dgrams=$(sed -n 's/^Actual: \([0-9]*\) packets.*/\1/p' "$dir/tcpreplay.txt")
			pps=$(sed -n 's/^Rated: .*, \([0-9.]*\) pps.*/\1/p' "$dir/tcpreplay.txt")
			sent=$((sent_dgrams / feed_dgrams * feed_records))
			cpu=$(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN{printf "%.2f", b - a}')
			sender_cpu=$(awk '{printf "%.2f", $1 + $2}' "$dir/tcpreplay.time")
			printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$run" "$rate" "$peer" "$sent" "${recv:-0}" "$shed" "$kdrop" "$cpu" "$rss" "${pps:-0}" "$sender_cpu" "$qdrop" "${sys:--}" "${cs:--}" >>"$results"
			log "$(printf 'run %s %-6s %-9s sent %9s received %9s kernel drops %6s cpu %6ss rss %5s MiB' "$run" "$rate" "$peer" "$sent" "${recv:-0}" "$kdrop" "$cpu" "$rss")"
		done
	done
done

# ---------------------------------------------------------------- report
echo
echo "$(basename "$FEED") ($feed_records records in $feed_dgrams datagrams, $(awk -v r="$feed_records" -v d="$feed_dgrams" 'BEGIN{printf "%.1f", r/d}') per datagram) replayed with tcpreplay on loopback, ${DURATION}s per fixed rate, $MAX_LOOPS loops at top speed; $(nproc) CPUs, sender and collector on the same machine; $(date -u '+%Y-%m-%d %H:%M UTC')."
echo "Loss = records the collector did not count; shed = flowcheck's records accounted without stitching; kernel drops = datagrams the socket buffer refused (UDP RcvbufErrors); queue drops = datagrams flowcheck's reader dropped, its worker's queue full; CPU = collector's utime+stime; µs/dgram = CPU per datagram received; RSS = peak (VmHWM); ÷ nfcapd = records per CPU-second against nfcapd's in the same run and rate."
echo "Load average before the run: $load_start; after: $(cut -d' ' -f1-3 /proc/loadavg)."
echo
awk -F'\t' -v per="$feed_records" -v dg="$feed_dgrams" '
function fmt_rate(r) { return r == "max" ? "top speed" : sprintf("%g k dgrams/s", r / 1e3) }
{
	run[NR] = $1; rate[NR] = $2; peer[NR] = $3; sent[NR] = $4; recv[NR] = $5; shed[NR] = $6; kd[NR] = $7; cpu[NR] = $8; rss[NR] = $9; pps[NR] = $10; scpu[NR] = $11; qd[NR] = $12; sc[NR] = $13; cs[NR] = $14
	perc[NR] = $8 > 0 ? $5 / $8 : 0
	if ($3 == "nfcapd") nf[$1, $2] = perc[NR]
}
END {
	print "| run | offered | achieved dgrams/s | collector | records sent | received | loss % | shed % | kernel drops | queue drops | CPU s | records / CPU-s | ÷ nfcapd | µs CPU / dgram | syscalls / dgram | context switches / dgram | peak RSS MiB | sender CPU s |"
	print "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
	for (i = 1; i <= NR; i++) {
		loss = sent[i] > 0 ? 100 * (sent[i] - recv[i]) / sent[i] : 0
		if (loss < 0) loss = 0
		sh = (shed[i] == "-" || recv[i] == 0) ? "–" : sprintf("%.1f", 100 * shed[i] / recv[i])
		r = ((run[i], rate[i]) in nf && nf[run[i], rate[i]] > 0) ? sprintf("%.2f×", perc[i] / nf[run[i], rate[i]]) : "–"
		rd = recv[i] * dg / per
		scd = (sc[i] == "-" || rd == 0) ? "–" : sprintf("%.2f", sc[i] / rd)
		csd = (cs[i] == "-" || rd == 0) ? "–" : sprintf("%.3f", cs[i] / rd)
		us = recv[i] > 0 ? sprintf("%.1f", 1e6 * cpu[i] / (recv[i] * dg / per)) : "–"
		printf "| %s | %s | %.0f | %s | %d | %d | %.2f | %s | %d | %s | %.2f | %.0f | %s | %s | %s | %s | %d | %.2f |\n", run[i], fmt_rate(rate[i]), pps[i], peer[i], sent[i], recv[i], loss, sh, kd[i], (qd[i] == "-" ? "–" : qd[i]), cpu[i], perc[i], r, us, scd, csd, rss[i], scpu[i]
	}
}' "$results"
