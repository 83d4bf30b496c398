"""Simulator pieces without a broker."""
import numpy as np
import pytest

from dcmon.collector.simulate import Publisher, SimStats, build_schedule, continue_counters, parse_duration

T0 = 1782864000000  # 2026-07-01T00:00:00Z


def test_counters_continue_across_generated_windows(registry):
    """Each window is generated separately; the counters must not look reset at the boundary."""
    a = build_schedule(registry, ["cd-east-01", "cd-racks-it"], T0, T0 + 3_600_000 - 1, faults=False)
    b = build_schedule(registry, ["cd-east-01", "cd-racks-it"], T0 + 3_600_000, T0 + 7_200_000 - 1, faults=False)
    continue_counters(registry, a, b)
    for fid in a:
        both = [a[fid][0], b[fid][0]]
        for src in ("grid-a", "ups-1") if fid == "cd-east-01" else (b[fid][0].dropna(subset=["energy_kwh"])
                                                                    ["source_id"].iloc[0],):
            e = np.concatenate([d.loc[d["source_id"] == src, "energy_kwh"].dropna().to_numpy() for d in both])
            assert len(e) > 10 and (np.diff(e) >= 0).all(), (fid, src)
            steps = np.diff(e)
            boundary = len(a[fid][0].loc[a[fid][0]["source_id"] == src, "energy_kwh"].dropna()) - 1
            assert steps[boundary] <= 3 * np.median(steps) + 1e-9


def test_rollover_counter_wraps_when_continued(registry):
    a = build_schedule(registry, ["cd-east-01"], T0, T0 + 600_000 - 1, faults=False)
    b = build_schedule(registry, ["cd-east-01"], T0 + 600_000, T0 + 1_200_000 - 1, faults=False)
    a_df = a["cd-east-01"][0]
    a_df.loc[a_df["source_id"] == "grid-b", "energy_kwh"] = 99999999.0   # just below rollover_kwh 99999999.9
    continue_counters(registry, a, b)
    e = b["cd-east-01"][0].loc[lambda d: d["source_id"] == "grid-b", "energy_kwh"]
    assert (e < 99999999.9).all()


@pytest.mark.parametrize("text, seconds", [("90", 90), ("90s", 90), ("5m", 300), ("2h", 7200), ("1d", 86400)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


def test_publisher_retries_a_full_queue_and_counts_errors():
    import threading

    import paho.mqtt.client as mqtt

    class Info:
        def __init__(self, rc):
            self.rc = rc

    class Client:
        def __init__(self, rcs):
            self.rcs = list(rcs)

        def publish(self, topic, payload, qos):
            return Info(self.rcs.pop(0))
    stats = SimStats()
    p = Publisher(Client([mqtt.MQTT_ERR_QUEUE_SIZE, mqtt.MQTT_ERR_QUEUE_SIZE, mqtt.MQTT_ERR_SUCCESS,
                          mqtt.MQTT_ERR_PAYLOAD_SIZE]), 1, stats, threading.Event())
    assert p.publish("t", b"x") is True
    assert p.publish("t", b"x") is False
    assert (stats.messages, stats.queue_full_retries, stats.publish_errors) == (1, 2, 1)
