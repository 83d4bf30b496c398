"""The dashboard's doors: server-side sessions, login limits, CSRF, response headers, query checks.

``install(app, ...)`` wires them onto the Flask server of a Dash app; ``app.py`` calls it once.

- Sessions: the signed cookie carries only a random session id; the sessions live in this
  process (``Sessions``). Logout removes the id, so a copied cookie is worthless afterwards; a
  changed password hash in the users file ends that user's sessions; a session with no user
  activity for ``idle_minutes`` ends (timer-driven refreshes of an open page are not activity).
  A restart ends every session.
- Login limits (Flask-Limiter, moving window of ``LOGIN_WINDOW_MIN`` minutes): at most
  ``USER_FAILURES`` failed logins per user name and ``ADDRESS_FAILURES`` per client address;
  after that every login for that name or from that address is refused (HTTP 429), even with
  the right password, until the window has room again.
- CSRF: the login form and the logout form carry a token tied to the session (Flask-WTF);
  any POST whose ``Origin`` is another site is refused; cookies are ``SameSite=Lax``.
- Every response carries a Content-Security-Policy that allows only this site's scripts plus
  the hashes of Dash's own inline script, ``frame-ancestors 'none'`` with X-Frame-Options
  DENY, nosniff, ``Referrer-Policy: same-origin``; data responses are not cached.
- Query values (``lang``, ``period``, ``from``/``to``, ``profile``) and facility ids in the path
  are checked before anything runs: a bad one answers 400 with one short line.
"""
from __future__ import annotations

import datetime as dt
import logging
import math
import secrets
import threading
import time
from dataclasses import dataclass

import flask
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_wtf.csrf import generate_csrf, validate_csrf
from wtforms.validators import ValidationError

from dcmon.dashboard.i18n import LANGS
from dcmon.errors import InputError
from dcmon.periods import Period, from_options, parse_date, quarter
from dcmon.registry import FACILITY_ID

log = logging.getLogger("dcmon.dashboard.security")

IDLE_MINUTES = 480            # a working day
LOGIN_WINDOW_MIN = 15
USER_FAILURES = 5             # failed logins per user name per window
ADDRESS_FAILURES = 20         # failed logins per client address per window
MAX_PERIOD_YEARS = 3
STATIC_PREFIXES = ("/_dash-component-suites/", "/assets/", "/_favicon.ico", "/favicon.ico")
PUBLIC_PREFIXES = ("/login",) + STATIC_PREFIXES
FACILITY_PATHS = ("/facility/", "/subsidy/", "/download/evidence/")


# ------------------------------------------------------------------------------------ sessions
@dataclass
class _Session:
    user: str
    password_hash: str
    last_active: float


class Sessions:
    """Live sessions by id, in this process."""

    def __init__(self, idle_minutes: float = IDLE_MINUTES):
        self.idle_s = idle_minutes * 60.0
        self._by_id: dict[str, _Session] = {}
        self._lock = threading.Lock()

    def open(self, user) -> str:
        sid = secrets.token_urlsafe(32)
        now = time.monotonic()
        with self._lock:
            self._by_id = {k: s for k, s in self._by_id.items() if now - s.last_active <= self.idle_s}
            self._by_id[sid] = _Session(user.name, user.password_hash, now)
        return sid

    def resolve(self, sid: str | None, users: dict, *, active: bool):
        """The session's user, or None (and the session dropped) when it has ended."""
        if not sid:
            return None
        now = time.monotonic()
        with self._lock:
            s = self._by_id.get(sid)
            if s is None:
                return None
            u = users.get(s.user)
            why = ("idle" if now - s.last_active > self.idle_s else "user removed" if u is None
                   else "password changed" if u.password_hash != s.password_hash else None)
            if why:
                del self._by_id[sid]
                log.info("session of %s ended: %s", s.user, why)
                return None
            if active:
                s.last_active = now
            return u

    def close(self, sid: str | None) -> str | None:
        with self._lock:
            s = self._by_id.pop(sid, None) if sid else None
        return s.user if s else None


def timer_only() -> bool:
    """Whether this request is a Dash callback fired only by an ``dcc.Interval`` (not user activity)."""
    if not flask.request.path.endswith("/_dash-update-component"):
        return False
    body = flask.request.get_json(silent=True) or {}
    changed = (body.get("changedPropIds") or []) if isinstance(body, dict) else []
    return bool(changed) and all(str(c).endswith(".n_intervals") for c in changed)


# ------------------------------------------------------------------------------------ queries
def years_after(d: dt.date, n: int) -> dt.date:
    try:
        return d.replace(year=d.year + n)
    except ValueError:        # 29 February
        return dt.date(d.year + n, 3, 1)


