"""The dashboard's doors, over real HTTP against a running `dcmon dashboard` (waitress, a free port):
server and security headers, the login form as a browser fills it, login limits and lockout,
sessions that end (logout, password change, idle), CSRF and cross-origin refusal, the users
file checked at start, and 400 for bad query values."""
import json
import re
import shutil
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest
import requests
from conftest import free_port

from dcmon.dashboard.auth import hash_password

REPO = Path(__file__).resolve().parents[2]
EVIL = "http://evil.example"


class _Form(HTMLParser):
    """The fields of the first form of a page, as a browser would submit them."""

    def __init__(self):
        super().__init__()
        self.action, self.fields, self._in = None, {}, False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form" and self.action is None:
            self.action, self._in = a.get("action", ""), True
        elif tag == "input" and self._in and a.get("name"):
            self.fields[a["name"]] = a.get("value") or ""

    def handle_endtag(self, tag):
        if tag == "form":
            self._in = False


def form_of(html: str) -> _Form:
    f = _Form()
    f.feed(html)
    return f


class Dashboard:
    def __init__(self, cfg: Path, data: Path, log: Path, *args):
        self.cfg, self.port, self.log_path = cfg, free_port(), log
        self.base = f"http://127.0.0.1:{self.port}"
        self._log = open(log, "w")
        self.proc = subprocess.Popen([sys.executable, "-m", "dcmon.cli", "dashboard", "--config", str(cfg),
                                      "--data", str(data), "--port", str(self.port), *args],
                                     cwd=REPO, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, log.read_text()
            try:
                if requests.get(self.base + "/login", timeout=5).status_code == 200:
                    return
            except requests.ConnectionError:
                time.sleep(0.3)
        raise AssertionError("dashboard did not answer in 90 s:\n" + log.read_text())

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text()

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=20)
        self._log.close()

    def login(self, user, pw, session=None) -> tuple[requests.Session, requests.Response]:
        """Fill the login form as a browser does: every field of the form, hidden ones included."""
        s = session or requests.Session()
        page = s.get(self.base + "/login")
        form = form_of(page.text)
        fields = dict(form.fields, user=user, password=pw)
        r = s.post(self.base + (form.action or "/login"), data=fields, allow_redirects=False,
                   headers={"Origin": self.base})
        return s, r


@pytest.fixture()
def dashboard(users_config, tmp_path):
    """Start `dcmon dashboard` on a copy of the users config; yields a starter (extra CLI args)."""
    cfg = tmp_path / "cfg"
    shutil.copytree(users_config, cfg)
    data = tmp_path / "data"
    data.mkdir()
    started = []

    def start(*args):
        d = Dashboard(cfg, data, tmp_path / f"dashboard-{len(started)}.log", *args)
        started.append(d)
        return d
    yield start
    for d in started:
        d.stop()


def logout_token(s: requests.Session, base: str) -> str:
    """The hidden field of the top bar's logout form (in the Dash layout)."""
    def walk(node):
        if isinstance(node, dict):
            props = node.get("props") or {}
            if props.get("id") == "logout-csrf":
                yield props["value"]
            for v in node.values():
                yield from walk(v)
        elif isinstance(node, list):
            for v in node:
                yield from walk(v)
    return next(walk(s.get(base + "/_dash-layout").json()))


