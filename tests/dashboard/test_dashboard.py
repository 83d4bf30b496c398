"""Dashboard: callbacks, server-side access control, and end to end in headless Chromium."""
import json
import time

from conftest import csp_violations, login, route, route_request, shot
from dcmon.dashboard.app import topbar
from dcmon.dashboard.pages import facility, overview, subsidy
from wiring import app_for

WEEK = "?from=2026-07-06&to=2026-07-12"
URL_WEEK = {"from": "2026-07-06", "to": "2026-07-12"}


def _text(component) -> str:
    return json.dumps(component.to_plotly_json() if hasattr(component, "to_plotly_json") else component,
                      default=lambda o: o.to_plotly_json() if hasattr(o, "to_plotly_json") else str(o), ensure_ascii=False)


def in_request(app, fn, *args, user=None):
    """Call a page callback the way Dash does: inside a request of this app, as ``user``."""
    import flask
    with app.server.test_request_context("/_dash-update-component"):
        if user:   # what app.require_login resolves from the session
            flask.g.dcmon_user = app.server.config["DCMON_USERS"].current()[user]
        return fn(*args)


def grid_rows(app, lang="zh", user=None, url_period=URL_WEEK):
    out = in_request(app, overview.update, {"lang": lang, "url_period": url_period}, None, user=user)
    return {r["id"]: r for r in out[4]}, out


def test_overview_callback_shows_the_right_badges(week_store):
    data, _, _ = week_store
    app = app_for("fixtures", data)
    rows, out = grid_rows(app)
    assert rows["cd-east-01"]["chengdu-2023-cloud-retrofit"].startswith("✔")
    for fid in ("cd-pue-fail", "cd-racks-fail", "cd-compute-fail", "cd-boundary"):
        assert rows[fid]["chengdu-2023-cloud-retrofit"].startswith("✘"), fid
    assert rows["cd-boundary"]["pue"] == 1.25   # the figure itself; the grid formats it in the browser
    assert "✔" in rows["bd-cloud-01"]["baoding-2024-cloud-retrofit"]
    fields = [c["field"] for c in out[5]]
    assert "chengdu-2023-cloud-retrofit" in fields and "pue" in fields
    assert "2026年7月6日 — 2026年7月12日" in out[0]


def test_period_choice_overrides_the_url(week_store):
    data, _, _ = week_store
    app = app_for("fixtures", data)
    out = in_request(app, overview.update, {"lang": "en", "url_period": URL_WEEK}, {"from": "2026-07-06", "to": "2026-07-06"})
    assert out[0].endswith("6 Jul 2026 — 6 Jul 2026")
    bad = in_request(app, overview.update, {"lang": "en", "url_period": {"from": "2026-07-32", "to": "2026-08-01"}}, None)
    assert "2026-07-32" in _text(bad[1]) and bad[4] == []


def _walk(c):
    yield c
    kids = getattr(c, "children", None)
    if isinstance(kids, (list, tuple)):
        for k in kids:
            yield from _walk(k)
    elif kids is not None and hasattr(kids, "to_plotly_json"):
        yield from _walk(kids)


def test_language_switch_in_the_callbacks(week_store):
    data, _, _ = week_store
    app = app_for("fixtures", data)
    zh = route(app, "/", WEEK), *in_request(app, topbar, WEEK)
    en = route(app, "/", WEEK + "&lang=en"), *in_request(app, topbar, WEEK + "&lang=en")
    assert "总览" in _text(zh[0]) and "Overview" in _text(en[0])
    assert zh[2][0]["label"].endswith("季度") and "Q" in en[2][0]["label"]
    _, out_zh = grid_rows(app, "zh")
    _, out_en = grid_rows(app, "en")
    assert "zh-CN" in json.dumps(out_zh[5]) and "en-GB" in json.dumps(out_en[5])
    fz = in_request(app, facility.update_period, {"facility_id": "cd-east-01", "lang": "zh", "url_period": URL_WEEK}, None)
    fe = in_request(app, facility.update_period, {"facility_id": "cd-east-01", "lang": "en", "url_period": URL_WEEK}, None)
    assert "统计期PUE" in _text(fz[2]) and "PUE of the period" in _text(fe[2])
    assert "2026年7月6日" in fz[1] and "6 Jul 2026" in fe[1]


