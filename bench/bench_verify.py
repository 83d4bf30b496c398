"""Benchmark: verifying a year's signed evidence report for the 10 000-rack facility against the
time to make it (target: verify ≤ 1.5 × make, both measured in this run on this machine).

Making it evaluates the year, digests the readings, renders the PDF and signs it; verifying it
validates the signature, re-digests the readings, re-evaluates and re-renders the document to
compare it whole. The facility has 5 meters with 1-minute counters for the year (2.6 M readings).
``--smoke`` uses one month, for the test that runs every benchmark.

    python bench/bench_verify.py [--out bench/out/verify] [--smoke]
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_load, result, run  # noqa: E402
from bench_reports import write_config  # noqa: E402

YEAR = 2026
LIMIT = 1.5


def generate(cfg: Path, data: Path, period) -> None:
    import numpy as np
    import pyarrow as pa

    from dcmon.readings import SCHEMA
    from dcmon.store import open_store
    store = open_store(data)
    rng = np.random.default_rng(1)
    start, end = period.utc_bounds("Asia/Shanghai")
    ts = np.arange(start.value // 10**6 - 86_400_000, end.value // 10**6 + 86_400_000, 60_000, dtype=np.int64)
    it_kw = 36_000.0
    for mid, kw in zip(["grid-a", "grid-b", "ups-1", "ups-2", "crac-1"],
                       [it_kw * 0.61, it_kw * 0.61, it_kw / 2, it_kw / 2, it_kw * 0.18]):
        n = len(ts)
        tsa = pa.array(ts, pa.timestamp("ms", tz="UTC"))
        energy = rng.uniform(1e5, 1e7) + np.arange(n) * kw / 60
        store.append(pa.table({"facility_id": pa.array(["hyper-10k"] * n), "kind": pa.array(["meter"] * n),
                               "source_id": pa.array([mid] * n), "ts": tsa, "energy_kwh": pa.array(energy),
                               "power_kw": pa.nulls(n, pa.float64()), "status": pa.nulls(n, pa.string()),
                               "function": pa.nulls(n, pa.string()), "design_power_kw": pa.nulls(n, pa.float64()),
                               "received_at": tsa, "origin": pa.array(["bench"] * n)}, schema=SCHEMA),
                     check_existing=False)


def main(argv=None) -> int:
    from dcmon.periods import Period
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="bench/out/verify")
    ap.add_argument("--smoke", action="store_true", help="one month instead of a year (seconds, for tests)")
    a = ap.parse_args(argv)
    out = Path(a.out) / ("smoke" if a.smoke else "year")
    cfg, data = out / "config", out / "data"
    period = Period(dt.date(YEAR, 7, 1), dt.date(YEAR, 7, 31)) if a.smoke else Period(dt.date(YEAR, 1, 1), dt.date(YEAR, 12, 31))
    marker = out / "generated.json"
    want = {"from": period.first_day.isoformat(), "to": period.last_day.isoformat()}
    if not marker.exists() or json.loads(marker.read_text()) != want:
        shutil.rmtree(out, ignore_errors=True)
        write_config(cfg, 0, 10_000)  # only the 10 000-rack facility
        generate(cfg, data, period)
        marker.write_text(json.dumps(want))
    keys = Path(tempfile.mkdtemp(prefix="dcmon-bench-keys-"))  # outside the work tree, as keys must be
    env_before = os.environ.get("DCMON_KEY_DIR")
    os.environ["DCMON_KEY_DIR"] = str(keys / "keys")
    try:
        cli = [sys.executable, "-m", "dcmon.cli"]
        common = ["--config", str(cfg), "--data", str(data)]
        pdf = out / "evidence.pdf"
        run(cli + ["keys", "init"])
        t_make, m_make, _ = run(cli + ["evidence", *common, "--facility", "hyper-10k", "--from", want["from"],
                                       "--to", want["to"], "--out", str(pdf)])
        t_verify, m_verify, stdout = run(cli + ["verify", str(pdf), *common])
    finally:
        shutil.rmtree(keys, ignore_errors=True)
        if env_before is None:
            os.environ.pop("DCMON_KEY_DIR", None)
        else:
            os.environ["DCMON_KEY_DIR"] = env_before
    if "NOT VERIFIED" in stdout or "VERIFIED" not in stdout:
        print(stdout)
        raise SystemExit("the benchmark report did not verify")
    span = "one month" if a.smoke else f"year {YEAR}"
    print(f"evidence (make, signed PDF), 10 000-rack facility, {span}: {t_make:6.2f} s, peak memory {m_make / 2**20:,.0f} MiB")
    print(f"verify (signature, readings, figures, re-rendering):        {t_verify:6.2f} s, peak memory {m_verify / 2**20:,.0f} MiB")
    print(f"machine: {machine_load()}")
    result(f"verify vs make, 10 000-rack evidence, {span}", f"verify {t_verify:.2f} s / make {t_make:.2f} s",
           t_verify / t_make, LIMIT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
