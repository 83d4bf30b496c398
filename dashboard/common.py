"""Shared pieces of the pages: the current user, the chosen period, small components.

The period a page shows comes from, in order: the period controls of the top bar (a quarter or
year from the dropdown, or a custom date range), the URL (``?period=2026Q3``, ``?period=2026``
or ``?from=2026-07-01&to=2026-07-31``), and otherwise the current quarter in China time.
"""
from __future__ import annotations

import datetime as dt
import re
from urllib.parse import parse_qs, urlencode

import flask
from dash import dcc, html
from dcmon.dashboard.auth import LOCAL_USER, User
from dcmon.dashboard.i18n import LANGS, badge_text, date, quarter_label, status_key, t, timestamp
from dcmon.dashboard.security import bounded

from dcmon.periods import Period, from_options, quarter, quarter_of

BADGE_COLORS = {"pass": "#2e7d32", "fail": "#c62828", "inconclusive": "#f9a825", "not_applicable": "#9e9e9e"}
CHINA = dt.timezone(dt.timedelta(hours=8))


def loader():
    """The app's one data loader (``dashboard.data.Loader``)."""
    return flask.current_app.config["DCMON_LOADER"]


def current_user() -> User | None:
    """The user of this request (server-side session); in local mode the single local admin."""
    app = flask.current_app
    users = app.config.get("DCMON_USERS")
    if users is None:
        return User(name=LOCAL_USER, role="admin")
    return flask.g.get("dcmon_user")   # resolved from the session by app.require_login


def visible_ids(registry, user: User | None) -> list[str]:
    """The facilities this user may see (server-side filter of every query)."""
    if user is None:
        return []
    return [f for f in sorted(registry.facilities) if user.may_see(f)]


def may_see(registry, user: User | None, facility_id) -> bool:
    return user is not None and isinstance(facility_id, str) and facility_id in registry.facilities \
        and user.may_see(facility_id)


def today_china() -> dt.date:
    return dt.datetime.now(CHINA).date()


def default_quarter(today: dt.date | None = None) -> str:
    return quarter_of(today or today_china()).label


def period_choices(today: dt.date | None = None) -> list[str]:
    """The last eight quarters and the last two years, newest first."""
    today = today or today_china()
    out, day = [], today
    for _ in range(8):
        q = quarter_of(day)
        out.append(q.label)
        day = q.first_day - dt.timedelta(days=1)    # into the quarter before
    return out + [str(today.year), str(today.year - 1)]


PERIOD_RE = re.compile(r"\d{4}(Q[1-4])?")


def period_options(lang: str, asked: str | None = None) -> list[dict]:
    """The dropdown's periods; a well-formed period from the URL is added when it is not among them."""
    choices = period_choices()
    asked = (asked or "").upper()
    if PERIOD_RE.fullmatch(asked) and asked not in choices:
        choices = [asked, *choices]
    return [{"label": quarter_label(c, lang), "value": c} for c in choices]


def query(search: str | None) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs((search or "").lstrip("?")).items()}


def lang_of(lang_value: str | None, search: str | None) -> str:
    lang = lang_value or query(search).get("lang") or "zh"
    return lang if lang in LANGS else "zh"


def url_period(search: str | None) -> dict:
    """The period named in the URL, unparsed (parsed, with errors, by ``period_from``)."""
    return period_of(query(search))


def period_of(q: dict[str, str]) -> dict:
    return {k: q[k] for k in ("period", "from", "to") if q.get(k)}


def page_query(query_values: dict) -> tuple[str, dict, dict[str, str]]:
    """(language, the URL's period, the query) of a page layout, from the query values Dash pages
    hands it as keyword arguments. A repeated key counts once, by its first value, as the query
    check of ``security.py`` reads it; blank values count as absent."""
    q = {k: str(v[0] if isinstance(v, list) else v) for k, v in query_values.items()
         if v not in (None, "", [])}
    lang = q.get("lang") if q.get("lang") in LANGS else "zh"
    return lang, period_of(q), q


