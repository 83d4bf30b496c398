"""The Dash app: login, the top bar, the pages, per-request access control, downloads.

``create_app(registry, store)`` builds it from a loaded registry and an open store (the entry
point, ``dcmon dashboard`` or ``dcmon demo``, makes both); ``dcmon dashboard`` serves it. The pages are Dash
pages: each page module (``pages/overview.py``, ``pages/facility.py``, ``pages/subsidy.py``,
``pages/not_found_404.py``) registers its path (``/facility/<facility_id>``), its layout and its
callbacks with ``register(app)``; Dash's router lays out the page for the URL inside
``dash.page_container``. Callbacks ask the one loader (``data.Loader``) for figures computed by
``metrics``. Access is checked server-side on every request: a login is required before any Dash
endpoint (when users are configured), every page layout and page callback checks the session's
user, and ``/download/...`` checks again before building a file. Sessions, login limits, CSRF,
response headers and query checks are in ``security.py``; ``server.py`` serves the app with waitress.
"""
from __future__ import annotations

import datetime as dt
import logging
import os
import secrets
from html import escape
from pathlib import Path

import dash
import flask
from dash import ClientsideFunction, Dash, Input, Output, dcc, html
from dcmon.dashboard import alerts, common, security, static_files
from dcmon.dashboard.auth import LOCAL_USER, UsersFile
from dcmon.dashboard.data import Loader
from dcmon.dashboard.i18n import LANGS, quarter_label, t
from dcmon.dashboard.pages import facility, not_found_404, overview, subsidy

from dcmon.errors import InputError
from dcmon.metrics.policy import load_profiles
from dcmon.periods import Period, parse_date, quarter_of
from dcmon.registry import Registry
from dcmon.store.base import Store

log = logging.getLogger("dcmon.dashboard.login")
ASSETS = Path(__file__).with_name("assets")
CSS = """
body { font-family: "Noto Sans CJK SC", "Noto Sans SC", "Microsoft YaHei", sans-serif; margin: 0 16px; color: #111; }
.cards { display: flex; flex-wrap: wrap; gap: 8px; margin: 8px 0; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: 8px 12px; min-width: 120px; }
.card-title { font-size: 12px; color: #555; } .card-value { font-size: 22px; font-weight: 600; } .card-sub { font-size: 11px; color: #777; }
.topbar { display: flex; gap: 12px; align-items: center; border-bottom: 1px solid #ddd; padding: 6px 0; flex-wrap: wrap; }
.button { display: inline-block; margin-right: 8px; padding: 6px 10px; background: #1565c0; color: white; border-radius: 4px; text-decoration: none; }
.note { color: #555; font-size: 12px; } .error { color: #c62828; }
.logout { background: none; border: none; padding: 0; color: #1565c0; cursor: pointer; font: inherit; text-decoration: underline; }
.ag-cell-wrap-text { line-height: 1.5; padding-top: 6px; padding-bottom: 6px; word-break: normal; }
"""


