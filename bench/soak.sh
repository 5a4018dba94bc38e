#!/usr/bin/env bash
# Sustained load / soak of flowcheck: one collector, one flowgen stream at a
# fixed rate for a long time, the collector's RSS, host count and counters
# sampled every SAMPLE seconds into a CSV. Prints one summary line at the end
# (and the same as key=value pairs in $OUT.summary).
#
#   bench/soak.sh                                  # 500 k records/s for 600 s
#   RATE=1000000 DURATION=60 bench/soak.sh         # issue 7's "zero loss at 1 M for 60 s"
#
# Environment (defaults in brackets):
#   RATE       target records/s [500000]      DURATION  seconds [600]
#   SAMPLE     seconds between samples [10]   VERSION   5, 9 or 10 [9]
#   EXPORTERS  flowgen exporters [4]          HOSTS     distinct hosts [100000]
#   SEED       flowgen seed [1]               RCVBUF    SO_RCVBUF bytes [67108864]
#   CONVERSATIONS  distinct conversations in flowgen's cycle [0: one per host; see peers.sh]
#   REPLY_DELAY    records between request and reply in flowgen's cycle [0; see peers.sh]
#   FC_SOCKETS listener sockets [1]           WORKERS   decode workers [2]
#   PORT       first UDP port tried [free port from 31000 up; HTTP on the next free one]
#   OUT        CSV path [bench/results/soak-RATE-DURATIONs-YYYYmmddTHHMMSS.csv]
#   FLOWCHECK_EXTRA  a YAML file appended to the generated configuration
#   BIN        directory holding prebuilt collector and flowgen (skips the build)
#   KEEP=1     keep the temporary directory (configuration, logs, alerts)
#
# The collector runs with its own configuration: the listener, the HTTP
# server, and everything else at its shipped defaults (the embedded checks on
# a 30 s tick, alerts to stdout, which goes to a file; no Kafka). Its working
# directory is a fresh temporary one, so no "scripts" directory shadows the
# embedded checks.
#
# Loss = 1 - flowcheck_collector_flows_total / records flowgen sent. Datagrams
# dropped by flowcheck itself are flowcheck_collector_drops_total; those the
# kernel dropped for a full socket buffer are the growth of UdpRcvbufErrors
# (nstat), which is system-wide: other traffic on the machine counts too.
#
# CSV columns: t_s (since flowgen started), rss_kib (VmRSS), hwm_kib (VmHWM),
# hosts (flowcheck_aggregate_hosts), flows (flows_total so far), drops
# (drops_total so far), cpu_s (collector utime+stime so far), load1.
set -euo pipefail

RATE=${RATE:-500000}
DURATION=${DURATION:-600}
SAMPLE=${SAMPLE:-10}
# shellcheck source=bench/stream.sh
. "$(dirname "$0")/stream.sh"
RCVBUF=${RCVBUF:-67108864}
FC_SOCKETS=${FC_SOCKETS:-1}
WORKERS=${WORKERS:-2}
PORT=${PORT:-31000}
KEEP=${KEEP:-0}
SETTLE_MAX=${SETTLE_MAX:-30}

root=$(cd "$(dirname "$0")/.." && pwd)
stamp=$(date -u +%Y%m%dT%H%M%S)
OUT=${OUT:-$root/bench/results/soak-$RATE-${DURATION}s-$stamp.csv}
mkdir -p "$(dirname "$OUT")"
work=$(mktemp -d "${TMPDIR:-/tmp}/flowcheck-soak.XXXXXX")
clk_tck=$(getconf CLK_TCK)

# shellcheck source=bench/collectors.sh
. "$(dirname "$0")/collectors.sh" # metric_sum
log() { echo "soak.sh: $*" >&2; }

