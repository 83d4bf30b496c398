"""Quarantine retention: whole files older than N days are removed (never the one being written),
by the running collector's housekeeping and by ``dcmon quarantine prune``. Real files throughout."""
import datetime as dt
import logging
import os
import time

import orjson
import pytest

from dcmon.cli import main
from dcmon.store.quarantine import Quarantine, iter_records, prune, prune_candidates, quarantine_dir
from dcmon.readings import Rejection, now_ms

from conftest import FIXTURES, CollectorProc, needs_mosquitto, paho_publisher, publish_all, stop_client, wait_for

DAY_S = 86_400
NOW = time.time()


def day_name(days_ago: int, writer="collector-1") -> str:
    d = (dt.datetime.fromtimestamp(NOW, dt.UTC) - dt.timedelta(days=days_ago)).date().isoformat()
    return f"{d}-{writer}.jsonl"


def make_file(data, name, *, mtime_days_ago=None, lines=1):
    qdir = quarantine_dir(data)
    qdir.mkdir(parents=True, exist_ok=True)
    p = qdir / name
    p.write_bytes(b"".join(orjson.dumps({"time": "x", "topic": "t", "where": "t", "reason": f"r{i}", "raw": ""}) + b"\n"
                           for i in range(lines)))
    if mtime_days_ago is not None:
        t = NOW - mtime_days_ago * DAY_S
        os.utime(p, (t, t))
    return p


def names(paths):
    return sorted(p.name for p in paths)


def test_prune_removes_only_whole_files_older_than_the_retention(tmp_path, caplog):
    data = tmp_path / "data"
    old = make_file(data, day_name(120), mtime_days_ago=119)
    old2 = make_file(data, day_name(95, "collector-2"), mtime_days_ago=94, lines=3)
    edge = make_file(data, day_name(90), mtime_days_ago=89)          # its day ended < 90 days ago: kept
    recent = make_file(data, day_name(3), mtime_days_ago=2)
    today = make_file(data, day_name(0))
    late_write = make_file(data, day_name(200), mtime_days_ago=1)    # old name, written yesterday: kept
    other = make_file(data, "notes.txt", mtime_days_ago=400)          # not a quarantine file: ignored
    hidden = make_file(data, "." + day_name(300), mtime_days_ago=300)

    assert names(prune_candidates(data, 90, now=NOW)) == names([old, old2])
    # --dry-run: listed, nothing removed
    assert names(prune(data, 90, now=NOW, dry_run=True)) == names([old, old2])
    assert old.exists() and old2.exists()

    with caplog.at_level(logging.INFO, logger="dcmon.collector"):
        removed = prune(data, 90, now=NOW)
    assert names(removed) == names([old, old2])
    assert not old.exists() and not old2.exists()
    for p in (edge, recent, today, late_write, other, hidden):
        assert p.exists(), p.name
    log = caplog.text
    assert f"removed {old.name}" in log and f"removed {old2.name}" in log
    assert "removed 2 file(s) older than 90 days" in log
    # the remaining records are still listed, the removed ones are gone
    listed = {r["id"].rsplit(":", 1)[0] for r in iter_records(data)}
    assert {p.name[:-6] for p in (edge, recent, today, late_write)} <= listed
    assert not {p.name[:-6] for p in (old, old2)} & listed
    assert prune(data, 90, now=NOW) == []      # nothing left to remove: no log, no error


@pytest.mark.parametrize("days", [0, -1, 1.5, None])
def test_prune_refuses_a_retention_below_one_day(tmp_path, days):
    with pytest.raises(ValueError, match="whole number of days ≥ 1"):
        prune_candidates(tmp_path, days)


def test_prune_of_a_missing_folder_is_empty(tmp_path):
    assert prune(tmp_path / "none", 30) == []


