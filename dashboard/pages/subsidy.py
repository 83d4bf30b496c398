"""Subsidy page: each threshold with value, margin and clause, the estimate, and downloads."""
from __future__ import annotations

from urllib.parse import urlencode

from dash import dash_table, html

from dcmon.dashboard.common import badge, forbidden
from dcmon.dashboard.i18n import num, t

DEFAULT_PROFILE = "chengdu-2023-cloud-retrofit"


def render(loader, user, facility_id: str, period, lang: str, profile: str | None = None):
    if facility_id not in loader.registry.facilities or user is None or not user.may_see(facility_id):
        return forbidden(lang)
    result = loader.evaluation(period, [facility_id])
    f = result["facilities"][0]
    profiles = f["profiles"]
    profile = profile if profile in profiles else (DEFAULT_PROFILE if DEFAULT_PROFILE in profiles else next(iter(profiles), None))
    if profile is None:
        return html.Div(t(lang, "no_data"))
    pr = profiles[profile]
    rows = [{"check": c["metric"], "value": "—" if c["value"] is None else f"{c['value']:.4g}",
             "threshold": f"{c['op']} {c['threshold']}", "margin": "—" if c["margin"] is None else
             f"{c['margin']:+.4g} " + ((c.get("margin_detail") or {}).get("text", "")),
             "result": t(lang, c["status"]), "clause": c["clause"]} for c in pr["checks"]]
    est = pr.get("subsidy_estimate")
    steps = [html.Li(s) for s in (est or {}).get("steps", [])]
    q = urlencode({"from": result["period"]["from"], "to": result["period"]["to"], "lang": lang, "profile": profile})
    links = [html.A(t(lang, "download_evidence"), href=f"/download/evidence/{facility_id}?{q}", id="dl-evidence",
                    className="button")]
    if user.may_export():
        links.append(html.A(t(lang, "download_export"), id="dl-export", className="button",
                            href=f"/download/export?{urlencode({'from': result['period']['from'], 'lang': lang})}"))
    return html.Div([
        html.H2(f"{t(lang, 'subsidy')} · {f['name']} · {profile}", id="subsidy-title"),
        html.P([t(lang, "eligible"), ": ", badge(pr["eligible"], lang, "subsidy-eligible")]),
        html.P(pr.get("source", ""), className="note"),
        dash_table.DataTable(id="subsidy-checks", data=rows, columns=[{"name": t(lang, k2), "id": k} for k, k2 in
                             (("check", "checks"), ("value", "value"), ("threshold", "threshold"), ("margin", "margin"),
                              ("result", "result"), ("clause", "clause"))],
                             style_cell={"whiteSpace": "normal", "height": "auto", "textAlign": "left", "fontSize": "13px"}),
        html.H3(t(lang, "estimate")),
        html.P(("—" if est is None else f"{num(est['subsidy_cny'], lang, 0)} CNY "
                + (t(lang, "upper_bound") if est["subsidy_is_upper_bound"] else "")), id="subsidy-amount"),
        html.Ol(steps),
        html.Div(links, className="downloads"),
    ])
