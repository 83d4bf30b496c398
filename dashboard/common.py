"""Shared pieces of the pages: the current user, the period from the controls, small components."""
from __future__ import annotations

import datetime as dt
from urllib.parse import parse_qs

import flask
from dash import dcc, html

from dcmon.dashboard.auth import LOCAL_USER, User
from dcmon.dashboard.i18n import badge_text, t
from dcmon.periods import Period, from_options, quarter

BADGE_COLORS = {"pass": "#2e7d32", "fail": "#c62828", "inconclusive": "#f9a825", "not_applicable": "#9e9e9e"}


def current_user() -> User | None:
    """The user of this request (server-side session); in local mode the single local admin."""
    app = flask.current_app
    users = app.config.get("DCMON_USERS")
    if users is None:
        return User(name=LOCAL_USER, role="admin")
    name = flask.session.get("user")
    return users.get(name) if name else None


def visible_ids(loader, user: User | None) -> list[str]:
    if user is None:
        return []
    return [f for f in sorted(loader.registry.facilities) if user.may_see(f)]


def default_quarter(today: dt.date | None = None) -> str:
    today = today or dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).date()
    return f"{today.year}Q{(today.month - 1) // 3 + 1}"


def period_choices(today: dt.date | None = None) -> list[str]:
    today = today or dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).date()
    q = (today.month - 1) // 3 + 1
    out, y = [], today.year
    for _ in range(8):
        out.append(f"{y}Q{q}")
        q -= 1
        if q == 0:
            y, q = y - 1, 4
    return out + [str(today.year), str(today.year - 1)]


def period_from(value: str | None, start: str | None, end: str | None) -> Period:
    if start and end:
        return from_options(from_text=start[:10], to_text=end[:10])
    value = value or default_quarter()
    return quarter(value) if "Q" in value.upper() else from_options(year_text=value)


def query(search: str | None) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs((search or "").lstrip("?")).items()}


def badge(status, lang: str, id_=None) -> html.Span:
    key = {True: "pass", False: "fail", None: "inconclusive"}.get(status, status)
    kw = {"id": id_} if id_ else {}
    return html.Span(badge_text(status, lang), className=f"badge badge-{key}",
                     style={"background": BADGE_COLORS[key], "color": "white", "padding": "1px 6px",
                            "borderRadius": "4px", "fontSize": "0.85em", "whiteSpace": "nowrap"}, **kw)


def card(title: str, value: str, sub: str = "", id_: str | None = None) -> html.Div:
    value_div = html.Div(value, className="card-value", id=id_) if id_ else html.Div(value, className="card-value")
    return html.Div([html.Div(title, className="card-title"), value_div, html.Div(sub, className="card-sub")],
                    className="card")


def forbidden(lang: str) -> html.Div:
    return html.Div([html.H3(t(lang, "forbidden"), id="forbidden"), dcc.Link(t(lang, "back"), href="/")])
