"""Subsidy page (``/subsidy/<id>``): for a facility and a policy profile, each threshold with its
value, margin and source clause, the subsidy estimate, and the downloads.

``update`` checks the user on every call; the downloads behind the buttons check again
(``dashboard.app``: ``/download/evidence/<id>`` and ``/download/export``).
"""
from __future__ import annotations

from urllib.parse import urlencode

import dash_ag_grid as dag
import dash
from dash import ClientsideFunction, Input, Output, dcc, html
from dcmon.dashboard import common
from dcmon.dashboard.common import badge, forbidden, may_see
from dcmon.dashboard.i18n import GRID_LOCALE_ZH, t

from dcmon.errors import InputError
from dcmon.terms import (
    CAP_TEXT,
    NOT_DUE,
    NOT_IN_FORCE,
    REASON_TEXT,
    UPPER_BOUND,
    flag_text,
    margin_cell,
    metric_name,
    money,
    profile_title,
    reason_text,
    result_text,
    source_text,
    steps_text,
    term,
    threshold_text,
    value_text,
)

DEFAULT_PROFILE = "chengdu-2023-cloud-retrofit"
CHECK_FIELDS = ("check", "value", "threshold", "margin", "result", "clause")
HEADERS = {"check": "checks", "value": "value", "threshold": "threshold", "margin": "margin", "result": "result",
           "clause": "clause"}


PATH_TEMPLATE = "/subsidy/<facility_id>"


def layout(facility_id: str | None = None, **query) -> html.Div:
    """The empty subsidy page, only for a facility this request's user may see."""
    lang, url_period, q = common.page_query(query)
    refused = common.refused_page(lang, facility_id)
    if refused is not None:
        return refused
    profile = q.get("profile")
    return html.Div([
        dcc.Store(id="subsidy-params", data={"facility_id": facility_id, "lang": lang, "url_period": url_period,
                                             "profile": profile}),
        dcc.Store(id="subsidy-profile-url"),
        html.H2(t(lang, "subsidy"), id="subsidy-title"),
        html.Div([html.Span(t(lang, "profile") + " "),
                  dcc.Dropdown(id="subsidy-profile", value=profile, clearable=False, searchable=False,
                               style={"width": "420px"})],
                 style={"display": "flex", "alignItems": "center", "gap": "8px"}),
        html.Div(id="subsidy-body"),
    ])


def check_rows(profile_result: dict, lang: str) -> list[dict]:
    rows = []
    for c in profile_result["checks"]:
        reason = reason_text(c, lang)
        rows.append({"check": metric_name(c["metric"], lang), "metric": c["metric"], "value": value_text(c, lang),
                     "threshold": threshold_text(c["metric"], c["op"], c["threshold"], lang),
                     "margin": margin_cell(c, lang),
                     "result": result_text(c, lang) + (f"：{reason}" if reason and lang == "zh" else f": {reason}" if reason else ""),
                     "status": c["status"], "clause": c["clause"]})
    return rows


def estimate_part(pr: dict, lang: str) -> list:
    """The subsidy estimate: whether it is due (and why not), the amount in 元/万元, the steps, the ceilings."""
    est = pr.get("subsidy_estimate")
    if est is None:
        return [html.P("—", id="subsidy-amount")]
    out = []
    if pr.get("subsidy_hypothetical"):
        reasons = "；".join(term(REASON_TEXT, lang, r) for r in pr.get("hypothetical_reasons", [])) if lang == "zh" \
            else "; ".join(term(REASON_TEXT, lang, r) for r in pr.get("hypothetical_reasons", []))
        out.append(html.P(f"{NOT_DUE[lang]}（{reasons}）" if lang == "zh" else f"{NOT_DUE[lang]} ({reasons})",
                          id="subsidy-not-due", style={"color": "#c62828", "fontWeight": "bold"}))
    bound = est.get("upper_bound_reason")
    out.append(html.P([html.B(money(est["subsidy_cny"], lang)),
                       (f"（{term(UPPER_BOUND, lang, bound)}）" if lang == "zh" else f" ({term(UPPER_BOUND, lang, bound)})")
                       if bound else ""], id="subsidy-amount", style={"fontSize": "20px"}))
    out.append(html.Ol([html.Li(s) for s in steps_text(est, lang)], id="subsidy-steps"))
    out += [html.P(term(CAP_TEXT, lang, k), className="note") for k in ("per_rack_capped", "capped") if est.get(k)]
    return out


