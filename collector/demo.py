"""``dcmon demo``: history, then broker + simulator + collector + dashboard on 127.0.0.1, stopped by Ctrl-C.

The demo first writes history for the sample facilities straight into the store (from 1 January
of the previous year up to a few minutes ago, at 15-minute intervals; every whole quarter hits
each site's target PUE exactly), so the overview shows decided verdicts at once, and a report
for the previous year can be made and verified. The simulator then publishes live telemetry over
MQTT, each counter continuing where the history ends.
"""
from __future__ import annotations

import argparse
import datetime as dt
import html
import logging
import shlex
import shutil
import signal
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import orjson

from dcmon.collector.simulate import Simulator, continue_counters
from dcmon.errors import InputError
from dcmon.periods import Period, quarter

log = logging.getLogger("dcmon.demo")


def default_config_dir() -> Path:
    """The demo's sample facilities (``fixtures/demo``): chosen so the overview shows verdicts."""
    import dcmon.fixtures
    return Path(dcmon.fixtures.__file__).parent / "demo"


# Sample sites whose PUE the demo leaves undecidable: this meter is silent for the middle third of
# the demo period (energy across the gap is still the counter increase; coverage drops below 95 %).
DEMO_GAPS = {"cd-meter-gap": "ups-1"}
EVIDENCE_FACILITY = "cd-east-01"   # passes the Chengdu retrofit thresholds in the sample set
HISTORY_METER_INTERVAL_S = 900     # history at 15 minutes (within the samples' max_gap_s); live at 1 minute


def demo_period(today: dt.date) -> Period:
    """This quarter up to yesterday (whole days, all of them history), or the previous quarter on
    the first day of a quarter. A quarter still running has no readings for its remaining days, so
    its checks are inconclusive until 95 % of it is covered; the days so far can be decided."""
    q = quarter(f"{today.year}Q{(today.month - 1) // 3 + 1}")
    if today > q.first_day:
        return Period(q.first_day, today - dt.timedelta(days=1), label=f"{q.label} to date")
    prev = q.first_day - dt.timedelta(days=1)
    return quarter(f"{prev.year}Q{(prev.month - 1) // 3 + 1}")