def create_app(registry: Registry, store: Store, *, users_file=None, warm: bool = False, compress: bool = True,
               prometheus_url: str | None = None, secure_cookies: bool = False,
               idle_minutes: float = security.IDLE_MINUTES) -> Dash:
    """Build the dashboard for the facilities of ``registry`` and the readings in ``store``.

    With ``warm`` the default period's evaluation of every facility starts in the background,
    so the first visitor does not wait for it (a dashboard is left open all day). Responses
    are compressed (gzip/brotli) when the browser accepts it, static files once
    (``static_files.py``). Active alerts come from the Prometheus at ``prometheus_url``
    (default ``$DCMON_PROMETHEUS_URL``; none: the panel says how).
    ``secure_cookies`` marks the session cookie ``Secure`` (served over HTTPS by a reverse proxy)
    and sends HSTS; sessions end after ``idle_minutes`` without user activity. An invalid users
    file raises ``ConfigError`` naming the user; ``users_file`` None: ``users.yaml`` of the
    registry's configuration folder, when there is one.
    """
    ld = Loader(registry, store, prometheus_url=prometheus_url or os.environ.get(alerts.ENV_PROMETHEUS_URL) or None)
    users_path = Path(users_file) if users_file else registry.config_dir / "users.yaml"
    users = UsersFile(users_path, ld.registry) if users_path.is_file() else None
    if warm:
        ld.warm(quarter_of(common.today_china()), sorted(ld.registry.facilities))
    server = flask.Flask("dcmon.dashboard")
    server.config.update(
        DCMON_LOADER=ld, DCMON_USERS=users, DCMON_SESSIONS=security.Sessions(idle_minutes),
        DCMON_PROFILES=frozenset(load_profiles(ld.registry.config_dir)),
        SECRET_KEY=os.environ.get("DCMON_SECRET_KEY") or secrets.token_hex(32),
        SESSION_COOKIE_NAME="__Host-dcmon" if secure_cookies else "dcmon",
        SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax", SESSION_COOKIE_SECURE=secure_cookies,
        WTF_CSRF_TIME_LIMIT=None)   # the token lives as long as the session (which has its own idle end)
    static_files.configure_compression(server)
    server.before_request(static_files.plotly_bundle)   # first, before Dash serves its own plotly.js
    # Dash pages without a pages folder: the page modules are imported here and each registers
    # itself (``dash.register_page`` needs the app to exist first). No social-media meta tags.
    app = Dash("dcmon.dashboard", server=server, title="dcmon", suppress_callback_exceptions=True,
               update_title=None, assets_folder=str(ASSETS), compress=compress,
               use_pages=True, pages_folder="", include_pages_meta=False)
    app.index_string = app.index_string.replace("</head>", f"<style>{CSS}</style></head>")
    app.layout = layout
    # Callbacks are registered on this app, not globally: Dash hands global callbacks to the
    # first app only, and a process may serve several apps (tests, demo). Each page module
    # keeps its callbacks as module-level functions and wires them here; the page registry is
    # Dash's (one per process), and every app registers the same pages.
    app.callback(*TOPBAR)(topbar)
    app.clientside_callback(ClientsideFunction(namespace="dcmon", function_name="urlState"), *URL_STATE)
    for page in (overview, facility, subsidy, not_found_404, alerts):
        page.register(app)
    _routes(server, app, secure_cookies)
    return app


def layout():
    return html.Div([
        dcc.Store(id="period-choice"),
        html.Div([
            dcc.Link(html.B("dcmon"), href="/", id="home"),
            dcc.Dropdown(id="period", value=None, clearable=False, searchable=False, style={"width": "160px"}),
            html.Div(dcc.DatePickerRange(id="range", display_format="YYYY年M月D日", clearable=True), style={"width": "330px"}),
            dcc.Dropdown(id="lang", options=[{"label": "中文", "value": "zh"}, {"label": "English", "value": "en"}],
                         value=None, clearable=False, searchable=False, style={"width": "110px"}),
            html.Form([dcc.Input(type="hidden", name="csrf_token", value=security.csrf_token(), id="logout-csrf"),
                       html.Button(id="logout", type="submit", className="logout")],
                      id="logout-form", method="post", action="/logout"),
        ], className="topbar"),
        html.Div(dash.page_container, id="page"),
    ])


# Dash pages' URL: the pages follow its path, the top bar and the period controls its query
URL = "_pages_location"
TOPBAR = (Output("logout", "children"), Output("period", "options"),
          Output("period", "placeholder"), Output("range", "start_date_placeholder_text"),
          Output("range", "end_date_placeholder_text"), Output("range", "display_format"), Output("logout-form", "style"),
          Input(URL, "search"))
# the controls and the URL are one state (assets/period.js): one callback both ways
URL_STATE = (Output(URL, "search"), Output("period", "value"), Output("range", "start_date"),
             Output("range", "end_date"), Output("lang", "value"),
             Input(URL, "search"), Input("period", "value"), Input("range", "start_date"), Input("range", "end_date"),
             Input("lang", "value"))


HIDDEN = {"display": "none"}


