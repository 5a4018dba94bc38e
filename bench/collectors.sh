# Sourced by peers.sh, realfeed.sh and soak.sh (metric_sum): the pieces of a side-by-side run
# (installing the peers, starting, watching and stopping each collector,
# reading what it says it received), one copy of each. The sourcing script
# sets root, work (a scratch directory), RCVBUF, FC_SOCKETS, SETTLE_MAX,
# BENCH_BIN, IDLE_WAIT, IDLE_LOAD and clk_tck first.

log() { printf '%s\n' "$*" >&2; }

# ---------------------------------------------------------------- cleanup
# Every collector runs in its own process group (setsid), so stopping it
# also stops the children it forked (nfacctd's plugins and writers).
current_pid=""
# stop_group PID [SIGNAL]: stop a collector: SIGNAL (default TERM) to the
# group leader only, so that it shuts down its children itself (nfacctd's
# core flushes its plugin only then), KILL to the whole group after 5 s.
stop_group() {
	local pid=$1 sig=${2:-TERM}
	[ -n "$pid" ] || return 0
	kill "-$sig" "$pid" 2>/dev/null || true
	for _ in $(seq 50); do
		kill -0 "$pid" 2>/dev/null || break
		# A zombie group leader has exited; wait reaps it below.
		local line=""
		{ read -r line <"/proc/$pid/stat"; } 2>/dev/null || true
		line=${line##*) }
		[ "${line:0:1}" = Z ] && break
		sleep 0.1
	done
	kill -KILL -- "-$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

# install_peers: install the peers that are missing (nfdump and pmacct from
# Debian, goflow2 v2.2.6 with go install into BENCH_BIN).
install_peers() {
	local need_apt=()
	command -v nfcapd >/dev/null 2>&1 || need_apt+=(nfdump)
	command -v nfacctd >/dev/null 2>&1 || need_apt+=(pmacct)
	if [ ${#need_apt[@]} -gt 0 ]; then
		log "installing ${need_apt[*]}"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq && apt-get install -y -qq "${need_apt[@]}" >&2
	fi
	if ! command -v goflow2 >/dev/null 2>&1; then
		log "installing goflow2 v2.2.6 into $BENCH_BIN"
		mkdir -p "$BENCH_BIN"
		(cd "$work" && GOBIN="$BENCH_BIN" GOFLAGS= go install github.com/netsampler/goflow2/v2/cmd/goflow2@v2.2.6)
	fi
}

# build_flowcheck: build the collector into $work/flowcheck; have_flowcheck
# is 0 (and the build's errors are logged) when it does not build.
build_flowcheck() {
	have_flowcheck=1
	if ! (cd "$root" && go build -o "$work/flowcheck" ./cmd/collector) 2>"$work/build-flowcheck.log"; then
		log "flowcheck does not build; running the peers alone:"
		sed 's/^/    /' "$work/build-flowcheck.log" >&2
		have_flowcheck=0
	fi
}

# wait_idle: other work on the machine steals CPU from the collectors and
# shows up as loss: wait up to IDLE_WAIT seconds for the 1-minute load
# average to fall below IDLE_LOAD, then set load_start and warn when the
# machine is busy.
wait_idle() {
	local l1
	if [ "$IDLE_WAIT" -gt 0 ]; then
		log "waiting up to ${IDLE_WAIT}s for the 1-minute load average to drop below $IDLE_LOAD"
		for _ in $(seq "$IDLE_WAIT"); do
			read -r l1 _ </proc/loadavg
			awk -v l="$l1" -v m="$IDLE_LOAD" 'BEGIN{exit !(l < m)}' && break
			sleep 1
		done
	fi
	load_start=$(cut -d' ' -f1-3 /proc/loadavg)
	if awk -v l="${load_start%% *}" 'BEGIN{exit !(l > 0.5)}'; then
		log "warning: load average $load_start before the run; the figures will show the machine's other work"
	fi
}

# group_pids PGID: the PIDs of the live processes of a process group. Pure
# bash (read, not cat): forks are slow on some virtual machines and this runs
# over every process.
group_pids() {
	local pgid=$1 f line s
	for f in /proc/[0-9]*/stat; do
		{ read -r line <"$f"; } 2>/dev/null || continue
		line=${line##*) }
		# Fields after "comm)": 1 state, 2 ppid, 3 pgrp.
		read -r -a s <<<"$line"
		[ "${s[2]}" = "$pgid" ] && { f=${f#/proc/}; echo "${f%/stat}"; }
	done
	return 0
}

# group_cpu PGID: CPU seconds (utime+stime, plus those of reaped children)
# of every process in the group.
group_cpu() {
	local pid line s ticks=0
	for pid in $(group_pids "$1"); do
		{ read -r line <"/proc/$pid/stat"; } 2>/dev/null || continue
		line=${line##*) }
		# 12 utime, 13 stime, 14 cutime, 15 cstime (1-based after "comm)").
		read -r -a s <<<"$line"
		ticks=$((ticks + s[11] + s[12] + s[13] + s[14]))
	done
	awk -v t="$ticks" -v h="$clk_tck" 'BEGIN{printf "%.2f", t/h}'
}

# group_hwm_mib PGID: summed VmHWM (peak RSS) of the group's live
# processes, in MiB.
group_hwm_mib() {
	local pid k v _ kb=0
	for pid in $(group_pids "$1"); do
		{ while read -r k v _; do
			[ "$k" = VmHWM: ] && kb=$((kb + v))
		done <"/proc/$pid/status"; } 2>/dev/null || true
	done
	awk -v k="$kb" 'BEGIN{printf "%.0f", k/1024}'
}

# wait_udp PORT: wait until something listens on 127.0.0.1:PORT/udp.
wait_udp() {
	local hex
	hex=$(printf '%04X' "$1")
	for _ in $(seq 100); do
		grep -q ":$hex " /proc/net/udp && return 0
		sleep 0.1
	done
	return 1
}

# wait_http URL: wait until URL answers.
wait_http() {
	for _ in $(seq 100); do
		curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

# metric_sum URL PATTERN: sum the samples of the lines matching PATTERN (an
# awk regex on the whole line) in a Prometheus text exposition.
metric_sum() {
	curl -fsS "$1" 2>/dev/null | awk -v re="$2" '$0 ~ re && $1 !~ /^#/ {s += $NF} END {printf "%.0f", s}'
}

# stop_counted PEER DIR UDP HTTP: stops the current collector
# (current_pid) and sets recv, the records it counted, and for flowcheck
# shed (records a backlogged worker accounted without stitching their
# conversations, collector.shed_backlog) and qdrop (datagrams its reader
# dropped, a worker's queue full); "-" for the others. nfcapd and nfacctd
# tell (nfcapd) or flush (nfacctd) their totals on exit, so they are
# stopped first; the others are read while they run.
stop_counted() {
	local peer=$1 dir=$2 udp=$3 http=$4 sig=TERM
	shed=- qdrop=-
	case $peer in
	nfcapd | nfacctd)
		[ "$peer" = nfacctd ] && sig=INT
		stop_group "$current_pid" "$sig"
		recv=$("received_$peer" "$dir" "$udp" "$http")
		;;
	*)
		recv=$("received_$peer" "$dir" "$udp" "$http")
		if [ "$peer" = flowcheck ]; then
			shed=$(metric_sum "http://127.0.0.1:$http/metrics" '^flowcheck_collector_shed_records_total')
			qdrop=$(metric_sum "http://127.0.0.1:$http/metrics" '^flowcheck_collector_drops_total.*reason="queue_full"')
		fi
		stop_group "$current_pid"
		;;
	esac
	current_pid=""
}

# wait_stable PEER DIR UDP HTTP: poll the peer's received count until it has
# not changed for one second (at most SETTLE_MAX seconds).
wait_stable() {
	local last=-1 now
	for _ in $(seq "$SETTLE_MAX"); do
		sleep 1
		now=$("received_$1" "$2" "$3" "$4")
		[ "$now" = "$last" ] && return 0
		last=$now
	done
	return 0
}

# ---------------------------------------------------------------- peers
# start_PEER DIR UDPPORT HTTPPORT: start the collector in the background, in
# its own process group, as a child of this shell (so that wait reaps it),
# and set current_pid.
start_flowcheck() {
	local dir=$1 port=$2 http=$3
	cat >"$dir/flowcheck.yaml" <<EOF
collector:
  listeners:
    - url: netflow://127.0.0.1:$port
      sockets: $FC_SOCKETS
      rcvbuf: $RCVBUF
http:
  listen: 127.0.0.1:$http
EOF
	if [ -n "${FLOWCHECK_EXTRA:-}" ]; then cat "$FLOWCHECK_EXTRA" >>"$dir/flowcheck.yaml"; fi
	setsid "$work/flowcheck" run --config "$dir/flowcheck.yaml" >"$dir/log" 2>&1 &
	current_pid=$!
}
ready_flowcheck() { wait_udp "$2" && wait_http "http://127.0.0.1:$3/metrics"; }
received_flowcheck() { metric_sum "http://127.0.0.1:$3/metrics" '^flowcheck_collector_flows_total'; }

start_goflow2() {
	local dir=$1 port=$2 http=$3
	setsid goflow2 -listen "netflow://127.0.0.1:$port" -addr "127.0.0.1:$http" \
		-format bin -transport.file /dev/null >"$dir/log" 2>&1 &
	current_pid=$!
}
ready_goflow2() { wait_udp "$2" && wait_http "http://127.0.0.1:$3/metrics"; }
received_goflow2() {
	metric_sum "http://127.0.0.1:$3/metrics" '^goflow2_flow_process_nf_flowset_records_total.*type="DataFlowSet"'
}

start_nfcapd() {
	local dir=$1 port=$2
	mkdir -p "$dir/flows"
	setsid nfcapd -w "$dir/flows" -p "$port" -b 127.0.0.1 -t 3600 -B "$RCVBUF" >"$dir/log" 2>&1 &
	current_pid=$!
}
ready_nfcapd() { wait_udp "$2"; }
# nfcapd tells its totals when it stops: read after stop_group.
received_nfcapd() { awk '/Ident:.*Flows:/ {gsub(",", "", $4); s += $4} END {printf "%.0f", s}' "$1/log"; }

start_nfacctd() {
	local dir=$1 port=$2
	# pmacct's default plugin buffers: smaller or larger ones (64 KiB,
	# 10 KiB/10 MB as in its QUICKSTART, 1 MiB/256 MiB) lost as much or
	# more here. SIGINT to the core flushes the last buffer (see the stop
	# below), so no record is left out of the count.
	cat >"$dir/nfacctd.conf" <<EOF
daemonize: false
nfacctd_ip: 127.0.0.1
nfacctd_port: $port
nfacctd_pipe_size: $RCVBUF
plugins: print[p]
aggregate[p]: proto, flows
print_output[p]: csv
print_output_file[p]: $dir/out.csv
print_output_file_append[p]: true
print_refresh_time[p]: 1
EOF
	if [ -n "${NFACCTD_EXTRA:-}" ]; then cat "$NFACCTD_EXTRA" >>"$dir/nfacctd.conf"; fi
	setsid nfacctd -f "$dir/nfacctd.conf" >"$dir/log" 2>&1 &
	current_pid=$!
}
ready_nfacctd() { wait_udp "$2"; }
# nfacctd flushes its last plugin buffer when its core gets SIGINT: read
# after stop_group.
received_nfacctd() {
	[ -f "$1/out.csv" ] || { echo 0; return; }
	awk -F, '$1 == "PROTOCOL" {for (i = 1; i <= NF; i++) if ($i == "FLOWS") c = i; next} c {s += $c} END {printf "%.0f", s}' "$1/out.csv"
}
