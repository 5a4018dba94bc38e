#!/usr/bin/env bash
# The cluster of issue 14 on one machine: how fast one ingest process
# publishes to Kafka, and how fast one, two and three check workers consume
# the same stream. The broker is kfake (internal/cmd/kfakebroker, its own
# process, everything in memory), so the figures are flowcheck's and
# kfake's, not a real Kafka's.
#
#   bench/cluster.sh                          # 5 M records at 1 M/s, then 1, 2 and 3 check workers
#   RATE=0 COUNT=3000000 bench/cluster.sh     # flowgen as fast as it can
#
# 1. Ingest: one process of role ingest receives flowgen's stream over UDP
#    and publishes it to the flows topic. Figures: records decoded, record
#    copies acknowledged (a record goes to its source host's partition and
#    to its destination host's, once when they share one), drops, the
#    ingest's CPU per record, the broker's, and the Kafka bytes per record
#    as kfake stores them (lz4 batches) and before compression.
# 2. Check: for each W in WORKERS, W processes of role check in a fresh
#    consumer group read the whole topic (rebuild_window 1h reaches back to
#    its first message) until they are caught up (their metrics: every
#    partition owned, none rebuilding, no lag). Figures: wall time,
#    record copies/s in total, CPU seconds of the workers and copies per
#    CPU-second: the scaling shows in the latter even when two cores bound
#    the former.
#
# Environment (defaults in brackets):
#   RATE        flowgen records/s, 0 = as fast as it can [1000000]
#   COUNT       records flowgen sends [5000000]; kfake holds them in memory
#   PARTITIONS  partitions of the flows topic [12]
#   WORKERS     check worker counts to run, in order ["1 2 3"]
#   VERSION, EXPORTERS, HOSTS, SEED, CONVERSATIONS, REPLY_DELAY: flowgen's
#               stream (bench/stream.sh)
#   SETTLE_MAX  seconds to wait for a count to stand still or a lag to
#               reach zero [120]
#   BIN         directory holding prebuilt collector, flowgen and
#               kfakebroker (skips the build)
#   OUT         result file [bench/results/cluster-YYYYmmddTHHMM.md]
#   KEEP=1      keep the scratch directory (configurations, logs)
set -euo pipefail

RATE=${RATE:-1000000}
COUNT=${COUNT:-5000000}
PARTITIONS=${PARTITIONS:-12}
WORKERS=${WORKERS-"1 2 3"}
SETTLE_MAX=${SETTLE_MAX:-120}
KEEP=${KEEP:-0}
RCVBUF=${RCVBUF:-67108864}
# shellcheck source=bench/stream.sh
. "$(dirname "$0")/stream.sh"

root=$(cd "$(dirname "$0")/.." && pwd)
stamp=$(date -u +%Y%m%dT%H%M)
OUT=${OUT:-$root/bench/results/cluster-$stamp.md}
mkdir -p "$(dirname "$OUT")"
work=$(mktemp -d "${TMPDIR:-/tmp}/flowcheck-cluster.XXXXXX")
clk_tck=$(getconf CLK_TCK)
# shellcheck source=bench/collectors.sh
. "$root/bench/collectors.sh"

