"""The Dash app: login, the top bar, the router, per-request access control, downloads.

``create_app(config_dir, data_dir)`` builds it; ``dcmon dashboard`` serves it. The router lays
out the page for the URL; each page module (``pages/overview.py``, ``pages/facility.py``,
``pages/subsidy.py``) fills it with its own callbacks, which ask the one loader
(``data.Loader``) for figures computed by ``metrics``. Access is checked server-side on every
request: a login is required before any Dash endpoint (when users are configured), every page
callback filters by the session's user, and ``/download/...`` checks again before building a file.
"""
from __future__ import annotations

import datetime as dt
import os
import secrets
from pathlib import Path

import flask
from dash import ClientsideFunction, Dash, Input, Output, dcc, html
from dcmon.dashboard import alerts, common
from dcmon.dashboard.auth import authenticate, load_users
from dcmon.dashboard.data import Loader
from dcmon.dashboard.i18n import LANGS, quarter_label, t
from dcmon.dashboard.pages import facility, overview, subsidy

from dcmon.periods import Period, parse_date, quarter

PUBLIC_PREFIXES = ("/login", "/_dash-component-suites/", "/assets/", "/_favicon.ico", "/favicon.ico")
ASSETS = Path(__file__).with_name("assets")
CSS = """
body { font-family: "Noto Sans CJK SC", "Noto Sans SC", "Microsoft YaHei", sans-serif; margin: 0 16px; color: #111; }
.cards { display: flex; flex-wrap: wrap; gap: 8px; margin: 8px 0; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: 8px 12px; min-width: 120px; }
.card-title { font-size: 12px; color: #555; } .card-value { font-size: 22px; font-weight: 600; } .card-sub { font-size: 11px; color: #777; }
.topbar { display: flex; gap: 12px; align-items: center; border-bottom: 1px solid #ddd; padding: 6px 0; flex-wrap: wrap; }
.button { display: inline-block; margin-right: 8px; padding: 6px 10px; background: #1565c0; color: white; border-radius: 4px; text-decoration: none; }
.note { color: #555; font-size: 12px; } .error { color: #c62828; }
.ag-cell-wrap-text { line-height: 1.5; padding-top: 6px; padding-bottom: 6px; word-break: normal; }
"""


