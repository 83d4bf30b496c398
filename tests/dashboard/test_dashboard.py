"""Dashboard: callbacks, server-side access control, and end to end in headless Chromium."""
import json
import time

import pytest
from conftest import shot

from dcmon.dashboard.app import create_app, render_page

WEEK = "?from=2026-07-06&to=2026-07-12"


def _text(component) -> str:
    return json.dumps(component.to_plotly_json(), default=lambda o: o.to_plotly_json() if hasattr(o, "to_plotly_json") else str(o),
                      ensure_ascii=False)


def call(app, path, search=WEEK, lang=None, user=None):
    with app.server.test_request_context(path):
        import flask
        if user:
            flask.session["user"] = user
        return render_page(path, search, None, None, None, lang, 0)


def test_overview_callback_shows_the_right_badges(week_store):
    data, _, _ = week_store
    app = create_app("fixtures", data)
    page, _ = call(app, "/")
    grid = next(c for c in _walk(page) if getattr(c, "id", None) == "overview-grid")
    rows = {r["id"]: r for r in grid.data}
    assert rows["cd-east-01"]["chengdu-2023-cloud-retrofit"].startswith("✔")
    for fid in ("cd-pue-fail", "cd-racks-fail", "cd-compute-fail", "cd-boundary"):
        assert rows[fid]["chengdu-2023-cloud-retrofit"].startswith("✘"), fid
    assert rows["cd-boundary"]["pue"] == 1.25
    assert "✔" in rows["bd-cloud-01"]["baoding-2024-cloud-retrofit"]


def _walk(c):
    yield c
    kids = getattr(c, "children", None)
    if isinstance(kids, (list, tuple)):
        for k in kids:
            yield from _walk(k)
    elif kids is not None and hasattr(kids, "to_plotly_json"):
        yield from _walk(kids)


def test_language_switch_in_the_callback(week_store):
    data, _, _ = week_store
    app = create_app("fixtures", data)
    zh, _ = call(app, "/")
    en, _ = call(app, "/", lang="en")
    assert "总览" in _text(zh) and "Overview" in _text(en)


def test_operator_sees_only_its_facilities(week_store, users_config):
    data, _, _ = week_store
    app = create_app(users_config, data)
    page, _ = call(app, "/", user="east-ops")
    grid = next(c for c in _walk(page) if getattr(c, "id", None) == "overview-grid")
    assert [r["id"] for r in grid.data] == ["cd-east-01"]
    other, _ = call(app, "/facility/cd-pue-fail", user="east-ops")
    assert "forbidden" in _text(other) and "cd-pue-fail" not in _text(other).replace("/facility/cd-pue-fail", "")
    own, _ = call(app, "/facility/cd-east-01", user="east-ops")
    assert "live-pue" in _text(own)
    regulator, _ = call(app, "/", user="reviewer")
    grid = next(c for c in _walk(regulator) if getattr(c, "id", None) == "overview-grid")
    assert len(grid.data) == 9


def _login(client, user, pw):
    r = client.post("/login", data={"user": user, "password": pw})
    assert r.status_code == 302, r.data


def _update_request(path):
    """The POST a browser sends to the callback endpoint for the page router."""
    return {"output": "..page.children...logout.children..", "outputs": [{"id": "page", "property": "children"},
                                                                         {"id": "logout", "property": "children"}],
            "inputs": [{"id": "url", "property": "pathname", "value": path}, {"id": "url", "property": "search", "value": WEEK},
                       {"id": "period", "property": "value", "value": None}, {"id": "range", "property": "start_date", "value": None},
                       {"id": "range", "property": "end_date", "value": None}, {"id": "lang", "property": "value", "value": "en"},
                       {"id": "tick", "property": "n_intervals", "value": 0}],
            "changedPropIds": ["url.pathname"], "state": []}


def test_callback_endpoint_and_downloads_enforce_access(week_store, users_config):
    data, store, _ = week_store
    app = create_app(users_config, data)
    c = app.server.test_client()
    assert c.post("/_dash-update-component", json=_update_request("/facility/cd-pue-fail")).status_code == 401
    assert c.get("/download/evidence/cd-east-01?from=2026-07-06&to=2026-07-12").status_code == 401
    assert c.post("/login", data={"user": "east-ops", "password": "wrong"}).status_code == 401
    _login(c, "east-ops", "east-pw")
    r = c.post("/_dash-update-component", json=_update_request("/facility/cd-pue-fail"))
    assert r.status_code == 200
    body = r.get_data(as_text=True)
    assert "You may not see this facility" in body and "live-pue" not in body
    r = c.post("/_dash-update-component", json=_update_request("/facility/cd-east-01"))
    assert "live-pue" in r.get_data(as_text=True)
    assert c.get("/download/evidence/cd-pue-fail?from=2026-07-06&to=2026-07-12").status_code == 403
    assert c.get("/download/export?from=2026-07-06").status_code == 403
    own = c.get("/download/evidence/cd-east-01?from=2026-07-06&to=2026-07-12&lang=en")
    assert own.status_code == 200 and own.data[:5] == b"%PDF-"
    c2 = app.server.test_client()
    _login(c2, "reviewer", "rev-pw")
    x = c2.get("/download/export?from=2026-07-06")
    assert x.status_code == 200 and x.data[:2] == b"PK"


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
        except Exception:  # noqa: BLE001 - not rendered yet
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
    base = serve(create_app("fixtures", data))
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
    shot(browser, "facility")
    browser.get(base + "/subsidy/cd-east-01" + WEEK)
    _wait_text(browser, "#subsidy-eligible", "✔")
    shot(browser, "subsidy")


def test_e2e_facility_page_updates_when_readings_arrive(registry, serve, browser, tmp_path):
    """Live PUE goes from no data to a figure while the page is open, without a reload."""
    import datetime as dt

    import pandas as pd

    from dcmon.readings import to_table
    from dcmon.store import open_store
    store = open_store(tmp_path)
    app = create_app("fixtures", tmp_path)
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
    base = serve(create_app(users_config, data))
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
