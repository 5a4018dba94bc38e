#!/usr/bin/env bash
# Side-by-side ingest benchmark: flowcheck against goflow2's CLI, nfcapd
# (nfdump) and nfacctd (pmacct), on loopback, same machine, same run.
#
# For every rate and every collector, a fresh collector process is started
# on a loopback port, flowgen sends the same deterministic NetFlow stream for
# DURATION seconds, and the script reads back how many flow records the
# collector itself says it decoded, the CPU seconds it burned (utime+stime of
# its whole process group, /proc/PID/stat) and its peak RSS (VmHWM, summed
# over the group). It then prints one Markdown table, with flowcheck's ratio
# to each peer, and a summary of each collector's loss-free ceiling.
#
# Not part of CI (too slow, and it measures the machine). Run by hand:
#
#   bench/peers.sh                                  # full run, ~6-7 min
#   DURATION=3 RATES="100000 500000 1000000 max" bench/peers.sh   # ~2-3 min
#
# Environment:
#   DURATION   seconds of sending per rate            (default 5)
#   RATES      records/s, "max" = as fast as flowgen can
#              (default "100000 250000 500000 1000000 2000000 max")
#   PEERS      collectors to run (default "flowcheck goflow2 nfcapd nfacctd")
#   VERSION    export format for flowgen: 5, 9 or ipfix (default 9)
#   EXPORTERS  simulated exporters, 1-8 (default 4)
#   HOSTS      distinct hosts in the stream (default 100000)
#   SEED       flowgen seed (default 1)
#   CONVERSATIONS  distinct conversations flowgen cycles through (default 0:
#              one per host). The stream repeats every ~2 records per
#              conversation, so with the default a conversation comes back
#              well within flowcheck's 30 s reply window and finds its
#              tombstone; 5000000 or more makes nearly every conversation
#              new to the reply tracker, as in real traffic.
#   REPLY_DELAY records between a conversation's request and reply in
#              flowgen's stream (default 0: adjacent, as softflowd sends
#              them; a few thousand imitate a router's flow cache, which
#              expires the two directions apart)
#   SETTLE     seconds to let nfcapd/nfacctd drain before stopping them
#              (default 2); flowcheck and goflow2 are read once their count
#              has not moved for 1 s (at most SETTLE_MAX, default 20 s)
#   RCVBUF     socket receive buffer asked of every collector (default 64 MiB;
#              as root the kernel grants it past rmem_max, except to goflow2,
#              which has no such option and runs with the system default)
#   FC_SOCKETS flowcheck's SO_REUSEPORT sockets on the listener (default 1)
#   LOSS_OK    loss % still counted as loss-free (default 0.1)
#   PORT       first UDP port used (default 29550)
#   BENCH_BIN  where goflow2 is installed if missing
#              (default ${TMPDIR:-/tmp}/flowcheck-bench-bin)
#   FLOWCHECK_EXTRA  file whose YAML is appended to flowcheck's config
#   NFACCTD_EXTRA    file of lines appended to nfacctd's config
#   IDLE_WAIT  wait up to this many seconds for the 1-minute load average to
#              fall below IDLE_LOAD (default 1) before starting (default 0)
#   KEEP=1     keep the work directory (logs, configs, raw results)
set -euo pipefail

DURATION=${DURATION:-5}
RATES=${RATES:-"100000 250000 500000 1000000 2000000 max"}
PEERS=${PEERS:-"flowcheck goflow2 nfcapd nfacctd"}
# shellcheck source=bench/stream.sh
. "$(dirname "$0")/stream.sh"
SETTLE=${SETTLE:-2}
SETTLE_MAX=${SETTLE_MAX:-20}
RCVBUF=${RCVBUF:-67108864}
FC_SOCKETS=${FC_SOCKETS:-1}
LOSS_OK=${LOSS_OK:-0.1}
PORT=${PORT:-29550}
BENCH_BIN=${BENCH_BIN:-${TMPDIR:-/tmp}/flowcheck-bench-bin}
KEEP=${KEEP:-0}
IDLE_WAIT=${IDLE_WAIT:-0}
IDLE_LOAD=${IDLE_LOAD:-1}

root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/flowcheck-bench.XXXXXX")
export PATH="$PATH:/usr/sbin:/sbin:$BENCH_BIN"
clk_tck=$(getconf CLK_TCK)

# shellcheck source=bench/collectors.sh
. "$(dirname "$0")/collectors.sh"