def report_only_part(pr: dict, lang: str) -> list:
    items = pr.get("report_only") or []
    if not items:
        return []
    lis = [html.Li(f"{flag_text(r['flag'], lang)}：{t(lang, 'raised') if r['raised'] else t(lang, 'not_raised')}"
                   f"（{metric_name(r['metric'], lang)} {value_text(r, lang)}，"
                   f"{t(lang, 'threshold')} {threshold_text(r['metric'], r['op'], r['threshold'], lang)}）"
                   if lang == "zh" else
                   f"{flag_text(r['flag'], lang)}: {t(lang, 'raised') if r['raised'] else t(lang, 'not_raised')} "
                   f"({metric_name(r['metric'], lang)} {value_text(r, lang)}, "
                   f"{t(lang, 'threshold')} {threshold_text(r['metric'], r['op'], r['threshold'], lang)})")
           for r in items]
    return [html.H3(t(lang, "report_only")), html.Ul(lis, id="subsidy-report-only")]


OUTPUTS = (Output("subsidy-title", "children"), Output("subsidy-profile", "options"),
           Output("subsidy-profile", "value"), Output("subsidy-body", "children"))
INPUTS = (Input("subsidy-params", "data"), Input("period-choice", "data"), Input("subsidy-profile", "value"))


def update(params: dict, choice: dict | None, profile: str | None):
    params = params or {}
    lang = params.get("lang", "zh")
    ld = common.loader()
    user = common.current_user()
    fid = params.get("facility_id")
    profile = profile or params.get("profile")  # the URL's, until one is chosen
    if not may_see(ld.registry, user, fid):
        return t(lang, "subsidy"), [], None, forbidden(lang)
    try:
        period = common.period_from(choice, params.get("url_period"))
    except InputError:
        return t(lang, "bad_period"), [], profile, common.period_error(lang, params.get("url_period"))
    result = ld.evaluation(period, [fid])
    f = result["facilities"][0]
    profiles = f["profiles"]
    options = [{"label": profile_title(p, pr.get("title"), lang), "value": p} for p, pr in profiles.items()]
    if profile not in profiles:
        profile = DEFAULT_PROFILE if DEFAULT_PROFILE in profiles else next(iter(profiles), None)
    if profile is None:
        return t(lang, "subsidy"), options, None, html.Div(t(lang, "no_data"))
    pr = profiles[profile]
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
    na = not pr.get("applicable", True) or pr.get("verdict") == "not_applicable"
    body = [
        html.P([t(lang, "eligible"), "：" if lang == "zh" else ": ",
                badge("not_applicable" if na else pr["eligible"], lang, "subsidy-eligible"),
                f" · {t(lang, 'period')} {common.period_heading(result['period'], lang)}"]),
        *([html.P(NOT_IN_FORCE[lang], id="subsidy-not-in-force",
                  style={"color": "#c62828", "fontWeight": "bold"})] if pr.get("in_force") is False else []),
        html.P(f"{t(lang, 'source_text')}{'：' if lang == 'zh' else ': '}{source_text(pr.get('source'))}", className="note"),
        dag.AgGrid(id="subsidy-checks", rowData=check_rows(pr, lang),
                   columnDefs=[{"field": k, "headerName": t(lang, HEADERS[k]), "wrapText": True, "autoHeight": True,
                                **({"cellStyle": status_style} if k == "result" else {}),
                                **({"flex": 2} if k in ("margin", "clause") else {"flex": 1})} for k in CHECK_FIELDS],
                   defaultColDef={"resizable": True},
                   dashGridOptions={"domLayout": "autoHeight", "localeText": GRID_LOCALE_ZH if lang == "zh" else {}}),
        *report_only_part(pr, lang),
        html.H3(t(lang, "estimate")),
        *estimate_part(pr, lang),
        html.Div(links, className="downloads"),
    ]
    return f"{t(lang, 'subsidy')} · {name} · {profile_title(profile, pr.get('title'), lang)}", options, profile, body


def register(app) -> None:
    dash.register_page(__name__, path_template=PATH_TEMPLATE, layout=layout)
    app.callback(*OUTPUTS, *INPUTS)(update)
    app.clientside_callback(ClientsideFunction(namespace="dcmon", function_name="profileInUrl"),
                            Output("subsidy-profile-url", "data"), Input("subsidy-profile", "value"))