def topbar(search):
    """The top bar in the URL's language: the periods (the URL's among them), date texts, logout."""
    lang = common.lang_of(None, search)
    url_period = common.url_period(search)
    options = common.period_options(lang, url_period.get("period"))
    placeholder = (quarter_label(url_period["period"], lang) if url_period.get("period") else
                   t(lang, "custom") if url_period.get("from") else quarter_label(common.default_quarter(), lang))
    dates = (t(lang, "start_date"), t(lang, "end_date"), "YYYY年M月D日" if lang == "zh" else "D MMM YYYY")
    user = common.current_user()
    local = user is None or user.name == LOCAL_USER
    return ("" if local else t(lang, "logout")), options, placeholder, *dates, (HIDDEN if local else {})


LOGIN_FORM = """<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><title>dcmon</title></head>
<body style="font-family:sans-serif;max-width:360px;margin:80px auto"><h2>dcmon</h2>{error}
<form method="post" action="/login"><input type="hidden" name="csrf_token" value="{csrf}">
<p><label>用户名 / User<br><input name="user" id="user" autocomplete="username" autofocus></label></p>
<p><label>密码 / Password<br><input name="password" id="password" type="password" autocomplete="current-password"></label></p>
<p><button type="submit" id="login">登录 / Log in</button></p></form></body></html>"""
LOGIN_ERRORS = {   # (Chinese, English)
    "wrong": ("用户名或密码错误。", "Wrong user name or password."),
    "expired": ("登录表单已过期或来自其他网站，请重新登录。",
                "The login form has expired or came from another site; please log in again."),
    "locked": ("登录失败次数过多，该用户或地址已暂时锁定，请 {m} 分钟后再试。",
               "Too many failed logins: this user or address is locked; try again in {m} minutes."),
}


def period_page(args) -> str:
    """A page (not a command-line error) for a malformed period in the address, in the URL's language."""
    lang = args.get("lang") if args.get("lang") in LANGS else "zh"
    asked = escape(args.get("period") or f"{args.get('from', '')} — {args.get('to', '')}")
    sep = "：" if lang == "zh" else ": "
    return (f"<!doctype html><html lang=\"{'zh-CN' if lang == 'zh' else 'en'}\"><meta charset=\"utf-8\"><title>dcmon</title>"
            f"<p id=\"error\">{t(lang, 'bad_period')}{sep}{asked}</p><p>{t(lang, 'bad_period_hint')}</p>"
            f"<p><a href=\"/\">{t(lang, 'back')}</a></p></html>")


def login_page(error: str = "", status: int = 200, **kw):
    msg = ""
    if error:
        zh, en = (escape(text.format(**kw)) for text in LOGIN_ERRORS[error])
        msg = f"<p id='login-error' style='color:#c62828'>{zh}<br>{en}</p>"
    return LOGIN_FORM.format(error=msg, csrf=security.csrf_token()), status


