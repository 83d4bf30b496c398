"""Helpers shared by the benchmarks: timing a child process with its own peak memory, the
``RESULT`` line every benchmark prints, and the skip convention of ``--smoke`` runs.

Every ``bench/bench_*.py`` accepts ``--smoke`` (seconds, tiny data, exit 0) and prints at least one
line starting with ``RESULT `` that holds a ratio and its limit; ``tests/test_bench_smoke.py`` runs
each one that way. A script that cannot run here (a program missing) exits with :data:`SKIP_EXIT`.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

SKIP_EXIT = 77  # the automake convention for "skipped"; the smoke test turns it into a pytest skip


@dataclass
class Timing:
    wall_s: float     # wall-clock time [s]: what a user waits
    cpu_s: float      # user + system CPU time of the child [s]: less sensitive to other load on the machine
    peak_bytes: int   # peak resident memory of the child [bytes]
    stdout: str


def run_timed(cmd: list[str], env: dict | None = None) -> Timing:
    """Wall time, CPU time, peak RSS and stdout of a child process; exits naming the command if it fails.

    The caller must stay small: ``ru_maxrss`` of a child includes what it inherited at fork.
    Output goes through temporary files so the child is reaped by ``os.wait4`` (its own rusage).
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if p.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}):\n{err.read().decode()}")
        return Timing(wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss * 1024, out.read().decode())


def run(cmd: list[str]) -> tuple[float, int, str]:
    """Wall time [s], peak RSS [bytes] and stdout of a child process (see :func:`run_timed`)."""
    t = run_timed(cmd)
    return t.wall_s, t.peak_bytes, t.stdout


def machine_load() -> str:
    """The cores and the load average now: these machines are shared, so every run states its load."""
    one, five, _ = os.getloadavg()
    return f"{os.cpu_count()} cores, load average {one:.2f} (1 min) {five:.2f} (5 min)"


def require(*programs: str) -> None:
    """Exit with :data:`SKIP_EXIT` and one line naming what is missing, unless every program is on PATH
    (or is an existing absolute path)."""
    missing = [p for p in programs if not (os.path.isabs(p) and os.path.exists(p)) and shutil.which(p) is None]
    if missing:
        print(f"SKIP: {', '.join(missing)} not installed (scripts/setup installs the Debian packages)", file=sys.stderr)
        sys.exit(SKIP_EXIT)


def result(name: str, measured: str, ratio: float, limit: float, *, at_least: bool = False) -> bool:
    """Print the benchmark's ``RESULT`` line and return whether the target is met.

    ``ratio`` is measured ÷ reference (a baseline timed in the same run, or the fixed target);
    the target is ``ratio ≤ limit``, or ``ratio ≥ limit`` with ``at_least`` (rates).
    """
    met = ratio >= limit if at_least else ratio <= limit
    print(f"RESULT {name}: {measured} → ratio {ratio:.2f} (limit {'≥' if at_least else '≤'} {limit:g}) "
          f"{'met' if met else 'NOT met'}", flush=True)
    return met
