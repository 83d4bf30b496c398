"""Benchmark: ``dcmon evaluate`` for one period of a large rack-metered facility vs. a plain DuckDB scan.

The facility has ``it_energy_from: racks``; every rack reports a cumulative energy counter and
power every 5 minutes (10 000 × 288 × 92 ≈ 265 M rack readings for a quarter), and three meters
report 1-minute counters. The limit is one plain DuckDB SQL aggregation over the same Parquet
files (Σ over sources of max − min counter in the period), measured in the same run. Both run as
separate processes; each is run ``--repeat`` times and the median wall time is used.

Two scales by default, each with its own target: 10 000 racks × 92 days (dcmon ≤ 1.2× DuckDB, where
the scan dominates) and 3 000 racks × 30 days (≤ 1.5×, where fixed costs such as imports and file
listing matter); dcmon's peak memory ≤ 1 GiB at each. Generated data is kept under
``--out/<racks>x<days>/`` and reused by later runs.

    python bench/bench_evaluate.py [--scales 10000x92,3000x30] [--out bench/out/evaluate] [--repeat 3]
    python bench/bench_evaluate.py --smoke      # 20 racks × 2 days in a temporary folder, seconds

Prints one ``RESULT`` line per scale for the time ratio and one for peak memory, and whether the
two IT energies agree.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from dcmon.periods import Period
from dcmon.readings import SCHEMA
from dcmon.registry import credit_code_check_char
from dcmon.store import open_store

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_load, result, run_timed  # noqa: E402

FIRST = dt.date(2026, 7, 1)


def write_config(cfg: Path, n_racks: int) -> None:
    fac = cfg / "facilities"
    fac.mkdir(parents=True, exist_ok=True)
    base = "91510100MA6CBENC1"
    (fac / "bench-10k.yaml").write_text(f"""\
id: bench-10k
name: 基准测试超大型数据中心
operator: 基准测试有限公司
credit_code: {base}{credit_code_check_char(base)}
city: chengdu
district: 天府新区
kind: cloud
timezone: Asia/Shanghai
cluster_start_area: true
commissioned: 2022-01-01
pue_category: 2
it_energy_from: racks
reading_interval_s: 300
max_gap_s: 1800
meters:
  - {{id: grid-a, role: facility}}
  - {{id: grid-b, role: facility}}
  - {{id: crac-1, role: cooling}}
racks: bench-10k-racks.csv
""", encoding="utf-8")
    rows = ["rack_id,room,row,position,design_power_kw,function,status"]
    for i in range(n_racks):
        rows.append(f"R{i:05d},{'ABCD'[i % 4]}{i // 2500 + 1},{(i // 50) % 50:02d},{i % 50:02d},6,"
                    f"{'compute' if i % 10 < 8 else 'storage'},{'in_service' if i % 20 else 'vacant'}")
    (fac / "bench-10k-racks.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")


def generate(data: Path, n_racks: int, days: int) -> int:
    store = open_store(data)
    rng = np.random.default_rng(7)
    rack_ids = pa.array([f"R{i:05d}" for i in range(n_racks)])
    base_kw = rng.uniform(2.0, 5.5, n_racks)
    counter = rng.uniform(1e4, 1e6, n_racks)
    meter_counter = np.array([5e7, 3e7, 1e7])
    start = int(np.datetime64(f"{FIRST - dt.timedelta(days=1)}T00:00", "ms").astype(np.int64))
    total = 0
    per_day = 288
    for d in range(days + 2):  # one UTC day either side: the quarter in UTC+8 spans them
        t0 = start + d * 86_400_000
        ts = t0 + np.arange(per_day, dtype=np.int64) * 300_000
        shape = 1 + 0.1 * np.sin(2 * np.pi * (np.arange(per_day) / per_day))
        power = base_kw[:, None] * shape[None, :]                     # [rack, step] kW
        energy = counter[:, None] + np.cumsum(power * 300 / 3600, axis=1)
        counter = energy[:, -1]
        n = n_racks * per_day
        idx = np.repeat(np.arange(n_racks, dtype=np.int32), per_day)
        tsa = pa.array(np.tile(ts, n_racks), pa.timestamp("ms", tz="UTC"))
        cols = {
            "facility_id": pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32)), pa.array(["bench-10k"])),
            "kind": pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32)), pa.array(["rack"])),
            "source_id": pa.DictionaryArray.from_arrays(pa.array(idx), rack_ids),
            "ts": tsa, "energy_kwh": pa.array(energy.ravel()), "power_kw": pa.array(power.ravel()),
            "status": pa.nulls(n, pa.string()), "function": pa.nulls(n, pa.string()),
            "design_power_kw": pa.nulls(n, pa.float64()), "received_at": tsa,
            "origin": pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32)), pa.array(["bench"])),
        }
        table = pa.table({k: (v.cast(pa.string()) if isinstance(v, pa.DictionaryArray) else v) for k, v in cols.items()},
                         schema=SCHEMA)
        store.append(table, check_existing=False)
        total += n
        # meters: 1-minute counters
        mts = t0 + np.arange(1440, dtype=np.int64) * 60_000
        it_kw = base_kw.sum()
        loads = np.array([it_kw * 0.62, it_kw * 0.62, it_kw * 0.2])
        menergy = meter_counter[:, None] + np.cumsum(np.repeat(loads[:, None] / 60, 1440, axis=1), axis=1)
        meter_counter = menergy[:, -1]
        rows = 3 * 1440
        mt = pa.array(np.tile(mts, 3), pa.timestamp("ms", tz="UTC"))
        store.append(pa.table({
            "facility_id": pa.array(["bench-10k"] * rows), "kind": pa.array(["meter"] * rows),
            "source_id": pa.array(np.repeat(["grid-a", "grid-b", "crac-1"], 1440)), "ts": mt,
            "energy_kwh": pa.array(menergy.ravel()), "power_kw": pa.array(np.repeat(loads, 1440)),
            "status": pa.nulls(rows, pa.string()), "function": pa.nulls(rows, pa.string()),
            "design_power_kw": pa.nulls(rows, pa.float64()), "received_at": mt, "origin": pa.array(["bench"] * rows),
        }, schema=SCHEMA), check_existing=False)
        print(f"\rgenerated day {d + 1}/{days + 2}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return total


DUCKDB_SQL = """
import sys, json, duckdb
files = json.loads(open(sys.argv[1]).read())
start, end = sys.argv[2], sys.argv[3]
con = duckdb.connect()
con.execute("SET enable_progress_bar = false")
# meters are partitioned by month and racks by day, so hive keys do not combine; every file holds its
# kind as a column
q = f'''SELECT kind, sum(e) FROM (
          SELECT kind, source_id, max(energy_kwh) - min(energy_kwh) AS e
          FROM read_parquet(?, hive_partitioning = false)
          WHERE ts >= TIMESTAMPTZ '{start}' AND ts < TIMESTAMPTZ '{end}'
          GROUP BY 1, source_id) GROUP BY kind'''