def test_number_and_date_formats_follow_the_language():
    from dcmon.dashboard.i18n import date, num, pct, quarter_label
    assert num(1234567.891, "zh", 3) == "1,234,567.891" and num(None, "en") == "—" and num(float("nan"), "en") == "—"
    assert pct(0.7012, "zh") == "70.1%" and pct(0.7012, "en", 0) == "70%"
    assert date("2026-07-06", "zh") == "2026年7月6日" and date("2026-07-06", "en") == "6 Jul 2026"
    assert quarter_label("2026Q3", "zh") == "2026年第3季度" and quarter_label("2026Q3", "en") == "2026 Q3"


def test_a_floor_map_of_numbers_formats_each_as_one():
    from dcmon.dashboard.i18n import nums
    assert nums([1234.567, None, float("nan"), -0.001, -0.05, 0.0, 12], "zh", 2) == \
        ["1,234.57", "—", "—", "0.00", "-0.05", "0.00", "12.00"]
    assert nums([-0.4, 99.5], "en", 0) == ["0", "100"]


def test_operator_sees_only_its_facilities(week_store, users_config):
    data, _, _ = week_store
    app = app_for(users_config, data)
    rows, _ = grid_rows(app, user="east-ops")
    assert list(rows) == ["cd-east-01"]
    page = route(app, "/facility/cd-pue-fail", WEEK, user="east-ops")
    assert "forbidden" in _text(page) and "facility-params" not in _text(page)
    # the page callbacks refuse too, whatever the client claims
    other = {"facility_id": "cd-pue-fail", "lang": "en", "url_period": URL_WEEK}
    period = in_request(app, facility.update_period, other, None, user="east-ops")
    assert "You may not see this facility" in _text(period[0]) and period[2] == []
    live = in_request(app, facility.update_live, other, None, user="east-ops")
    assert live[0] == [] and live[2] == []
    sub = in_request(app, subsidy.update, other, None, None, user="east-ops")
    assert "You may not see this facility" in _text(sub[3])
    own = in_request(app, facility.update_live, {**other, "facility_id": "cd-east-01"}, None, user="east-ops")
    assert "live-pue" in _text(own[0])
    rows, _ = grid_rows(app, user="reviewer")
    assert len(rows) == 9
    assert grid_rows(app, user=None)[0] == {}


def test_subsidy_callback_lists_checks_with_clauses(week_store):
    data, _, _ = week_store
    app = app_for("fixtures", data)
    title, options, profile, body = in_request(app, subsidy.update, {"facility_id": "cd-east-01", "lang": "en",
                                                                     "url_period": URL_WEEK}, None, None)
    assert profile == "chengdu-2023-cloud-retrofit" and any(o["value"] == profile for o in options)
    text = _text(body)
    assert "subsidy-eligible" in text and "/download/evidence/cd-east-01?" in text
    grid = next(c for c in _walk(html_div(body)) if getattr(c, "id", None) == "subsidy-checks")
    assert {r["metric"] for r in grid.rowData} >= {"pue", "racks", "compute_share"}
    assert any(r["check"] == "standard racks" and r["threshold"] == "≥ 1,000" for r in grid.rowData)
    assert all(r["clause"] for r in grid.rowData)


def html_div(children):
    from dash import html
    return html.Div(children)


def test_facility_live_parts(week_store):
    """Floor map is one heatmap over every rack; silent meters show as events."""
    data, _, _ = week_store
    app = app_for("fixtures", data)
    params = {"facility_id": "cd-east-01", "lang": "en", "url_period": URL_WEEK}
    cards, floor, events, health, drawn, texts_due = in_request(app, facility.update_live, params, None)
    # the next tick with nothing new from the racks does not send the map again
    from dash import no_update
    assert in_request(app, facility.update_live, params, None, 1, drawn)[1] is no_update
    assert in_request(app, facility.update_live, {**params, "lang": "zh"}, None, 1, drawn)[1] is not no_update
    heat = floor["data"][0]
    assert heat["type"] == "heatmap"
    # the first map is drawn without hover texts; they follow as a partial update of its trace
    assert "text" not in heat and texts_due == drawn
    heat = patched_trace(heat, in_request(app, facility.update_floor_texts, texts_due, params))
    assert heat["hovertemplate"] == "%{text}<extra></extra>" and "hoverinfo" not in heat
    cells = sum(1 for row in heat["text"] for v in row if v)
    from dcmon.registry import load_registry
    assert cells == len(load_registry("fixtures").get("cd-east-01").racks)
    # nothing arrived in the last minutes for the fixture week: every meter is silent now
    assert {e["source"] for e in events if e["event"] == "meter silent"} == \
        {m.id for m in load_registry("fixtures").get("cd-east-01").meters}
    assert "no data" in _text(health)


