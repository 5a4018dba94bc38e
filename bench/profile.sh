#!/usr/bin/env bash
# Profile flowcheck's ingest path under flowgen load, with perf (the
# collector serves no pprof endpoint; perf needs no change to it and sees the
# kernel's share too). Prints the collector's own counters, then the hottest
# functions, self and cumulative.
#
#   bench/profile.sh                      # 1 M records/s NetFlow v9 for 10 s
#   RATE=max DURATION=5 bench/profile.sh
#
# Environment: RATE (records/s or max, default 1000000), DURATION (s, 10),
# VERSION (9), EXPORTERS (4), HOSTS (100000), SEED (1), CONVERSATIONS (0: one per
# host; see peers.sh), REPLY_DELAY (0; see peers.sh), FC_SOCKETS (1), RCVBUF (64 MiB),
# PORT (29700), TOP (lines per report, 40), FLOWCHECK_EXTRA (YAML appended to
# the configuration), KEEP=1 (keep perf.data and logs).
# Needs perf (Debian: linux-perf) and, for kernel symbols, root.
set -euo pipefail

RATE=${RATE:-1000000}
DURATION=${DURATION:-10}
# shellcheck source=bench/stream.sh
. "$(dirname "$0")/stream.sh"
FC_SOCKETS=${FC_SOCKETS:-1}
RCVBUF=${RCVBUF:-67108864}
PORT=${PORT:-29700}
TOP=${TOP:-40}
KEEP=${KEEP:-0}

command -v perf >/dev/null 2>&1 || { echo "profile.sh: perf is missing (apt-get install linux-perf)" >&2; exit 1; }
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/flowcheck-profile.XXXXXX")
pid=""
cleanup() {
	if [ -n "$pid" ]; then
		kill -TERM "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
	if [ "$KEEP" = 1 ]; then echo "kept: $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

(cd "$root" && go build -o "$work/flowgen" ./cmd/flowgen && go build -o "$work/flowcheck" ./cmd/collector)
http=$((PORT + 1))
cat >"$work/flowcheck.yaml" <<EOF
collector:
  listeners:
    - url: netflow://127.0.0.1:$PORT
      sockets: $FC_SOCKETS
      rcvbuf: $RCVBUF
http:
  listen: 127.0.0.1:$http
EOF
if [ -n "${FLOWCHECK_EXTRA:-}" ]; then cat "$FLOWCHECK_EXTRA" >>"$work/flowcheck.yaml"; fi
"$work/flowcheck" run --config "$work/flowcheck.yaml" >"$work/log" 2>&1 &
pid=$!
for _ in $(seq 100); do
	curl -fsS -o /dev/null "http://127.0.0.1:$http/metrics" 2>/dev/null && break
	sleep 0.1
done

rate=$RATE
[ "$rate" = max ] && rate=0
perf record -F 499 -g -p "$pid" -o "$work/perf.data" -- sleep "$((DURATION + 1))" 2>"$work/perf.log" &
perfpid=$!
"$work/flowgen" --target "127.0.0.1:$PORT" --rate "$rate" --duration "${DURATION}s" "${stream_args[@]}"
wait "$perfpid" || true
sleep 1

echo
echo "== collector counters"
curl -fsS "http://127.0.0.1:$http/metrics" |
	grep -E '^flowcheck_collector_(flows_total|drops_total|datagrams_total|decode_errors_total)|^flowcheck_aggregate_hosts ' || true
grep -E 'VmHWM|VmRSS' "/proc/$pid/status" || true
echo
echo "== hottest functions (self)"
perf report -i "$work/perf.data" --no-children --sort symbol --stdio 2>/dev/null |
	grep -E '^ +[0-9]' | head -n "$TOP"
echo
echo "== hottest functions (with callees)"
perf report -i "$work/perf.data" --children --sort symbol --stdio 2>/dev/null |
	grep -E '^ +[0-9]' | head -n "$TOP"
