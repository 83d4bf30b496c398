"""Dashboard wording of decisions: measures out of force, hypothetical amounts, report-only
flags, and city-wide checks for regulators and admins only."""
from test_dashboard import URL_WEEK, _text, grid_rows, in_request

from dcmon.dashboard.pages import subsidy
from wiring import app_for


def test_subsidy_page_says_the_measure_is_not_in_force_and_the_amount_is_hypothetical(week_store):
    data, _, _ = week_store
    app = app_for("fixtures", data)
    for lang, notice, not_due in (("zh", "该政策在此期间不在有效期内", "无应付金额"),
                                  ("en", "measure not in force for this period", "no amount due")):
        # Chengdu's measure ran until 2026-02-09; the fixture week is in July 2026
        _, _, _, body = in_request(app, subsidy.update, {"facility_id": "cd-east-01", "lang": lang,
                                                         "url_period": URL_WEEK}, None, None)
        text = _text(body)
        assert "subsidy-not-in-force" in text and notice in text and not_due in text


def test_subsidy_page_marks_report_only_flags(week_store):
    data, _, _ = week_store
    app = app_for("fixtures", data)
    _, _, _, body = in_request(app, subsidy.update, {"facility_id": "cd-east-01", "lang": "en",
                                                     "url_period": URL_WEEK}, None, "chengdu-hub-2025")
    text = _text(body)
    assert "report only, not a requirement: energy-saving retrofit required" in text and "retrofit_required" not in text


def test_city_wide_checks_are_for_regulators_and_admins(week_store, users_config):
    data, _, _ = week_store
    app = app_for(users_config, data)
    _, out = grid_rows(app, user="east-ops")          # an operator: its own facilities, no city aggregate
    assert out[3] == []
    _, out = grid_rows(app, user="reviewer")          # a regulator
    text = _text(out[3])
    assert "成都市 · 全市" in text and "chengdu" not in text


def test_overview_badges_say_when_a_measure_is_not_in_force(week_store):
    data, _, _ = week_store
    app = app_for("fixtures", data)
    rows, out = grid_rows(app, lang="en")
    heads = {c["field"]: c for c in out[5]}
    # said once in the column header: a measure's dates are the same for every facility
    assert heads["chengdu-2023-cloud-retrofit"]["headerName"].endswith("not in force")
    assert "measure not in force for this period" in heads["chengdu-2023-cloud-retrofit"]["headerTooltip"]
    assert "not in force" not in heads["baoding-2024-cloud-retrofit"]["headerName"]   # in force until 2027-01-24
