#!/bin/bash
# mk.sh PLUGIN RATE PORT OUT
set -e
plugin=$1; rate=$2; port=$3; out=$4
cat > pm-$plugin-$rate.conf <<C
daemonize: false
pcap_savefile: scan-mix.pcap
pcap_savefile_wait: false
plugins: $plugin
sampling_rate: $rate
C
if [ $plugin = nfprobe ]; then
cat >> pm-$plugin-$rate.conf <<C
nfprobe_receiver: 127.0.0.1:$port
nfprobe_version: 9
C
else
cat >> pm-$plugin-$rate.conf <<C
sfprobe_receiver: 127.0.0.1:$port
sfprobe_agentip: 127.0.0.1
C
fi
python3 -c "
import socket,sys
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.setsockopt(socket.SOL_SOCKET,socket.SO_RCVBUF,8<<20); s.bind(('127.0.0.1',$port)); s.settimeout(15)
try:
  while True: s.recv(65535)
except Exception: pass
" &
sink=$!
tcpdump -i lo -w $out -U udp port $port 2>/dev/null &
td=$!
sleep 1
timeout 60 pmacctd -f pm-$plugin-$rate.conf > pm-$plugin-$rate.log 2>&1 || true
sleep 2
kill $td; wait $td || true
kill $sink 2>/dev/null || true