broker_pid="" ingest_pid="" check_pids=()
cleanup() {
	local p
	for p in "${check_pids[@]}" "$ingest_pid" "$broker_pid"; do
		stop_group "$p"
	done
	if [ "$KEEP" = 1 ]; then log "kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- build
if [ -n "${BIN:-}" ]; then
	cp "$BIN/collector" "$BIN/flowgen" "$BIN/kfakebroker" "$work/"
else
	(cd "$root" && go build -o "$work/collector" ./cmd/collector &&
		go build -o "$work/flowgen" ./cmd/flowgen &&
		go build -o "$work/kfakebroker" ./internal/cmd/kfakebroker)
fi

# ---------------------------------------------------------------- helpers
# cpu_of PID: utime+stime of one process, in seconds.
cpu_of() {
	local line s
	{ read -r line <"/proc/$1/stat"; } 2>/dev/null || { echo 0; return; }
	line=${line##*) }
	read -r -a s <<<"$line"
	awk -v t="$((s[11] + s[12]))" -v h="$clk_tck" 'BEGIN{printf "%.2f", t/h}'
}
# alive PID: the process runs (a zombie has exited).
alive() {
	local line
	{ read -r line <"/proc/$1/stat"; } 2>/dev/null || return 1
	line=${line##*) }
	[ "${line:0:1}" != Z ]
}
# free_port [udp]: a TCP (or UDP) port of 127.0.0.1 free a moment ago (the
# kernel's pick).
free_port() {
	python3 -c 'import socket, sys
s = socket.socket(type=socket.SOCK_DGRAM if sys.argv[1:] == ["udp"] else socket.SOCK_STREAM)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])' "$@"
}
# report FIELD [GROUP]: a figure of the broker's report (kfakebroker
# -report/-report-group), asked for with SIGUSR1.
report() {
	local n
	n=$(wc -l <"$work/broker.out")
	kill -USR1 "$broker_pid"
	for _ in $(seq 50); do
		[ "$(wc -l <"$work/broker.out")" -gt "$n" ] && break
		sleep 0.05
	done
	sleep 0.05
	tail -n +"$((n + 1))" "$work/broker.out" | awk -v g="${2:-}" -v f="$1" '
		(g == "" && $1 == "topic") || (g != "" && $1 == "group" && $2 == g) {
			for (i = 3; i < NF; i += 2) if ($i == f) print $(i + 1)
		}'
}
# div A B [FORMAT [SCALE]]: A*SCALE/B, "-" when B is zero.
div() {
	awk -v a="$1" -v b="$2" -v f="${3:-%.0f}" -v k="${4:-1}" 'BEGIN{if (b == 0) print "-"; else printf f "\n", a * k / b}'
}

# config ROLE HTTP [UDP] [GROUP]: a process's configuration.
config() {
	cat <<EOF
instance: $1-$2
log:
  format: json
http:
  listen: 127.0.0.1:$2
collector:
  listeners:
    - url: netflow://127.0.0.1:${3:-0}
      rcvbuf: $RCVBUF
sinks:
  stdout:
    enabled: true
cluster:
  role: $1
  brokers: [$broker]
  partitions: $PARTITIONS
  group: ${4:-flowcheck-check}
  rebuild_window: 1h
EOF
}

# ---------------------------------------------------------------- broker
setsid "$work/kfakebroker" -partitions "$PARTITIONS" -report flowcheck.flows \
	$(for w in $WORKERS; do printf -- '-report-group bench-%s ' "$w"; done) >"$work/broker.out" 2>"$work/broker.log" &
broker_pid=$!
for _ in $(seq 100); do grep -q '^listening ' "$work/broker.out" && break; sleep 0.1; done
broker=$(awk '$1 == "listening" {print $2; exit}' "$work/broker.out")
[ -n "$broker" ] || { log "kfakebroker did not start"; cat "$work/broker.log" >&2; exit 1; }
log "kfake on $broker, $PARTITIONS partitions"

# ---------------------------------------------------------------- ingest
udp=$(free_port udp)
http=$(free_port)
config ingest "$http" "$udp" >"$work/ingest.yaml"
(cd "$work" && exec setsid ./collector run --config ingest.yaml >ingest.out 2>ingest.log) &
ingest_pid=$!
metrics="http://127.0.0.1:$http/metrics"
if ! wait_udp "$udp" || ! wait_http "$metrics"; then
	log "the ingest process did not start:"; sed 's/^/    /' "$work/ingest.log" >&2; exit 1
fi
cpu0=$(cpu_of "$ingest_pid") bcpu0=$(cpu_of "$broker_pid")
log "ingest: flowgen sends $COUNT records at ${RATE}/s"
"$work/flowgen" --target "127.0.0.1:$udp" --rate "$RATE" --count "$COUNT" --duration 0 \
	"${stream_args[@]}" --json >"$work/flowgen.json" 2>"$work/flowgen.log" ||
	{ log "flowgen failed:"; cat "$work/flowgen.log" >&2; exit 1; }
last=-1
for _ in $(seq "$SETTLE_MAX"); do
	sleep 1
	now=$(metric_sum "$metrics" '^flowcheck_cluster_publish_records_total')
	[ "$now" = "$last" ] && break
	last=$now
done
sent=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["records"])' "$work/flowgen.json")
elapsed=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["elapsed_seconds"])' "$work/flowgen.json")
decoded=$(metric_sum "$metrics" '^flowcheck_collector_flows_total')
input=$(metric_sum "$metrics" '^flowcheck_cluster_publish_input_records_total')
copies=$(metric_sum "$metrics" '^flowcheck_cluster_publish_records_total')
value_bytes=$(metric_sum "$metrics" '^flowcheck_cluster_publish_bytes_total')
messages=$(metric_sum "$metrics" '^flowcheck_cluster_publish_messages_total')
pub_drops=$(metric_sum "$metrics" '^flowcheck_cluster_publish_dropped_records_total')
pub_reasons=$(curl -fsS "$metrics" | awk -F'[{}"= ]+' '/^flowcheck_cluster_publish_dropped_records_total\{/ && $NF > 0 {printf "%s%s %.0f", sep, $3, $NF; sep = ", "}')
pub_errors=$(curl -fsS "$metrics" | awk -F'[{}"= ]+' '/^flowcheck_cluster_publish_errors_total\{/ && $NF > 0 {printf "%s%s %.0f", sep, $3, $NF; sep = ", "}')
col_drops=$(metric_sum "$metrics" '^flowcheck_collector_drops_total')
icpu=$(awk -v a="$(cpu_of "$ingest_pid")" -v b="$cpu0" 'BEGIN{printf "%.2f", a - b}')
bcpu=$(awk -v a="$(cpu_of "$broker_pid")" -v b="$bcpu0" 'BEGIN{printf "%.2f", a - b}')
stored=$(report bytes)
stored_msgs=$(report messages)
stop_group "$ingest_pid"
ingest_pid=""

