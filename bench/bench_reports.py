"""Benchmark: the portfolio evaluation, the quarterly export and the yearly evidence report, each a
fresh ``dcmon`` process (wall time and peak memory) against its target on this 2-core machine:

- ``dcmon evaluate`` of all 301 facilities for the quarter and for the year: ≤ 2 s each;
- ``dcmon export`` of the quarter for the 300 sites and the 10 000-rack one, xlsx: ≤ 10 s;
- ``dcmon evidence`` for the 10 000-rack facility over the year, PDF: ≤ 5 s; and its CPU time
  against the same report with every facility's rack CSV read first (as before it read only the
  racks it uses), same run: ≤ 1×.

The 300 facilities each have 2 facility meters, 2 IT meters and a cooling meter reporting
15-minute counters for 2026Q3 (building-management export granularity; the rest of the year has
no data, so their year is inconclusive, as it would be in the field); the 10 000-rack facility
(IT from UPS-output meters) has 1-minute counters for the whole year. The data is generated once
under ``--out`` and reused (``bench_dashboard.py`` uses the same).

    python bench/bench_reports.py [--out bench/out/reports] [--facilities 300]
    python bench/bench_reports.py --smoke       # 3 sites and a 200-rack one with hourly meters, seconds
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_load, result, run_timed  # noqa: E402

YEAR = 2026
TARGETS_S = {"evaluate": 2.0, "export": 10.0, "evidence": 5.0}
# `dcmon` with load_registry reading every rack CSV up front and no registry snapshot (the behaviour
# before racks_on_demand and the snapshot)
ALL_RACKS_FIRST = ("import os, sys; os.environ['DCMON_CACHE'] = 'off'; "
                   "import dcmon.registry as r; load = r.load_registry; "
                   "r.load_registry = lambda config, **kw: load(config); "
                   "from dcmon.cli import main; sys.exit(main(sys.argv[1:]))")
SMOKE = {"facilities": 3, "hyper_racks": 200, "hyper_step_s": 3600}
FULL = {"facilities": 300, "hyper_racks": 10_000, "hyper_step_s": 60}


def write_config(cfg: Path, n: int, hyper_racks: int) -> None:
    from dcmon.registry import credit_code_check_char
    fac = cfg / "facilities"
    fac.mkdir(parents=True, exist_ok=True)
    districts = ["天府新区", "东部新区", "高新区", "双流区", "郫都区", "武侯区", "成华区", "龙泉驿区", "新都区", "温江区"]
    meters = """meters:
  - {id: grid-a, role: facility, max_gap_s: 1800}
  - {id: grid-b, role: facility, max_gap_s: 1800}
  - {id: ups-1, role: it, max_gap_s: 1800}
  - {id: ups-2, role: it, max_gap_s: 1800}
  - {id: crac-1, role: cooling, max_gap_s: 1800}
"""
    for i in range(n + 1):
        fid = f"site-{i:03d}" if i < n else "hyper-10k"
        base = f"915101{i:04d}MA6C0B0"[:17]
        racks = hyper_racks if i == n else 200 + (i * 37) % 1800
        (fac / f"{fid}.yaml").write_text(f"""id: {fid}
