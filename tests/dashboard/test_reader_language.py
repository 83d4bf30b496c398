"""What a reader sees is in the reader's language: no internal codes or English runs on the Chinese
pages, no Chinese on the English ones (names and cited clauses excepted); URL state both ways.

Every page is rendered in headless Chromium at 1366 px and 1600 px (screenshots in
artifacts/screenshots/), and its visible text (HTML and chart SVG) is scanned.
"""
import time

import pytest
from conftest import SHOTS, route
from dcmon.dashboard.app import topbar
from dcmon.dashboard.pages import facility, overview, subsidy
from dcmon.registry import load_registry
from reader_text import bad_words, names_of
from wiring import app_for

WEEK = "from=2026-07-06&to=2026-07-12"
PAGES = [("overview", "/?" + WEEK), ("facility", "/facility/cd-east-01?" + WEEK),
         ("facility-empty", "/facility/cd-east-01?period=2025Q1"), ("facility-racks", "/facility/cd-racks-it?" + WEEK),
         ("subsidy", "/subsidy/cd-east-01?" + WEEK),
         ("subsidy-hub", "/subsidy/cd-east-01?profile=chengdu-hub-2025&" + WEEK),
         ("subsidy-baoding", "/subsidy/bd-cloud-01?" + WEEK),
         ("not-found", "/facility/nope"), ("bad-period", "/?period=2026Q5")]
READY = {"overview": "#overview-grid .ag-pinned-left-cols-container", "facility": "#period-pue",
         "facility-empty": "#trend-day .main-svg", "facility-racks": "#period-pue", "subsidy": "#subsidy-eligible",
         "subsidy-hub": "#subsidy-report-only", "subsidy-baoding": "#subsidy-eligible", "not-found": "#not-found",
         "bad-period": "#error"}


def _visible_text(drv) -> str:
    return drv.execute_script(
        "return document.body.innerText + '\\n' + Array.from(document.querySelectorAll('svg text'))"
        ".map(function (e) { return e.textContent; }).join('\\n');")


def _full_shot(drv, path, width):
    """The whole page, not only the window: the window grows to the page for the shot, then is restored."""
    height = drv.execute_script("return document.documentElement.scrollHeight;")
    drv.set_window_size(width, min(max(height + 200, 900), 5000))
    time.sleep(0.5)
    drv.save_screenshot(str(path))
    drv.set_window_size(width, 900)


def _wait(drv, css, timeout=90):
    from selenium.webdriver.common.by import By
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        els = drv.find_elements(By.CSS_SELECTOR, css)
        if els and (els[0].text.strip() or css.endswith((".main-svg", "container"))):
            time.sleep(1.5)  # the page's other callbacks settle
            return
        time.sleep(0.3)
    drv.save_screenshot(str(SHOTS / "reader-language-timeout.png"))
    raise AssertionError(f"{css!r} never appeared at {drv.current_url}; page text {_visible_text(drv)[:400]!r}")


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_every_page_reads_in_its_language(week_store, serve, browser, lang):
    data, _, _ = week_store
    names = names_of(load_registry("fixtures"), extra=["nope"])
    base = serve(app_for("fixtures", data))
    SHOTS.mkdir(parents=True, exist_ok=True)
    problems = {}
    for width in (1366, 1600):
        browser.set_window_size(width, 900)
        for name, path in PAGES:
            browser.get(base + path + (("&" if "?" in path else "?") + "lang=en" if lang == "en" else ""))
            _wait(browser, READY[name])
            _full_shot(browser, SHOTS / f"{lang}-{name}-{width}.png", width)
            bad = bad_words(_visible_text(browser), lang, names)
            if bad:
                problems[f"{name}@{width}"] = sorted(set(bad))[:40]
            if name == "overview":
                # every profile's verdict column is pinned and fully inside the window
                right = browser.execute_script(
                    "return Math.max.apply(null, Array.from(document.querySelectorAll("
                    "'#overview-grid .ag-pinned-left-header .ag-header-cell')).map(function (e) {"
                    " return e.getBoundingClientRect().right; }));")
                n = browser.execute_script("return document.querySelectorAll("
                                           "'#overview-grid .ag-pinned-left-header .ag-header-cell').length;")
                assert n >= 5 and right <= browser.execute_script("return window.innerWidth;"), (n, right)
    (SHOTS / f"{lang}-problems.txt").write_text(repr(problems), encoding="utf-8")
    assert not problems, problems


def test_controls_show_the_url_state(week_store, serve, browser):
    from selenium.webdriver.common.by import By
    data, _, _ = week_store
    base = serve(app_for("fixtures", data))
    browser.get(base + "/facility/cd-east-01?" + WEEK + "&lang=en")
    _wait(browser, "#period-pue")
    assert "English" in browser.find_element(By.ID, "lang").text
    bar = browser.find_element(By.CSS_SELECTOR, ".topbar")
    dates = bar.text + " ".join(e.get_attribute("value") or "" for e in bar.find_elements(By.CSS_SELECTOR, "input"))
    assert "6 Jul 2026" in dates and "12 Jul 2026" in dates, dates
    # a link inside the app keeps the language and the period
    href = browser.find_element(By.ID, "facility-subsidy-link").get_attribute("href")
    assert "lang=en" in href and "from=2026-07-06" in href
    # the subsidy page's profile choice is written into the URL (replaceState, no reload)
    browser.get(base + "/subsidy/cd-east-01?" + WEEK)
    _wait(browser, "#subsidy-eligible")
    assert "profile=chengdu-2023-cloud-retrofit" in browser.current_url