def test_headers_login_logout_and_a_stolen_cookie(dashboard):
    d = dashboard()
    r = requests.get(d.base + "/login")
    assert r.headers["Server"] == "waitress"
    static = requests.get(d.base + "/assets/period.js")
    for resp in (r, static, requests.get(d.base + "/nope", allow_redirects=False),
                 requests.post(d.base + "/_dash-update-component", json={})):
        h = resp.headers
        csp = dict(p.strip().split(" ", 1) for p in h["Content-Security-Policy"].split(";"))
        assert csp["frame-ancestors"] == "'none'" and csp["object-src"] == "'none'"
        assert csp["script-src"].startswith("'self' 'sha256-") and "unsafe" not in csp["script-src"]
        assert h["X-Frame-Options"] == "DENY" and h["X-Content-Type-Options"] == "nosniff"
        assert h["Referrer-Policy"] == "same-origin"
    assert r.headers["Cache-Control"] == "no-store"
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie

    s, r = d.login("east-ops", "east-pw")
    assert r.status_code == 302 and r.headers["Location"] == "/"
    assert s.get(d.base + "/_dash-layout").status_code == 200
    stolen = dict(s.cookies)
    assert requests.get(d.base + "/_dash-layout", cookies=stolen).status_code == 200
    # logout is a POST with the form's token; a GET (a cross-site link) does nothing
    s.get(d.base + "/logout", allow_redirects=False)
    assert s.post(d.base + "/logout", allow_redirects=False, headers={"Origin": d.base}).status_code == 400
    assert s.get(d.base + "/_dash-layout").status_code == 200
    token = logout_token(s, d.base)
    r = s.post(d.base + "/logout", data={"csrf_token": token}, allow_redirects=False, headers={"Origin": d.base})
    assert r.status_code == 302 and r.headers["Location"] == "/login"
    assert requests.get(d.base + "/_dash-layout", cookies=stolen).status_code == 401
    assert requests.get(d.base + "/", cookies=stolen, allow_redirects=False).headers["Location"] == "/login"
    log = d.log()
    assert "login: east-ops (operator)" in log and "logout: east-ops" in log and "east-pw" not in log


def test_brute_force_ends_in_a_refused_right_password(dashboard):
    d = dashboard()
    s = requests.Session()
    for i in range(5):
        _, r = d.login("east-ops", f"guess-{i}", s)
        assert r.status_code == 401 and "Wrong user name or password" in r.text
    _, r = d.login("east-ops", "east-pw", s)
    assert r.status_code == 429
    assert "try again in 15 minutes" in r.text and "请 15 分钟后再试" in r.text
    assert s.get(d.base + "/_dash-layout").status_code == 401
    # another user from the same address still logs in, until the address has failed 20 times
    _, r = d.login("reviewer", "rev-pw")
    assert r.status_code == 302
    for i in range(15):   # unknown names count for the address as well (5 + 15 = 20)
        assert d.login(f"nobody-{i}", "x")[1].status_code == 401
    _, r = d.login("reviewer", "rev-pw")
    assert r.status_code == 429
    log = d.log()
    assert "login refused: too many failed logins (user 'east-ops', addr 127.0.0.1)" in log
    assert "login failed: wrong user name or password (user 'nobody-3', addr 127.0.0.1)" in log
    assert "guess-" not in log and "east-pw" not in log and "rev-pw" not in log


def test_behind_a_trusted_proxy_limits_count_forwarded_addresses(dashboard):
    """--trusted-proxy: the client address and the public https origin come from the proxy's headers."""
    d = dashboard("--trusted-proxy", "127.0.0.1", "--secure-cookies")
    public = "https://dcmon.example"
    s = requests.Session()

    def via_proxy(client_addr, user, pw):
        fwd = {"X-Forwarded-For": client_addr, "X-Forwarded-Proto": "https", "X-Forwarded-Host": "dcmon.example"}
        page = s.get(d.base + "/login", headers=fwd)
        # requests keeps the Secure cookie for https only: hand it over as the proxy would
        cookie = page.headers["Set-Cookie"].split(";")[0]
        assert cookie.startswith("__Host-dcmon=") and "Secure" in page.headers["Set-Cookie"]
        fields = dict(form_of(page.text).fields, user=user, password=pw)
        return requests.post(d.base + "/login", data=fields, allow_redirects=False,
                             headers={**fwd, "Origin": public, "Cookie": cookie})
    for i in range(20):
        assert via_proxy("203.0.113.5", f"nobody-{i}", "x").status_code == 401
    assert via_proxy("203.0.113.5", "reviewer", "rev-pw").status_code == 429
    r = via_proxy("198.51.100.7", "reviewer", "rev-pw")
    assert r.status_code == 302 and r.headers["Strict-Transport-Security"] == "max-age=31536000"
    assert "addr 203.0.113.5" in d.log()


