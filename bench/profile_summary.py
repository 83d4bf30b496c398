"""Summarise a py-spy profile in raw (collapsed-stack) form: the share of samples per thread and
per function, inclusive (the function or anything it called) and self, as in docs/benchmarks.md.

    py-spy record -r 200 -f raw -o prof.txt [--threads] -- .venv/bin/python -m dcmon.cli evaluate …
    python bench/profile_summary.py prof.txt [--top 40] [--match REGEX]

(py-spy is not a dependency of dcmon: ``pip install py-spy`` into the virtual environment.)
"""
from __future__ import annotations

import argparse
import re
from collections import Counter

_FRAME = re.compile(r"^(?P<fn>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def frame_name(frame: str) -> str:
    """``func (path/to/file.py:12)`` → ``func (file.py)``; other frames (thread names) unchanged."""
    m = _FRAME.match(frame)
    return f"{m['fn']} ({m['file'].rsplit('/', 1)[-1]})" if m else frame


def summarise(lines) -> tuple[int, Counter, Counter, Counter]:
    """(samples, per thread, inclusive per function, self per function) of collapsed-stack lines."""
    total, threads, incl, own = 0, Counter(), Counter(), Counter()
    for line in lines:
        line = line.rstrip("\n")
        if not line.strip():
            continue
        stack, _, count = line.rpartition(" ")
        n = int(count)
        frames = [frame_name(f) for f in stack.split(";")]
        total += n
        threads[frames[0]] += n
        for f in set(frames):  # a recursive function counts once per sample
            incl[f] += n
        own[frames[-1]] += n
    return total, threads, incl, own


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("profile", help="py-spy record -f raw output")
    ap.add_argument("--top", type=int, default=40)
    ap.add_argument("--match", help="only functions whose name matches this regular expression")
    a = ap.parse_args(argv)
    with open(a.profile, encoding="utf-8") as fh:
        total, threads, incl, own = summarise(fh)
    if not total:
        raise SystemExit(f"{a.profile}: no samples")
    keep = re.compile(a.match) if a.match else None
    print(f"{total} samples; by outermost frame (the thread, when recorded with --threads)")
    for t, n in threads.most_common():
        print(f"  {n / total:6.1%}  {t}")
    for title, counts in (("inclusive", incl), ("self", own)):
        print(title)
        rows = [(f, n) for f, n in counts.most_common() if keep is None or keep.search(f)]
        for f, n in rows[:a.top]:
            print(f"  {n / total:6.1%}  {f}")


if __name__ == "__main__":
    main()
