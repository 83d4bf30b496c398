"""Parser details beyond the golden cases: jump guard, mappings, line protocol, fuzzing."""
import orjson
import pytest
from hypothesis import given, settings, strategies as st

from dcmon.collector.jumpguard import JumpGuard
from dcmon.collector.parsers import parse
from dcmon.collector.parsers.line_protocol import parse_line
from dcmon.collector.parsers.mapped import get_path
from dcmon.config.mappings import load_mappings

RECEIVED = 1782864600000  # 2026-07-01T00:10:00Z
T0 = 1782864000000        # 2026-07-01T00:00:00Z
TOPIC = "dcmon/v1/cd-east-01/meter/grid-a"


def _p(registry, payload, guard=None, topic=TOPIC):
    return parse(topic, orjson.dumps(payload), registry, received_at_ms=RECEIVED, guard=guard)


def test_impossible_counter_jump_is_rejected_and_the_good_readings_kept(registry):
    guard = JumpGuard()
    ceiling = guard.ceiling_kw(registry.facilities["cd-east-01"], "meter", "grid-a")
    # One minute later, a rise worth 10 × the ceiling: impossible. Hand check: ceiling × 1/60 h is the max rise.
    rows, rej = _p(registry, [{"ts": T0, "energy_kwh": 1000.0},
                              {"ts": T0 + 60_000, "energy_kwh": 1000.0 + ceiling * 10 / 60},
                              {"ts": T0 + 120_000, "energy_kwh": 1000.0 + ceiling * 0.5 / 60}], guard)
    assert [r["ts"] for r in rows] == [T0, T0 + 120_000]
    assert len(rej) == 1 and "impossible for meter 'grid-a'" in rej[0].reason and rej[0].where.endswith("[1]")


def test_a_replaced_meter_that_starts_high_is_accepted_after_one_rejection(registry):
    guard = JumpGuard()
    rows, rej = _p(registry, [{"ts": T0, "energy_kwh": 10.0},
                              {"ts": T0 + 60_000, "energy_kwh": 9e9},         # jump: rejected
                              {"ts": T0 + 120_000, "energy_kwh": 9e9 + 5}],   # continues from the jump: accepted
                   guard)
    assert [r["energy_kwh"] for r in rows] == [10.0, 9e9 + 5]
    assert len(rej) == 1


def test_counter_decrease_is_not_a_jump(registry):
    """Resets and rollovers are the metrics' business (reliability #9), not rejections."""
    rows, rej = _p(registry, [{"ts": T0, "energy_kwh": 99999.0}, {"ts": T0 + 60_000, "energy_kwh": 3.0}], JumpGuard())
    assert len(rows) == 2 and not rej


def test_late_reading_is_not_compared_forward(registry):
    guard = JumpGuard()
    _p(registry, {"ts": T0, "energy_kwh": 100.0}, guard)
    rows, rej = _p(registry, {"ts": T0 - 3_600_000, "energy_kwh": 90.0}, guard)
    assert len(rows) == 1 and not rej


def test_meter_multiplier_is_applied(registry):
    import dataclasses
    fac = registry.facilities["cd-east-01"]
    meters = [dataclasses.replace(m, multiplier=40.0) if m.id == "grid-a" else m for m in fac.meters]
    reg = dataclasses.replace(registry, facilities={**registry.facilities,
                                                    "cd-east-01": dataclasses.replace(fac, meters=meters)})
    rows, rej = parse(TOPIC, b'{"ts": 1782864000000, "energy_kwh": 2.5, "power_kw": 0.5}', reg, received_at_ms=RECEIVED)
    assert not rej and rows[0]["energy_kwh"] == 100.0 and rows[0]["power_kw"] == 20.0  # 2.5 × 40, 0.5 × 40


@pytest.mark.parametrize("doc, message", [
    ({"mappings": [{"topic": "a/{facility_id}/b/{source_id}", "kind": "pump", "fields": {"power_kw": "p"}}]},
     "kind must be meter or rack: 'pump'"),
    ({"mappings": [{"topic": "a/+/b", "kind": "meter", "fields": {"power_kw": "p"}}]}, "no wildcards"),
    ({"mappings": [{"topic": "a/{facility_id}/{source_id}", "kind": "meter", "fields": {"power_kw": {"path": "p", "unit": "hp"}}}]},
     "unit 'hp' is not one of W, kW, MW"),
    ({"mappings": [{"topic": "a/{facility_id}/{source_id}", "kind": "meter", "fields": {"volts": "v"}}]},
     "field 'volts' is not one of"),
    ({"mappings": [{"topic": "a/{source_id}", "kind": "meter", "fields": {"power_kw": "p"}}]},
     "facility_id is neither in the topic"),
    ({"mappings": [{"topic": "a/{facility_id}/{source_id}", "kind": "meter", "fields": {"power_kw": "p"},
                    "ts": {"path": "t", "format": "strptime:%H:%M"}}]}, "needs ts.timezone"),
    ({"mappings": [{"topic": "a/{facility_id}/{source_id}", "kind": "meter", "fields": {"power_kw": "p"},
                    "ts": {"path": "t", "format": "epoch_min"}}]}, "ts.format 'epoch_min'"),
    ({"mappings": [{"topic": "a/{facility_id}/{source_id}", "kind": "meter", "fields": {"power_kw": "p"}, "qos": 3}]},
     "unknown option(s) qos"),
    ({"maps": []}, "expected a mapping with a 'mappings:' list"),
])
def test_mapping_config_errors_name_the_option_and_value(doc, message):
    with pytest.raises(ValueError) as e:
        load_mappings(doc, where="map.yaml")
    assert message in str(e.value) and "map.yaml" in str(e.value)


