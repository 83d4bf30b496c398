"""Subsidy page (``/subsidy/<id>``): for a facility and a policy profile, each threshold with its
value, margin and source clause, the subsidy estimate, and the downloads.

``update`` checks the user on every call; the downloads behind the buttons check again
(``dashboard.app``: ``/download/evidence/<id>`` and ``/download/export``).
"""
from __future__ import annotations

from urllib.parse import urlencode

import dash_ag_grid as dag
from dash import Input, Output, dcc, html
from dcmon.dashboard import common
from dcmon.dashboard.common import badge, forbidden, may_see
from dcmon.dashboard.i18n import GRID_LOCALE_ZH, metric_text, num, t

from dcmon.errors import InputError

DEFAULT_PROFILE = "chengdu-2023-cloud-retrofit"
CHECK_FIELDS = ("check", "value", "threshold", "margin", "result", "clause")
HEADERS = {"check": "checks", "value": "value", "threshold": "threshold", "margin": "margin", "result": "result",
           "clause": "clause"}


def layout(facility_id: str, lang: str, url_period: dict, profile: str | None) -> html.Div:
    return html.Div([
        dcc.Store(id="subsidy-params", data={"facility_id": facility_id, "lang": lang, "url_period": url_period}),
        html.H2(t(lang, "subsidy"), id="subsidy-title"),
        html.Div([html.Span(t(lang, "profile") + " "),
                  dcc.Dropdown(id="subsidy-profile", value=profile, clearable=False, style={"width": "360px"})],
                 style={"display": "flex", "alignItems": "center", "gap": "8px"}),
        html.Div(id="subsidy-body"),
    ])


NOT_IN_FORCE = {"zh": "该政策在此期间不在有效期内", "en": "measure not in force for this period"}
REPORT_ONLY = {"zh": "仅报告，不作为申报条件", "en": "report only, not a requirement"}
CAP_TEXT = {"per_rack_capped": {"zh": "单架上限限制了单架补贴", "en": "the per-rack ceiling limited the per-rack amount"},
            "capped": {"zh": "总额上限限制了补贴金额", "en": "the total ceiling limited the amount"}}
NOT_DUE = {"zh": "无应付金额；以下为假设测算（仅供参考）：", "en": "no amount due; hypothetical figure only:"}


def check_rows(profile_result: dict, lang: str) -> list[dict]:
    rows = []
    for c in profile_result["checks"]:
        margin = "—" if c["margin"] is None else f"{c['margin']:+.4g} " + ((c.get("margin_detail") or {}).get("text", ""))
        result = t(lang, c["status"]) + (f" · {REPORT_ONLY[lang]} ({c['flag']})" if c.get("flag") else "")
        rows.append({"check": metric_text(c["metric"], lang), "metric": c["metric"],
                     "value": c.get("value_text") or ("—" if c["value"] is None else f"{c['value']:.4g}"),
                     "threshold": f"{c['op']} {c['threshold']}", "margin": margin,
                     "result": result, "status": c["status"], "clause": c["clause"]})
    return rows


OUTPUTS = (Output("subsidy-title", "children"), Output("subsidy-profile", "options"),
           Output("subsidy-profile", "value"), Output("subsidy-body", "children"))
INPUTS = (Input("subsidy-params", "data"), Input("period-choice", "data"), Input("subsidy-profile", "value"))


def update(params: dict, choice: dict | None, profile: str | None):
    params = params or {}
    lang = params.get("lang", "zh")
    ld = common.loader()
    user = common.current_user()
    fid = params.get("facility_id")
    if not may_see(ld.registry, user, fid):
        return t(lang, "subsidy"), [], None, forbidden(lang)
    try:
        period = common.period_from(choice, params.get("url_period"))
    except InputError as e:
        return t(lang, "bad_period"), [], profile, common.error(str(e))
    result = ld.evaluation(period, [fid])
    f = result["facilities"][0]
    profiles = f["profiles"]
    options = [{"label": p, "value": p} for p in profiles]
    if profile not in profiles:
        profile = DEFAULT_PROFILE if DEFAULT_PROFILE in profiles else next(iter(profiles), None)
    if profile is None:
        return t(lang, "subsidy"), options, None, html.Div(t(lang, "no_data"))
    pr = profiles[profile]
    est = pr.get("subsidy_estimate")
    q = urlencode({"from": result["period"]["from"], "to": result["period"]["to"], "lang": lang, "profile": profile})
    links = [html.A(t(lang, "download_evidence"), href=f"/download/evidence/{fid}?{q}", id="dl-evidence",
                    className="button")]
    if user.may_export():
        links.append(html.A(t(lang, "download_export"), id="dl-export", className="button",
                            href=f"/download/export?{urlencode({'from': result['period']['from'], 'lang': lang})}"))
    status_style = {"styleConditions": [
        {"condition": "params.data.status === 'pass'", "style": {"color": "#2e7d32", "fontWeight": "bold"}},
        {"condition": "params.data.status === 'fail'", "style": {"color": "#c62828", "fontWeight": "bold"}},
        {"condition": "params.data.status === 'inconclusive'", "style": {"color": "#b26a00"}}]}
    name = f["name"] if lang == "zh" or not f.get("name_en") else f["name_en"]
    body = [
        html.P([t(lang, "eligible"), ": ", badge(pr["eligible"], lang, "subsidy-eligible"),
                f" · {t(lang, 'period')} {common.period_heading(result['period'], lang)}"]),
        *([html.P(NOT_IN_FORCE[lang], id="subsidy-not-in-force",
                  style={"color": "#c62828", "fontWeight": "bold"})] if pr.get("in_force") is False else []),
        html.P(pr.get("source", ""), className="note"),
        dag.AgGrid(id="subsidy-checks", rowData=check_rows(pr, lang),
                   columnDefs=[{"field": k, "headerName": t(lang, HEADERS[k]), "wrapText": True, "autoHeight": True,
                                **({"cellStyle": status_style} if k == "result" else {})} for k in CHECK_FIELDS],
                   defaultColDef={"resizable": True}, columnSize="responsiveSizeToFit",
                   dashGridOptions={"domLayout": "autoHeight", "localeText": GRID_LOCALE_ZH if lang == "zh" else {}}),
        html.H3(t(lang, "estimate")),
        html.P(("—" if est is None else (NOT_DUE[lang] + " " if pr.get("subsidy_hypothetical") else "")
                + f"{num(est['subsidy_cny'], lang, 2)} CNY "
                + (t(lang, "upper_bound") if est["subsidy_is_upper_bound"] else "")), id="subsidy-amount"),
        html.Ol([html.Li(s) for s in (est or {}).get("steps", [])]),
        *[html.P(CAP_TEXT[k][lang], className="note") for k in ("per_rack_capped", "capped") if (est or {}).get(k)],
        html.Div(links, className="downloads"),
    ]
    return f"{t(lang, 'subsidy')} · {name} · {profile}", options, profile, body


def register(app) -> None:
    app.callback(*OUTPUTS, *INPUTS)(update)
