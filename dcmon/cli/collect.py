"""Subcommands ``collect``, ``simulate`` and ``quarantine``: the collector, simulator and quarantine wired
from the options."""
from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import sys
import threading
from pathlib import Path

import orjson

from dcmon.cli.common import add_config_data
from dcmon.errors import InputError

log = logging.getLogger("dcmon.collector")

ENV_USERNAME = "DCMON_MQTT_USERNAME"
ENV_PASSWORD = "DCMON_MQTT_PASSWORD"
ENV_INFLUX_TOKEN = "DCMON_INFLUX_TOKEN"


def add_broker_options(p, *, default_client_id=None):
    g = p.add_argument_group("broker")
    g.add_argument("--broker", default=os.environ.get("DCMON_BROKER", "mqtt://127.0.0.1:1883"), metavar="URL",
                   help="mqtt://host[:1883] or mqtts://host[:8883]; default $DCMON_BROKER or mqtt://127.0.0.1:1883")
    g.add_argument("--username", default=None, help=f"MQTT user name (default ${ENV_USERNAME})")
    g.add_argument("--password", default=None,
                   help=f"MQTT password (default ${ENV_PASSWORD}; prefer the variable: options show in ps)")
    g.add_argument("--ca-file", metavar="PEM", help="CA certificate(s) to verify an mqtts:// broker")
    g.add_argument("--cert-file", metavar="PEM", help="client certificate for mqtts://")
    g.add_argument("--key-file", metavar="PEM", help="client certificate's private key")
    g.add_argument("--client-id", default=default_client_id, metavar="ID",
                   help="MQTT client id; keep it stable so the broker keeps the session (default "
                        + (default_client_id or ("dcmon-collector-<hostname>" if default_client_id is None
                                                 else "dcmon-sim-<random>")) + ")")
    g.add_argument("--qos", type=int, default=1, help="QoS 0 or 1 (default 1)")
    g.add_argument("--prefix", default="dcmon/v1", help="topic prefix (default dcmon/v1)")


def mqtt_options(args, *, client_id: str, protocol: str = "3.1.1", share_group=None):
    from dcmon.collector.mqtt import MqttOptions, parse_broker_url
    try:
        broker = parse_broker_url(args.broker)
        return MqttOptions(broker=broker, client_id=client_id,
                           username=args.username or os.environ.get(ENV_USERNAME) or None,
                           password=args.password or os.environ.get(ENV_PASSWORD) or None,
                           ca_file=args.ca_file, cert_file=args.cert_file, key_file=args.key_file,
                           protocol=protocol, share_group=share_group, qos=args.qos,
                           keepalive_s=getattr(args, "keepalive", 30))
    except ValueError as e:
        raise InputError(str(e)) from None