def test_the_file_being_written_is_never_removed(tmp_path, registry):
    """A collector whose clock said it was long ago writes an old-named file: retention keeps it while it
    is the writer's current file, and the writer keeps appending to it."""
    from dcmon.collector.ingest import Ingestor
    from dcmon.collector.mqtt import Collector, MqttOptions, parse_broker_url
    from dcmon.store import open_store
    data = tmp_path / "data"
    q = Quarantine(data, writer="collector-1")
    long_ago_ms = int((NOW - 200 * DAY_S) * 1000)
    q.write([("dcmon/v1/x", long_ago_ms, Rejection("dcmon/v1/x", "first", "raw"))])
    current = q.current_path
    assert current is not None and current.name == day_name(200)
    os.utime(current, (NOW - 199 * DAY_S, NOW - 199 * DAY_S))
    stale = make_file(data, day_name(150, "collector-2"), mtime_days_ago=149)

    assert names(prune_candidates(data, 90, keep=[current])) == [stale.name]
    collector = Collector(MqttOptions(broker=parse_broker_url("mqtt://127.0.0.1:1"), client_id="collector-1"),
                          Ingestor(registry, open_store(data), q), quarantine_retention_days=90)
    assert names(collector.prune_quarantine()) == [stale.name]
    assert current.exists() and not stale.exists()
    q.write([("dcmon/v1/x", long_ago_ms + 1, Rejection("dcmon/v1/x", "second", "raw"))])
    q.close()
    assert [r["reason"] for r in iter_records(data)] == ["first", "second"]
    # after close() it is an ordinary old file again
    os.utime(current, (NOW - 199 * DAY_S, NOW - 199 * DAY_S))
    assert names(prune(data, 90)) == [current.name]


def test_quarantine_prune_cli(tmp_path, capsys):
    data = tmp_path / "data"
    old = make_file(data, day_name(40), mtime_days_ago=39)
    keep = make_file(data, day_name(5), mtime_days_ago=4)
    assert main(["quarantine", "prune", "--data", str(data), "--older-than", "30", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"would remove {old.name}" in out and "1 quarantine file(s) older than 30 days would be removed" in out
    assert old.exists()
    assert main(["quarantine", "prune", "--data", str(data), "--older-than", "30"]) == 0
    out = capsys.readouterr().out
    assert f"removed {old.name}" in out and "1 quarantine file(s) older than 30 days removed" in out
    assert not old.exists() and keep.exists()
    assert main(["quarantine", "prune", "--data", str(data), "--older-than", "0"]) == 2
    assert "--older-than must be ≥ 1 day" in capsys.readouterr().err
    assert main(["quarantine", "prune", "--data", str(tmp_path / "none"), "--older-than", "30"]) == 2
    assert main(["collect", "--config", str(FIXTURES), "--data", str(data), "--quarantine-retention-days", "-1"]) == 2
    assert "--quarantine-retention-days must be ≥ 0" in capsys.readouterr().err


@pytest.mark.integration
@needs_mosquitto
def test_running_collector_applies_the_retention_and_logs_it(mosquitto, tmp_path):
    data = tmp_path / "data"
    old = make_file(data, day_name(10, "test-collector"), mtime_days_ago=9)
    old_other = make_file(data, day_name(30, "collector-9"), mtime_days_ago=29, lines=2)
    kept = make_file(data, day_name(2, "test-collector"), mtime_days_ago=1)
    col = CollectorProc(data, mosquitto.url, "--quarantine-retention-days", "7").start()
    wait_for(lambda: "quarantine retention: removed 2 file(s) older than 7 days" in col.text(),
             what="retention log line")
    assert not old.exists() and not old_other.exists() and kept.exists()
    log = col.text()
    assert f"removed {old.name}" in log and f"removed {old_other.name}" in log
    # the collector keeps quarantining into today's file afterwards
    pub = paho_publisher(mosquitto.port)
    publish_all(pub, [("dcmon/v1/cd-east-01/meter/grid-a", b"{not json")])
    stop_client(pub)
    today = quarantine_dir(data) / day_name(0, "test-collector")
    wait_for(today.exists, what="today's quarantine file")
    assert col.stop() == 0
    assert any("malformed JSON" in r["reason"] for r in iter_records(data))


@pytest.mark.integration
@needs_mosquitto
def test_retention_zero_keeps_quarantine_files_forever(mosquitto, tmp_path):
    data = tmp_path / "data"
    ancient = make_file(data, day_name(3000, "test-collector"), mtime_days_ago=2999)
    col = CollectorProc(data, mosquitto.url, "--quarantine-retention-days", "0").start()
    pub = paho_publisher(mosquitto.port)
    publish_all(pub, [("dcmon/v1/cd-east-01/meter/grid-a", orjson.dumps({"ts": now_ms() - 60_000, "power_kw": 1.0}))])
    stop_client(pub)
    wait_for(lambda: "health:" in col.text(), what="a health line (housekeeping ran)")
    assert col.stop() == 0
    assert ancient.exists() and "quarantine retention" not in col.text()
