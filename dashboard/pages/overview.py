"""Overview (``/``): every facility the user may see, a badge per policy profile, portfolio figures.

``layout(**query)`` is the empty page for the URL's query (Dash pages calls it; ``register`` adds
the page and its callbacks to an app); ``update`` fills it (the one callback of this page).
``update`` checks the user on every call and evaluates only the facilities that user may see;
every figure comes from ``metrics.evaluate`` through the loader.
"""
from __future__ import annotations

import dash_ag_grid as dag
import dash
from dash import ClientsideFunction, Input, Output, dcc, html
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
from dcmon.terms import (
    KIND_TEXT,
    NOT_IN_FORCE,
    SCOPE_TEXT,
    SIZE_TEXT,
    city_text,
    metric_name,
    profile_title,
    term,
    threshold_text,
    value_text,
)

REFRESH_MS = 60_000  # a district overview changes slowly; the loader refreshes in the background
DEFAULT_PROFILE = "chengdu-2023-cloud-retrofit"
# the grid's figure columns coloured by the selected profile's check on that figure
COLOURED = {"pue": ("pue",), "std_racks": ("racks", "standard_racks"), "compute": ("compute_share",)}
STATUS_STYLE = {"pass": {"backgroundColor": "#e8f5e9", "color": "#1b5e20"},
                "fail": {"backgroundColor": "#ffebee", "color": "#b71c1c", "fontWeight": "bold"},
                "inconclusive": {"backgroundColor": "#fff8e1", "color": "#8d6e00"}}


PATH = "/"