def patched_trace(trace: dict, patch) -> dict:
    """The floor map's trace after a ``Patch`` of its properties (what the browser applies)."""
    out = dict(trace)
    for op in patch.to_plotly_json()["operations"]:
        assert op["location"][:2] == ["data", 0] and len(op["location"]) == 3, op
        if op["operation"] == "Assign":
            out[op["location"][2]] = op["params"]["value"]
        else:
            assert op["operation"] == "Delete", op
            out.pop(op["location"][2])
    return out


def _csrf(client, path="/login"):
    import re
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).get_data(as_text=True)).group(1)


def _login(client, user, pw):
    r = client.post("/login", data={"user": user, "password": pw, "csrf_token": _csrf(client)})
    assert r.status_code == 302, r.data


LIVE_OUTS = [("facility-live-cards", "children"), ("floor-map", "figure"), ("events", "rowData"),
             ("collector-health", "children"), ("floor-map-drawn", "data"), ("floor-map-texts-due", "data")]
PERIOD_OUTS = [("facility-title", "children"), ("facility-header", "children"), ("facility-period-cards", "children"),
               ("facility-basis", "children"), ("trend-day", "figure"), ("trend-month", "figure"),
               ("energy-by-role", "figure")]


def _update_request(facility_id, outs=LIVE_OUTS):
    """The POST a browser sends to the callback endpoint for a part of the facility page."""
    tick = "facility-tick" if outs is LIVE_OUTS else "facility-slow-tick"
    return {"output": ".." + "...".join(f"{i}.{p}" for i, p in outs) + "..",
            "outputs": [{"id": i, "property": p} for i, p in outs],
            "inputs": [{"id": "facility-params", "property": "data",
                        "value": {"facility_id": facility_id, "lang": "en", "url_period": URL_WEEK}},
                       {"id": "period-choice", "property": "data", "value": None},
                       {"id": tick, "property": "n_intervals", "value": 1}],
            "changedPropIds": [f"{tick}.n_intervals"],
            "state": [{"id": "floor-map-drawn", "property": "data", "value": None}] if outs is LIVE_OUTS else []}


def _texts_request(app, facility_id, due):
    """The POST a browser sends for the floor map's hover texts once the map is drawn."""
    key = next(k for k in app.callback_map if k.startswith("floor-map.figure@"))
    return {"output": key, "outputs": {"id": "floor-map", "property": key.split(".", 1)[1]},
            "inputs": [{"id": "floor-map-texts-due", "property": "data", "value": due}],
            "state": [{"id": "facility-params", "property": "data",
                       "value": {"facility_id": facility_id, "lang": "en", "url_period": URL_WEEK}}],
            "changedPropIds": ["floor-map-texts-due.data"]}