def test_cross_origin_login_is_refused(dashboard):
    d = dashboard()
    # a page of another site posting the form: no session cookie, no token, a foreign Origin
    r = requests.post(d.base + "/login", data={"user": "east-ops", "password": "east-pw"},
                      headers={"Origin": EVIL}, allow_redirects=False)
    assert r.status_code == 403 and "dcmon" not in r.headers.get("Set-Cookie", "")
    # even with a token it fetched itself, a foreign Origin is refused
    s = requests.Session()
    fields = dict(form_of(s.get(d.base + "/login").text).fields, user="east-ops", password="east-pw")
    r = s.post(d.base + "/login", data=fields, headers={"Origin": EVIL}, allow_redirects=False)
    assert r.status_code == 403
    assert s.get(d.base + "/_dash-layout").status_code == 401
    # a client that sends no Origin still needs the form's token
    r = requests.post(d.base + "/login", data={"user": "east-ops", "password": "east-pw"}, allow_redirects=False)
    assert r.status_code == 400 and "expired or came from another site" in r.text
    # and a logged-in session cannot be driven from another site
    s, _ = d.login("east-ops", "east-pw")
    r = s.post(d.base + "/logout", data={"csrf_token": logout_token(s, d.base)}, headers={"Origin": EVIL})
    assert r.status_code == 403 and s.get(d.base + "/_dash-layout").status_code == 200


def test_a_password_change_in_the_users_file_ends_the_sessions(dashboard):
    d = dashboard()
    s, _ = d.login("east-ops", "east-pw")
    other, _ = d.login("reviewer", "rev-pw")
    p = subprocess.run([sys.executable, "-m", "dcmon.cli", "users", "add", "east-ops", "--role", "operator",
                        "--facility", "cd-east-01", "--replace", "--config", str(d.cfg)],
                       input="a-new-long-password\n", capture_output=True, text=True, timeout=60, cwd=REPO)
    assert p.returncode == 0, p.stderr
    assert "a-new-long-password" not in p.stdout + p.stderr
    assert s.get(d.base + "/_dash-layout").status_code == 401
    assert other.get(d.base + "/_dash-layout").status_code == 200    # the other user's session goes on
    assert d.login("east-ops", "east-pw")[1].status_code == 401
    assert d.login("east-ops", "a-new-long-password")[1].status_code == 302
    assert "session of east-ops ended: password changed" in d.log()


def test_an_idle_session_ends_and_timer_refreshes_do_not_keep_it(dashboard):
    d = dashboard("--session-idle-minutes", "0.05")    # 3 s
    s, _ = d.login("east-ops", "east-pw")
    t0 = time.monotonic()
    timer = {"output": "x.children", "outputs": {"id": "x", "property": "children"}, "inputs": [],
             "changedPropIds": ["live-tick.n_intervals"]}
    time.sleep(1.5)
    r = s.post(d.base + "/_dash-update-component", json=timer, headers={"Origin": d.base})
    assert r.status_code != 401 and time.monotonic() - t0 < 3   # still in the session; not counted as activity
    time.sleep(max(0.0, 3.5 - (time.monotonic() - t0)))
    assert s.get(d.base + "/_dash-layout").status_code == 401


