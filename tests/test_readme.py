"""The README's runnable examples run as written, and print what the README shows.

A ```sh block preceded by an HTML comment starting ``<!-- runnable`` is run with bash, in README
order, in one fresh folder that holds links to the repository's ``fixtures`` and ``config`` (the
README's commands name them relative to the repository), with ``dcmon`` on PATH, as a reader
following the README would. When the next block is a plain ``` block, it is the expected output:
stdout must equal it line for line.
"""
import os
import re
import subprocess
import sys
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]
MARK = "<!-- runnable"
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```\n", re.S | re.M)


def runnable_blocks(text: str) -> list[tuple[int, str, str | None]]:
    """[(line number, commands, expected output or None)] for every marked sh block."""
    out = []
    pos = 0
    while (i := text.find(MARK, pos)) >= 0:
        pos = i + len(MARK)
        end_of_comment = text.index("-->", i) + 3
        m = BLOCK.match(text, end_of_comment + 1)
        assert m and m.group(1) == "sh", f"README.md:{text.count(chr(10), 0, i) + 1}: {MARK} must precede a ```sh block"
        expected = None
        nxt = BLOCK.match(text, m.end())
        if nxt and nxt.group(1) == "":
            expected = nxt.group(2)
        out.append((text.count("\n", 0, i) + 1, m.group(2), expected))
    return out


def test_the_marker_finds_blocks():
    blocks = runnable_blocks((REPO / "README.md").read_text(encoding="utf-8"))
    assert blocks, "README.md has no runnable block"
    sample = "x\n<!-- runnable -->\n```sh\necho hi\n```\n```\nhi\n```\n"
    assert runnable_blocks(sample) == [(2, "echo hi\n", "hi\n")]


def test_readme_runnable_blocks_run_as_written(tmp_path):
    for name in ("fixtures", "config"):
        (tmp_path / name).symlink_to(REPO / name)
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    env.pop("DCMON_CONFIG", None)
    env.pop("DCMON_DATA", None)
    env["DCMON_KEY_DIR"] = str(tmp_path / "keys")  # dcmon evidence signs: never with the real ~/.config/dcmon/keys
    for line, commands, expected in runnable_blocks((REPO / "README.md").read_text(encoding="utf-8")):
        p = subprocess.run(["bash", "-euo", "pipefail", "-c", commands], cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=600)
        assert p.returncode == 0, f"README.md:{line}: exit {p.returncode}\n{p.stderr[-3000:]}"
        assert "Traceback" not in p.stderr
        if expected is not None:
            assert p.stdout == expected, f"README.md:{line}: the output differs from the README's"
