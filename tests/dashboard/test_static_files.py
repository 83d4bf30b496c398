"""Static files: compressed once and kept, cached by browsers; data responses unchanged (not kept, no-store)."""
from __future__ import annotations

import re
from pathlib import Path

import brotli

from dcmon.dashboard.static_files import PLOTLY_PATH
from wiring import app_for

REPO = Path(__file__).resolve().parents[2]
BR = {"Accept-Encoding": "br"}


def test_plotly_compressed_once_and_cached_by_browsers(users_config, tmp_path):
    app = app_for(users_config, tmp_path)
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
    app = app_for(users_config, tmp_path)
    c = app.server.test_client()
    r = c.get("/login", headers=BR)
    assert r.headers["Cache-Control"] == "no-store"
    backend = app.server.config["COMPRESS_CACHE_BACKEND"]()
    assert not [k for k in backend._items if "login" in k]


def test_fingerprinted_bundles_cached_a_year(tmp_path):
    app = app_for(REPO / "fixtures", tmp_path)     # no users: "/" is the Dash page
    c = app.server.test_client()
    src = re.findall(r'src="(/_dash-component-suites/[^"]+)"', c.get("/").get_data(as_text=True))
    assert src
    for s in src:
        r = c.get(s, headers=BR)
        assert r.status_code == 200 and "max-age=31536000" in r.headers["Cache-Control"], s


def test_graphs_get_the_partial_plotly_bundle_of_the_same_version(tmp_path):
    """plotly.js's cartesian bundle answers Dash's plotly.js URL: the version the plotly package ships,
    and every trace type the pages draw is in it."""
    import json

    import pandas as pd
    from plotly.offline import get_plotlyjs_version

    from dcmon.dashboard.pages import facility
    from dcmon.dashboard.static_files import PLOTLY_BUNDLE, PLOTLY_TRACES
    app = app_for(REPO / "fixtures", tmp_path)
    c = app.server.test_client()
    r = c.get(PLOTLY_PATH)
    assert r.status_code == 200 and r.data == PLOTLY_BUNDLE.read_bytes()
    assert r.data.startswith(f"/**\n* plotly.js (cartesian - minified) v{get_plotlyjs_version()}\n".encode())
    assert len(r.data) < 1_700_000     # the full plotly.min.js is 4.8 MB
    assert c.get(PLOTLY_PATH, headers={"If-None-Match": r.headers["ETag"]}).status_code == 304
    br = c.get(PLOTLY_PATH, headers=BR)
    assert c.get(PLOTLY_PATH, headers={**BR, "If-None-Match": br.headers["ETag"]}).status_code == 304
    # a facility page's HTML names it for preloading; other pages do not load it at all
    assert c.get("/facility/cd-east-01").headers["Link"] == f"<{PLOTLY_PATH}>; rel=preload; as=script"
    assert "Link" not in c.get("/").headers
    bins = pd.DataFrame({"bin": ["2026-07-06"], "facility_energy_kwh": [10.0], "it_energy_kwh": [8.0], "pue": [1.25],
                         "coverage": [1.0]})
    racks = pd.DataFrame({"rack_id": ["A-1"], "room": ["A"], "row": ["1"], "position": ["1"], "design_power_kw": [5.0],
                          "function": ["compute"], "status": ["in_use"], "power_kw": [2.5], "share": [0.5]})
    figures = [facility.trend_figure(bins, "zh", "t", monthly=False), facility.role_figure({"it": 8.0}, "zh"),
               facility.floor_figure(racks, "zh")]
    drawn = {tr["type"] for f in figures for tr in json.loads(json.dumps(f, default=lambda o: o.to_plotly_json()))["data"]}
    assert drawn == {"bar", "scatter", "heatmap"} and drawn <= PLOTLY_TRACES