def register(sub):
    p = sub.add_parser("collect", help="subscribe to MQTT telemetry and store it durably",
                       description="Subscribe to the dcmon topic contract (see docs/collector.md), validate every "
                                   "reading against the registry, store accepted readings durably and only then "
                                   "acknowledge them; rejected readings go to the quarantine with a reason. Runs "
                                   "until SIGTERM or SIGINT, which store what was received and exit cleanly.")
    add_config_data(p)
    add_broker_options(p)
    g = p.add_argument_group("collector")
    g.add_argument("--protocol", choices=["3.1.1", "5"], default=None,
                   help="MQTT protocol (default 3.1.1 with a persistent session; 5 with --share-group)")
    g.add_argument("--share-group", metavar="NAME",
                   help="share the load with other collectors through the MQTT 5 shared subscription "
                        "$share/NAME/… (each message goes to one collector of the group)")
    g.add_argument("--mapping", metavar="YAML", help="payload mappings for devices that send other shapes")
    g.add_argument("--max-future", type=float, default=300.0, metavar="S",
                   help="reject time stamps further ahead of the receive time than this (default 300 s)")
    g.add_argument("--batch-delay", type=float, default=0.05, metavar="S",
                   help="longest wait to fill a batch before storing it (default 0.05 s)")
    g.add_argument("--queue-mib", type=float, default=64.0, metavar="MIB",
                   help="receive queue budget in MiB of payload (default 64): beyond it QoS 0 messages are "
                        "dropped and counted, QoS 1 messages wait at the broker")
    g.add_argument("--health-interval", type=float, default=10.0, metavar="S",
                   help="log and store health this often (default 10 s)")
    g.add_argument("--compact-interval", type=float, default=600.0, metavar="S",
                   help="merge small store files this often (default 600 s; 0 never)")
    g.add_argument("--quarantine-retention-days", type=int, default=90, metavar="DAYS",
                   help="remove quarantine files older than DAYS, checked at start and hourly "
                        "(default 90; 0 keeps them forever)")
    g.add_argument("--quarantine-max-mib", type=float, default=256.0, metavar="MIB",
                   help="cap of the quarantine folder (default 256 MiB); beyond it the oldest files are removed")
    g.add_argument("--keepalive", type=int, default=30, metavar="S", help="MQTT keep-alive (default 30 s)")
    g.add_argument("--no-jump-check", action="store_true", help="do not reject impossible counter jumps")
    m = p.add_argument_group("Prometheus metrics endpoint (optional; see docs/monitoring.md)")
    m.add_argument("--metrics-port", type=int, default=None, metavar="PORT",
                   help="serve /metrics on this port (default: no endpoint; 0 picks a free port)")
    m.add_argument("--metrics-host", default="127.0.0.1", metavar="ADDR",
                   help="address the endpoint binds (default 127.0.0.1; anything else should have a token)")
    m.add_argument("--metrics-token-file", metavar="FILE",
                   help="require 'Authorization: Bearer <token>' with the token in FILE (mode 600); "
                        "default $DCMON_METRICS_TOKEN, else no token")
    m.add_argument("--metrics-refresh", type=float, default=15.0, metavar="S",
                   help="recompute the live facility figures this often (default 15 s; quarter-to-date "
                        "figures every 20 × S)")
    i = p.add_argument_group("InfluxDB sink (optional; readings are also written there through a durable outbox)")
    i.add_argument("--influx-url", metavar="URL", help="for example http://127.0.0.1:8086")
    i.add_argument("--influx-token", default=None, help=f"API token (default ${ENV_INFLUX_TOKEN})")
    i.add_argument("--influx-org", default="dcmon", help="InfluxDB organisation (default dcmon)")
    i.add_argument("--influx-bucket", default="dcmon", help="InfluxDB bucket (default dcmon)")
    p.set_defaults(func=cmd_collect)

    p = sub.add_parser("simulate", help="publish realistic telemetry for the configured facilities",
                       description="Publish meter and rack telemetry for the registry's facilities (single readings, "
                                   "rack scans and line protocol), optionally with faults: counter resets, gaps, "
                                   "duplicates and bad payloads.")
    add_config_data(p, data=False)
    add_broker_options(p, default_client_id="")
    p.add_argument("--facility", action="append", metavar="ID", help="facility id (repeatable; default all)")
    p.add_argument("--speed", type=float, default=1.0, metavar="N",
                   help="simulated time runs N times faster until it reaches now (default 1)")
    p.add_argument("--start", metavar="ISO", help="simulated start time with offset (default: now, or "
                                                  "now − 1 h × speed when --speed > 1)")
    p.add_argument("--duration", metavar="D", help="stop after D (90, 90s, 5m, 2h); default run until stopped")
    p.add_argument("--faults", action="store_true", help="inject resets, gaps, duplicates and bad payloads")
    p.add_argument("--seed", type=int, default=0, help="random seed of the generated telemetry (default 0)")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("quarantine", help="inspect rejected telemetry",
                       description="List or show messages and readings the collector rejected, with their reason.")
    qsub = p.add_subparsers(dest="action", metavar="ACTION")
    q = qsub.add_parser("list", help="list quarantined rejections (newest last)",
                        description="List the collector's rejections with their time, topic and reason, newest "
                                    "last; filters combine.")
    add_config_data(q)
    q.add_argument("--since", metavar="YYYY-MM-DD", help="only days from this UTC day on")
    q.add_argument("--topic", help="only topics containing this text")
    q.add_argument("--facility", metavar="ID", help="only records of this facility (exact id, from the topic)")
    q.add_argument("--reason", help="only reasons containing this text")
    q.add_argument("--limit", type=int, default=50, help="show the last N (default 50; 0 all)")
    q.add_argument("--format", choices=["table", "json"], default="table",
                   help="a table for people (default) or one JSON object per line")
    q.set_defaults(func=cmd_quarantine_list)
    q = qsub.add_parser("show", help="show one rejection with its raw payload",
                        description="Show one rejection: its time, topic, where in the payload, the reason and the "
                                    "raw payload as received.")
    add_config_data(q)
    q.add_argument("id", help="id from 'dcmon quarantine list', e.g. 2026-07-01-collector:12")
    q.set_defaults(func=cmd_quarantine_show)
    q = qsub.add_parser("prune", help="remove quarantine files older than DAYS",
                        description="Remove whole quarantine files whose UTC day ended more than DAYS days ago and "
                                    "that were not written since (a file a collector still writes is never "
                                    "removed). A running collector does this by itself "
                                    "(--quarantine-retention-days).")
    add_config_data(q)
    q.add_argument("--older-than", type=int, required=True, metavar="DAYS", help="age in days (≥ 1)")
    q.add_argument("--dry-run", action="store_true", help="only list the files that would be removed")
    q.set_defaults(func=cmd_quarantine_prune)
    p.set_defaults(func=lambda a, qp=p: (qp.print_help(), 2)[1])