def refused_page(lang: str, facility_id: str | None = None):
    """What a page shows instead of itself when this request may not have it, or None when it may:
    a login link without a user; for a facility page, not found (an unknown id) or forbidden (a
    facility the user may not see). Each page's layout asks this before laying anything out, so a
    typed URL never reaches a facility's figures; its callbacks check again on every call."""
    user = current_user()
    if user is None:
        return html.Div(html.A(t(lang, "login"), href="/login"))
    if facility_id is None:
        return None
    if facility_id not in loader().registry.facilities:
        return not_found(lang, facility_id)
    if not user.may_see(facility_id):
        return forbidden(lang)
    return None


def period_from(choice: dict | None, url: dict | None) -> Period:
    """The period to show: the top-bar choice, else the URL's, else the current quarter.

    Raises ``InputError`` naming a malformed value, or a range longer than the dashboard serves.
    """
    for src in (choice or {}, url or {}):
        if src.get("from") and src.get("to"):
            return bounded(from_options(from_text=str(src["from"])[:10], to_text=str(src["to"])[:10]))
        if src.get("period"):
            v = str(src["period"])
            return quarter(v) if "Q" in v.upper() else from_options(year_text=v)
    return quarter(default_quarter())


def badge(status, lang: str, id_=None) -> html.Span:
    key = status_key(status)
    kw = {"id": id_} if id_ else {}
    return html.Span(badge_text(status, lang), className=f"badge badge-{key}",
                     style={"background": BADGE_COLORS[key], "color": "white", "padding": "1px 6px",
                            "borderRadius": "4px", "fontSize": "0.85em", "whiteSpace": "nowrap"}, **kw)


def card(title: str, value: str, sub: str = "", id_: str | None = None) -> html.Div:
    value_div = html.Div(value, className="card-value", id=id_) if id_ else html.Div(value, className="card-value")
    return html.Div([html.Div(title, className="card-title"), value_div, html.Div(sub, className="card-sub")],
                    className="card")


def computed_note(computed_at: dt.datetime, lang: str) -> str:
    """When the figures were computed (China time), so a cached value is never taken for a live one."""
    return f"{t(lang, 'computed_at')} {timestamp(int(computed_at.timestamp() * 1000), 'Asia/Shanghai', lang)}"


def period_heading(period_json: dict, lang: str) -> str:
    return f"{date(period_json['from'], lang)} — {date(period_json['to'], lang)}"


def state_query(lang: str, url_period: dict | None, **extra) -> str:
    """The query string that keeps a view's language and period across a link (``?period=…&lang=…``)."""
    q = {**(url_period or {}), **({"lang": lang} if lang != "zh" else {}), **{k: v for k, v in extra.items() if v}}
    return ("?" + urlencode(q)) if q else ""


def not_found(lang: str, facility_id: str | None = None) -> html.Div:
    """A 404-like page: the facility (or page) does not exist, as opposed to not being allowed."""
    head = t(lang, "facility_not_found") if facility_id else t(lang, "not_found")
    return html.Div([html.H3(head + (f"：{facility_id}" if lang == "zh" and facility_id else
                                     f": {facility_id}" if facility_id else ""), id="not-found"),
                     html.P(t(lang, "not_found_hint")), dcc.Link(t(lang, "back"), href="/" + state_query(lang, None))])


def period_error(lang: str, url_period: dict | None) -> html.Div:
    """The URL's period is not a period: say which value and what a period looks like."""
    u = url_period or {}
    asked = u.get("period") or f"{u.get('from', '')} — {u.get('to', '')}"
    return html.Div([html.P(f"{t(lang, 'bad_period')}{'：' if lang == 'zh' else ': '}{asked}", id="error",
                            className="error"),
                     html.P(t(lang, "bad_period_hint"), className="note")])


def forbidden(lang: str) -> html.Div:
    return html.Div([html.H3(t(lang, "forbidden"), id="forbidden"), dcc.Link(t(lang, "back"), href="/")])


def error(message: str) -> html.Div:
    return html.Div(message, id="error", className="error")
