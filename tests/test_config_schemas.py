"""Config schemas (dcmon.config): new checks, in the same words as the old ones, never pydantic's."""
import pytest

from dcmon.config.mappings import load_mappings
from dcmon.dashboard.auth import load_users
from dcmon.errors import ConfigError
from dcmon.registry import load_registry
from test_registry import GOOD, VALID_CC, make

JARGON = ("Input should", "validation error", "pydantic", "Traceback", "type=")


@pytest.mark.parametrize("extra, expected", [
    ("reading_interval_s: 5m", "site-1.yaml: reading_interval_s must be a whole number of seconds > 0: '5m'"),
    ("reading_interval_s: 300.5", "site-1.yaml: reading_interval_s must be a whole number of seconds > 0: 300.5"),
    ("max_gap_s: 0", "site-1.yaml: max_gap_s must be a whole number of seconds > 0: 0"),
    ("max_gap_s: true", "site-1.yaml: max_gap_s must be a whole number of seconds > 0: True"),
    ("retrofit: {completed: 2023-02-30}", "site-1.yaml: retrofit.completed is not a date YYYY-MM-DD: '2023-02-30'"),
    ("retrofit: {cost_cny: 1, costs: 2}", "site-1.yaml: retrofit: unknown key(s) costs"),
    ("retrofit: 5", "site-1.yaml: retrofit must be a mapping {completed, cost_cny}: 5"),
    ("annual_terminals_served: -1", "site-1.yaml: annual_terminals_served must be ≥ 0: -1"),
    ("cluster_start_area: yes please", "site-1.yaml: cluster_start_area must be true or false: 'yes please'"),
    ("it_energy_from: rack", "site-1.yaml: it_energy_from 'rack' must be 'meters' or 'racks'"),
])
def test_bad_facility_values_name_file_field_and_value(tmp_path, extra, expected):
    with pytest.raises(ConfigError) as e:
        load_registry(make(tmp_path, GOOD.format(cc=VALID_CC) + extra + "\n"))
    msg = str(e.value)
    assert expected in msg, msg
    assert not any(j in msg for j in JARGON), msg


def test_every_meter_problem_at_once(tmp_path):
    text = GOOD.format(cc=VALID_CC).replace(
        "  - {id: ups-1, role: it}\n",
        "  - {id: ups-1, role: it, max_gap_s: x, rollover_kwh: -3, colour: red}\n  - {id: 'a/b', role: it}\n  - 5\n")
    with pytest.raises(ConfigError) as e:
        load_registry(make(tmp_path, text))
    msg = str(e.value)
    for expected in ("site-1.yaml meters[1]: meter ups-1 max_gap_s is not a number: 'x'",
                     "site-1.yaml meters[1]: meter ups-1 rollover_kwh must be > 0: -3",
                     "site-1.yaml meters[1]: unknown key(s) colour",
                     "site-1.yaml meters[2]: id 'a/b' must be 1-64 letters, digits, '_', '.', '-'",
                     "site-1.yaml meters[3]: must be a mapping {id, role}: 5"):
        assert expected in msg, msg
    assert not any(j in msg for j in JARGON), msg


def test_every_users_file_problem_at_once(tmp_path, registry):
    p = tmp_path / "users.yaml"
    p.write_text("users:\n  - {name: a, role: operator, password_hash: x}\n"
                 "  - {name: b, role: boss, facilities: [nope], password_hash: ''}\n  - 5\n", encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        load_users(p, registry)
    lines = str(e.value).splitlines()
    assert lines[0] == f"invalid users file {p}:"
    assert "  users[0] (a): an operator needs facilities: [ids]" in lines
    assert "  users[1] (b): role 'boss' is not one of operator, regulator, admin" in lines
    assert "  users[1] (b): unknown facility id(s) nope" in lines
    assert "  users[2]: each entry needs name, role and password_hash" in lines
    assert any(x.startswith("  users[0] (a): password_hash uses an unknown scheme 'x'") for x in lines)


def test_every_mapping_problem_at_once():
    doc = {"mappings": [{"name": "pm", "topic": "a/+", "kind": "pump", "fields": {"x": 1}, "qos": 2}, 7]}
    with pytest.raises(ValueError) as e:
        load_mappings(doc, where="m.yaml")
    lines = str(e.value).splitlines()
    assert "m.yaml mapping 'pm': kind must be meter or rack: 'pump'" in lines
    assert any(x.startswith("m.yaml mapping 'pm': topic must be a topic template") for x in lines)
    assert any(x.startswith("m.yaml mapping 'pm': unknown option(s) qos") for x in lines)
    assert "m.yaml mappings[1]: must be a mapping, got 7" in lines