BAD = [
    ("/?lang=fr", "bad lang 'fr'"),
    # a page's malformed period is a page in the reader's language (still a 400)
    ("/facility/cd-east-01?period=2026Q9", "统计期无效：2026Q9"),
    ("/?period=20x6", "统计期无效：20x6"),
    ("/?from=2026-07-32&to=2026-08-01&lang=en", "invalid period: 2026-07-32 — 2026-08-01"),
    ("/?from=2026-07-01", "统计期无效"),
    ("/download/evidence/cd-east-01?from=2000-01-01&to=2199-12-31", "at most 3 years"),
    ("/download/evidence/cd-east-01?from=2026-07-01&to=2026-07-31&profile=../../../../etc/passwd", "bad profile"),
    ("/download/evidence/cd-east-01?from=2026-07-01&to=2026-07-31&lang=de", "bad lang"),
    ("/download/evidence/..%2F..%2Fetc?from=2026-07-01&to=2026-07-31", "bad facility id"),
    ("/subsidy/CD_EAST?profile=gb40879-2021", "bad facility id"),
    ("/download/export?from=2026-13-01", "bad period"),
    ("/facility/cd-east-01?facility_id=cd-pue-fail", "bad query"),
]


def test_bad_query_values_give_400(dashboard):
    d = dashboard()
    s, _ = d.login("reviewer", "rev-pw")
    for path, text in BAD:
        r = s.get(d.base + path, allow_redirects=False)
        assert r.status_code == 400 and text in r.text, (path, r.status_code, r.text[:200])
        assert len(r.text) < 300 and "Traceback" not in r.text
        assert s.head(d.base + path, allow_redirects=False).status_code == 400
    assert s.get(d.base + "/facility/cd-east-01?period=2026Q3&lang=en").status_code == 200
    assert "Traceback" not in d.log()