{
	echo "# Cluster benchmark, $(date -u '+%Y-%m-%d %H:%M') UTC"
	echo
	echo "$(nproc) CPUs, load before: $(cut -d' ' -f1-3 /proc/loadavg). kfake (internal/cmd/kfakebroker), $PARTITIONS partitions."
	echo "flowgen: $sent records in ${elapsed}s (v$VERSION, $EXPORTERS exporters, $HOSTS hosts, target rate $RATE/s); $(div "$((sent - decoded))" "$sent" %.1f 100) % not decoded (lost on the way or dropped)."
	echo
	echo "## Ingest (one process)"
	echo
	echo "| figure | value |"
	echo "|---|---|"
	echo "| records decoded | $decoded (collector drops $col_drops) |"
	echo "| records handed to the publisher | $input |"
	echo "| record copies acknowledged | $copies ($(div "$copies" "$input" %.2f) per record), dropped $pub_drops${pub_reasons:+ ($pub_reasons)}, write errors ${pub_errors:-0} |"
	echo "| publish rate | $(div "$input" "$elapsed") records/s handed to the publisher, $(div "$copies" "$elapsed") copies/s acknowledged, over flowgen's ${elapsed}s |"
	echo "| ingest CPU | ${icpu}s: $(div "$icpu" "$input" %.2f 1000000) µs per record, $(div "$input" "$icpu") records per CPU-second |"
	echo "| broker (kfake) CPU | ${bcpu}s: $(div "$bcpu" "$input" %.2f 1000000) µs per record |"
	echo "| messages | $messages acknowledged, $stored_msgs stored: $(div "$copies" "$messages") copies per message |"
	echo "| Kafka bytes per record | $(div "$stored" "$input" %.1f) stored (lz4), $(div "$value_bytes" "$input" %.1f) before compression ($(div "$stored" "$copies" %.1f) and $(div "$value_bytes" "$copies" %.1f) per copy) |"
	echo
	echo "## Check workers reading the same $copies record copies"
	echo
	echo "| workers | wall s | copies/s total | CPU s (workers) | copies per CPU-second | copies applied (re-reads after rebalances) |"
	echo "|---|---|---|---|---|---|"
} >"$OUT"