# Every process this script starts, by PID; the trap stops them.
fc_pid="" gen_pid="" sampler_pid=""
cleanup() {
	local p
	for p in "$gen_pid" "$sampler_pid" "$fc_pid"; do
		[ -n "$p" ] || continue
		kill -TERM "$p" 2>/dev/null || true
	done
	for p in "$gen_pid" "$sampler_pid" "$fc_pid"; do
		[ -n "$p" ] || continue
		for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	if [ "$KEEP" = 1 ]; then log "kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- build
if [ -n "${BIN:-}" ]; then
	cp "$BIN/collector" "$work/flowcheck"
	cp "$BIN/flowgen" "$work/flowgen"
else
	(cd "$root" && go build -o "$work/flowgen" ./cmd/flowgen && go build -o "$work/flowcheck" ./cmd/collector)
fi

# ---------------------------------------------------------------- helpers
# port_free PORT: nothing bound to PORT on UDP or TCP (IPv4 or IPv6).
port_free() {
	local hex
	hex=$(printf ':%04X ' "$1")
	! grep -q "$hex" /proc/net/udp /proc/net/udp6 /proc/net/tcp /proc/net/tcp6 2>/dev/null
}
free_port() {
	local p=$1
	while ! port_free "$p"; do p=$((p + 1)); done
	echo "$p"
}
status_kib() { # PID FIELD
	awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status" 2>/dev/null || echo 0
}
cpu_s() { # PID: utime+stime in seconds
	local line s
	{ read -r line <"/proc/$1/stat"; } 2>/dev/null || { echo 0; return; }
	line=${line##*) }
	read -r -a s <<<"$line"
	awk -v t="$((s[11] + s[12]))" -v h="$clk_tck" 'BEGIN{printf "%.2f", t/h}'
}
rcvbuf_errors() {
	nstat -saz UdpRcvbufErrors Udp6RcvbufErrors 2>/dev/null | awk '$1 ~ /RcvbufErrors/ {s += $2} END {printf "%.0f", s}'
}

# ---------------------------------------------------------------- start
udp=$(free_port "$PORT")
http=$(free_port $((udp + 1)))
metrics="http://127.0.0.1:$http/metrics"
cat >"$work/flowcheck.yaml" <<EOF
collector:
  listeners:
    - url: netflow://127.0.0.1:$udp
      sockets: $FC_SOCKETS
      rcvbuf: $RCVBUF
  workers: $WORKERS
http:
  listen: 127.0.0.1:$http
EOF
if [ -n "${FLOWCHECK_EXTRA:-}" ]; then cat "$FLOWCHECK_EXTRA" >>"$work/flowcheck.yaml"; fi
(cd "$work" && exec ./flowcheck run --config flowcheck.yaml >alerts.jsonl 2>collector.log) &
fc_pid=$!
for _ in $(seq 100); do
	curl -fsS -o /dev/null "$metrics" 2>/dev/null && break
	sleep 0.1
done
if ! curl -fsS -o /dev/null "$metrics" 2>/dev/null; then
	log "flowcheck did not start; its log:"
	sed 's/^/    /' "$work/collector.log" >&2
	exit 1
fi
granted=$(metric_sum "$metrics" '^flowcheck_collector_socket_rcvbuf_bytes')
log "flowcheck pid $fc_pid on udp $udp, http $http, rcvbuf granted $granted; $RATE rec/s for ${DURATION}s, samples every ${SAMPLE}s into $OUT"

sleep 1
kern0=$(rcvbuf_errors)
cpu0=$(cpu_s "$fc_pid")
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
echo "t_s,rss_kib,hwm_kib,hosts,flows,drops,cpu_s,load1" >"$OUT"

# Sampler: one line every SAMPLE seconds from flowgen's start, on a fixed
# schedule (the sleep is what is left of the period).
t0=$(date +%s.%N)
(
	i=0
	while kill -0 "$fc_pid" 2>/dev/null; do
		now=$(date +%s.%N)
		t=$(awk -v a="$now" -v b="$t0" 'BEGIN{printf "%.1f", a - b}')
		printf '%s,%s,%s,%s,%s,%s,%s,%s\n' "$t" "$(status_kib "$fc_pid" VmRSS)" "$(status_kib "$fc_pid" VmHWM)" \
			"$(metric_sum "$metrics" '^flowcheck_aggregate_hosts ')" \
			"$(metric_sum "$metrics" '^flowcheck_collector_flows_total')" \
			"$(metric_sum "$metrics" '^flowcheck_collector_drops_total')" \
			"$(cpu_s "$fc_pid")" "$(cut -d' ' -f1 /proc/loadavg)" >>"$OUT"
		i=$((i + 1))
		next=$(awk -v b="$t0" -v i="$i" -v s="$SAMPLE" 'BEGIN{printf "%.3f", b + i * s}')
		now=$(date +%s.%N)
		sleep "$(awk -v n="$next" -v c="$now" 'BEGIN{d = n - c; printf "%.3f", (d > 0 ? d : 0)}')"
	done
) &
sampler_pid=$!

# ---------------------------------------------------------------- load
"$work/flowgen" --target "127.0.0.1:$udp" --rate "$RATE" --duration "${DURATION}s" \
	"${stream_args[@]}" --json >"$work/flowgen.json" 2>"$work/flowgen.log" &
gen_pid=$!
wait "$gen_pid" || { log "flowgen failed:"; cat "$work/flowgen.log" >&2; exit 1; }
gen_pid=""

# The collector decodes from an in-process queue: read once its count has
# stood still for a second.
last=-1
for _ in $(seq "$SETTLE_MAX"); do
	sleep 1
	now=$(metric_sum "$metrics" '^flowcheck_collector_flows_total')
	[ "$now" = "$last" ] && break
	last=$now
done
kill -TERM "$sampler_pid" 2>/dev/null || true
wait "$sampler_pid" 2>/dev/null || true
sampler_pid=""

received=$(metric_sum "$metrics" '^flowcheck_collector_flows_total')
drops=$(metric_sum "$metrics" '^flowcheck_collector_drops_total')
decode_errors=$(metric_sum "$metrics" '^flowcheck_collector_decode_errors_total')
hosts=$(metric_sum "$metrics" '^flowcheck_aggregate_hosts ')
ticks=$(metric_sum "$metrics" '^flowcheck_scripting_ticks_total')
kern1=$(rcvbuf_errors)
cpu1=$(cpu_s "$fc_pid")
hwm=$(status_kib "$fc_pid" VmHWM)
load_end=$(cut -d' ' -f1-3 /proc/loadavg)
sent=$(sed -n 's/.*"records":\([0-9]*\).*/\1/p' "$work/flowgen.json")
achieved=$(sed -n 's/.*"records_per_second":\([0-9.e+]*\).*/\1/p' "$work/flowgen.json")

# RSS over the run (runs of 2 minutes or more): the first and last minute
# (mean of their samples), and min/max after the first minute (which holds
# the host table filling and the first check tick).
rss_stats=""
[ "$DURATION" -ge 120 ] && rss_stats=$(awk -F, -v d="$DURATION" 'NR > 1 && $1 <= d + 0.5 {
		r = $2 / 1024
		if ($1 <= 60) { fs += r; fn++ }
		if ($1 >= d - 60) { ls += r; ln++ }
		if ($1 >= 60) { if (mn == "" || r < mn) mn = r; if (r > mx) mx = r }
	}
	END {
		f = fn ? fs / fn : 0; l = ln ? ls / ln : 0
		printf "rss_first_min_mib=%.1f rss_last_min_mib=%.1f rss_change_pct=%.1f rss_min_after_1m_mib=%.1f rss_max_after_1m_mib=%.1f rss_spread_after_1m_pct=%.1f",
			f, l, f ? 100 * (l - f) / f : 0, mn, mx, mn ? 100 * (mx - mn) / mn : 0
	}' "$OUT")

summary=$(awk -v rate="$RATE" -v dur="$DURATION" -v sent="$sent" -v recv="$received" -v drops="$drops" \
	-v derr="$decode_errors" -v k0="$kern0" -v k1="$kern1" -v c0="$cpu0" -v c1="$cpu1" -v hwm="$hwm" \
	-v hosts="$hosts" -v ticks="$ticks" -v ach="$achieved" -v rss="$rss_stats" 'BEGIN {
		loss = sent > 0 ? 100 * (sent - recv) / sent : 0
		printf "rate=%s duration_s=%s sent=%s achieved_rps=%.0f received=%s loss_pct=%.3f drops=%s decode_errors=%s kernel_rcvbuf_errors=%d cpu_s=%.2f peak_rss_mib=%.1f hosts=%s ticks=%s %s",
			rate, dur, sent, ach, recv, loss, drops, derr, k1 - k0, c1 - c0, hwm / 1024, hosts, ticks, rss
	}')
{
	echo "$summary load_start=\"$load_start\" load_end=\"$load_end\" nproc=$(nproc) csv=$OUT"
} >"${OUT%.csv}.summary"
echo "soak: $summary load=\"$load_start -> $load_end\""