# ------------------------------------------------------------------- collect
def _install_stop_signals(stop: threading.Event):
    def handler(signum, frame):
        log.info("received %s: storing what was received, then stopping", signal.Signals(signum).name)
        stop.set()
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def build_collector(args, registry):
    from dcmon.collector.influx import InfluxSender, Outbox
    from dcmon.collector.ingest import Ingestor
    from dcmon.collector.mqtt import Collector, default_client_id
    from dcmon.config.mappings import load_mappings
    from dcmon.config.yamlfile import load_yaml, yaml_error_where
    from dcmon.store import open_store

    protocol = args.protocol or ("5" if args.share_group else "3.1.1")
    client_id = args.client_id or default_client_id()
    opts = mqtt_options(args, client_id=client_id, protocol=protocol, share_group=args.share_group)
    mappings = []
    if args.mapping:
        import yaml
        path = Path(args.mapping)
        if not path.is_file():
            raise InputError(f"--mapping {path}: no such file")
        try:
            doc = load_yaml(path)     # as every config file: dates stay text
        except yaml.YAMLError as e:
            raise InputError(f"{yaml_error_where(path, e)}: not valid YAML: {getattr(e, 'problem', e)}") from None
        try:
            mappings = load_mappings(doc, where=str(path))
        except ValueError as e:
            raise InputError(str(e)) from None
    for name, v, lo in (("--max-future", args.max_future, 0), ("--batch-delay", args.batch_delay, 0),
                        ("--health-interval", args.health_interval, 0.1), ("--compact-interval", args.compact_interval, 0),
                        ("--queue-mib", getattr(args, "queue_mib", 64.0), 1),
                        ("--quarantine-max-mib", getattr(args, "quarantine_max_mib", 256.0), 1)):
        if not v >= lo:
            raise InputError(f"{name} must be ≥ {lo}: {v!r}")
    from dcmon.store.quarantine import DEFAULT_RETENTION_DAYS
    retention = getattr(args, "quarantine_retention_days", DEFAULT_RETENTION_DAYS)
    if retention < 0:
        raise InputError(f"--quarantine-retention-days must be ≥ 0 (0 keeps quarantine files forever): {retention!r}")
    store = open_store(args.data, on_damaged="move_aside")   # an unreadable file never stops ingestion
    outbox = sender = None
    if args.influx_url:
        token = args.influx_token or os.environ.get(ENV_INFLUX_TOKEN) or ""
        if not args.influx_url.startswith(("http://", "https://")):
            raise InputError(f"--influx-url must start with http:// or https://: {args.influx_url!r}")
        outbox = Outbox(args.data)
        sender = InfluxSender(outbox, args.influx_url, token, args.influx_org, args.influx_bucket)
    quarantine = store.quarantine_writer(client_id,
                                         max_bytes=int(getattr(args, "quarantine_max_mib", 256.0) * 2**20))
    ingestor = Ingestor(registry, store, quarantine, outbox=outbox, prefix=args.prefix,
                        mappings=mappings, max_future=dt.timedelta(seconds=args.max_future),
                        jump_guard=not args.no_jump_check)
    collector = Collector(opts, ingestor, batch_max_delay_s=args.batch_delay, health_interval_s=args.health_interval,
                          queue_max_bytes=int(getattr(args, "queue_mib", 64.0) * 2**20),
                          compact_interval_s=args.compact_interval,
                          quarantine_retention_days=retention)
    return collector, sender


