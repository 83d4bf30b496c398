"""Overview (``/``): every facility the user may see, a badge per policy profile, portfolio figures.

``layout(lang, url_period)`` is the empty page; ``update`` fills it (the one callback of this
page, wired by ``register``). ``update`` checks the user on every call and evaluates only the
facilities that user may see; every figure comes from ``metrics.evaluate`` through the loader.
"""
from __future__ import annotations

import dash_ag_grid as dag
from dash import Input, Output, dcc, html
from dcmon.dashboard import alerts, common
from dcmon.dashboard.common import badge, card, visible_ids
from dcmon.dashboard.i18n import (
    BROWSER_LOCALES,
    GRID_LOCALE_ZH,
    badge_text,
    num,
    pct,
    t,
)

from dcmon.errors import InputError
from dcmon.terms import KIND_TEXT, SIZE_TEXT, term

NOT_IN_FORCE = {"zh": " · 该政策在此期间不在有效期内", "en": " · measure not in force for this period"}
REFRESH_MS = 60_000  # a district overview changes slowly; the loader refreshes in the background


def layout(lang: str, url_period: dict) -> html.Div:
    return html.Div([
        dcc.Store(id="overview-params", data={"lang": lang, "url_period": url_period}),
        dcc.Interval(id="overview-tick", interval=REFRESH_MS),
        html.H2(t(lang, "overview"), id="overview-title"),
        html.Div(className="note", id="overview-basis"),
        html.Div(className="cards", id="overview-cards"),
        html.Ul(className="portfolio-checks", id="overview-checks"),
        alerts.panel(lang),
        dag.AgGrid(id="overview-grid", rowData=[], columnDefs=columns([], lang),
                   defaultColDef={"sortable": True, "filter": True, "resizable": True, "floatingFilter": True,
                                  "minWidth": 90, "width": 120},
                   getRowId="params.data.id",
                   dashGridOptions={"localeText": GRID_LOCALE_ZH if lang == "zh" else {}, "animateRows": False,
                                    "suppressDragLeaveHidesColumns": True, "tooltipShowDelay": 300,
                                    "suppressColumnVirtualisation": True},
                   style={"height": "calc(100vh - 260px)", "minHeight": "420px"}),
    ])


def _number_col(field: str, header: str, lang: str, digits: int, percent: bool = False) -> dict:
    fn = "dcmonPercent" if percent else "dcmonNumber"
    return {"field": field, "headerName": header, "type": "numericColumn", "filter": "agNumberColumnFilter",
            "valueFormatter": {"function": f"{fn}(params.value, '{BROWSER_LOCALES[lang]}', {digits})"}}


def columns(profiles: list[str], lang: str) -> list[dict]:
    cols = [{"field": "facility", "headerName": t(lang, "facility"), "cellRenderer": "FacilityLink",
             "pinned": "left", "width": 220},
            {"field": "id", "headerName": "ID"},
            {"field": "district", "headerName": t(lang, "district")},
            {"field": "city", "headerName": t(lang, "city")},
            {"field": "kind", "headerName": t(lang, "kind")},
            {"field": "size", "headerName": t(lang, "size")},
            _number_col("std_racks", t(lang, "std_racks"), lang, 1),
            _number_col("phys_racks", t(lang, "phys_racks"), lang, 0),
            _number_col("occupancy", t(lang, "occupancy"), lang, 1, percent=True),
            _number_col("pue", t(lang, "pue"), lang, 3),
            _number_col("compute", t(lang, "compute"), lang, 1, percent=True),
            _number_col("coverage", t(lang, "coverage"), lang, 1, percent=True)]
    style = {"styleConditions": [
        {"condition": "params.value && params.value.startsWith('✔')", "style": {"color": "#2e7d32", "fontWeight": "bold"}},
        {"condition": "params.value && params.value.startsWith('✘')", "style": {"color": "#c62828", "fontWeight": "bold"}},
        {"condition": "params.value && params.value.startsWith('?')", "style": {"color": "#b26a00"}}]}
    cols += [{"field": p, "headerName": p, "cellStyle": style, "headerTooltip": p} for p in profiles]
    return cols


def rows(result: dict, lang: str) -> tuple[list[dict], list[str]]:
    """Grid rows: the evaluation's figures as they are (the grid formats them), and badge texts."""
    profiles = sorted({p for f in result["facilities"] for p in f["profiles"]})
    out = []
    for f in result["facilities"]:
        name = f["name"] if lang == "zh" or not f.get("name_en") else f["name_en"]
        r = {"facility": name, "id": f["facility_id"],
             "district": f["district"], "city": f["city"], "kind": term(KIND_TEXT, lang, f["kind"]),
             "size": term(SIZE_TEXT, lang, f["size_class"]),
             "std_racks": f["standard_racks"], "phys_racks": f["physical_racks"], "occupancy": f["occupancy_rate"],
             "pue": f["pue"], "compute": f["compute_share"], "coverage": f["coverage"]}
        for p in profiles:
            pr = f["profiles"].get(p)
            na = pr is None or not pr["applicable"] or pr.get("verdict") == "not_applicable"
            r[p] = badge_text("not_applicable" if na else pr["eligible"], lang) \
                + (NOT_IN_FORCE[lang] if pr is not None and pr.get("in_force") is False else "")
        out.append(r)
    return out, profiles


OUTPUTS = (Output("overview-title", "children"), Output("overview-basis", "children"),
           Output("overview-cards", "children"), Output("overview-checks", "children"),
           Output("overview-grid", "rowData"), Output("overview-grid", "columnDefs"))
INPUTS = (Input("overview-params", "data"), Input("period-choice", "data"), Input("overview-tick", "n_intervals"))


def update(params: dict, choice: dict | None, _tick=None):
    """Fill the overview for this request's user, language and period."""
    params = params or {}
    lang = params.get("lang", "zh")
    user = common.current_user()
    try:
        period = common.period_from(choice, params.get("url_period"))
    except InputError as e:
        return t(lang, "bad_period"), common.error(str(e)), [], [], [], columns([], lang)
    ld = common.loader()
    entry = ld.evaluation_entry(period, visible_ids(ld.registry, user))
    result = entry.value
    data, profiles = rows(result, lang)
    pf = result.get("portfolio") or {}
    # city-wide and start-area aggregates cover every facility of the city: regulators and admins only
    city_view = getattr(user, "role", None) in ("regulator", "admin")
    checks = [html.Li([badge(c["status"], lang), f" {c['profile']} · {c['scope']} · {c.get('city', '')} · "
                       f"{t(lang, 'n_facilities').format(n=c.get('facilities', '?'))} · "
                       f"{c['metric']} {c.get('value_text', '')} {c['op']} {c['threshold']}"])
              for c in pf.get("checks", [])] if city_view else []
    cards = [card(t(lang, "portfolio_pue"), num(pf.get("pue"), lang, 3), id_="portfolio-pue"),
             card(t(lang, "portfolio_occ"), pct(pf.get("occupancy_rate"), lang), id_="portfolio-occ"),
             card(t(lang, "coverage"), pct(pf.get("coverage"), lang))]
    title = f"{t(lang, 'overview')} · {common.period_heading(result['period'], lang)}"
    basis = f"{t(lang, 'n_facilities').format(n=len(data))} · {common.computed_note(entry.computed_at, lang)}"
    return title, basis, cards, checks, data, columns(profiles, lang)


def register(app) -> None:
    app.callback(*OUTPUTS, *INPUTS)(update)