name: 基准数据中心{i:03d}
operator: 基准运营{i:03d}有限公司
credit_code: {base}{credit_code_check_char(base)}
city: chengdu
district: {districts[i % len(districts)]}
kind: cloud
timezone: Asia/Shanghai
cluster_start_area: {str(i % 3 == 0).lower()}
commissioned: 2020-01-01
pue_category: 2
{meters}racks: {fid}-racks.csv
retrofit: {{completed: 2025-06-30, cost_cny: 3000000}}
""", encoding="utf-8")
        lines = ["rack_id,room,row,position,design_power_kw,function,status"]
        for r in range(racks):
            lines.append(f"R{r:05d},{'AB'[r % 2]}{r // 1000 + 1},{(r // 40) % 25:02d},{r % 40:02d},6,"
                         f"{'compute' if r % 10 < 8 else 'storage'},{'in_service' if r % 7 else 'vacant'}")
        (fac / f"{fid}-racks.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def generate(cfg: Path, data: Path, n: int, hyper_step_s: int) -> None:
    import numpy as np
    import pyarrow as pa

    from dcmon.periods import Period, quarter
    from dcmon.readings import SCHEMA
    from dcmon.registry import load_registry
    from dcmon.store import open_store
    reg = load_registry(cfg)
    store = open_store(data)
    rng = np.random.default_rng(1)

    def meters(fid, period, step_s, it_kw):
        start, end = period.utc_bounds("Asia/Shanghai")
        ts = np.arange(start.value // 10**6, end.value // 10**6 + 1, step_s * 1000, dtype=np.int64)
        loads = np.array([it_kw * 0.61, it_kw * 0.61, it_kw / 2, it_kw / 2, it_kw * 0.18])
        cols = {k: [] for k in ("source_id", "ts", "energy_kwh")}
        for mid, kw, c0 in zip(["grid-a", "grid-b", "ups-1", "ups-2", "crac-1"], loads, rng.uniform(1e5, 1e7, 5)):
            cols["source_id"].append(np.repeat(mid, len(ts)))
            cols["ts"].append(ts)
            cols["energy_kwh"].append(c0 + np.arange(len(ts)) * kw * step_s / 3600)
        nrow = 5 * len(ts)
        tsa = pa.array(np.concatenate(cols["ts"]), pa.timestamp("ms", tz="UTC"))
        return pa.table({"facility_id": pa.array([fid] * nrow), "kind": pa.array(["meter"] * nrow),
                         "source_id": pa.array(np.concatenate(cols["source_id"])), "ts": tsa,
                         "energy_kwh": pa.array(np.concatenate(cols["energy_kwh"])), "power_kw": pa.nulls(nrow, pa.float64()),
                         "status": pa.nulls(nrow, pa.string()), "function": pa.nulls(nrow, pa.string()),
                         "design_power_kw": pa.nulls(nrow, pa.float64()), "received_at": tsa,
                         "origin": pa.array(["bench"] * nrow)}, schema=SCHEMA)
    q = quarter(f"{YEAR}Q3")
    for i, f in enumerate(reg.select(None)):
        if f.id == "hyper-10k":
            store.append(meters(f.id, Period(dt.date(YEAR, 1, 1), dt.date(YEAR, 12, 31)), hyper_step_s,
                                 float(f.racks["design_power_kw"].sum() * 0.6)), check_existing=False)  # 36 000 kW at 10 000 racks
        else:
            store.append(meters(f.id, q, 900, float(f.racks["design_power_kw"].sum() * 0.5)), check_existing=False)
        print(f"\rgenerated {i + 1}/{n + 1}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    # the daily rollups, as the first evaluation after the data arrived (or `dcmon compact`) makes them
    for f in reg.select(None):
        store.refresh_rollups(f.id, "meter", f.timezone)


def ensure_data(out: Path, spec: dict) -> None:
    """Generate the facilities and readings of ``spec`` under ``out`` unless they are already there."""
    marker = out / "generated.json"
    if marker.exists() and json.loads(marker.read_text()) == spec:
        return
    import subprocess
    subprocess.run([sys.executable, __file__, "--generate-only", "--out", str(out),
                    *(f"--{k.replace('_', '-')}={v}" for k, v in spec.items())], check=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="bench/out/reports", help="where generated data is kept between runs")
    ap.add_argument("--facilities", type=int, default=FULL["facilities"])
    ap.add_argument("--smoke", action="store_true", help="tiny data in a temporary folder (seconds)")
    ap.add_argument("--generate-only", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--hyper-racks", type=int, default=FULL["hyper_racks"], help=argparse.SUPPRESS)
    ap.add_argument("--hyper-step-s", type=int, default=FULL["hyper_step_s"], help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.generate_only:
        import shutil
        out = Path(a.out)
        shutil.rmtree(out, ignore_errors=True)
        write_config(out / "config", a.facilities, a.hyper_racks)
        generate(out / "config", out / "data", a.facilities, a.hyper_step_s)
        (out / "generated.json").write_text(json.dumps(
            {"facilities": a.facilities, "hyper_racks": a.hyper_racks, "hyper_step_s": a.hyper_step_s}))
        return
    if a.smoke:
        import tempfile
        with tempfile.TemporaryDirectory(prefix="bench-reports-") as tmp:
            return bench(Path(tmp), SMOKE)
    return bench(Path(a.out), {**FULL, "facilities": a.facilities})


def _figures(stdout: str) -> dict:
    doc = json.loads(stdout)
    doc.pop("generated_at", None)
    return doc


def bench(out: Path, spec: dict) -> None:
    ensure_data(out, spec)
    cfg, data = out / "config", out / "data"
    n = spec["facilities"] + 1
    cli = [sys.executable, "-m", "dcmon.cli"]
    common = ["--config", str(cfg), "--data", str(data)]
    print(f"machine: {machine_load()}", flush=True)

    def measure(name: str, target: str, args: list[str]) -> None:
        t = run_timed(cli + args)
        result(name, f"{t.wall_s:.2f} s (CPU {t.cpu_s:.2f} s), peak memory {t.peak_bytes / 2**20:,.0f} MiB "
                     f"vs target {TARGETS_S[target]:g} s", t.wall_s / TARGETS_S[target], 1.0)

    # the registry snapshot is made once per configuration (by any command; here `facilities`): the
    # runs below load it, as every run after the first does in the field; one run validates it all
    run_timed(cli + ["facilities", "--config", str(cfg)])
    for label, period in (("quarter", ["--quarter", f"{YEAR}Q3"]), ("year", ["--year", str(YEAR)])):
        args = ["evaluate", *common, *period, "--format", "json"]
        measure(f"evaluate/{n} facilities, {label}, cold process", "evaluate", args)
        # the same without the daily rollups (every reading scanned, as before them), same run
        t_roll, t_raw = run_timed(cli + args), run_timed(cli + args, env={**os.environ, "DCMON_ROLLUPS": "off"})
        result(f"evaluate/{n} facilities, {label}, daily rollups vs raw scan",
               f"CPU {t_roll.cpu_s:.2f} s vs {t_raw.cpu_s:.2f} s (wall {t_roll.wall_s:.2f} s vs {t_raw.wall_s:.2f} s)",
               t_roll.cpu_s / t_raw.cpu_s, 1.0)
        same = _figures(t_roll.stdout) == _figures(t_raw.stdout)
        print(f"evaluate/{label}: figures from the rollups and from the raw scan identical: {'yes' if same else 'NO'}")
        if not same:
            raise SystemExit("the daily rollups gave other figures than the raw scan")
    t = run_timed(["env", "DCMON_CACHE=off", *cli, "evaluate", *common, "--quarter", f"{YEAR}Q3", "--format", "json"])
    result(f"evaluate/{n} facilities, quarter, cold process, configuration validated (no snapshot)",
           f"{t.wall_s:.2f} s (CPU {t.cpu_s:.2f} s) vs target {TARGETS_S['evaluate']:g} s",
           t.wall_s / TARGETS_S["evaluate"], 1.0)
    measure(f"export/{n} facilities, {YEAR}Q3, xlsx", "export",
            ["export", *common, "--quarter", f"{YEAR}Q3", "--format", "xlsx", "--out", str(out / "inventory.xlsx")])
    evidence = ["evidence", *common, "--facility", "hyper-10k", "--year", str(YEAR), "--out", str(out / "evidence.pdf")]
    measure(f"evidence/{spec['hyper_racks']}-rack facility, year {YEAR}, pdf", "evidence", evidence)
    # the same report with every facility's rack CSV read first and validated (no snapshot), as before
    # racks_on_demand and the snapshot: the gain, same run
    t_on_demand, t_all = run_timed(cli + evidence), run_timed([sys.executable, "-c", ALL_RACKS_FIRST, *evidence])
    result(f"evidence/rack CSVs on demand vs all {n} read first", f"CPU {t_on_demand.cpu_s:.2f} s vs "
           f"{t_all.cpu_s:.2f} s (wall {t_on_demand.wall_s:.2f} s vs {t_all.wall_s:.2f} s)",
           t_on_demand.cpu_s / t_all.cpu_s, 1.0)
    print(f"machine: {machine_load()}")


if __name__ == "__main__":
    main()
