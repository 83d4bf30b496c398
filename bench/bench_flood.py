"""Benchmark: the collector's peak memory under a flood of 1 MiB messages, and quarantine growth.

Measured in one run against one Mosquitto (127.0.0.1, a free port, the shipped message size limit
of 1 MiB), each flood with a fresh ``dcmon collect`` process (its own peak RSS, VmHWM):

* qos0: 2 000 messages of 1 MiB published at QoS 0 to a QoS 0 collector. Beyond the receive queue's
  byte budget (``--queue-mib``, default 64) messages are dropped and counted, never piled up.
* qos1: 1 500 messages of 1 MiB at QoS 1. The collector stops reading while its queue is full, so
  the broker holds the rest; every message is quarantined in the end.
* quarantine: bytes the quarantine grew by per byte of rejected payload (both floods, and one
  1 MiB message of ~18 000 bad readings parsed in-process: the worst case for per-reading records).

Targets: peak RSS < 700 MiB per flood; quarantine < 0.05 bytes per rejected byte (a bad 1 MiB message
keeps one record with 16 KiB of its payload). ``--smoke``: 20 messages per flood, in seconds.

    python bench/bench_flood.py [--smoke] [--qos0 2000] [--qos1 1500] [--out bench/out/flood]
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

from dcmon.collector.brokers import MosquittoProcess, find_mosquitto, free_port
from dcmon.readings import now_ms
from dcmon.store import open_store

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_load, require, result  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
FAC = "cd-east-01"
TOPIC = f"dcmon/v1/{FAC}/meter/grid-a"
MIB = 1 << 20
RSS_LIMIT_MIB = 700.0
QUARANTINE_LIMIT = 0.05       # quarantine bytes per rejected payload byte


def flood_payload(size: int = MIB) -> bytes:
    """``size`` bytes of JSON: 16 readings whose ``status`` is a 64 KiB text (each one rejected)."""
    ts = now_ms() - 3_600_000
    head = b'{"ts": %d, "energy_kwh": 1.0, "status": "' % ts
    per = (size - 2) // 16 - len(head) - 3
    item = head + b"x" * per + b'"}'
    body = b"[" + b",".join([item] * 16) + b"]"
    return body + b" " * (size - len(body))


def many_items_payload(size: int = MIB) -> bytes:
    """``size`` bytes of JSON: ~18 000 readings that contradict their topic (one rejection each)."""
    item = orjson.dumps({"ts": now_ms() - 3_600_000, "energy_kwh": 1.0, "meter_id": "ghost"})
    body = b"[" + b",".join([item] * ((size - 2) // (len(item) + 1))) + b"]"
    return body + b" " * (size - len(body))


def quarantine_bytes(data: Path) -> int:
    q = data / "quarantine"
    return sum(p.stat().st_size for p in q.glob("*.jsonl")) if q.is_dir() else 0


def vm_hwm_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmHWM"):
                return int(line.split()[1]) / 1024
    return float("nan")


def run_flood(work: Path, broker, qos: int, n: int, queue_mib: float) -> dict:
    import paho.mqtt.client as mqtt
    data = work / f"data-qos{qos}"
    name = f"flood-qos{qos}"
    log = open(work / f"{name}.log", "wb")
    col = subprocess.Popen([sys.executable, "-m", "dcmon.cli", "collect", "--config", str(REPO / "fixtures"),
                            "--data", str(data), "--broker", broker.url, "--client-id", name, "--qos", str(qos),
                            "--queue-mib", str(queue_mib), "--health-interval", "0.5", "--compact-interval", "0"],
                           stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 60
        while b"connected to" not in (work / f"{name}.log").read_bytes():
            if time.time() > deadline or col.poll() is not None:
                raise SystemExit("collector did not start:\n" + (work / f"{name}.log").read_text())
            time.sleep(0.05)
        time.sleep(0.5)
        payload = flood_payload()
        pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{qos}")
        pub.max_inflight_messages_set(100)
        pub.connect("127.0.0.1", broker.port, keepalive=60)
        pub.loop_start()
        t0 = time.perf_counter()
        for _ in range(n):
            while True:   # a bounded publisher: wait for each message to leave (QoS 0) or be acknowledged (QoS 1)
                info = pub.publish(TOPIC, payload, qos=qos)
                if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
                    time.sleep(0.01)
                    continue
                if info.rc != mqtt.MQTT_ERR_SUCCESS:
                    raise SystemExit(f"publish failed: {mqtt.error_string(info.rc)}")
                break
            info.wait_for_publish(120)
        store = open_store(data)
        last, still = None, 0
        deadline = time.time() + 600
        while time.time() < deadline:          # until everything is handled: processed, dropped or lost at QoS 0
            doc = store.get_status(f"collector-{name}") or {}
            seen = (doc.get("messages", 0), doc.get("dropped_messages", 0))
            if qos == 1 and seen[0] >= n and doc.get("queue", 1) == 0:
                break
            if qos == 0 and seen == last and doc.get("queue", 1) == 0:
                still += 1
                if still >= 6 or sum(seen) >= n:
                    break
            else:
                still = 0
            last = seen
            time.sleep(0.5)
        wall = time.perf_counter() - t0
        pub.disconnect()
        pub.loop_stop()
        doc = store.get_status(f"collector-{name}") or {}
        hwm = vm_hwm_mib(col.pid)
    finally:
        col.terminate()
        col.wait(60)
        log.close()
    rejected_bytes = doc.get("rejected_messages", 0) * len(payload)
    return {"messages": n, "processed": doc.get("messages", 0), "dropped": doc.get("dropped_messages", 0),
            "rejected_messages": doc.get("rejected_messages", 0), "peak_rss_mib": round(hwm, 1),
            "quarantine_bytes": quarantine_bytes(data), "rejected_bytes": rejected_bytes, "seconds": round(wall, 1)}


def many_items_ratio(work: Path) -> float:
    """Quarantine bytes per rejected byte for one 1 MiB message of ~18 000 bad readings (in-process)."""
    from dcmon.collector.ingest import Ingestor
    from dcmon.store.quarantine import Quarantine
    from dcmon.registry import load_registry
    data = work / "data-items"
    ing = Ingestor(load_registry(REPO / "fixtures"), open_store(data), Quarantine(data, writer="bench"))
    payload = many_items_payload()
    ing.process([(TOPIC, payload, now_ms())])
    ing.quarantine.close()
    return quarantine_bytes(data) / len(payload)


def target(name: str, value: float, unit: str, limit: float, fmt: str = "{:.0f}") -> bool:
    """The ``RESULT`` line of a figure against a fixed target: ratio = value ÷ target, limit 1."""
    return result(name, f"{fmt.format(value)} {unit} (target < {fmt.format(limit)} {unit})", value / limit, 1.0)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--smoke", action="store_true", help="20 messages per flood (seconds)")
    ap.add_argument("--qos0", type=int, default=2000, help="1 MiB messages at QoS 0 (0: skip)")
    ap.add_argument("--qos1", type=int, default=1500, help="1 MiB messages at QoS 1 (0: skip)")
    ap.add_argument("--queue-mib", type=float, default=64.0, help="the collector's receive queue budget")
    ap.add_argument("--out", default=None, help="working folder (default: a temporary folder)")
    args = ap.parse_args(argv)
    require(find_mosquitto() or "mosquitto")
    if args.smoke:
        args.qos0, args.qos1 = min(args.qos0, 20), min(args.qos1, 20)
    work = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="bench-flood-"))
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    broker = MosquittoProcess(work / "broker", free_port()).start()
    results: dict = {}
    print(f"machine: {machine_load()}", flush=True)
    try:
        for qos, n in ((0, args.qos0), (1, args.qos1)):
            if n > 0:
                r = results[f"qos{qos}"] = run_flood(work, broker, qos, n, args.queue_mib)
                print(f"qos{qos}: {n} × 1 MiB published; processed {r['processed']}, dropped {r['dropped']}, "
                      f"quarantined {r['rejected_messages']} in {r['seconds']} s", flush=True)
        results["items_quarantine_ratio"] = many_items_ratio(work)
    finally:
        broker.stop()
    for qos in (0, 1):
        r = results.get(f"qos{qos}")
        if r:
            target(f"flood/qos{qos} peak RSS", r["peak_rss_mib"], "MiB", RSS_LIMIT_MIB)
    qb = sum(results[k]["quarantine_bytes"] for k in ("qos0", "qos1") if k in results)
    rb = sum(results[k]["rejected_bytes"] for k in ("qos0", "qos1") if k in results)
    if rb:
        target("flood/quarantine bytes per rejected byte (16 long readings a message)", qb / rb, "B/B",
               QUARANTINE_LIMIT, "{:.4f}")
    target("flood/quarantine bytes per rejected byte (18 000 bad readings a message)",
           results["items_quarantine_ratio"], "B/B", QUARANTINE_LIMIT, "{:.4f}")
    print(f"machine: {machine_load()}", flush=True)
    (work / "results.json").write_text(json.dumps(results, indent=2))
    if not args.out:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
