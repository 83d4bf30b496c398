"""``dcmon demo``: broker + simulator + collector + dashboard on 127.0.0.1, stopped by Ctrl-C."""
from __future__ import annotations

import argparse
import html
import logging
import signal
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import orjson

from dcmon.errors import InputError

log = logging.getLogger("dcmon.demo")


def default_config_dir() -> Path:
    import dcmon.fixtures
    return Path(dcmon.fixtures.__file__).parent


def _status_page(store, registry) -> bytes:
    docs = store.list_status("collector-")
    rows = []
    now = time.time() * 1000
    for name, d in docs.items():
        rows.append(f"<h2>{html.escape(name)}</h2><p>{'connected' if d.get('connected') else 'DISCONNECTED'} — "
                    f"{d.get('messages_per_s', 0)} msg/s, {d.get('readings_per_s', 0)} readings/s, "
                    f"{d.get('stored', 0)} stored, {d.get('duplicates', 0)} duplicates, {d.get('rejected', 0)} rejected, "
                    f"ack lag {d.get('ack_lag_ms', 0)} ms</p>")
        rows.append("<table border=1 cellpadding=4><tr><th>facility</th><th>sources seen</th>"
                    "<th>newest reading</th><th>age [s]</th></tr>")
        for fid, sources in sorted((d.get("last_seen") or {}).items()):
            newest = max((v[0] for v in sources.values()), default=None)
            fac = registry.facilities.get(fid)
            total = len(fac.meters) + len(fac.racks) if fac else "?"
            age = "—" if newest is None else f"{(now - newest) / 1000:.0f}"
            when = "—" if newest is None else time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(newest / 1000))
            rows.append(f"<tr><td>{html.escape(fid)}</td><td>{len(sources)} / {total}</td><td>{when}</td>"
                        f"<td>{age}</td></tr>")
        rows.append("</table>")
    body = "".join(rows) or "<p>waiting for the collector's first health report…</p>"
    return (f"<!doctype html><html><head><meta charset=utf-8><meta http-equiv=refresh content=5>"
            f"<title>dcmon demo</title></head><body><h1>dcmon demo — live collector status</h1>{body}"
            f"<p>The dashboard package is not installed; this is the collector's own status page.</p>"
            f"</body></html>").encode()


def serve_status_page(store, registry, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path.startswith("/status.json"):
                body, ctype = orjson.dumps(store.list_status("collector-")), "application/json"
            else:
                body, ctype = _status_page(store, registry), "text/html; charset=utf-8"
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, name="status-page", daemon=True).start()
    return server


def start_dashboard(config_dir, data_dir, port: int, store, registry):
    """The dashboard app when its package is there, else the status page. Returns (kind, stopper)."""
    try:
        from dcmon.dashboard.app import create_app
    except ImportError as e:
        log.info("dashboard not available (%s); serving the collector status page", e)
        server = serve_status_page(store, registry, port)
        return "status page", server.shutdown
    from dcmon.dashboard.server import start
    app = create_app(str(config_dir), str(data_dir))
    return "dashboard", start(app, "127.0.0.1", port)   # the production server `dcmon dashboard` uses


def run_demo(args) -> int:
    from dcmon.collector.brokers import AmqttBroker, MosquittoProcess, find_mosquitto, free_port
    from dcmon.collector.cli import build_collector, make_publisher_client, mqtt_options
    from dcmon.collector.simulate import Simulator, parse_duration
    from dcmon.readings import now_ms
    from dcmon.registry import load_registry
    from dcmon.store import open_store

    config = Path(args.config) if args.config else default_config_dir()
    registry = load_registry(config)
    ids = [f.id for f in registry.select(args.facility)]
    try:
        duration = parse_duration(args.duration)
    except ValueError as e:
        raise InputError(str(e)) from None
    if not args.speed > 0:
        raise InputError(f"--speed must be > 0: {args.speed!r}")
    if not 0 < args.port < 65536:
        raise InputError(f"--port must be 1..65535: {args.port}")
    tmp = None
    if args.data:
        data = Path(args.data)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="dcmon-demo-")
        data = Path(tmp.name) / "data"
    data.mkdir(parents=True, exist_ok=True)
    mqtt_port = args.mqtt_port or free_port()
    impl = args.broker_impl
    if impl == "auto":
        impl = "mosquitto" if find_mosquitto() else "amqtt"
    if impl == "mosquitto":
        broker = MosquittoProcess(data.parent / "demo-broker" if tmp else data / "broker", mqtt_port)
    else:
        broker = AmqttBroker(mqtt_port)
    if logging.getLogger().getEffectiveLevel() >= logging.INFO:
        # The status page shows health; keep the console for warnings (rejections, disconnects).
        logging.getLogger("dcmon.collector").setLevel(logging.WARNING)
    stop = threading.Event()

    def handler(signum, frame):
        stop.set()
    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    stoppers = []
    sim = collector = None
    try:
        broker.start()
        stoppers.append(("broker", broker.stop))
        cargs = argparse.Namespace(
            broker=broker.url, username=None, password=None, ca_file=None, cert_file=None, key_file=None,
            client_id="dcmon-demo-collector", qos=1, prefix="dcmon/v1", protocol=None, share_group=None, mapping=None,
            max_future=300.0, batch_delay=0.05, health_interval=2.0, compact_interval=120.0, keepalive=30,
            quarantine_retention_days=90,
            no_jump_check=False, influx_url=None, influx_token=None, influx_org="dcmon", influx_bucket="dcmon",
            config=str(config), data=str(data))
        collector, _ = build_collector(cargs, registry)
        collector.start()
        stoppers.append(("collector", collector.stop))
        collector.wait_subscribed(10)
        store = open_store(data)
        kind, stop_web = start_dashboard(config, data, args.port, store, registry)
        stoppers.append((kind, stop_web))
        popts = mqtt_options(cargs, client_id="dcmon-demo-simulator")
        client = make_publisher_client(popts)
        client.connect_async("127.0.0.1", mqtt_port, keepalive=30)
        client.loop_start()
        # Replay the last two hours quickly (a minute at the default speed), then continue live.
        start = now_ms() - int(min(2 * 3600 * 1000, 60_000 * args.speed))
        sim = Simulator(client, registry, ids, speed=args.speed, start_ms=start, faults=args.faults,
                        horizon_s=6 * 3600)
        sim_thread = threading.Thread(target=sim.run, name="simulator", daemon=True)
        sim_thread.start()

        def stop_sim():
            sim.stop_event.set()
            sim_thread.join(10)
            client.disconnect()
            client.loop_stop()
        stoppers.append(("simulator", stop_sim))
        print(f"dcmon demo: {kind} at http://127.0.0.1:{args.port}/  (broker {impl} {broker.url}, "
              f"data {data}, {len(ids)} facilities). Ctrl-C stops everything.", flush=True)
        t0 = time.monotonic()
        while not stop.wait(0.5):
            if duration is not None and time.monotonic() - t0 >= duration:
                break
    except OSError as e:
        raise InputError(f"could not start the demo: {e}") from None
    finally:
        for name, fn in reversed(stoppers):
            try:
                fn()
            except Exception as e:
                log.warning("stopping %s: %s", name, e)
        for s, h in old.items():
            signal.signal(s, h)
        if collector is not None:
            st = collector.ingestor.stats
            print(f"dcmon demo stopped: {st.messages} messages, {st.written} readings stored, {st.rejected} rejected"
                  + (f"; data kept in {data}" if args.data else ""), flush=True)
        if tmp is not None:
            tmp.cleanup()
    return 0