def create_app(config_dir, data_dir, *, users_file=None, warm: bool = False, compress: bool = True,
               prometheus_url: str | None = None) -> Dash:
    """Build the dashboard for a configuration folder and a data folder.

    With ``warm`` the default period's evaluation of every facility starts in the background,
    so the first visitor does not wait for it (a dashboard is left open all day). Responses
    are compressed (gzip/brotli) when the browser accepts it. Active alerts come from the
    Prometheus at ``prometheus_url`` (default ``$DCMON_PROMETHEUS_URL``; none: the panel says how).
    """
    ld = Loader(config_dir, data_dir, prometheus_url=prometheus_url or os.environ.get(alerts.ENV_PROMETHEUS_URL) or None)
    if warm:
        ld.warm(quarter(common.default_quarter()), sorted(ld.registry.facilities))
    users_path = Path(users_file) if users_file else Path(config_dir) / "users.yaml"
    users = load_users(users_path, ld.registry)
    server = flask.Flask("dcmon.dashboard")
    server.config.update(DCMON_LOADER=ld, DCMON_USERS=users, SECRET_KEY=os.environ.get("DCMON_SECRET_KEY") or secrets.token_hex(32),
                         SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax")
    app = Dash("dcmon.dashboard", server=server, title="dcmon", suppress_callback_exceptions=True,
               update_title=None, assets_folder=str(ASSETS), compress=compress)
    app.index_string = app.index_string.replace("</head>", f"<style>{CSS}</style></head>")
    app.layout = layout
    # Callbacks are registered on this app, not globally: Dash hands global callbacks to the
    # first app only, and a process may serve several apps (tests, demo). Each page module
    # keeps its callbacks as module-level functions and wires them here.
    app.callback(*ROUTER)(display_page)
    app.clientside_callback(ClientsideFunction(namespace="dcmon", function_name="urlState"), *URL_STATE)
    for page in (overview, facility, subsidy, alerts):
        page.register(app)
    _routes(server)
    return app


def layout():
    return html.Div([
        dcc.Location(id="url", refresh="callback-nav"),
        dcc.Store(id="period-choice"),
        html.Div([
            dcc.Link(html.B("dcmon"), href="/", id="home"),
            dcc.Dropdown(id="period", value=None, clearable=False, searchable=False, style={"width": "160px"}),
            html.Div(dcc.DatePickerRange(id="range", display_format="YYYY年M月D日", clearable=True), style={"width": "330px"}),
            dcc.Dropdown(id="lang", options=[{"label": "中文", "value": "zh"}, {"label": "English", "value": "en"}],
                         value=None, clearable=False, searchable=False, style={"width": "110px"}),
            html.A(id="logout", href="/logout"),
        ], className="topbar"),
        html.Div(id="page"),
    ])


ROUTER = (Output("page", "children"), Output("logout", "children"), Output("period", "options"),
          Output("period", "placeholder"), Output("range", "start_date_placeholder_text"),
          Output("range", "end_date_placeholder_text"), Output("range", "display_format"),
          Input("url", "pathname"), Input("url", "search"))
# the controls and the URL are one state (assets/period.js): one callback both ways
URL_STATE = (Output("url", "search"), Output("period", "value"), Output("range", "start_date"),
             Output("range", "end_date"), Output("lang", "value"),
             Input("url", "search"), Input("period", "value"), Input("range", "start_date"), Input("range", "end_date"),
             Input("lang", "value"))


def display_page(pathname, search, lang_value=None):
    """The router: the empty page for the URL in the chosen language; the page's callbacks fill it.

    The user is checked here too, so a page the user may not see is not even laid out.
    """
    lang = common.lang_of(lang_value, search)
    user = common.current_user()
    url_period = common.url_period(search)
    options = common.period_options(lang, url_period.get("period"))
    placeholder = (quarter_label(url_period["period"], lang) if url_period.get("period") else
                   t(lang, "custom") if url_period.get("from") else quarter_label(common.default_quarter(), lang))
    dates = (t(lang, "start_date"), t(lang, "end_date"), "YYYY年M月D日" if lang == "zh" else "D MMM YYYY")
    if user is None:
        return html.Div(html.A(t(lang, "login"), href="/login")), "", options, placeholder, *dates
    ld = common.loader()
    path = (pathname or "/").rstrip("/") or "/"
    parts = path.strip("/").split("/")
    if path == "/":
        page = overview.layout(lang, url_period, common.query(search).get("profile"))
    elif len(parts) == 2 and parts[0] in ("facility", "subsidy"):
        if parts[1] not in ld.registry.facilities:
            page = common.not_found(lang, parts[1])
        elif not common.may_see(ld.registry, user, parts[1]):
            page = common.forbidden(lang)
        elif parts[0] == "facility":
            page = facility.layout(parts[1], lang, url_period)
        else:
            page = subsidy.layout(parts[1], lang, url_period, common.query(search).get("profile"))
    else:
        page = common.not_found(lang)
    return page, (t(lang, "logout") if user.name != "local" else ""), options, placeholder, *dates


LOGIN_FORM = """<!doctype html><html><head><meta charset="utf-8"><title>dcmon</title></head>
<body style="font-family:sans-serif;max-width:320px;margin:80px auto"><h2>dcmon</h2>{error}
<form method="post"><p><label>用户名 / User<br><input name="user" id="user" autofocus></label></p>
<p><label>密码 / Password<br><input name="password" id="password" type="password"></label></p>
<p><button type="submit" id="login">登录 / Log in</button></p></form></body></html>"""


def _routes(server: flask.Flask):
    @server.before_request
    def require_login():
        users = server.config["DCMON_USERS"]
        if users is None or flask.request.path.startswith(PUBLIC_PREFIXES):
            return None
        if flask.session.get("user") in users:
            return None
        if flask.request.path.startswith(("/_dash-", "/download/")):
            return flask.Response("login required", status=401)
        return flask.redirect("/login")

    @server.route("/login", methods=["GET", "POST"])
    def login():
        users = server.config["DCMON_USERS"]
        if users is None:
            return flask.redirect("/")
        if flask.request.method == "POST":
            u = authenticate(users, flask.request.form.get("user", ""), flask.request.form.get("password", ""))
            if u is not None:
                flask.session.clear()
                flask.session["user"] = u.name
                return flask.redirect("/")
            return LOGIN_FORM.format(error="<p style='color:#c62828'>用户名或密码错误 / wrong user or password</p>"), 401
        return LOGIN_FORM.format(error="")

    @server.route("/logout")
    def logout():
        flask.session.clear()
        return flask.redirect("/login")

    @server.route("/download/evidence/<facility_id>")
    def download_evidence(facility_id):
        user = common.current_user()
        ld = server.config["DCMON_LOADER"]
        if user is None or facility_id not in ld.registry.facilities or not user.may_see(facility_id):
            return flask.Response("forbidden: you may not see this facility", status=403)
        a = flask.request.args
        try:
            period = Period(parse_date(a["from"]), parse_date(a["to"]))
        except (KeyError, Exception) as e:
            return flask.Response(f"bad period: {e}", status=400)
        from dcmon.reports.evidence import build_evidence
        data, name = build_evidence(ld.registry, ld.store, facility_id, period,
                                    profile=a.get("profile", "chengdu-2023-cloud-retrofit"),
                                    lang=a.get("lang", "zh") if a.get("lang") in LANGS else "zh", fmt="pdf")
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
            d = parse_date(a.get("from", dt.date.today().isoformat()))
            period = quarter(f"{d.year}Q{(d.month - 1) // 3 + 1}")
        except Exception as e:
            return flask.Response(f"bad period: {e}", status=400)
        from dcmon.reports.export import build_export
        data, name, _ = build_export(ld.registry, ld.store, period, fmt="xlsx",
                                     lang=a.get("lang", "zh") if a.get("lang") in LANGS else "zh")
        return flask.Response(data, headers={"Content-Disposition": f'attachment; filename="{name}"'},
                              mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
