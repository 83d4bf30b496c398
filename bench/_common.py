"""Helpers shared by the benchmarks: timing a child process with its own peak memory."""
from __future__ import annotations

import os
import subprocess
import tempfile
import time


def run(cmd: list[str]) -> tuple[float, int, str]:
    """Wall time [s], peak RSS [bytes] and stdout of a child process.

    The caller must stay small: ``ru_maxrss`` of a child includes what it inherited at fork.
    Output goes through temporary files so the child is reaped by ``os.wait4`` (its own rusage).
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=out, stderr=err)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if p.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}):\n{err.read().decode()}")
        return wall, ru.ru_maxrss * 1024, out.read().decode()