def bounded(period: Period) -> Period:
    """The period itself, or InputError when it spans more than ``MAX_PERIOD_YEARS`` years."""
    if period.last_day >= years_after(period.first_day, MAX_PERIOD_YEARS):
        raise InputError(f"a period may span at most {MAX_PERIOD_YEARS} years: "
                         f"{period.first_day} to {period.last_day}")
    return period


def _short(v: str) -> str:
    return repr(v if len(v) <= 40 else v[:40] + "…")


def query_problem(path: str, args, profiles) -> str | None:
    """One line saying which query value (or facility id in the path) is bad, or None."""
    for prefix in FACILITY_PATHS:
        if path.startswith(prefix):
            fid = path[len(prefix):].rstrip("/")
            if not FACILITY_ID.match(fid):
                return f"bad facility id {_short(fid)}: lowercase letters, digits and '-'"
    if "facility_id" in args:   # Dash pages would hand it to the page in place of the path's
        return "bad query: the facility goes in the path (/facility/<id>), not in facility_id="
    lang = args.get("lang")
    if lang is not None and lang not in LANGS:
        return f"bad lang {_short(lang)}: must be {' or '.join(LANGS)}"
    profile = args.get("profile")
    if profile is not None and profile not in profiles:
        return f"bad profile {_short(profile)}: known profiles are {', '.join(sorted(profiles))}"
    try:
        if path == "/download/export":
            if args.get("from") is not None:
                parse_date(args["from"], "from")
        elif args.get("from") is not None or args.get("to") is not None:
            if not (args.get("from") and args.get("to")):
                return "bad period: from and to go together"
            bounded(Period(parse_date(args["from"], "from"), parse_date(args["to"], "to")))
        elif args.get("period") is not None:
            v = args["period"]
            quarter(v) if "Q" in v.upper() else from_options(year_text=v)
    except InputError as e:
        return f"bad period: {str(e)[:160]}"
    return None


# ------------------------------------------------------------------------------------ headers
def content_security_policy(script_hashes) -> str:
    """Scripts only from this site plus Dash's inline renderer script (by hash); styles may be
    inline because Dash, Plotly and AG Grid set them from script."""
    return "; ".join([
        "default-src 'self'",
        "script-src 'self' " + " ".join(script_hashes),
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ])


def add_headers(resp: flask.Response, csp: str, secure: bool) -> flask.Response:
    h = resp.headers
    h["Content-Security-Policy"] = csp
    h["X-Frame-Options"] = "DENY"
    h["X-Content-Type-Options"] = "nosniff"
    h["Referrer-Policy"] = "same-origin"
    h["Cross-Origin-Opener-Policy"] = "same-origin"
    if secure:
        h["Strict-Transport-Security"] = "max-age=31536000"
    if not flask.request.path.startswith(STATIC_PREFIXES):
        h["Cache-Control"] = "no-store"
    return resp


# ------------------------------------------------------------------------------------ login
def login_name() -> str:
    return (flask.request.form.get("user") or "").strip()[:64]


def failed_login(resp: flask.Response) -> bool:
    return resp.status_code == 401


def csrf_ok() -> bool:
    try:
        validate_csrf(flask.request.form.get("csrf_token"))
        return True
    except ValidationError:
        return False


def csrf_token() -> str:
    """The form token of this session (Flask-WTF); empty outside a request."""
    return generate_csrf() if flask.has_request_context() else ""


def make_limiter(server: flask.Flask) -> Limiter:
    return Limiter(get_remote_address, app=server, storage_uri="memory://", strategy="moving-window",
                   headers_enabled=False)


def login_limits(limiter: Limiter):
    """The two decorators of the login view: per client address and per user name; only failed
    logins (401) count."""
    window = f"{LOGIN_WINDOW_MIN} minutes"
    return (limiter.limit(f"{ADDRESS_FAILURES} per {window}", key_func=get_remote_address, methods=["POST"],
                          deduct_when=failed_login, scope="login-address"),
            limiter.limit(f"{USER_FAILURES} per {window}", key_func=lambda: "user:" + login_name(), methods=["POST"],
                          deduct_when=failed_login, scope="login-user"))


def lockout_minutes(limiter: Limiter) -> int:
    lim = limiter.current_limit
    if lim is None:
        return LOGIN_WINDOW_MIN
    # never more than the window itself (the limiter's reset time is rounded up to a whole second)
    return min(LOGIN_WINDOW_MIN, max(1, math.ceil((lim.reset_at - time.time()) / 60)))


def same_origin() -> bool:
    """False for a state-changing request sent by a page of another site (browsers send Origin)."""
    if flask.request.method in ("GET", "HEAD", "OPTIONS"):
        return True
    origin = flask.request.headers.get("Origin")
    return origin is None or origin == own_origin()


def own_origin() -> str:
    """This site as the browser sees it (behind a proxy: from the trusted X-Forwarded-Proto/-Host)."""
    return flask.request.host_url.rstrip("/")