def cmd_collect(args) -> int:
    from dcmon.registry import load_registry
    registry = load_registry(args.config)
    collector, sender = build_collector(args, registry)
    metrics = build_metrics_server(args, registry, collector)
    stop = threading.Event()
    _install_stop_signals(stop)
    if sender is not None:
        sender.start()
    if metrics is not None:
        try:
            metrics.start()
        except OSError as e:
            raise InputError(f"--metrics-port {args.metrics_port} on {args.metrics_host}: cannot listen ({e})") from None
    collector.start()
    try:
        while not stop.wait(0.5):
            pass
    finally:
        collector.stop()
        if metrics is not None:
            metrics.stop()
        if sender is not None:
            sender.stop()
    return 0


def build_metrics_server(args, registry, collector):
    """The /metrics endpoint (``dcmon.monitoring``) over this collector's health, or None."""
    if getattr(args, "metrics_port", None) is None:
        return None
    from dcmon.monitoring import MetricsServer, load_token
    if not 0 <= args.metrics_port <= 65535:
        raise InputError(f"--metrics-port must be 0..65535: {args.metrics_port!r}")
    if not args.metrics_refresh >= 1:
        raise InputError(f"--metrics-refresh must be ≥ 1 s: {args.metrics_refresh!r}")
    try:
        token = load_token(args.metrics_token_file)
    except ValueError as e:
        raise InputError(str(e)) from None
    return MetricsServer(registry, collector.ingestor.store, lambda: collector.health(advance=False),
                         host=args.metrics_host, port=args.metrics_port, token=token,
                         live_interval_s=args.metrics_refresh, quarter_interval_s=20 * args.metrics_refresh)


# ------------------------------------------------------------------ simulate
def make_publisher_client(opts):
    from dcmon.collector.mqtt import make_client
    c = make_client(opts, manual_ack=False, persistent=False)
    c.max_queued_messages_set(10_000)
    c.max_inflight_messages_set(1000)
    return c


