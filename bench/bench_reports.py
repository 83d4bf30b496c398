"""Benchmark: the quarterly export for 300 facilities and the evidence report for a 10 000-rack
facility over a year — wall time and peak memory of each command, against the issue's targets
(≤ 30 s and ≤ 15 s on this 2-core machine).

The 300 facilities each have 2 facility meters, 2 IT meters and a cooling meter reporting
15-minute counters for the quarter (building-management export granularity); the 10 000-rack
facility (IT from UPS-output meters) has 1-minute counters for a year.

    python bench/bench_reports.py [--out bench/out/reports] [--facilities 300]
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import run  # noqa: E402

YEAR = 2026


def write_config(cfg: Path, n: int) -> None:
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
        racks = 10_000 if i == n else 200 + (i * 37) % 1800
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


def generate(cfg: Path, data: Path, n: int) -> None:
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
            store.append(meters(f.id, Period(dt.date(YEAR, 1, 1), dt.date(YEAR, 12, 31)), 60, 36_000.0), check_existing=False)
        else:
            store.append(meters(f.id, q, 900, float(f.racks["design_power_kw"].sum() * 0.5)), check_existing=False)
        print(f"\rgenerated {i + 1}/{n + 1}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="bench/out/reports")
    ap.add_argument("--facilities", type=int, default=300)
    ap.add_argument("--generate-only", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    out = Path(a.out)
    cfg, data = out / "config", out / "data"
    marker = out / "generated.json"
    if a.generate_only:
        import shutil
        shutil.rmtree(out, ignore_errors=True)
        write_config(cfg, a.facilities)
        generate(cfg, data, a.facilities)
        marker.write_text(json.dumps({"facilities": a.facilities}))
        return
    if not marker.exists() or json.loads(marker.read_text()) != {"facilities": a.facilities}:
        import subprocess
        subprocess.run([sys.executable, __file__, "--generate-only", "--out", str(out), "--facilities", str(a.facilities)],
                       check=True)
    cli = [sys.executable, "-m", "dcmon.cli"]
    t_exp, m_exp, _ = run(cli + ["export", "--config", str(cfg), "--data", str(data), "--quarter", f"{YEAR}Q3",
                                 "--format", "xlsx", "--out", str(out / "inventory.xlsx")])
    t_ev, m_ev, _ = run(cli + ["evidence", "--config", str(cfg), "--data", str(data), "--facility", "hyper-10k",
                              "--year", str(YEAR), "--out", str(out / "evidence.pdf")])
    print(f"export, {a.facilities} facilities, {YEAR}Q3, xlsx: {t_exp:6.2f} s, peak memory {m_exp / 2**20:,.0f} MiB; "
          f"ratio to the 30 s target {t_exp / 30:.2f}")
    print(f"evidence, 10 000-rack facility, year {YEAR}, pdf:  {t_ev:6.2f} s, peak memory {m_ev / 2**20:,.0f} MiB; "
          f"ratio to the 15 s target {t_ev / 15:.2f}")


if __name__ == "__main__":
    main()
