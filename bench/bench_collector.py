"""Benchmark: end-to-end readings/s from MQTT publish to durable store, at QoS 1.

Measured in one run against one Mosquitto (127.0.0.1, a free port, the shipped queue settings):

* raw: the broker's delivery rate to a subscriber that only receives (``mosquitto_sub -q 1`` to
  /dev/null), for the same messages;
* dcmon: ``dcmon collect`` (a separate process) from the first publish until the store's files hold
  every reading (a file is visible only after fsync and rename; the messages are acknowledged then).

Two shapes: (a) one reading per message (meter topic), (b) rack scans of 500 readings per message.
The publisher is the same for both: ``mosquitto_pub -l`` at QoS 1 (a C client, never the bottleneck).
Prints both rates, their ratio, the collector's CPU time per reading (all its threads, from /proc:
less sensitive to other work on a shared machine than the rates) and its peak memory (VmHWM).
Targets on a 2-core machine, one collector: (a) ≥ 1.0× the raw ``mosquitto_sub`` rate of the same run; (b) ≥ 1 000 000 readings/s
(orjson alone decodes 1.4–1.8 M readings/s here: the ceiling to approach).

    python bench/bench_collector.py [--single 50000] [--batches 2000] [--collectors 1] [--out bench/out/collector]
    python bench/bench_collector.py --smoke     # 300 messages and 20 scans, seconds
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

from dcmon.collector.brokers import MosquittoProcess, find_mosquitto, free_port
from dcmon.readings import now_ms
from dcmon.registry import load_registry
from dcmon.store import open_store

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_load, require, result  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
FAC = "cd-hyper-01"
B_TARGET = 1_000_000  # readings/s for (b)


def publish(port, topic, lines_file):
    """Publish every line of ``lines_file`` as one QoS 1 message with ``mosquitto_pub -l`` (a C client, so
    the publisher is not the bottleneck); it exits once every PUBACK arrived, non-zero on any error."""
    with open(lines_file, "rb") as fh:
        subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-q", "1", "-M", "100", "-l",
                        "-i", f"bench-pub-{os.getpid()}", "-t", topic], stdin=fh, check=True, timeout=3600)


def make_messages(kind, n, registry, base_ms, path):
    """(a) 'single': n messages with one reading each on one meter topic, distinct time stamps;
    (b) 'batch': n rack scans of 500 readings. Written one message per line; returns (topic, readings)."""
    fac = registry.facilities[FAC]
    with open(path, "wb") as fh:
        if kind == "single":
            meter = fac.meters[0].id
            for i in range(n):
                fh.write(orjson.dumps({"ts": base_ms + i * 1000, "power_kw": 3.5}) + b"\n")
            return f"dcmon/v1/{FAC}/meter/{meter}", n
        racks = sorted(fac.rack_ids)
        k = 0
        for i in range(n):
            chunk = []
            for _ in range(500):
                chunk.append({"rack_id": racks[k % len(racks)], "power_kw": 3.5})
                k += 1
            # one time stamp per scan and 500 distinct racks in it: every (rack, ts) key is distinct
            fh.write(orjson.dumps({"ts": base_ms + i * 1000, "readings": chunk}) + b"\n")
        return f"dcmon/v1/{FAC}/racks", n * 500


def raw_rate(port, topic, lines_file, messages, readings):
    raw_topic = topic.replace("dcmon/v1", "bench/raw", 1)
    sub = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-q", "1", "-t", raw_topic,
                            "-C", str(messages)], stdout=subprocess.DEVNULL)
    time.sleep(0.5)
    t0 = time.perf_counter()
    publish(port, raw_topic, lines_file)
    sub.wait(3600)
    dt = time.perf_counter() - t0
    return readings / dt, dt


def stored_rows(data, seen: dict) -> int:
    """Rows in the store's durable files (footers only; a file is visible only once fsync'd and renamed).
    ``seen`` caches the row count per file between polls."""
    import pyarrow.parquet as pq
    root = Path(data) / "readings" / f"facility={FAC}"
    for kind in ("meter", "rack"):
        # rack files are partitioned by day (date=…), meter files by month (month=…)
        for p in (root / f"kind={kind}").glob("*=*/*.parquet") if root.exists() else []:
            if p.name.startswith(".") or p in seen:
                continue
            try:
                seen[p] = pq.ParquetFile(p).metadata.num_rows
            except FileNotFoundError:
                continue
    return sum(seen.values())


def cpu_seconds(pids) -> float:
    """User + system CPU time of processes [s] (/proc/<pid>/stat), all their threads."""
    total = 0
    for pid in pids:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])     # utime, stime (fields 14 and 15 of stat)
    return total / os.sysconf("SC_CLK_TCK")


def collector_rate(port, data, topic, lines_file, readings, names, pids):
    seen: dict = {}
    done0 = stored_rows(data, seen)
    cpu0 = cpu_seconds(pids)
    t0 = time.perf_counter()
    publish(port, topic, lines_file)
    last, last_change = done0, time.monotonic()
    while (n := stored_rows(data, seen)) - done0 < readings:
        if n != last:
            last, last_change = n, time.monotonic()
        elif time.monotonic() - last_change > 120:
            raise SystemExit(f"no new stored readings for 120 s: {n - done0} of {readings} stored")
        time.sleep(0.02)
    dt = time.perf_counter() - t0
    cpu = cpu_seconds(pids) - cpu0
    st = open_store(data)
    docs = [st.get_status(f"collector-{n}") or {} for n in names]
    doc = {"rejected": sum(d.get("rejected", 0) for d in docs),
           "rejects_by_reason": [d.get("rejects_by_reason") for d in docs]}
    return readings / dt, dt, doc, cpu


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--single", type=int, default=50_000, help="messages for (a), one reading each (0: skip)")
    ap.add_argument("--batches", type=int, default=2_000, help="messages for (b), 500 readings each (0: skip)")
    ap.add_argument("--collectors", type=int, default=1,
                    help="collector processes; more than 1 share the load (MQTT 5 $share/bench/…)")
    ap.add_argument("--out", default=None, help="working folder (default: a temporary folder)")
    ap.add_argument("--smoke", action="store_true", help="300 single messages and 20 scans (seconds)")
    args = ap.parse_args(argv)
    if args.smoke:
        args.single, args.batches = 300, 20
    require("mosquitto_sub", "mosquitto_pub")
    if find_mosquitto() is None:
        require("mosquitto")
    work = Path(args.out).resolve() if args.out else Path(tempfile.mkdtemp(prefix="bench-collector-"))
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    registry = load_registry(REPO / "fixtures")
    port = free_port()
    broker = MosquittoProcess(work / "broker", port).start()
    data = work / "data"
    log = open(work / "collector.log", "wb")
    names = [f"bench-collector-{i + 1}" for i in range(args.collectors)]
    share = ["--share-group", "bench"] if args.collectors > 1 else []
    cols = [subprocess.Popen([sys.executable, "-m", "dcmon.cli", "collect", "--config", str(REPO / "fixtures"),
                              "--data", str(data), "--broker", broker.url, "--client-id", name, *share,
                              "--health-interval", "1", "--compact-interval", "0"], stdout=log,
                             stderr=subprocess.STDOUT) for name in names]
    results = {}
    try:
        deadline = time.time() + 30
        while (work / "collector.log").read_bytes().count(b"connected to") < len(cols):
            if time.time() > deadline or any(c.poll() is not None for c in cols):
                raise SystemExit("collector did not start:\n" + (work / "collector.log").read_text())
            time.sleep(0.05)
        time.sleep(0.5)
        print(f"machine: {machine_load()}", flush=True)
        base = now_ms() - 20 * 86_400_000
        for name, kind, n, per in (("a", "single", args.single, 1), ("b", "batch", args.batches, 500)):
            if n <= 0:   # --single 0 / --batches 0: skip that shape
                continue
            lines = work / f"{name}.lines"
            topic, readings = make_messages(kind, n, registry, base, lines)
            base += 10 * 86_400_000
            raw, raw_s = raw_rate(port, topic, lines, n, readings)
            rate, col_s, doc, cpu = collector_rate(port, data, topic, lines, readings, names, [c.pid for c in cols])
            if doc.get("rejected"):
                print(f"warning: the collector rejected {doc['rejected']} readings: {doc.get('rejects_by_reason')}")
            results[name] = {"messages": n, "readings": readings, "raw_readings_per_s": round(raw),
                             "raw_s": round(raw_s, 2), "dcmon_readings_per_s": round(rate), "dcmon_s": round(col_s, 2),
                             "ratio": round(rate / raw, 3), "dcmon_cpu_s": round(cpu, 2),
                             "dcmon_cpu_us_per_reading": round(cpu / readings * 1e6, 3)}
            print(f"({name}) {'1 reading' if per == 1 else '500 readings'}/message, {n} messages: "
                  f"raw broker→mosquitto_sub {raw:,.0f} readings/s; dcmon durable {rate:,.0f} readings/s; "
                  f"ratio {rate / raw:.2f}; collector CPU {cpu:.2f} s, {cpu / readings * 1e6:.2f} µs/reading "
                  f"(all threads; less sensitive to the load than the rates)", flush=True)
        print(f"machine: {machine_load()}")
        hwm = max(int(next(l for l in open(f"/proc/{c.pid}/status") if l.startswith("VmHWM")).split()[1])
                  for c in cols)
        results["collector_peak_rss_mib"] = round(hwm / 1024, 1)
        results["collectors"] = len(cols)
        print(f"collector peak memory (VmHWM{', largest of ' + str(len(cols)) if len(cols) > 1 else ''}): "
              f"{hwm / 1024:.0f} MiB")
        if "a" in results:
            r = results["a"]
            result("collector/a 1 reading/message", f"dcmon {r['dcmon_readings_per_s']:,} readings/s vs raw "
                   f"mosquitto_sub {r['raw_readings_per_s']:,}/s", r["ratio"], 1.0, at_least=True)
        if "b" in results:
            r = results["b"]
            result(f"collector/b 500 readings/message, {len(cols)} collector{'s' if len(cols) > 1 else ''}",
                   f"dcmon {r['dcmon_readings_per_s']:,} readings/s vs target {B_TARGET:,}/s "
                   f"(raw mosquitto_sub {r['raw_readings_per_s']:,}/s)", r["dcmon_readings_per_s"] / B_TARGET, 1.0,
                   at_least=True)
        (work / "results.json").write_text(json.dumps(results, indent=2))
    finally:
        for c in cols:
            c.terminate()
        for c in cols:
            c.wait(60)
        broker.stop()
        log.close()
        if not args.out:
            shutil.rmtree(work, ignore_errors=True)
    return results


if __name__ == "__main__":
    main()
