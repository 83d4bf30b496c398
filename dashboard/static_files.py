"""Static files (Dash's component bundles, Plotly, ``assets/``): compressed once, cached by browsers.

flask-compress compresses every response again by default: ``plotly.min.js`` (4.8 MB) cost
0.17 s of CPU per request at brotli level 4. ``CompressedStatic`` is its cache backend and keeps
the compressed bytes of static files only (one copy per file and algorithm, for the life of the
process: a package's files do not change while it runs); data responses are compressed per
request as before, never cached.

Plotly: Dash's graphs load plotly.js from one fixed URL (``PLOTLY_PATH``) when the first graph
is drawn. That URL answers with plotly.js's partial "cartesian" bundle (``vendor/``, the same
plotly.js version as the ``plotly`` package; 1.5 MB, 0.5 MB compressed) instead of the full one
(4.8 MB): it holds every trace type the pages draw (``PLOTLY_TRACES``), and a new browser
downloads and parses a third of the script.

Browsers keep Dash's fingerprinted bundle URLs for a year (Dash sets that). Two static URLs are
not fingerprinted by Dash: ``plotly.min.js`` (the renderer asks for a fixed URL) and
``/assets/<file>?m=<mtime>`` (the query changes when the file does); ``cache_headers`` gives them
a lifetime so a returning browser does not even revalidate them.
"""
from __future__ import annotations

import functools
import hashlib
import threading
from pathlib import Path

import flask
from dash.fingerprint import check_fingerprint

from dcmon.dashboard.security import STATIC_PREFIXES

PLOTLY_PATH = "/_dash-component-suites/plotly/package_data/plotly.min.js"
PLOTLY_VERSION = "4.1.1"
PLOTLY_BUNDLE = Path(__file__).with_name("vendor") / f"plotly-cartesian-{PLOTLY_VERSION}.min.js"
# the trace types of the cartesian bundle: a page may draw these and no others
PLOTLY_TRACES = frozenset({"bar", "box", "contour", "heatmap", "histogram", "histogram2d", "histogram2dcontour",
                           "image", "pie", "scatter", "scatterternary", "violin"})
PLOTLY_MAX_AGE_S = 86_400        # not fingerprinted: after an upgrade a browser may keep the old one a day
ASSET_MAX_AGE_S = 31_536_000     # /assets/ URLs carry the file's mtime: a changed file has a new URL
MAX_ENTRIES = 128                # the app has about 20 static files; a bound whatever URLs are asked for


def cache_key(request) -> str:
    """The file a static request names: the path without query, fingerprint removed (any
    fingerprint serves the same file, so a made-up one must not add an entry)."""
    return check_fingerprint(request.path)[0]


class CompressedStatic:
    """flask-compress cache backend (``get``/``set``) that stores static files only."""

    def __init__(self):
        self._items: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        if "Range" in flask.request.headers:   # a part of a file (206) is neither served from nor kept here
            return None
        return self._items.get(key)

    def set(self, key: str, value: bytes) -> None:
        path = key.partition(";")[2]          # flask-compress keys are "<algorithm>;<cache_key>"
        if not path.startswith(STATIC_PREFIXES) or "Range" in flask.request.headers:
            return
        with self._lock:
            if key in self._items or len(self._items) < MAX_ENTRIES:
                self._items[key] = value


@functools.cache
def _plotly_bundle() -> tuple[bytes, str]:
    data = PLOTLY_BUNDLE.read_bytes()
    return data, hashlib.sha256(data).hexdigest()[:32]


def plotly_bundle():
    """``before_request``: the request for Dash's plotly.js (any fingerprint) gets the partial bundle.

    A plain (not streamed) response, so that flask-compress compresses it once and keeps it."""
    if flask.request.method in ("GET", "HEAD") and flask.request.path.startswith(PLOTLY_PATH.rsplit("/", 1)[0]) \
            and cache_key(flask.request) == PLOTLY_PATH:
        data, etag = _plotly_bundle()
        # flask-compress sends the tag as "<tag>:br" (or ":gzip"): the browser asks again with that
        if etag in {tag.split(":", 1)[0] for tag in flask.request.if_none_match.as_set()}:
            resp = flask.Response(status=304)
        else:
            resp = flask.Response(data, mimetype="application/javascript")
        resp.set_etag(etag)
        return resp
    return None


def configure_compression(server: flask.Flask) -> None:
    """Before ``Dash(..., compress=True)`` builds flask-compress on ``server``."""
    backend = CompressedStatic()
    server.config.update(COMPRESS_CACHE_BACKEND=lambda: backend, COMPRESS_CACHE_KEY=cache_key)


def preload_headers(resp: flask.Response) -> flask.Response:
    """The HTML of a facility page names plotly.js for preloading (an HTTP ``Link`` header), so the
    browser fetches it alongside Dash's own scripts instead of after the page's graphs are laid out."""
    if flask.request.path.startswith("/facility/") and resp.status_code == 200 and resp.mimetype == "text/html":
        resp.headers.add("Link", f"<{PLOTLY_PATH}>; rel=preload; as=script")
    return resp


def cache_headers(resp: flask.Response) -> flask.Response:
    path = flask.request.path
    if resp.status_code not in (200, 304):
        return resp
    if path == PLOTLY_PATH:
        resp.cache_control.public = True
        resp.cache_control.max_age = PLOTLY_MAX_AGE_S
    elif path.startswith("/assets/") and "m" in flask.request.args:
        resp.cache_control.public = True
        resp.cache_control.max_age = ASSET_MAX_AGE_S
        resp.cache_control.no_cache = None
    return resp