def cmd_simulate(args) -> int:
    from dcmon.collector.simulate import Simulator, parse_duration
    from dcmon.readings import now_ms, parse_ts
    from dcmon.registry import load_registry
    registry = load_registry(args.config)
    ids = [f.id for f in registry.select(args.facility)]
    try:
        duration = parse_duration(args.duration)
        if not args.speed > 0:
            raise ValueError(f"--speed must be > 0: {args.speed!r}")
        start = parse_ts(args.start, where="--start") if args.start else None
    except ValueError as e:
        raise InputError(str(e)) from None
    if start is None and args.speed > 1:
        start = now_ms() - int(3_600_000 * args.speed)
    import uuid
    opts = mqtt_options(args, client_id=args.client_id or f"dcmon-sim-{uuid.uuid4().hex[:8]}")
    client = make_publisher_client(opts)
    try:
        sim = Simulator(client, registry, ids, prefix=args.prefix, speed=args.speed, start_ms=start,
                        duration_s=duration, faults=args.faults, qos=args.qos, seed=args.seed)
    except ValueError as e:
        raise InputError(str(e)) from None
    stop = threading.Event()
    _install_stop_signals(stop)
    threading.Thread(target=lambda: (stop.wait(), sim.stop_event.set()), daemon=True).start()
    client.connect_async(opts.broker.host, opts.broker.port, keepalive=30)
    client.loop_start()
    try:
        stats = sim.run()
    finally:
        _drain(client)
        client.disconnect()
        client.loop_stop()
    print(f"published {stats.messages} messages ({stats.readings} readings, {stats.bad} bad payloads, "
          f"{stats.duplicates} duplicates); queue-full retries {stats.queue_full_retries}, "
          f"publish errors {stats.publish_errors}")
    return 1 if stats.publish_errors else 0


def _drain(client, timeout=30.0):
    """Wait until paho has handed every queued QoS 1 message to the broker and got its PUBACK."""
    import time
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not client._out_messages and client.is_connected():
            return True
        if not client.is_connected() and time.monotonic() > deadline - timeout + 5:
            return False
        time.sleep(0.05)
    return False


# ---------------------------------------------------------------- quarantine
def _require_data(args):
    data = Path(args.data)
    if not data.is_dir():
        raise InputError(f"--data {data}: no such folder")
    return data


def cmd_quarantine_list(args) -> int:
    from dcmon.store.quarantine import iter_records
    data = _require_data(args)
    if args.since:
        try:
            dt.date.fromisoformat(args.since)
        except ValueError:
            raise InputError(f"--since must be YYYY-MM-DD: {args.since!r}") from None
    if args.limit < 0:
        raise InputError(f"--limit must be ≥ 0: {args.limit}")
    from collections import deque
    recs = deque(iter_records(data, since=args.since, topic=args.topic, reason=args.reason,
                              facility=getattr(args, "facility", None)),
                 maxlen=args.limit or None)
    if args.format == "json":
        for r in recs:
            sys.stdout.buffer.write(orjson.dumps(r) + b"\n")
        return 0
    if not recs:
        print(f"no quarantined rejections in {data}/quarantine")
        return 0
    for r in recs:
        print(f"{r['id']}  {r['time']}  {r['where']}\n    {r['reason']}")
    print(f"{len(recs)} shown; 'dcmon quarantine show ID' prints the raw payload")
    return 0


def cmd_quarantine_show(args) -> int:
    from dcmon.store.quarantine import get_record
    data = _require_data(args)
    try:
        rec = get_record(data, args.id)
    except ValueError as e:
        raise InputError(str(e)) from None
    if rec is None:
        raise InputError(f"no quarantine record {args.id!r} in {data}/quarantine")
    for k in ("id", "time", "topic", "where", "reason"):
        print(f"{k}: {rec.get(k)}")
    print("raw:")
    print(rec.get("raw", ""))
    return 0


def cmd_quarantine_prune(args) -> int:
    from dcmon.store.quarantine import prune
    data = _require_data(args)
    if args.older_than < 1:
        raise InputError(f"--older-than must be ≥ 1 day: {args.older_than!r}")
    paths = prune(data, args.older_than, dry_run=args.dry_run)
    for p in paths:
        print(f"{'would remove' if args.dry_run else 'removed'} {p.name}")
    print(f"{len(paths)} quarantine file(s) older than {args.older_than} days "
          f"{'would be removed (dry run)' if args.dry_run else 'removed'} from {data}/quarantine")
    return 0