def layout(**query) -> html.Div:
    """The empty overview for the URL's query (``lang``, ``period`` or ``from``/``to``, ``profile``)."""
    lang, url_period, q = common.page_query(query)
    refused = common.refused_page(lang)
    if refused is not None:
        return refused
    profile = q.get("profile")
    return html.Div([
        dcc.Store(id="overview-params", data={"lang": lang, "url_period": url_period, "profile": profile}),
        dcc.Interval(id="overview-tick", interval=REFRESH_MS),
        dcc.Store(id="overview-profile-url"),
        html.H2(t(lang, "overview"), id="overview-title"),
        # said until the figures arrive: a server that has just started computes them first
        html.Div(t(lang, "computing"), className="note", id="overview-basis"),
        html.Div(className="cards", id="overview-cards"),
        html.Div([html.Span(t(lang, "profile") + " "),
                  dcc.Dropdown(id="overview-profile", value=profile, clearable=False, searchable=False,
                               style={"width": "440px"})],
                 style={"display": "flex", "alignItems": "center", "gap": "8px"}),
        html.Div(className="targets", id="overview-checks"),
        alerts.panel(lang),
        dag.AgGrid(id="overview-grid", rowData=None, columnDefs=columns([], lang),   # None: "loading", not "no rows"
                   defaultColDef={"sortable": True, "filter": True, "resizable": True, "floatingFilter": True,
                                  "minWidth": 80, "width": 110, "wrapHeaderText": True, "autoHeaderHeight": True},
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


def thresholds(profile: dict | None, lang: str) -> dict[str, tuple[str, str]]:
    """For each coloured column, the selected profile's requirement: (short sign text, sentence)."""
    out = {}
    if not profile:
        return out
    title = profile_title(profile["id"], profile.get("title"), lang, short=True)
    for col, metrics in COLOURED.items():
        c = next((c for c in profile.get("checks", []) if c["metric"] in metrics and not c.get("flag")), None)
        if c:
            short = threshold_text(c["metric"], c["op"], c["threshold"], lang)
            out[col] = (short, f"{title}：{metric_name(c['metric'], lang)} {short}" if lang == "zh"
                        else f"{title}: {metric_name(c['metric'], lang)} {short}")
    return out


def columns(profiles: list[dict], lang: str, selected: dict | None = None) -> list[dict]:
    """The facility name and one verdict column per profile pinned left (seen at 1366 px); figures after."""
    verdict_style = {"styleConditions": [
        {"condition": "params.value && params.value.startsWith('✔')", "style": {"color": "#2e7d32", "fontWeight": "bold"}},
        {"condition": "params.value && params.value.startsWith('✘')", "style": {"color": "#c62828", "fontWeight": "bold"}},
        {"condition": "params.value && params.value.startsWith('?')", "style": {"color": "#b26a00"}}]}
    cols = [{"field": "facility", "headerName": t(lang, "facility"), "cellRenderer": "FacilityLink",
             "pinned": "left", "width": 200, "tooltipField": "facility"}]
    # a measure not in force for the period is so for every facility: said once, in the header
    idle = " · " + ("未生效" if lang == "zh" else "not in force")
    cols += [{"field": p["id"],
              "headerName": profile_title(p["id"], p.get("title"), lang, short=True) + (idle if p.get("in_force") is False else ""),
              "headerTooltip": profile_title(p["id"], p.get("title"), lang)
              + (f" · {NOT_IN_FORCE[lang]}" if p.get("in_force") is False else ""), "cellStyle": verdict_style,
              "pinned": "left", "width": 112} for p in profiles]
    limits = thresholds(selected, lang)

    def coloured(col: dict, key: str) -> dict:
        if key not in limits:
            return col
        short, sentence = limits[key]
        conds = [{"condition": f"params.data && params.data['{key}_status'] === '{st}'", "style": style}
                 for st, style in STATUS_STYLE.items()]
        return {**col, "headerName": f"{col['headerName']}（{short}）" if lang == "zh" else f"{col['headerName']} ({short})",
                "headerTooltip": sentence, "cellStyle": {"styleConditions": conds}}

    cols += [{"field": "id", "headerName": t(lang, "facility_id"), "width": 160, "tooltipField": "id"},
             coloured(_number_col("pue", t(lang, "pue"), lang, 3), "pue"),
             coloured(_number_col("std_racks", t(lang, "std_racks"), lang, 1), "std_racks"),
             coloured(_number_col("compute", t(lang, "compute"), lang, 1, percent=True), "compute"),
             {"field": "city", "headerName": t(lang, "city"), "width": 90},
             {"field": "district", "headerName": t(lang, "district")},
             {"field": "kind", "headerName": t(lang, "kind"), "width": 130},
             {"field": "size", "headerName": t(lang, "size"), "width": 100},
             _number_col("phys_racks", t(lang, "phys_racks"), lang, 0),
             _number_col("occupancy", t(lang, "occupancy"), lang, 1, percent=True),
             _number_col("coverage", t(lang, "coverage"), lang, 1, percent=True)]
    return cols


def verdict_cell(pr: dict | None, lang: str) -> str:
    """A profile's verdict as the grid shows it: ✔ 达标 / ✘ 未达标 / ? 数据不足 / – 不适用."""
    na = pr is None or not pr["applicable"] or pr.get("verdict") == "not_applicable"
    return badge_text("not_applicable" if na else pr["eligible"], lang)


def rows(result: dict, lang: str, selected: str | None = None) -> tuple[list[dict], list[str]]:
    """Grid rows: the evaluation's figures as they are (the grid formats them), verdict texts, and the
    selected profile's check status for the coloured figures (decided in ``metrics``, not here)."""
    profiles = sorted({p for f in result["facilities"] for p in f["profiles"]})
    out = []
    for f in result["facilities"]:
        name = f["name"] if lang == "zh" or not f.get("name_en") else f["name_en"]
        r = {"facility": name, "id": f["facility_id"],
             "district": f["district"], "city": city_text(f["city"], lang), "kind": term(KIND_TEXT, lang, f["kind"]),
             "size": term(SIZE_TEXT, lang, f["size_class"]),
             "std_racks": f["standard_racks"], "phys_racks": f["physical_racks"], "occupancy": f["occupancy_rate"],
             "pue": f["pue"], "compute": f["compute_share"], "coverage": f["coverage"]}
        for p in profiles:
            r[p] = verdict_cell(f["profiles"].get(p), lang)
        sel = f["profiles"].get(selected) if selected else None
        for col, metrics in COLOURED.items():
            c = next((c for c in (sel or {}).get("checks", []) if c["metric"] in metrics and not c.get("flag")), None)
            r[f"{col}_status"] = c["status"] if c else None
        out.append(r)
    return out, profiles


def target_cards(checks: list[dict], profiles: dict, lang: str) -> list:
    """City-wide and start-area targets, one card each: what, where, the figure against the requirement."""
    out = []
    for c in checks:
        p = profiles.get(c["profile"], {})
        where = f"{city_text(c.get('city', ''), lang)} · {term(SCOPE_TEXT, lang, c['scope'])}"
        req = threshold_text(c["metric"], c["op"], c["threshold"], lang)
        figure = value_text(c, lang)
        sub = (f"{profile_title(c['profile'], p.get('title'), lang, short=True)} · "
               f"{t(lang, 'n_facilities').format(n=c.get('facilities', '?'))}")
        out.append(html.Div([
            html.Div([badge(c["status"], lang), " ", where], className="card-title"),
            html.Div([f"{metric_name(c['metric'], lang)} {figure}",
                      html.Span(f"（{t(lang, 'threshold')} {req}）" if lang == "zh" else f" ({t(lang, 'threshold')} {req})",
                                className="card-sub")], className="card-value", style={"fontSize": "18px"}),
            html.Div(sub, className="card-sub")], className="card target-card"))
    return out


OUTPUTS = (Output("overview-title", "children"), Output("overview-basis", "children"),
           Output("overview-cards", "children"), Output("overview-checks", "children"),
           Output("overview-grid", "rowData"), Output("overview-grid", "columnDefs"),
           Output("overview-profile", "options"), Output("overview-profile", "value"))
INPUTS = (Input("overview-params", "data"), Input("period-choice", "data"), Input("overview-tick", "n_intervals"),
          Input("overview-profile", "value"))


def update(params: dict, choice: dict | None, _tick=None, profile: str | None = None):
    """Fill the overview for this request's user, language, period and selected profile."""
    params = params or {}
    lang = params.get("lang", "zh")
    profile = profile or params.get("profile")  # the URL's, until one is chosen
    user = common.current_user()
    try:
        period = common.period_from(choice, params.get("url_period"))
    except InputError:
        return (t(lang, "bad_period"), common.period_error(lang, params.get("url_period")), [], [], [],
                columns([], lang), [], None)
    ld = common.loader()
    entry = ld.evaluation_entry(period, visible_ids(ld.registry, user))
    result = entry.value
    meta = {}
    for f in result["facilities"]:
        for pid, pr in f["profiles"].items():
            meta.setdefault(pid, {"id": pid, "title": pr.get("title"), "checks": pr.get("checks", []),
                                  "in_force": pr.get("in_force")})
    if profile not in meta:
        profile = DEFAULT_PROFILE if DEFAULT_PROFILE in meta else next(iter(sorted(meta)), None)
    data, ids = rows(result, lang, profile)
    pf = result.get("portfolio") or {}
    # city-wide and start-area aggregates cover every facility of the city: regulators and admins only
    city_view = getattr(user, "role", None) in ("regulator", "admin")
    checks = target_cards(pf.get("checks", []), meta, lang) if city_view else []
    if checks:
        checks = [html.H3(t(lang, "targets")), html.Div(checks, className="cards")]
    cards = [card(t(lang, "portfolio_pue"), num(pf.get("pue"), lang, 3), id_="portfolio-pue"),
             card(t(lang, "portfolio_occ"), pct(pf.get("occupancy_rate"), lang), id_="portfolio-occ"),
             card(t(lang, "coverage"), pct(pf.get("coverage"), lang))]
    title = f"{t(lang, 'overview')} · {common.period_heading(result['period'], lang)}"
    basis = f"{t(lang, 'n_facilities').format(n=len(data))} · {common.computed_note(entry.computed_at, lang)}"
    options = [{"label": profile_title(p, meta[p]["title"], lang), "value": p} for p in ids]
    return (title, basis, cards, checks, data, columns([meta[p] for p in ids], lang, meta.get(profile)),
            options, profile)


def register(app) -> None:
    dash.register_page(__name__, path=PATH, layout=layout)
    app.callback(*OUTPUTS, *INPUTS)(update)
    app.clientside_callback(ClientsideFunction(namespace="dcmon", function_name="profileInUrl"),
                            Output("overview-profile-url", "data"), Input("overview-profile", "value"))
