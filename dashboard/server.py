"""Serving the dashboard with waitress (a production WSGI server), in the foreground or in a thread.

``dcmon dashboard`` calls ``serve``; ``dcmon demo`` and the tests call ``start``, which returns a
function that stops the server. Behind a TLS reverse proxy, ``trusted_proxy`` names the proxy's
address: waitress then takes the client address, scheme and host from that proxy's
``X-Forwarded-For``/``-Proto``/``-Host`` headers (and drops them from anyone else), so login
limits count real client addresses and the same-origin check sees the public URL.
"""
from __future__ import annotations

import threading

from waitress import create_server, trigger, wasyncore

THREADS = 8


def make_server(app, host: str, port: int, *, trusted_proxy: str | None = None):
    """A waitress server for a Dash app (or a Flask/WSGI app), bound but not yet serving."""
    wsgi = getattr(app, "server", app)
    kw = {}
    if trusted_proxy:
        kw = dict(trusted_proxy=trusted_proxy, trusted_proxy_count=1, clear_untrusted_proxy_headers=True,
                  trusted_proxy_headers={"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"})
    return create_server(wsgi, host=host, port=port, threads=THREADS, ident="waitress", **kw)


def serve(app, host: str, port: int, *, trusted_proxy: str | None = None) -> None:
    """Serve until interrupted (waitress ends on Ctrl-C by itself)."""
    make_server(app, host, port, trusted_proxy=trusted_proxy).run()


def start(app, host: str, port: int, *, trusted_proxy: str | None = None):
    """Serve in a background thread; returns ``stop()``."""
    srv = make_server(app, host, port, trusted_proxy=trusted_proxy)
    th = threading.Thread(target=srv.run, name="dashboard", daemon=True)
    th.start()

    def stop():
        _close_in_loop(srv)
        srv.task_dispatcher.shutdown()
        th.join(timeout=10)
    return stop


def _close_in_loop(srv) -> None:
    """Close the listening socket and every connection from inside the server's own loop thread
    (waitress's trigger runs the function there), so the loop, which runs while any socket is
    open, ends cleanly."""
    sockets = getattr(srv, "map", None) or srv._map
    trig = next((d for d in list(sockets.values()) if isinstance(d, trigger.trigger)), None)
    if trig is None:
        wasyncore.close_all(sockets)
        return
    done = threading.Event()

    def close_all():
        wasyncore.close_all(sockets)
        done.set()
    trig.pull_trigger(close_all)
    done.wait(timeout=10)