# Every collector runs in its own process group (setsid), so stopping it
# also stops the children it forked (nfacctd's plugins and writers).
current_pid=""
cleanup() {
	stop_group "$current_pid"
	current_pid=""
	if [ "$KEEP" = 1 ]; then log "work directory kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

install_peers
log "building flowgen and flowcheck"
(cd "$root" && go build -o "$work/flowgen" ./cmd/flowgen)
build_flowcheck

# ---------------------------------------------------------------- run
wait_idle
results="$work/results.tsv"
: >"$results"
port=$PORT
peers=()
for p in $PEERS; do
	if [ "$p" = flowcheck ] && [ "$have_flowcheck" = 0 ]; then continue; fi
	peers+=("$p")
done

for rate in $RATES; do
	flowgen_rate=$rate
	[ "$rate" = max ] && flowgen_rate=0
	for peer in "${peers[@]}"; do
		dir="$work/$peer-$rate"
		mkdir -p "$dir"
		port=$((port + 2))
		udp=$port http=$((port + 1))
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
		# The sender's own CPU (user + system; on loopback the system
		# part includes the kernel's delivery to the collector's socket):
		# what the collector had left of the machine.
		TIMEFORMAT='%U %S'
		{ time "$work/flowgen" --target "127.0.0.1:$udp" --rate "$flowgen_rate" --duration "${DURATION}s" \
			"${stream_args[@]}" --json >"$dir/flowgen.json"; } 2>"$dir/flowgen.time"
		if [ "$peer" = flowcheck ] || [ "$peer" = goflow2 ]; then
			# Both decode from an in-process queue: wait for the count
			# to stop moving rather than for a fixed time.
			wait_stable "$peer" "$dir" "$udp" "$http"
		else
			sleep "$SETTLE"
		fi
		cpu1=$(group_cpu "$current_pid")
		rss=$(group_hwm_mib "$current_pid")
		stop_counted "$peer" "$dir" "$udp" "$http"
		rm -rf "$dir/flows"
		sent=$(sed -n 's/.*"records":\([0-9]*\).*/\1/p' "$dir/flowgen.json")
		achieved=$(sed -n 's/.*"records_per_second":\([0-9.e+]*\).*/\1/p' "$dir/flowgen.json")
		cpu=$(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN{printf "%.2f", b - a}')
		sender_cpu=$(awk '{printf "%.2f", $1 + $2}' "$dir/flowgen.time")
		printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$rate" "$peer" "$sent" "${recv:-0}" "$cpu" "$rss" "$achieved" "$sender_cpu" "${shed:-0}" >>"$results"
		log "$(printf '%-8s %-9s sent %10s received %10s cpu %6ss rss %5s MiB' "$rate" "$peer" "$sent" "${recv:-0}" "$cpu" "$rss")"
	done
done

# ---------------------------------------------------------------- report
echo
echo "NetFlow v$VERSION from flowgen ($EXPORTERS exporters, $HOSTS hosts, conversations $CONVERSATIONS (0: one per host), reply delay $REPLY_DELAY records, seed $SEED), ${DURATION}s per rate, $(nproc) CPUs, collector and sender on the same machine."
echo "Loss = records the collector did not count; CPU = collector's utime+stime; sender CPU = flowgen's (its system time includes the kernel's loopback delivery); RSS = peak (VmHWM); shed = share of flowcheck's records accounted without conversation stitching, its workers behind (collector.shed_backlog)."
echo "Load average before the run: $load_start; after: $(cut -d' ' -f1-3 /proc/loadavg)."
echo
awk -F'\t' -v ok="$LOSS_OK" '
function fmt_rate(r) { return r == "max" ? "max" : (r >= 1e6 ? sprintf("%gM", r / 1e6) : sprintf("%gk", r / 1e3)) }
function ratio(a, b) { return (b > 0 && a != "") ? sprintf("%.2f×", a / b) : "–" }
{
	rate[NR] = $1; peer[NR] = $2; sent[NR] = $3; recv[NR] = $4; cpu[NR] = $5; rss[NR] = $6; ach[NR] = $7; scpu[NR] = $8; shed[NR] = $9
	loss = $3 > 0 ? 100 * ($3 - $4) / $3 : 0
	if (loss < 0) loss = 0
	lossv[NR] = loss
	per[NR] = $5 > 0 ? $4 / $5 : 0
	if ($2 == "flowcheck") { fc_recv[$1] = $4; fc_per[$1] = per[NR] }
	if (!($2 in seen)) { seen[$2] = 1; order[++np] = $2 }
	if (loss <= ok && $7 + 0 > ceil[$2]) ceil[$2] = $7 + 0
	# flowcheck stitching (nearly) every record: shed within the same bound.
	if ($2 == "flowcheck" && loss <= ok && $4 > 0 && 100 * $9 / $4 <= ok && $7 + 0 > fullceil) fullceil = $7 + 0
	if ($4 > best[$2]) best[$2] = $4
}
END {
	print "| rate (rec/s) | collector | sent | received | loss % | shed % | CPU s | records / CPU-s | sender CPU s | peak RSS MiB | flowcheck ÷ peer, received | flowcheck ÷ peer, records / CPU-s |"
	print "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
	for (i = 1; i <= NR; i++) {
		r1 = peer[i] == "flowcheck" ? "–" : ratio(fc_recv[rate[i]], recv[i])
		r2 = peer[i] == "flowcheck" ? "–" : ratio(fc_per[rate[i]], per[i])
		sh = (shed[i] == "-" || recv[i] == 0) ? "–" : sprintf("%.1f", 100 * shed[i] / recv[i])
		printf "| %s | %s | %d | %d | %.2f | %s | %.2f | %.0f | %.2f | %d | %s | %s |\n", fmt_rate(rate[i]), peer[i], sent[i], recv[i], lossv[i], sh, cpu[i], per[i], scpu[i], rss[i], r1, r2
	}
	print ""
	printf "Loss-free ceiling (highest achieved send rate with loss ≤ %s %%):\n\n", ok
	print "| collector | loss-free ceiling (rec/s) | flowcheck ÷ peer |"
	print "|---|---:|---:|"
	for (j = 1; j <= np; j++) {
		p = order[j]
		c = (p in ceil) ? sprintf("%.0f", ceil[p]) : "below the lowest rate"
		r = (p == "flowcheck" || !("flowcheck" in ceil)) ? "–" : ratio(ceil["flowcheck"], ceil[p])
		printf "| %s | %s | %s |\n", p, c, r
		if (p == "flowcheck")
			printf "| flowcheck, shed ≤ %s %% too | %s | – |\n", ok, (fullceil > 0 ? sprintf("%.0f", fullceil) : "below the lowest rate")
	}
}' "$results"
