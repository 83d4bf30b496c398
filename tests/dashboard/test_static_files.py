"""Static files: compressed once and kept, cached by browsers; data responses unchanged (not kept, no-store)."""
from __future__ import annotations

import re
from pathlib import Path

import brotli

from dcmon.dashboard.app import create_app
from dcmon.dashboard.static_files import PLOTLY_PATH

REPO = Path(__file__).resolve().parents[2]
BR = {"Accept-Encoding": "br"}


def test_plotly_compressed_once_and_cached_by_browsers(users_config, tmp_path):
    app = create_app(users_config, tmp_path)
    c = app.server.test_client()
    first = c.get(PLOTLY_PATH, headers=BR)
    assert first.status_code == 200 and first.headers["Content-Encoding"] == "br"
    assert brotli.decompress(first.data).startswith(b"/**")   # plotly.js's licence banner
    assert "max-age=86400" in first.headers["Cache-Control"]
    assert "default-src 'self'" in first.headers["Content-Security-Policy"]
    backend = app.server.config["COMPRESS_CACHE_BACKEND"]()
    assert backend._items == {"br;" + PLOTLY_PATH: first.data}
    # a made-up fingerprint or query names the same file: no new entry
    assert c.get(PLOTLY_PATH + "?x=1", headers=BR).data == first.data
    fp = PLOTLY_PATH.replace("plotly.min.js", "plotly.v9_9_9m1.min.js")
    assert c.get(fp, headers=BR).data == first.data
    assert len(backend._items) == 1


def test_data_responses_are_not_kept(users_config, tmp_path):
    app = create_app(users_config, tmp_path)
    c = app.server.test_client()
    r = c.get("/login", headers=BR)
    assert r.headers["Cache-Control"] == "no-store"
    backend = app.server.config["COMPRESS_CACHE_BACKEND"]()
    assert not [k for k in backend._items if "login" in k]


def test_fingerprinted_bundles_cached_a_year(tmp_path):
    app = create_app(REPO / "fixtures", tmp_path)     # no users: "/" is the Dash page
    c = app.server.test_client()
    src = re.findall(r'src="(/_dash-component-suites/[^"]+)"', c.get("/").get_data(as_text=True))
    assert src
    for s in src:
        r = c.get(s, headers=BR)
        assert r.status_code == 200 and "max-age=31536000" in r.headers["Cache-Control"], s