def test_callback_endpoint_and_downloads_enforce_access(week_store, users_config):
    data, store, _ = week_store
    app = app_for(users_config, data)
    c = app.server.test_client()
    assert c.post("/_dash-update-component", json=_update_request("cd-pue-fail")).status_code == 401
    assert c.get("/download/evidence/cd-east-01?from=2026-07-06&to=2026-07-12").status_code == 401
    assert c.post("/login", data={"user": "east-ops", "password": "wrong", "csrf_token": _csrf(c)}).status_code == 401
    _login(c, "east-ops", "east-pw")
    r = c.post("/_dash-update-component", json=_update_request("cd-pue-fail"))
    assert r.status_code == 200
    body = r.get_data(as_text=True)
    assert "live-pue" not in body and "A1-01-01" not in body   # no figure, no rack of the other facility
    r = c.post("/_dash-update-component", json=_update_request("cd-pue-fail", PERIOD_OUTS))
    body = r.get_data(as_text=True)
    assert "You may not see this facility" in body and "period-pue" not in body
    r = c.post("/_dash-update-component", json=_update_request("cd-east-01"))
    assert "live-pue" in r.get_data(as_text=True)
    # the floor map's hover texts (rack ids) come in the response that follows the first map
    due = r.get_json()["response"]["floor-map-texts-due"]["data"]
    r = c.post("/_dash-update-component", json=_texts_request(app, "cd-east-01", due))
    assert r.status_code == 200 and "A1-01-01" in r.get_data(as_text=True)
    # ... and only to a user who may see the facility, whatever the request names
    r = c.post("/_dash-update-component", json=_texts_request(app, "cd-pue-fail", due))
    assert "A1-01-01" not in r.get_data(as_text=True)
    assert c.get("/download/evidence/cd-pue-fail?from=2026-07-06&to=2026-07-12").status_code == 403
    assert c.get("/download/export?from=2026-07-06").status_code == 403
    own = c.get("/download/evidence/cd-east-01?from=2026-07-06&to=2026-07-12&lang=en")
    assert own.status_code == 200 and own.data[:5] == b"%PDF-"
    c2 = app.server.test_client()
    _login(c2, "reviewer", "rev-pw")
    x = c2.get("/download/export?from=2026-07-06")
    assert x.status_code == 200 and x.data[:2] == b"PK"


def test_pages_lay_out_only_what_the_user_may_see(week_store, users_config):
    """Dash pages' router is a callback like any other: no session, no layout; a typed address of
    another facility (its path template) lays out nothing of it."""
    data, _, _ = week_store
    app = app_for(users_config, data)
    c = app.server.test_client()
    assert c.post("/_dash-update-component", json=route_request("/facility/cd-east-01", WEEK)).status_code == 401
    assert c.get("/_dash-layout").status_code == 401
    assert c.get("/facility/cd-east-01" + WEEK).headers["Location"] == "/login"
    login(c, "east-ops", "east-pw")

    def page(path, search=WEEK):
        r = c.post("/_dash-update-component", json=route_request(path, search))
        assert r.status_code == 200
        return r.get_data(as_text=True)
    for path in ("/facility/cd-pue-fail", "/subsidy/cd-pue-fail", "/facility/cd-pue-fail/"):
        body = page(path)
        assert '"forbidden"' in body and "cd-pue-fail" not in body, path
    # a facility id in the query is the one laid out and checked (the address check refuses it with 400)
    body = page("/facility/cd-east-01", WEEK + "&facility_id=cd-pue-fail")
    assert '"forbidden"' in body and "facility-params" not in body
    assert "facility-params" in page("/facility/cd-east-01") and "subsidy-params" in page("/subsidy/cd-east-01")
    assert '"not-found"' in page("/facility/nope") and '"not-found"' in page("/no/such/page")
    assert "overview-params" in page("/")