# ------------------------------------------------------------------------------ callbacks, no browser
def _in_request(app, fn, *args):
    with app.server.test_request_context("/_dash-update-component"):
        return fn(*args)


def _json(x) -> str:
    import json
    return json.dumps(x, default=lambda o: o.to_plotly_json() if hasattr(o, "to_plotly_json") else str(o),
                      ensure_ascii=False)


def test_router_reads_language_profile_and_period_from_the_url(week_store):
    data, _, _ = week_store
    app = app_for("fixtures", data)
    page = route(app, "/subsidy/cd-east-01", "?profile=chengdu-hub-2025&lang=en&" + WEEK)
    text = _json(page)
    assert '"value": "chengdu-hub-2025"' in text and '"lang": "en"' in text and '"from": "2026-07-06"' in text
    page = route(app, "/", "?profile=gb40879-2021")
    assert '"value": "gb40879-2021"' in _json(page)
    # an unknown facility is not found (not forbidden); a malformed period is named on the page
    nf = _json(route(app, "/facility/nope", ""))
    assert "未找到该数据中心" in nf and "无权访问" not in nf
    out = _in_request(app, overview.update, {"lang": "zh", "url_period": {"period": "2026Q5"}}, None)
    assert out[0] == "统计期无效" and "统计期无效：2026Q5" in _json(out[1]) and "Traceback" not in _json(out[1])
    options = _in_request(app, topbar, "?period=2024Q1")[1]
    assert options[0] == {"label": "2024年第1季度", "value": "2024Q1"}


def test_overview_colours_figures_by_the_selected_profile(week_store):
    data, _, _ = week_store
    app = app_for("fixtures", data)
    out = _in_request(app, overview.update, {"lang": "zh", "url_period": {"from": "2026-07-06", "to": "2026-07-12"}},
                      None, None, "chengdu-2023-cloud-retrofit")
    rows = {r["id"]: r for r in out[4]}
    assert rows["cd-pue-fail"]["pue_status"] == "fail" and rows["cd-east-01"]["pue_status"] == "pass"
    assert rows["cd-racks-fail"]["std_racks_status"] == "fail" and rows["cd-compute-fail"]["compute_status"] == "fail"
    heads = {c["field"]: c for c in out[5]}
    assert heads["pue"]["headerName"] == "PUE（＜ 1.25）" and heads["compute"]["headerName"] == "计算功能占比（＞ 70%）"
    assert heads["std_racks"]["headerName"] == "标准机架（≥ 1,000）"
    assert heads["chengdu-2023-cloud-retrofit"]["headerName"] == "成都·云中心改造补贴 · 未生效"  # July 2026: ended
    assert heads["chengdu-2023-cloud-retrofit"]["pinned"] == "left" and rows["cd-east-01"]["city"] == "成都市"
    assert out[7] == "chengdu-2023-cloud-retrofit"


def test_subsidy_page_money_margins_and_steps_in_chinese(week_store):
    data, _, _ = week_store
    app = app_for("fixtures", data)
    _, _, _, body = _in_request(app, subsidy.update, {"facility_id": "cd-east-01", "lang": "zh",
                                                      "url_period": {"from": "2026-07-06", "to": "2026-07-12"}}, None, None)
    text = _json(body)
    assert "万元" in text and "CNY" not in text and "e+" not in text and ">=" not in text
    assert "在用物理机架数" in text and "seeds/" not in text


def test_facility_figures_in_words(week_store):
    data, _, _ = week_store
    app = app_for("fixtures", data)
    params = {"facility_id": "cd-east-01", "lang": "zh", "url_period": {"from": "2026-07-06", "to": "2026-07-12"}}
    out = _in_request(app, facility.update_period, params, None)
    roles = out[6].to_plotly_json()["data"][0]["x"]
    assert "IT设备" in roles and "it" not in roles
    y2 = out[4].to_plotly_json()["layout"]["yaxis2"]
    assert y2["dtick"] in (0.02, 0.05, 0.1, 0.2, 0.5, 1.0) and y2["tickformat"] == ".2f"
    assert out[4].to_plotly_json()["layout"]["xaxis"]["tickformat"] == "%-m月%-d日"
    empty = _in_request(app, facility.update_period, {**params, "url_period": {"period": "2025Q1"}}, None)
    assert "无数据" in _json(empty[4]) and "所选统计期内没有读数" in _json(empty[4])
    live = _in_request(app, facility.update_live, params, None, 1, None)
    texts = _in_request(app, facility.update_floor_texts, live[5], params)   # the hover texts follow the first map
    hover = _json(next(op["params"]["value"] for op in texts.to_plotly_json()["operations"]
                       if op["location"] == ["data", 0, "text"]))
    assert "在用" in hover and "in_service" not in hover and "compute" not in hover


def test_collector_health_shows_rates_and_totals_for_the_facility():
    now = 1_800_000_000_000
    doc = {"c1": {"connected": True, "updated_at_ms": now, "started_at_ms": now - 100_000, "messages": 5000,
                  "readings": 20000, "messages_per_s": 0.0, "readings_per_s": 0.0, "rejected": 3, "queue": 0,
                  "ack_lag_ms": 2.0, "by_facility": {"cd-east-01": {"accepted": 1234, "rejects_by_reason": {"x": 2}}}}}
    text = _json(facility.health_items(doc, "zh", now_ms=now, facility_id="cd-east-01"))
    assert "50.0 消息/秒" in text and "200.0 读数/秒" in text and "启动以来平均" in text
    assert "累计 5,000 消息 / 20,000 读数" in text and "本数据中心已接收读数 1,234" in text
