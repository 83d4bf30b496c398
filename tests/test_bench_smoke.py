"""Every benchmark in bench/ runs in its ``--smoke`` mode: a change of store layout, CLI or page can
no longer break a benchmark silently.

Each script is discovered by name (``bench/bench_*.py``), run as its own process on tiny data and
must exit 0 and print at least one ``RESULT … ratio … limit …`` line. Wall-clock times and whether
a target is met are never asserted: the smoke data is far too small for that, and this machine is
shared. A script that exits 77 (see bench/_common.py) lacks an external program and is skipped.
"""
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((REPO / "bench").glob("bench_*.py"))
SKIP_EXIT = 77


def test_every_benchmark_is_discovered():
    assert {p.name for p in SCRIPTS} >= {"bench_collector.py", "bench_evaluate.py", "bench_dashboard.py",
                                        "bench_reports.py"}


@pytest.mark.integration
@pytest.mark.parametrize("script", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_smoke_mode_prints_ratio_against_limit(script, tmp_path):
    # from a scratch folder: a script must not depend on the working directory, and a relative default
    # output folder never lands on the full-scale data kept under the repository's bench/out/
    p = subprocess.run([sys.executable, str(script), "--smoke"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=300)
    if p.returncode == SKIP_EXIT:
        pytest.skip(p.stderr.strip().splitlines()[-1] if p.stderr.strip() else f"{script.name} skipped")
    tail = f"\n--- stdout\n{p.stdout[-3000:]}\n--- stderr\n{p.stderr[-3000:]}"
    assert p.returncode == 0, f"{script.name} --smoke exited {p.returncode}{tail}"
    results = [line for line in p.stdout.splitlines() if line.startswith("RESULT ")]
    assert results, f"{script.name} --smoke printed no RESULT line{tail}"
    for line in results:
        assert "ratio" in line and "limit" in line, f"{script.name}: RESULT line without ratio and limit: {line}"