def test_a_weak_or_unknown_hash_is_refused_at_start(tmp_path):
    from werkzeug.security import generate_password_hash
    cfg = tmp_path / "cfg"
    shutil.copytree(REPO / "fixtures" / "facilities", cfg / "facilities")
    (cfg / "users.yaml").write_text(
        "users:\n"
        f"  - {{name: good, role: admin, password_hash: '{hash_password('long-enough-pw')}'}}\n"
        "  - {name: weakling, role: admin, password_hash: 'pbkdf2:sha256:1$salt$00ff'}\n"
        "  - {name: broken, role: admin, password_hash: 'x:y'}\n"
        f"  - {{name: old-default, role: admin, password_hash: '{generate_password_hash('pw', method='scrypt')}'}}\n",
        encoding="utf-8")
    p = subprocess.run([sys.executable, "-m", "dcmon.cli", "dashboard", "--config", str(cfg), "--data", str(tmp_path),
                        "--port", str(free_port())], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert "users[1] (weakling): password_hash PBKDF2-SHA256 with 1 iterations is below 600000" in p.stderr
    assert "users[2] (broken): password_hash uses an unknown scheme 'x'" in p.stderr
    assert "users[3] (old-default): password_hash scrypt N=32768 r=8 p=1 is below the minimum" in p.stderr
    assert "(good)" not in p.stderr and "dcmon users add weakling --role admin --replace" in p.stderr


def test_users_add_writes_an_entry_the_dashboard_accepts(tmp_path):
    cfg = tmp_path / "cfg"
    shutil.copytree(REPO / "fixtures" / "facilities", cfg / "facilities")

    def add(*args, password="correct-horse-battery"):
        return subprocess.run([sys.executable, "-m", "dcmon.cli", "users", "add", *args, "--config", str(cfg)],
                              input=password + "\n", capture_output=True, text=True, timeout=60, cwd=REPO)
    assert add("ops", "--role", "operator", "--facility", "cd-east-01").returncode == 0
    assert add("rev", "--role", "regulator").returncode == 0
    path = cfg / "users.yaml"
    assert path.stat().st_mode & 0o077 == 0          # owner-only
    text = path.read_text()
    assert "correct-horse-battery" not in text and text.count("$argon2id$v=19$m=65536,t=3,p=4$") == 2
    again = add("ops", "--role", "operator", "--facility", "cd-east-01")
    assert again.returncode == 2 and "already in" in again.stderr and "--replace" in again.stderr
    short = add("x", "--role", "admin", password="short")
    assert short.returncode == 2 and "at least 12 characters" in short.stderr
    nofac = add("y", "--role", "operator", "--facility", "nowhere-01")
    assert nofac.returncode == 2 and "unknown facility id(s) nowhere-01" in nofac.stderr
    from dcmon.dashboard.auth import UsersFile
    from dcmon.registry import load_registry
    users = UsersFile(path, load_registry(cfg))
    assert users.authenticate("ops", "correct-horse-battery").facilities == {"cd-east-01"}
    assert users.authenticate("rev", "correct-horse-battery").role == "regulator"


def test_an_unknown_user_costs_one_verification_of_the_same_cost(users_config, monkeypatch):
    """Constant-time behaviour for unknown names: they verify a dummy hash with the users' own cost."""
    from dcmon.dashboard import auth
    from dcmon.registry import load_registry
    users = auth.UsersFile(users_config / "users.yaml", load_registry(users_config))
    assert auth._cost_key(users._dummy) == auth._cost_key(users.users["east-ops"].password_hash)
    seen = []
    real = auth.verify_password
    monkeypatch.setattr(auth, "verify_password", lambda ph, pw: seen.append(ph) or real(ph, pw))
    assert users.authenticate("no-such-user", "east-pw") is None
    assert users.authenticate("east-ops", "wrong") is None
    assert len(seen) == 2 and seen[0] == users._dummy


def test_secure_cookies_behind_a_tls_proxy(tmp_path, users_config):
    from wiring import app_for
    app = app_for(users_config, tmp_path, secure_cookies=True)
    c = app.server.test_client()
    r = c.get("/login", base_url="https://dash.example")
    cookie = r.headers["Set-Cookie"]
    assert cookie.startswith("__Host-dcmon=") and "Secure" in cookie and "HttpOnly" in cookie
    assert r.headers["Strict-Transport-Security"] == "max-age=31536000"
    token = form_of(r.get_data(as_text=True)).fields["csrf_token"]
    r = c.post("/login", base_url="https://dash.example", headers={"Origin": "https://dash.example"},
               data={"csrf_token": token, "user": "east-ops", "password": "east-pw"})
    assert r.status_code == 302
    assert json.loads(c.get("/_dash-layout", base_url="https://dash.example").data)


def test_the_query_check_never_raises_and_bounds_every_accepted_range():
    """Any text in any query value: a one-line answer or None, never an exception; an accepted
    from/to range ends before the same day three years on (checked with plain date arithmetic)."""
    import datetime as dt

    from hypothesis import given, settings
    from hypothesis import strategies as st

    from dcmon.dashboard.security import query_problem
    profiles = {"gb40879-2021"}
    text = st.one_of(st.text(max_size=30), st.dates(dt.date(1, 1, 1), dt.date(9999, 12, 31)).map(str))
    keys = st.sampled_from(["lang", "period", "from", "to", "profile"])
    paths = st.sampled_from(["/", "/facility/cd-east-01", "/download/evidence/cd-east-01", "/download/export"])

    @settings(max_examples=400, deadline=None)
    @given(paths, st.dictionaries(keys, text, max_size=5))
    def check(path, args):
        problem = query_problem(path, args, profiles)
        assert problem is None or ("\n" not in problem and len(problem) < 300)
        if problem is None and path != "/download/export" and "from" in args:
            first, last = dt.date.fromisoformat(args["from"].strip()), dt.date.fromisoformat(args["to"].strip())
            assert first <= last
            assert (last.year - first.year, last.month, last.day) < (3, first.month, first.day)

    @settings(max_examples=400, deadline=None)
    @given(st.dates(dt.date(1900, 1, 1), dt.date(2100, 12, 31)), st.integers(0, 1500))
    def bound(first, days):
        last = first + dt.timedelta(days=days)
        within = (last.year - first.year, last.month, last.day) < (3, first.month, first.day)
        assert (query_problem("/", {"from": str(first), "to": str(last)}, profiles) is None) == within
    check()
    bound()