def _routes(server: flask.Flask, app: Dash, secure_cookies: bool):
    limiter = security.make_limiter(server)
    sessions: security.Sessions = server.config["DCMON_SESSIONS"]

    @server.before_request
    def require_login():
        if not security.same_origin():
            log.warning("refused a %s %s from origin %s (addr %s): this site is %s (behind a TLS proxy, "
                        "use --trusted-proxy)", flask.request.method, flask.request.path,
                        flask.request.headers.get("Origin"), flask.request.remote_addr, security.own_origin())
            return flask.Response("cross-origin request refused", status=403, mimetype="text/plain")
        users_file = server.config["DCMON_USERS"]
        path = flask.request.path
        if users_file is not None:
            sid = flask.session.get("sid")
            flask.g.dcmon_user = sessions.resolve(sid, users_file.current(), active=not security.timer_only())
            if sid and flask.g.dcmon_user is None:
                flask.session.pop("sid", None)
            if flask.g.dcmon_user is None and not path.startswith(security.PUBLIC_PREFIXES):
                if path.startswith(("/_dash-", "/download/")):
                    return flask.Response("login required", status=401, mimetype="text/plain")
                return flask.redirect("/login")
        if flask.request.method in ("GET", "HEAD") and not path.startswith(security.PUBLIC_PREFIXES):
            problem = security.query_problem(path, flask.request.args, server.config["DCMON_PROFILES"])
            if problem and problem.startswith("bad period") and not path.startswith(("/download/", "/_dash-")):
                return period_page(flask.request.args), 400   # a person typed or followed it: say it in words
            if problem:
                return flask.Response(problem, status=400, mimetype="text/plain")
        return None

    @server.after_request
    def headers(resp):
        # the policy names the hashes of the inline scripts as they are now: Dash pages adds its
        # own (the page title) at the first request
        csp = security.content_security_policy(app.csp_hashes())
        return static_files.preload_headers(static_files.cache_headers(security.add_headers(resp, csp, secure_cookies)))

    @server.errorhandler(429)
    def too_many(_e):
        log.warning("login refused: too many failed logins (user %r, addr %s)", security.login_name(),
                    flask.request.remote_addr)
        return login_page("locked", 429, m=security.lockout_minutes(limiter))

    by_address, by_user = security.login_limits(limiter)

    @server.route("/login", methods=["GET", "POST"])
    @by_address
    @by_user
    def login():
        users_file = server.config["DCMON_USERS"]
        if users_file is None:
            return flask.redirect("/")
        if flask.request.method == "GET":
            return login_page()
        name, addr = security.login_name(), flask.request.remote_addr
        if not security.csrf_ok():
            log.warning("login refused: missing or wrong form token (user %r, addr %s)", name, addr)
            return login_page("expired", 400)
        u = users_file.authenticate(name, flask.request.form.get("password", ""))
        if u is None:
            log.warning("login failed: wrong user name or password (user %r, addr %s)", name, addr)
            return login_page("wrong", 401)
        flask.session.clear()       # a new session id: nothing from before the login carries over
        flask.session["sid"] = sessions.open(u)
        log.info("login: %s (%s) from %s", u.name, u.role, addr)
        return flask.redirect("/")

    @server.route("/logout", methods=["POST"])
    def logout():
        if not security.csrf_ok():
            return flask.Response("logout refused: missing or wrong form token", status=400, mimetype="text/plain")
        name = sessions.close(flask.session.get("sid"))
        flask.session.clear()
        if name:
            log.info("logout: %s from %s", name, flask.request.remote_addr)
        return flask.redirect("/login")

    @server.route("/download/evidence/<facility_id>")
    def download_evidence(facility_id):
        user = common.current_user()
        ld = server.config["DCMON_LOADER"]
        if user is None or facility_id not in ld.registry.facilities or not user.may_see(facility_id):
            return flask.Response("forbidden: you may not see this facility", status=403)
        a = flask.request.args
        try:
            period = security.bounded(Period(parse_date(a["from"], "from"), parse_date(a["to"], "to")))
        except KeyError:
            return flask.Response("bad period: from and to are required", status=400, mimetype="text/plain")
        except InputError as e:
            return flask.Response(f"bad period: {e}", status=400, mimetype="text/plain")
        from dcmon.reports.evidence import build_evidence
        data, name = build_evidence(ld.registry, ld.store, facility_id, period,
                                    profile=a.get("profile", "chengdu-2023-cloud-retrofit"),
                                    lang=a.get("lang", "zh"), fmt="pdf")
        return flask.Response(data, mimetype="application/pdf",
                              headers={"Content-Disposition": f'attachment; filename="{name}"'})

    @server.route("/download/export")
    def download_export():
        user = common.current_user()
        if user is None or not user.may_export():
            return flask.Response("forbidden: the quarterly list is for regulators", status=403)
        ld = server.config["DCMON_LOADER"]
        a = flask.request.args
        try:
            d = parse_date(a.get("from", dt.date.today().isoformat()), "from")
            period = quarter_of(d)
        except InputError as e:
            return flask.Response(f"bad period: {e}", status=400, mimetype="text/plain")
        from dcmon.reports.export import build_export
        data, name, _ = build_export(ld.registry, ld.store, period, fmt="xlsx", lang=a.get("lang", "zh"))
        return flask.Response(data, headers={"Content-Disposition": f'attachment; filename="{name}"'},
                              mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
