"""``dcmon demo``: history, then broker + simulator + collector + dashboard on 127.0.0.1, stopped by Ctrl-C.

The demo first writes history for the sample facilities straight into the store
(:func:`dcmon.fixtures.demo_history.backfill`: from 1 January of the previous year up to a few
minutes ago, at 15-minute intervals; every whole quarter hits each site's target PUE exactly), so
the overview shows decided verdicts at once, and a report for the previous year can be made and
verified. The simulator then publishes live telemetry over MQTT, each counter continuing where
the history ends (:class:`dcmon.collector.simulate.ContinuingSimulator`).
"""
from __future__ import annotations

import argparse
import datetime as dt
import logging
import shlex
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

from dcmon.cli.collect import build_collector, make_publisher_client, mqtt_options
from dcmon.errors import InputError
from dcmon.fixtures.demo_history import backfill, demo_config_dir, demo_period

log = logging.getLogger("dcmon.demo")


EVIDENCE_FACILITY = "cd-east-01"   # passes the Chengdu retrofit thresholds in the sample set


def register(sub):
    p = sub.add_parser("demo", help="sample facilities with history and live telemetry, and the dashboard, on this machine",
                       description="Write history for the sample facilities (fixtures/demo: sites passing and failing "
                                   "the retrofit thresholds, sites exactly on each threshold, one with missing data, "
                                   "a Baoding site and an edge site) from 1 January of the previous year up to now, "
                                   "then start an embedded MQTT broker on 127.0.0.1 (Mosquitto when installed, else "
                                   "amqtt), the simulator, the collector and the dashboard. It prints the dashboard "
                                   "URL, the config and data folders and three commands to try (evaluate, make an "
                                   "evidence report, verify it). Ctrl-C stops everything; without --data the data "
                                   "folder is temporary and removed then.")
    p.add_argument("--config", default=None, metavar="DIR",
                   help="configuration folder (default: the demo's sample facilities, fixtures/demo)")
    p.add_argument("--data", default=None, metavar="DIR",
                   help="keep the store in DIR (new or empty), so reports made from it can be verified after the "
                        "demo stops (default: a temporary folder, removed at the end)")
    p.add_argument("--port", type=int, default=8050, help="dashboard port on 127.0.0.1 (default 8050)")
    p.add_argument("--mqtt-port", type=int, default=0, help="broker port on 127.0.0.1 (default: a free port)")
    p.add_argument("--broker-impl", choices=["auto", "mosquitto", "amqtt"], default="auto",
                   help="embedded broker (default auto: Mosquitto when installed, else amqtt)")
    p.add_argument("--speed", type=float, default=120.0, metavar="N",
                   help="the live stream starts N minutes ago (at most 2 h, where the history ends), replays them N "
                        "times faster, then runs in real time (default 120)")
    p.add_argument("--facility", action="append", metavar="ID", help="facility id (repeatable; default all)")
    p.add_argument("--duration", metavar="D", help="stop after D (90, 90s, 5m, 2h); default run until Ctrl-C")
    p.add_argument("--faults", action="store_true", help="also publish resets, gaps, duplicates and bad payloads")
    p.set_defaults(func=run_demo)


def command_prefix() -> str:
    """How to call dcmon from another terminal: ``dcmon`` when it is this one on PATH."""
    here = Path(sys.executable).parent / "dcmon"
    found = shutil.which("dcmon")
    if found and here.exists() and Path(found).resolve() == here.resolve():
        return "dcmon"
    if here.exists():
        return shlex.quote(str(here))
    return f"{shlex.quote(sys.executable)} -m dcmon.cli"


def start_dashboard(registry, store, port: int):
    """The dashboard app for ``registry`` and ``store`` on 127.0.0.1. Returns (kind, stopper)."""
    from dcmon.dashboard.app import create_app
    from dcmon.dashboard.server import start
    app = create_app(registry, store)
    return "dashboard", start(app, "127.0.0.1", port)   # the production server `dcmon dashboard` uses


def run_demo(args) -> int:
    from dcmon.collector.brokers import AmqttBroker, MosquittoProcess, find_mosquitto, free_port
    from dcmon.collector.simulate import ContinuingSimulator, parse_duration
    from dcmon.readings import now_ms
    from dcmon.registry import load_registry
    from dcmon.store import open_store

    config = (Path(args.config) if args.config else demo_config_dir()).resolve()
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
        kind, stop_web = start_dashboard(registry, store, args.port)
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