print(json.dumps({k: v for k, v in con.execute(q, [files]).fetchall()}))
"""


# the ratio each scale must stay under: the full quarter is a scan; smaller stores pay fixed costs
LIMITS = {(10_000, 92): 1.2}
DEFAULT_LIMIT = 1.5
PEAK_LIMIT_BYTES = 1 << 30


def parse_scale(text: str) -> tuple[int, int]:
    try:
        racks, days = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected RACKSxDAYS, for example 10000x92") from None
    if racks < 1 or not 1 <= days <= 92:
        raise argparse.ArgumentTypeError(f"{text!r}: racks ≥ 1 and 1 ≤ days ≤ 92 (one quarter from {FIRST})")
    return racks, days


def ensure_data(out: Path, racks: int, days: int) -> None:
    marker = out / "generated.json"
    if marker.exists() and json.loads(marker.read_text()) == {"racks": racks, "days": days}:
        return
    # generate in a child process so this process stays small: a child's peak-memory
    # figure (ru_maxrss) includes what it inherited from its parent at fork time
    subprocess.run([sys.executable, __file__, "--generate-only", "--racks", str(racks), "--days", str(days),
                    "--out", str(out)], check=True)


def bench_scale(out: Path, racks: int, days: int, repeat: int) -> None:
    ensure_data(out, racks, days)
    cfg, data = out / "config", out / "data"
    period = Period(FIRST, FIRST + dt.timedelta(days=days - 1))
    start, end = period.utc_bounds("Asia/Shanghai")
    store = open_store(data)
    files = [str(p) for p in store.files("bench-10k", None, start, end)]
    (out / "files.json").write_text(json.dumps(files))
    size = sum(os.path.getsize(f) for f in files)

    dcmon_cmd = [sys.executable, "-m", "dcmon.cli", "evaluate", "--config", str(cfg), "--data", str(data),
                 "--from", period.first_day.isoformat(), "--to", period.last_day.isoformat(), "--format", "json"]
    duck_cmd = [sys.executable, "-c", DUCKDB_SQL, str(out / "files.json"), start.isoformat(), end.isoformat()]
    d_runs, q_runs, r_runs = [], [], []
    raw_env = {**os.environ, "DCMON_ROLLUPS": "off"}   # every reading scanned, as before the daily rollups
    load_before = machine_load()
    for _ in range(repeat):  # alternate, so all see the same changes of load on a shared machine
        d_runs.append(run_timed(dcmon_cmd))
        q_runs.append(run_timed(duck_cmd))
        r_runs.append(run_timed(dcmon_cmd, env=raw_env))
    d_times, q_times = [t.wall_s for t in d_runs], [t.wall_s for t in q_runs]
    mems, duck_mems = [t.peak_bytes for t in d_runs], [t.peak_bytes for t in q_runs]
    dout, qout = d_runs[-1].stdout, q_runs[-1].stdout
    res = json.loads(dout)["facilities"][0]
    duck = json.loads(qout)
    d, q = statistics.median(d_times), statistics.median(q_times)
    name = f"evaluate/{racks}x{days}"
    print(f"data: {racks:,} racks × {days} days of 5-minute readings, {len(files)} files, {size / 2**30:.2f} GiB")
    print(f"machine: before {load_before}; after {machine_load()}")
    r = statistics.median(t.wall_s for t in r_runs)
    for label, runs, m in (("dcmon evaluate", d_runs, d), ("duckdb plain  ", q_runs, q), ("dcmon raw scan", r_runs, r)):
        print(f"{label} : {m:6.2f} s (runs {', '.join(f'{t.wall_s:.2f}' for t in runs)}; CPU "
              f"{', '.join(f'{t.cpu_s:.2f}' for t in runs)} s), peak memory {max(t.peak_bytes for t in runs) / 2**20:,.0f} MiB")
    print(f"IT energy: dcmon {res['it_energy_kwh']:,.3f} kWh, duckdb {duck.get('rack', 0):,.3f} kWh; "
          f"PUE {res['pue']:.4f}, coverage {res['coverage']:.4f}")
    d_cpu, q_cpu = statistics.median(t.cpu_s for t in d_runs), statistics.median(t.cpu_s for t in q_runs)
    print(f"CPU time: dcmon {d_cpu:.2f} s vs duckdb {q_cpu:.2f} s, ratio {d_cpu / q_cpu:.2f} "
          f"(less sensitive than wall time to other work on the machine)")
    result(name, f"dcmon {d:.2f} s vs duckdb {q:.2f} s (median of {repeat})", d / q,
           LIMITS.get((racks, days), DEFAULT_LIMIT))
    result(f"{name} peak memory", f"dcmon {max(mems) / 2**20:,.0f} MiB vs 1 GiB", max(mems) / PEAK_LIMIT_BYTES, 1.0)
    raw_doc, roll_doc = json.loads(r_runs[-1].stdout), json.loads(dout)
    raw_doc.pop("generated_at"), roll_doc.pop("generated_at")
    print(f"figures from the daily rollups and from the raw scan identical: {'yes' if raw_doc == roll_doc else 'NO'}")
    if raw_doc != roll_doc:
        raise SystemExit("the daily rollups gave other figures than the raw scan")
    result(f"{name} raw scan (DCMON_ROLLUPS=off)", f"dcmon {r:.2f} s vs duckdb {q:.2f} s (median of {repeat})", r / q,
           LIMITS.get((racks, days), DEFAULT_LIMIT))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scales", default="10000x92,3000x30", metavar="RACKSxDAYS[,…]",
                    help="the stores to measure, each RACKSxDAYS from 2026-07-01 (default 10000x92,3000x30)")
    ap.add_argument("--out", default="bench/out/evaluate", help="where generated data is kept between runs")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--smoke", action="store_true", help="20 racks × 2 days in a temporary folder, one run (seconds)")
    ap.add_argument("--generate-only", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--racks", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--days", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.generate_only:
        import shutil
        out = Path(a.out)
        shutil.rmtree(out, ignore_errors=True)
        write_config(out / "config", a.racks)
        t0 = time.perf_counter()
        n = generate(out / "data", a.racks, a.days)
        print(f"generated {n:,} rack readings in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        # the daily rollups, as the first evaluation after the data arrived (or `dcmon compact`) makes them
        t0 = time.perf_counter()
        store = open_store(out / "data")
        parts = sum(store.refresh_rollups("bench-10k", kind, "Asia/Shanghai") for kind in ("rack", "meter"))
        print(f"daily rollups of {parts} partitions made in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        (out / "generated.json").write_text(json.dumps({"racks": a.racks, "days": a.days}))
        return
    if a.smoke:
        import tempfile
        with tempfile.TemporaryDirectory(prefix="bench-evaluate-") as tmp:
            bench_scale(Path(tmp) / "20x2", 20, 2, 1)
        return
    try:
        scales = [parse_scale(text) for text in a.scales.split(",")]
    except argparse.ArgumentTypeError as e:
        ap.error(f"--scales {e}")
    for racks, days in scales:
        bench_scale(Path(a.out) / f"{racks}x{days}", racks, days, a.repeat)


if __name__ == "__main__":
    main()
