"""Policy profile files: every error at once, each naming the file, the entry or field and the value."""
import pytest

from dcmon.errors import ConfigError
from dcmon.metrics.policy import load_profiles

GOOD = """\
id: my-policy
title: {zh: 测试, en: Test}
source: test
cities: [chengdu]
kinds: [cloud]
in_force: {from: 2023-02-10, to: 2026-02-09}
application_window: {completion_from: 2023-01-10, completion_to: 2023-07-31, clause: "x"}
checks:
  - {metric: pue, op: "<", threshold: 1.25, clause: "PUE低于1.25"}
grades:
  - {grade: 1, op: "<=", threshold: 1.20}
  - {grade: 2, op: "<=", threshold: 1.30}
subsidy: {per_rack_max_cny: 1000, total_max_cny: 2000000, cost_share: 0.5}
"""


def load(tmp_path, text):
    d = tmp_path / "policies"
    d.mkdir(exist_ok=True)
    (d / "my-policy.yaml").write_text(text, encoding="utf-8")
    return load_profiles(tmp_path)


def test_valid_profile_loads_next_to_the_built_in_ones(tmp_path):
    p = load(tmp_path, GOOD)["my-policy"]
    assert [g["grade"] for g in p.grades] == [1, 2] and p.raw["in_force"]["from"] == "2023-02-10"


@pytest.mark.parametrize("change, expected", [
    (("{grade: 2, op", "{grade: 0, op"), "grades[1]: grade must be a whole number ≥ 1: 0"),
    (("{grade: 2, op", "{grade: 1, op"), "grades[1]: grade 1 is given twice"),
    (('{grade: 1, op: "<="', '{grade: 1, op: "=<"'), "grades[0]: op '=<' is not one of < <= > >="),
    (("threshold: 1.20}", "threshold: low}"), "grades[0]: threshold must be a number: 'low'"),
    (("threshold: 1.20}", "threshold: 1.20, colour: red}"), "grades[0]: unknown key(s) colour"),
    (("to: 2026-02-09", "to: 2026-02-30"), "in_force.to is not a date YYYY-MM-DD: '2026-02-30'"),
    (("to: 2026-02-09", "to: 2022-02-09"), "in_force ends before it starts: from 2023-02-10 to 2022-02-09"),
    (("{from: 2023-02-10, ", "{"), "in_force.from is required"),
    (("completion_to: 2023-07-31", "completion_to: soon"),
     "application_window.completion_to is not a date YYYY-MM-DD: 'soon'"),
    (("completion_from: 2023-01-10", "completion_from: 2023-08-10"),
     "application_window ends before it starts: completion_from 2023-08-10 to completion_to 2023-07-31"),
    (("clause: \"x\"}", "clause: \"x\", until: 2024-01-01}"), "application_window: unknown key(s) until"),
    (('op: "<", threshold: 1.25', 'op: "<", threshold: "1.25"'), "checks[0]: threshold must be a number: '1.25'"),
    (("metric: pue", "metric: puee"), "checks[0]: metric 'puee' is not one of pue, racks"),
    ((', clause: "PUE低于1.25"', ""), "checks[0]: clause is required (cite the source text)"),
    (("total_max_cny: 2000000", "total_max_cny: -1"), "subsidy.total_max_cny must be a positive number: -1"),
    (("cost_share: 0.5", "cost_share: 50"), "subsidy.cost_share must be a fraction in (0, 1]: 50"),
    (("id: my-policy", "id: other"), "id 'other' must be present and match the file name 'my-policy'"),
    (("kinds: [cloud]", "kinds: [clod]"), "kinds: 'clod' not one of cloud"),
])
def test_bad_profile_names_file_entry_and_value(tmp_path, change, expected):
    with pytest.raises(ConfigError) as e:
        load(tmp_path, GOOD.replace(*change))
    msg = str(e.value)
    assert f"invalid policy profile {tmp_path / 'policies' / 'my-policy.yaml'}" in msg
    assert expected in msg, msg
    assert "Input should" not in msg and "pydantic" not in msg and "Traceback" not in msg


def test_all_profile_errors_are_reported_together(tmp_path):
    text = GOOD.replace("to: 2026-02-09", "to: 2022-02-09").replace("{grade: 2, op", "{grade: 0, op") \
        .replace("metric: pue", "metric: puee") + "portfolio_checks: [{scope: town, metric: pue, op: '<', threshold: 1, clause: c}]\n"
    with pytest.raises(ConfigError) as e:
        load(tmp_path, text)
    lines = str(e.value).splitlines()
    assert len(lines) == 5, lines     # header + four problems
    assert any("portfolio_checks[0]: scope 'town' is not one of city, cluster_start_area" in x for x in lines)


def test_bad_yaml_names_the_line(tmp_path):
    with pytest.raises(ConfigError, match=r"my-policy.yaml:\d+: not valid YAML"):
        load(tmp_path, GOOD + "checks: [unclosed\n")