@pytest.mark.parametrize("fmt, value, expected", [
    ("epoch_s", 1782864000, T0), ("epoch_ms", T0, T0), ("epoch_us", T0 * 1000, T0), ("epoch_ns", T0 * 10**6, T0),
    ("iso", "2026-07-01T08:00:00+08:00", T0), ("auto", "2026-07-01T00:00:00Z", T0),
])
def test_mapping_time_formats(registry, fmt, value, expected):
    m = load_mappings({"mappings": [{"topic": "v/{facility_id}/{source_id}", "kind": "meter",
                                     "ts": {"path": "t", "format": fmt}, "fields": {"energy_kwh": {"path": "e", "unit": "MWh"}}}]})
    rows, rej = parse("v/cd-east-01/grid-a", orjson.dumps({"t": value, "e": 1.5}), registry, received_at_ms=RECEIVED,
                      mappings=m)
    assert not rej and rows[0]["ts"] == expected and rows[0]["energy_kwh"] == 1500.0   # 1.5 MWh = 1500 kWh


def test_get_path():
    doc = {"a": {"b": [{"c": 1}, {"c": 2}]}}
    assert get_path(doc, "a.b.1.c") == 2
    assert get_path(doc, "a.x") is not None and get_path(doc, "a.b.5.c") is get_path(doc, "a.x")


def test_line_protocol_escapes_and_types():
    m, tags, fields, ts = parse_line(r'rack,rack=A\ 1,room=x\,y status="in \"svc\"",power_kw=1.5,n=3i,ok=t 1782864000000000000')
    assert m == "rack" and tags == {"rack": "A 1", "room": "x,y"}
    assert fields == {"status": 'in "svc"', "power_kw": 1.5, "n": 3, "ok": True} and ts == 1782864000000000000


@pytest.mark.parametrize("line", ["meter", "meter,meter=a", 'meter,meter=a s="open 1', "meter,meter=a x=1 12 13 14",
                                  "meter,meter=a e=1 12.5"])
def test_line_protocol_errors(line):
    with pytest.raises(ValueError):
        parse_line(line)


TOPICS = st.sampled_from(["dcmon/v1/cd-east-01/meter/grid-a", "dcmon/v1/cd-east-01/rack/A1-01-01",
                          "dcmon/v1/cd-east-01/racks", "dcmon/v1/cd-east-01/lp", "dcmon/v1/x", "other/topic"])
JSONISH = st.recursive(st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False)
                       | st.text(max_size=20), lambda c: st.lists(c, max_size=5) | st.dictionaries(
                           st.sampled_from(["ts", "energy_kwh", "power_kw", "status", "rack_id", "readings", "x"]), c,
                           max_size=5), max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(topic=TOPICS, payload=st.one_of(st.binary(max_size=200), JSONISH.map(orjson.dumps)))
def test_any_message_gives_readings_or_reasons_never_an_exception(registry, topic, payload):
    rows, rej = parse(topic, payload, registry, received_at_ms=RECEIVED, guard=JumpGuard())
    for r in rej:
        assert r.reason and r.where.startswith(topic)
        assert "internal error" not in r.reason, r
    for r in rows:
        assert r["ts"] <= RECEIVED + 300_000


RACKS = ["A1-01-01", "A1-01-02", "A2-12-17", "Z9-99-99"]
SCAN_READING = st.dictionaries(
    st.sampled_from(["rack_id", "power_kw", "energy_kwh", "ts", "status", "x"]),
    st.one_of(st.sampled_from(RACKS), st.floats(-5, 100), st.integers(-5, 10**6), st.booleans(), st.none(),
              st.sampled_from(["in_service", "3.5", T0, T0 + 60_000])), max_size=4)


@settings(max_examples=300, deadline=None)
@given(readings=st.lists(st.one_of(
    st.fixed_dictionaries({"rack_id": st.sampled_from(RACKS),
                           "power_kw": st.one_of(st.floats(-1, 50), st.integers(-1, 10**8), st.booleans())}),
    SCAN_READING, st.integers(-2**63, 2**63 - 1)), max_size=12),
    scan_ts=st.sampled_from([T0, "2026-07-01T08:00:00+08:00", RECEIVED + 3_600_000, None, "junk"]))
def test_scan_fast_path_equals_make_reading_path(registry, readings, scan_ts):
    """The vectorised scan path accepts exactly what make_reading accepts, with the same rows in the same
    order, and leaves every rejection (and its reason) to make_reading."""
    payload = orjson.dumps({"ts": scan_ts, "readings": readings})
    topic = "dcmon/v1/cd-east-01/racks"
    fast = parse(topic, payload, registry, received_at_ms=RECEIVED, guard=JumpGuard(), fast=True)
    slow = parse(topic, payload, registry, received_at_ms=RECEIVED, guard=JumpGuard(), fast=False)
    assert fast[0] == slow[0]
    assert [(r.where, r.reason) for r in fast[1]] == [(r.where, r.reason) for r in slow[1]]