def test_cli_refuses_a_public_address_without_users(tmp_path):
    import subprocess
    import sys
    p = subprocess.run([sys.executable, "-m", "dcmon.cli", "dashboard", "--config", "fixtures", "--data", str(tmp_path),
                        "--host", "0.0.0.0"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "refusing a non-loopback address without users" in p.stderr


# ------------------------------------------------------------------------------------ end to end
def _wait_text(drv, css, text, timeout=90):
    from selenium.webdriver.common.by import By
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            last = drv.find_element(By.CSS_SELECTOR, css).text
            if text in last:
                return last
        except Exception:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{css!r} never showed {text!r}; last text {last[:300]!r}")


def _wait_css(drv, css, timeout=45):
    from selenium.webdriver.common.by import By
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if drv.find_elements(By.CSS_SELECTOR, css):
            return
        time.sleep(0.3)
    raise AssertionError(f"{css!r} never appeared")


def test_e2e_overview_facility_subsidy_and_language(week_store, serve, browser):
    data, _, _ = week_store
    base = serve(app_for("fixtures", data))
    browser.get(base + "/" + WEEK)
    txt = _wait_text(browser, "#overview-grid", "cd-east-01")
    assert "✔" in txt and "✘" in txt
    shot(browser, "overview-zh")
    browser.get(base + "/" + WEEK + "&lang=en")
    _wait_text(browser, "#page h2", "Overview")
    shot(browser, "overview-en")
    browser.get(base + "/facility/cd-east-01" + WEEK)
    assert _wait_text(browser, "#period-pue", ".") == "1.220"
    _wait_css(browser, "#floor-map .main-svg")
    _wait_css(browser, "#trend-day .main-svg")
    # the hover texts arrive after the first draw: every rack's cell gets its text, with the rack id
    from dcmon.registry import load_registry
    racks = load_registry("fixtures").get("cd-east-01").racks
    deadline = time.monotonic() + 30
    texts = []
    while time.monotonic() < deadline and len(texts) < len(racks):
        texts = browser.execute_script("const g = document.querySelector('#floor-map .js-plotly-plot');"
                                       "return g && g.data && g.data[0] && g.data[0].text ? g.data[0].text.flat().filter(Boolean) : []")
        time.sleep(0.3)
    assert len(texts) == len(racks) and any(t.startswith(str(racks["rack_id"].iloc[0]) + "<br>") for t in texts)
    shot(browser, "facility")
    browser.get(base + "/subsidy/cd-east-01" + WEEK)
    _wait_text(browser, "#subsidy-eligible", "✔")
    shot(browser, "subsidy")
    assert csp_violations(browser) == []   # Dash, Plotly and AG Grid run under the policy


def test_e2e_facility_page_updates_when_readings_arrive(registry, serve, browser, tmp_path):
    """Live PUE goes from no data to a figure while the page is open, without a reload."""

    import pandas as pd
    from dcmon.store import open_store

    from dcmon.readings import to_table
    store = open_store(tmp_path)
    app = app_for("fixtures", tmp_path)
    base = serve(app)
    browser.get(base + "/facility/cd-boundary")
    first = _wait_text(browser, "#live-pue", "—")
    now = pd.Timestamp.now(tz="UTC").floor("min")
    rows = []
    for k in range(12):
        ts = int((now - pd.Timedelta(minutes=11 - k)).value // 10**6)
        for mid, kw in (("grid-a", 625.0), ("grid-b", 625.0), ("ups-1", 500.0), ("ups-2", 500.0)):
            rows.append({"facility_id": "cd-boundary", "kind": "meter", "source_id": mid, "ts": ts,
                         "energy_kwh": 1e6 + k * kw / 60, "received_at": ts})
    store.append(to_table(rows))
    live = _wait_text(browser, "#live-pue", "1.250", timeout=60)
    assert live != first
    shot(browser, "facility-live")


def test_e2e_operator_login_sees_only_own_facility(week_store, users_config, serve, browser):
    from selenium.webdriver.common.by import By
    data, _, _ = week_store
    app = app_for(users_config, data)
    base = serve(app)
    browser.get(base + "/")
    assert "/login" in browser.current_url
    browser.find_element(By.ID, "user").send_keys("east-ops")
    browser.find_element(By.ID, "password").send_keys("east-pw")
    browser.find_element(By.ID, "login").click()
    txt = _wait_text(browser, "#overview-grid", "cd-east-01")
    assert "cd-pue-fail" not in txt
    browser.get(base + "/facility/cd-pue-fail" + WEEK)
    _wait_text(browser, "#forbidden", "无权访问")
    shot(browser, "operator-forbidden")
    app.server.config["DCMON_SESSIONS"]._by_id.clear()   # the session ends on the server (idle, new password)
    browser.find_element(By.LINK_TEXT, "返回总览").click()  # the next callback is refused: back to the login page
    _wait_css(browser, "#login")
    browser.find_element(By.ID, "user").send_keys("east-ops")
    browser.find_element(By.ID, "password").send_keys("east-pw")
    browser.find_element(By.ID, "login").click()
    _wait_text(browser, "#overview-grid", "cd-east-01")
    browser.find_element(By.ID, "logout").click()     # a POST form with its hidden token
    _wait_css(browser, "#login")
    assert browser.current_url.endswith("/login")
    browser.get(base + "/facility/cd-east-01" + WEEK)
    _wait_css(browser, "#login")
    shot(browser, "login")
    assert csp_violations(browser) == []