def backfill(registry, store, facility_ids, live_start_ms: int, *, seed: int = 0) -> tuple[int, dict]:
    """Write history for ``facility_ids`` from 1 January of the previous year up to ``live_start_ms``.

    Returns (readings written, {facility_id: last counter value by source}) so the live stream
    can continue each counter where the history ends.
    """
    from concurrent.futures import ThreadPoolExecutor

    from dcmon.fixtures.generate import generate_range
    from dcmon.periods import zone

    def one(fid):
        fac = registry.get(fid)
        today = dt.datetime.fromtimestamp(live_start_ms / 1000, zone(fac.timezone)).date()
        silent = []
        if fid in DEMO_GAPS and any(m.id == DEMO_GAPS[fid] for m in fac.meters):
            s, e = demo_period(today).utc_bounds(fac.timezone)
            third = (e - s) / 3
            silent.append((DEMO_GAPS[fid], (s + third).value // 10**6, (s + 2 * third).value // 10**6))
        t = generate_range(fac, dt.date(today.year - 1, 1, 1), today, split_at=[today],
                           meter_interval_s=HISTORY_METER_INTERVAL_S, until_ms=live_start_ms,
                           silent=tuple(silent), seed=seed)
        store.append(t, check_existing=False)
        df = t.select(["source_id", "energy_kwh"]).to_pandas().dropna(subset=["energy_kwh"])
        return t.num_rows, df.groupby("source_id", sort=False).tail(1)

    # Two workers: numpy and Arrow release the GIL, and each facility writes its own partitions.
    with ThreadPoolExecutor(2) as pool:
        done = dict(zip(facility_ids, pool.map(one, facility_ids)))
    return sum(n for n, _ in done.values()), {fid: last for fid, (_, last) in done.items()}


def command_prefix() -> str:
    """How to call dcmon from another terminal: ``dcmon`` when it is this one on PATH."""
    here = Path(sys.executable).parent / "dcmon"
    found = shutil.which("dcmon")
    if found and here.exists() and Path(found).resolve() == here.resolve():
        return "dcmon"
    if here.exists():
        return shlex.quote(str(here))
    return f"{shlex.quote(sys.executable)} -m dcmon.cli"


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


class ContinuingSimulator(Simulator):
    """The simulator, with each facility's counters continued from the history's last readings
    (without this the first live reading of every meter would look like a counter reset)."""

    def __init__(self, *args, last_counters: dict, **kwargs):
        super().__init__(*args, **kwargs)
        self._pending = dict(last_counters)

    def _publish_until(self, fid, df, tz, i, t, first_rack):
        prev = self._pending.pop(fid, None)
        if prev is not None and i == 0:
            # the later windows are continued from this one by Simulator.run itself
            continue_counters(self.registry, {fid: (prev, tz)}, {fid: (df, tz)})
        return super()._publish_until(fid, df, tz, i, t, first_rack)


def run_demo(args) -> int:
    from dcmon.collector.brokers import AmqttBroker, MosquittoProcess, find_mosquitto, free_port
    from dcmon.collector.cli import build_collector, make_publisher_client, mqtt_options
    from dcmon.collector.simulate import parse_duration
    from dcmon.readings import now_ms
    from dcmon.registry import load_registry
    from dcmon.store import open_store

    config = (Path(args.config) if args.config else default_config_dir()).resolve()
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
        data = Path(args.data).resolve()
        if (data / "readings").is_dir() and any((data / "readings").iterdir()):
            raise InputError(f"--data {args.data}: already holds a store; the demo writes its history into a "
                             f"fresh folder (give a new or empty folder, or remove this one)")
    else:
        tmp = tempfile.TemporaryDirectory(prefix="dcmon-demo-")
        data = Path(tmp.name) / "data"
    data.mkdir(parents=True, exist_ok=True)
    where = (f"{data} (kept: --data)" if not tmp else
             f"{data} (temporary: removed when the demo stops; start with --data DIR to keep it)")
    print(f"dcmon demo: data folder {where}", flush=True)
    mqtt_port = args.mqtt_port or free_port()
    impl = args.broker_impl
    if impl == "auto":
        impl = "mosquitto" if find_mosquitto() else "amqtt"
    if impl == "mosquitto":
        broker = MosquittoProcess(data.parent / "demo-broker" if tmp else data / "broker", mqtt_port)
    else:
        broker = AmqttBroker(mqtt_port)
    if logging.getLogger().getEffectiveLevel() > logging.INFO:   # not -v
        # The dashboard shows health; keep the console for warnings (rejections, disconnects).
        logging.getLogger("dcmon.collector").setLevel(logging.WARNING)
    stop = threading.Event()

    def handler(signum, frame):
        stop.set()
    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    stoppers = []
    sim = collector = None
    try:
        # Live telemetry replays the last minutes quickly (a minute at the default speed), then runs
        # in real time; the history ends where it starts.
        live_start = (now_ms() - int(min(2 * 3600 * 1000, 60_000 * args.speed))) // 60_000 * 60_000
        store = open_store(data)
        t0 = time.monotonic()
        written, last_counters = backfill(registry, store, ids, live_start)
        from dcmon.periods import zone
        first_year = dt.datetime.fromtimestamp(live_start / 1000, zone(registry.get(ids[0]).timezone)).year - 1
        print(f"dcmon demo: history {first_year}-01-01 .. now for {len(ids)} facilities "
              f"({written:,} readings) written in {time.monotonic() - t0:.1f} s", flush=True)
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
        kind, stop_web = start_dashboard(config, data, args.port, store, registry)
        stoppers.append((kind, stop_web))
        popts = mqtt_options(cargs, client_id="dcmon-demo-simulator")
        client = make_publisher_client(popts)
        client.connect_async("127.0.0.1", mqtt_port, keepalive=30)
        client.loop_start()
        sim = ContinuingSimulator(client, registry, ids, speed=args.speed, start_ms=live_start, faults=args.faults,
                                  horizon_s=6 * 3600, last_counters=last_counters)
        sim_thread = threading.Thread(target=sim.run, name="simulator", daemon=True)
        sim_thread.start()

        def stop_sim():
            sim.stop_event.set()
            sim_thread.join(10)
            client.disconnect()
            client.loop_stop()
        stoppers.append(("simulator", stop_sim))
        print(start_text(kind, args.port, config, data, ids, broker_text=f"{impl} {broker.url}"), flush=True)
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
        st = collector.ingestor.stats if collector is not None else None
        counts = (f": {st.messages} messages, {st.written} live readings stored, {st.rejected} rejected"
                  if st is not None else "")
        print(f"dcmon demo stopped{counts}; "
              + (f"data kept in {data}" if not tmp else f"removing the temporary data folder {data}"), flush=True)
        if tmp is not None:
            tmp.cleanup()
    return 0


def start_text(kind: str, port: int, config: Path, data: Path, ids: list[str], *, broker_text: str,
               today: dt.date | None = None) -> str:
    """What the demo prints once everything runs: where things are and three commands to try."""
    from dcmon.periods import zone
    today = today or dt.datetime.now(zone("Asia/Shanghai")).date()
    per = demo_period(today)
    span = f"--from {per.first_day} --to {per.last_day}"
    dcmon = command_prefix()
    cd = f"--config {shlex.quote(str(config))} --data {shlex.quote(str(data))}"
    fac = EVIDENCE_FACILITY
    report = f"evidence-{fac}-{today.year - 1}.pdf"
    url = f"http://127.0.0.1:{port}/?from={per.first_day}&to={per.last_day}"
    lines = [
        f"dcmon demo: {kind} at {url}",
        f"  period shown   {per.label} ({per.first_day} .. {per.last_day}; the running quarter "
        f"stays inconclusive until 95 % of it has data)",
        f"  config folder  {config}",
        f"  data folder    {data}",
        f"  broker         {broker_text}; {len(ids)} facilities publish live telemetry",
        "Try in another terminal while the demo runs:",
        f"  {dcmon} evaluate {cd} {span}",
    ]
    if fac in ids:   # the report's site passes the Chengdu retrofit profile it is made for
        lines += [f"  {dcmon} evidence {cd} --facility {fac} --year {today.year - 1} --out {report}",
                  f"  {dcmon} verify {report} {cd}"]
    lines.append("Ctrl-C stops everything.")
    return "\n".join(lines)
