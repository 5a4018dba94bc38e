#!/usr/bin/env python3
"""totals.py: decodes every export of the lab with tshark and prints its totals.

usage: totals.py [DIR]      (default: this script's directory)

For NetFlow v9 (cflow): datagrams, flow records (IPv4 source addresses), sums of PKTS and
BYTES as exported, and the sampler options (FLOW_SAMPLER_ID 48, FLOW_SAMPLER_MODE 49,
FLOW_SAMPLER_RANDOM_INTERVAL 50) with the sampler id the records carry.
For sFlow: datagrams, flow samples, counter samples, sampling rates, the last sample_pool,
sums of frame_length (which counts 4 bytes of FCS per packet) and the same scaled by the
sampling rate. Output is Markdown, pasted into README.md.
"""
import os
import subprocess
import sys
from collections import Counter


def fields(path, decode, *names, filt=None):
    cmd = ["tshark", "-r", path, "-d", f"udp.port==2055,{decode}", "-T", "fields",
           "-E", "occurrence=a", "-E", "aggregator=,", "-E", "separator=\t"]
    if filt:
        cmd += ["-Y", filt]
    for n in names:
        cmd += ["-e", n]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    rows = []
    for line in out.splitlines():
        parts = line.split("\t")
        rows.append([[v for v in p.split(",") if v] for p in parts])
    return rows


def nums(rows, i):
    return [int(v) for r in rows for v in r[i]]


def cflow(path):
    rows = fields(path, "cflow", "frame.number", "cflow.srcaddr", "cflow.packets", "cflow.octets",
                  "cflow.sampler_id", "cflow.sampler_mode", "cflow.sampler_random_interval")
    recs = sum(len(r[1]) for r in rows)
    pk, by = sum(nums(rows, 2)), sum(nums(rows, 3))
    modes = sorted(set(nums(rows, 5)))
    ivals = sorted(set(nums(rows, 6)))
    nopt = len(nums(rows, 6))
    # FLOW_SAMPLER_ID is in every options record and in every flow record
    sid = nums(rows, 4)
    ids = {"values": sorted(set(sid)), "flow_records": len(sid) - nopt} if sid else {}
    return {"datagrams": len(rows), "records": recs, "packets": pk, "bytes": by,
            "sampler_ids": ids, "sampler_modes": modes, "intervals": ivals, "option_records": nopt}


def sflow(path):
    rows = fields(path, "sflow", "frame.number", "sflow_245.sampletype", "sflow.flow_sample.sampling_rate",
                  "sflow.flow_sample.sample_pool", "sflow_245.header.frame_length", "sflow.flow_sample.sequence_number")
    types = Counter(v for r in rows for v in r[1])
    rates = nums(rows, 2)
    pools = nums(rows, 3)
    flen = nums(rows, 4)
    scaled = sum(r * f for r, f in zip(rates, flen))
    return {"datagrams": len(rows), "flow_samples": int(types.get("1", 0)),
            "counter_samples": int(types.get("2", 0)), "rates": sorted(set(rates)),
            "last_pool": max(pools) if pools else 0, "frame_length_sum": sum(flen),
            "est_packets": sum(rates), "est_frame_bytes": scaled,
            "est_ip_bytes": scaled - sum(rates) * 18}  # 14 B Ethernet + 4 B FCS per packet


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    print("| file | datagrams | flow records | sum PKTS | sum BYTES | sampler option records (mode, interval) | records' FLOW_SAMPLER_ID |")
    print("|---|---|---|---|---|---|---|")
    for f in ["softflowd-v9.pcap", "pmacctd-nf9-1.pcap", "pmacctd-nf9-10.pcap", "pmacctd-nf9-100.pcap"]:
        p = os.path.join(d, f)
        if not os.path.exists(p):
            continue
        c = cflow(p)
        opt = f"{c['option_records']} ({c['sampler_modes']}, {c['intervals']})" if c["option_records"] else "none"
        ids = c["sampler_ids"]
        sid = f"{ids['values']} in {ids['flow_records']} records" if ids else "absent"
        print(f"| {f} | {c['datagrams']} | {c['records']} | {c['packets']:,} | {c['bytes']:,} | {opt} | {sid} |")
    print()
    print("| file | datagrams | flow samples | counter samples | sampling_rate | last sample_pool | "
          "sum frame_length | samples x rate | sum frame_length x rate | same less 18 B/packet (IP bytes) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for f in ["pmacctd-sflow-1.pcap", "pmacctd-sflow-10.pcap", "pmacctd-sflow-100.pcap"]:
        p = os.path.join(d, f)
        if not os.path.exists(p):
            continue
        s = sflow(p)
        print(f"| {f} | {s['datagrams']} | {s['flow_samples']} | {s['counter_samples']} | {s['rates']} | "
              f"{s['last_pool']:,} | {s['frame_length_sum']:,} | {s['est_packets']:,} | {s['est_frame_bytes']:,} | "
              f"{s['est_ip_bytes']:,} |")


if __name__ == "__main__":
    main()
