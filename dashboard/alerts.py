"""Active alerts on the dashboard, read from Prometheus.

One source of truth: the alerts are the shipped rules (``deploy/prometheus/dcmon-rules.yml``) as
the operator's Prometheus evaluates them; the dashboard asks its ``/api/v1/alerts`` (``dcmon
dashboard --prometheus-url`` or ``$DCMON_PROMETHEUS_URL``) and shows the firing and pending ones
in the user's language (the rules' ``summary_zh``/``summary_en`` annotations). Without a URL the
panel says where alerts come from; dcmon does not evaluate the rules a second time.

Access, server-side on every callback: only alerts of the shipped rules (name ``Dcmon…``), only
those whose ``facility`` label names a facility the user may see; alerts about a collector (no
facility label) only for users who may see every facility. Other alerts of the same Prometheus
are never shown.
"""
from __future__ import annotations

import datetime as dt
import json
import urllib.error
import urllib.request

from dash import MATCH, Input, Output, State, dcc, html
from dcmon.dashboard import common

ENV_PROMETHEUS_URL = "DCMON_PROMETHEUS_URL"
RULE_PREFIX = "Dcmon"
REFRESH_MS = 15_000
SEVERITY_COLORS = {"critical": "#c62828", "warning": "#f9a825"}
TEXT = {
    "zh": {"title": "告警", "none": "当前无告警", "pending": "待触发", "firing": "告警中", "since": "始于",
           "not_configured": "告警由 Prometheus 按 deploy/prometheus/dcmon-rules.yml 评估；启动看板时加 "
                             "--prometheus-url（或设置 DCMON_PROMETHEUS_URL）即可在此显示，见 docs/monitoring.md。",
           "unavailable": "无法读取 Prometheus 告警", "collector": "采集器", "critical": "严重", "warning": "警告"},
    "en": {"title": "Alerts", "none": "No active alerts", "pending": "pending", "firing": "firing", "since": "since",
           "not_configured": "Alerts are evaluated by Prometheus from deploy/prometheus/dcmon-rules.yml; start the "
                             "dashboard with --prometheus-url (or set DCMON_PROMETHEUS_URL) to show them here "
                             "(docs/monitoring.md).",
           "unavailable": "Cannot read alerts from Prometheus", "collector": "collector", "critical": "critical",
           "warning": "warning"},
}


class AlertsUnavailable(Exception):
    """Prometheus did not answer with its alerts (the message says why, without the URL's secrets)."""


def fetch_alerts(prometheus_url: str, timeout_s: float = 3.0) -> list[dict]:
    """The alerts Prometheus holds (``GET <url>/api/v1/alerts``): dicts with labels, annotations,
    state (firing | pending) and activeAt (RFC 3339)."""
    url = prometheus_url.rstrip("/") + "/api/v1/alerts"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as r:
            doc = json.loads(r.read())
    except urllib.error.HTTPError as e:
        raise AlertsUnavailable(f"HTTP {e.code}") from None
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise AlertsUnavailable(type(e).__name__ + ": " + str(getattr(e, "reason", e))[:200]) from None
    if not isinstance(doc, dict) or doc.get("status") != "success":
        raise AlertsUnavailable("unexpected answer (not a Prometheus /api/v1/alerts document)")
    return list((doc.get("data") or {}).get("alerts") or [])


def for_user(alerts: list[dict], registry, user) -> list[dict]:
    """The alerts this user may see (see the module notes), critical first, then oldest first."""
    if user is None:
        return []
    sees_all = all(user.may_see(f) for f in registry.facilities)
    out = []
    for a in alerts:
        labels = a.get("labels") or {}
        if not str(labels.get("alertname", "")).startswith(RULE_PREFIX):
            continue
        fid = labels.get("facility")
        if fid is None:
            if not sees_all:
                continue
        elif not common.may_see(registry, user, fid):
            continue
        out.append(a)
    return sorted(out, key=lambda a: (a["labels"].get("severity") != "critical", a.get("activeAt") or ""))


def panel(lang: str, facility_id: str | None = None) -> html.Div:
    """The alerts panel of a page: every visible facility (overview) or one facility."""
    scope = facility_id or "*"
    return html.Div([
        dcc.Store(id={"type": "dcmon-alerts-params", "scope": scope}, data={"lang": lang, "facility_id": facility_id}),
        dcc.Interval(id={"type": "dcmon-alerts-tick", "scope": scope}, interval=REFRESH_MS),
        html.H3(TEXT[lang]["title"]),
        html.Div(id={"type": "dcmon-alerts", "scope": scope}, className="alerts"),
    ], id=f"alerts-panel-{'overview' if facility_id is None else 'facility'}")


def update_alerts(_tick, params):
    """Fill a panel: the user's alerts from the loader's latest Prometheus answer."""
    params = params or {}
    lang = params.get("lang") if params.get("lang") in TEXT else "zh"
    tx = TEXT[lang]
    ld, user = common.loader(), common.current_user()
    fid = params.get("facility_id")
    if user is None or (fid is not None and not common.may_see(ld.registry, user, fid)):
        return html.Div()
    got = ld.alerts()
    if got is None:
        return html.P(tx["not_configured"], className="note", id="alerts-not-configured")
    if got["error"]:
        return html.P(f"{tx['unavailable']}: {got['error']}", className="error", id="alerts-unavailable")
    shown = [a for a in for_user(got["alerts"], ld.registry, user)
             if fid is None or a["labels"].get("facility") == fid]
    if not shown:
        return html.P(tx["none"], className="note", id="alerts-none")
    return html.Ul([_item(a, lang, ld.registry, with_place=fid is None) for a in shown], id="alerts-list")


def _item(a: dict, lang: str, registry, with_place: bool = True) -> html.Li:
    tx, labels, ann = TEXT[lang], a["labels"], a.get("annotations") or {}
    fac = registry.facilities.get(labels.get("facility"))
    sev = labels.get("severity", "warning")
    where = labels.get("facility") or f"{tx['collector']} {labels.get('instance', '')}".strip()
    summary = ann.get(f"summary_{lang}") or ann.get("summary") or labels["alertname"]
    description = ann.get(f"description_{lang}") or ""
    since = _since(a.get("activeAt"), fac.timezone if fac else "Asia/Shanghai", lang)
    return html.Li([
        html.Span(tx.get(sev, sev), style={"background": SEVERITY_COLORS.get(sev, "#9e9e9e"), "color": "white", "padding": "1px 6px",
                              "borderRadius": "4px", "fontSize": "0.85em"}),
        *([" ", html.B(where), " ·"] if with_place else []), f" {summary}",
        html.Span(f" · {tx[a.get('state', 'firing')] if a.get('state') in tx else a.get('state', '')}"
                  f"{' · ' + tx['since'] + ' ' + since if since else ''}", className="note"),
    ], title=f"{description}\n{ann.get('runbook', '')}".strip(), className=f"alert alert-{sev}")


def _since(active_at: str | None, tz: str, lang: str) -> str:
    if not active_at:
        return ""
    try:
        when = dt.datetime.fromisoformat(active_at.replace("Z", "+00:00"))
    except ValueError:
        return ""
    from dcmon.dashboard.i18n import timestamp
    return timestamp(int(when.timestamp() * 1000), tz, lang)


def register(app):
    app.callback(Output({"type": "dcmon-alerts", "scope": MATCH}, "children"),
                 Input({"type": "dcmon-alerts-tick", "scope": MATCH}, "n_intervals"),
                 State({"type": "dcmon-alerts-params", "scope": MATCH}, "data"))(update_alerts)
