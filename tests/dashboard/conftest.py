"""Dashboard fixtures: a config with users, a served app (waitress, as `dcmon dashboard`), and headless Chromium."""
import shutil
import socket
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / "artifacts" / "screenshots"


@pytest.fixture(scope="session")
def users_config(tmp_path_factory):
    """The fixture facilities plus users.yaml: an operator of cd-east-01 and a regulator."""
    from dcmon.dashboard.auth import hash_password
    cfg = tmp_path_factory.mktemp("cfg")
    shutil.copytree(REPO / "fixtures" / "facilities", cfg / "facilities")
    (cfg / "users.yaml").write_text(
        "users:\n"
        f"  - {{name: east-ops, role: operator, facilities: [cd-east-01], password_hash: '{hash_password('east-pw')}'}}\n"
        f"  - {{name: reviewer, role: regulator, password_hash: '{hash_password('rev-pw')}'}}\n", encoding="utf-8")
    return cfg


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def serve():
    """Serve a Dash app on 127.0.0.1 with the production server; yields a function app -> base URL."""
    from dcmon.dashboard.server import start
    stops = []

    def run(app):
        port = free_port()
        stops.append(start(app, "127.0.0.1", port))
        return f"http://127.0.0.1:{port}"
    yield run
    for stop in stops:
        stop()


@pytest.fixture()
def browser():
    if not Path("/usr/bin/chromium").exists() or not Path("/usr/bin/chromedriver").exists():
        pytest.skip("Debian chromium and chromium-driver are not installed (scripts/setup installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})   # console, for CSP violations
    profile = tempfile.mkdtemp(prefix="dcmon-chrome-")
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
              "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--window-size=1400,1000", f"--user-data-dir={profile}"):
        opts.add_argument(a)
    drv = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    drv.set_page_load_timeout(60)
    yield drv
    drv.quit()
    shutil.rmtree(profile, ignore_errors=True)


def shot(drv, name):
    SHOTS.mkdir(parents=True, exist_ok=True)
    drv.save_screenshot(str(SHOTS / f"{name}.png"))


def csp_violations(drv) -> list[str]:
    """Console messages of the page about content the Content-Security-Policy refused."""
    return [e["message"] for e in drv.get_log("browser")
            if "Content Security Policy" in e["message"] or "Refused to" in e["message"]]


PASSWORDS = {"east-ops": "east-pw", "reviewer": "rev-pw"}   # the users of users_config


def route_request(pathname: str, search: str = "") -> dict:
    """The POST a browser sends to Dash pages' router when the address is ``pathname + search``."""
    return {"output": ".._pages_content.children..._pages_store.data..",
            "outputs": [{"id": "_pages_content", "property": "children"}, {"id": "_pages_store", "property": "data"}],
            "inputs": [{"id": "_pages_location", "property": "pathname", "value": pathname},
                       {"id": "_pages_location", "property": "search", "value": search}],
            "changedPropIds": ["_pages_location.pathname"], "state": []}


def login(client, user: str, password: str):
    import re
    form = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    r = client.post("/login", data={"user": user, "password": password, "csrf_token": token})
    assert r.status_code == 302, r.data


def route(app, pathname: str, search: str = "", user: str | None = None):
    """The page Dash pages lays out for an address, asked over HTTP as the browser asks it (logged in
    as ``user`` of users_config first); the layout as JSON."""
    c = app.server.test_client()
    if user:
        login(c, user, PASSWORDS[user])
    r = c.post("/_dash-update-component", json=route_request(pathname, search))
    assert r.status_code == 200, r.get_data(as_text=True)[:500]
    return r.get_json()["response"]["_pages_content"]["children"]