# ---------------------------------------------------------------- check
for w in $WORKERS; do
	check_pids=() check_http=()
	t0=$(date +%s.%N)
	for i in $(seq "$w"); do
		h=$(free_port)
		check_http+=("$h")
		config check "$h" 0 "bench-$w" >"$work/check-$w-$i.yaml"
		(cd "$work" && exec setsid ./collector run --config "check-$w-$i.yaml" >"check-$w-$i.out" 2>"check-$w-$i.log") &
		check_pids+=($!)
	done
	# Caught up: the group has its w members, they own every partition,
	# none is rebuilding, their lag is zero and they applied at least every
	# copy (a partition moved by a rebalance is read again by its new owner).
	done_=0
	for _ in $(seq "$((SETTLE_MAX * 5))"); do
		sleep 0.2
		owned=0 rebuilding=0 lag=0 applied=0
		for h in "${check_http[@]}"; do
			m="http://127.0.0.1:$h/metrics"
			owned=$((owned + $(metric_sum "$m" '^flowcheck_cluster_owned_partitions ')))
			rebuilding=$((rebuilding + $(metric_sum "$m" '^flowcheck_cluster_partitions_rebuilding ')))
			lag=$((lag + $(metric_sum "$m" '^flowcheck_cluster_consume_lag_messages')))
			applied=$((applied + $(metric_sum "$m" '^flowcheck_cluster_consume_records_total ')))
		done
		members=$(report members "bench-$w")
		if [ "$members" = "$w" ] && [ "$owned" = "$PARTITIONS" ] && [ "$rebuilding" = 0 ] && [ "$lag" = 0 ] && [ "$applied" -ge "$copies" ]; then
			done_=1
			break
		fi
		for i in $(seq "$w"); do
			if ! alive "${check_pids[$((i - 1))]}"; then
				log "check worker $i of $w exited:"; sed 's/^/    /' "$work/check-$w-$i.log" >&2; exit 1
			fi
		done
	done
	t1=$(date +%s.%N)
	wall=$(awk -v a="$t1" -v b="$t0" 'BEGIN{printf "%.2f", a - b}')
	cpu=0
	for p in "${check_pids[@]}"; do cpu=$(awk -v a="$cpu" -v b="$(cpu_of "$p")" 'BEGIN{printf "%.2f", a + b}'); done
	for p in "${check_pids[@]}"; do stop_group "$p"; done
	check_pids=()
	if [ "$done_" = 0 ]; then
		log "$w check workers: not caught up within ${SETTLE_MAX}s (members $members, owned $owned, rebuilding $rebuilding, lag $lag, applied $applied)"
		echo "| $w | not caught up in ${SETTLE_MAX}s | | ${cpu} | | $applied |" >>"$OUT"
		continue
	fi
	echo "| $w | $wall | $(div "$copies" "$wall") | $cpu | $(div "$copies" "$cpu") | $applied ($(div "$applied" "$copies" %.2f)×) |" >>"$OUT"
	log "$w check workers: ${wall}s, ${cpu} CPU-s"
done
echo >>"$OUT"
echo "Wall time runs from the workers' start (process start, group join, rebuild of the whole topic, host table and checks) until the group has every member, they own every partition, none rebuilds, their lag is zero and they applied every copy; CPU is the workers' over that time." >>"$OUT"
cat "$OUT"
