"""Overview: every facility the user may see, with a badge per policy profile, and portfolio figures."""
from __future__ import annotations

from dash import dash_table, html

from dcmon.dashboard.common import badge, card, visible_ids
from dcmon.dashboard.i18n import badge_text, num, pct, t


def rows(result: dict, lang: str) -> tuple[list[dict], list[str]]:
    """Grid rows (formatting only; every figure comes from the evaluation)."""
    profiles = sorted({p for f in result["facilities"] for p in f["profiles"]})
    out = []
    for f in result["facilities"]:
        r = {"facility": f"[{f['name']}](/facility/{f['facility_id']})", "id": f["facility_id"],
             "district": f["district"], "city": f["city"], "kind": f["kind"], "size": f["size_class"],
             "std_racks": round(f["standard_racks"], 1), "phys_racks": f["physical_racks"],
             "occupancy": None if f["occupancy_rate"] is None else round(f["occupancy_rate"] * 100, 1),
             "pue": None if f["pue"] is None else round(f["pue"], 3),
             "compute": None if f["compute_share"] is None else round(f["compute_share"] * 100, 1),
             "coverage": round(f["coverage"] * 100, 1)}
        for p in profiles:
            pr = f["profiles"].get(p)
            r[p] = badge_text("not_applicable" if pr is None or not pr["applicable"] else pr["eligible"], lang)
        out.append(r)
    return out, profiles


def render(loader, user, period, lang: str):
    ids = visible_ids(loader, user)
    result = loader.evaluation(period, ids)
    data, profiles = rows(result, lang)
    cols = [{"name": t(lang, "facility"), "id": "facility", "presentation": "markdown"},
            {"name": "id", "id": "id"}, {"name": t(lang, "district"), "id": "district"},
            {"name": t(lang, "city"), "id": "city"}, {"name": t(lang, "kind"), "id": "kind"},
            {"name": t(lang, "size"), "id": "size"}, {"name": t(lang, "std_racks"), "id": "std_racks", "type": "numeric"},
            {"name": t(lang, "phys_racks"), "id": "phys_racks", "type": "numeric"},
            {"name": t(lang, "occupancy") + " %", "id": "occupancy", "type": "numeric"},
            {"name": t(lang, "pue"), "id": "pue", "type": "numeric"},
            {"name": t(lang, "compute") + " %", "id": "compute", "type": "numeric"},
            {"name": t(lang, "coverage") + " %", "id": "coverage", "type": "numeric"}]
    cols += [{"name": p, "id": p} for p in profiles]
    style = [{"if": {"filter_query": f'{{{p}}} contains "✔"', "column_id": p}, "color": "#2e7d32", "fontWeight": "bold"}
             for p in profiles] + \
            [{"if": {"filter_query": f'{{{p}}} contains "✘"', "column_id": p}, "color": "#c62828", "fontWeight": "bold"}
             for p in profiles] + \
            [{"if": {"filter_query": f'{{{p}}} contains "?"', "column_id": p}, "color": "#b26a00"} for p in profiles]
    pf = result.get("portfolio") or {}
    checks = [html.Li([badge(c["status"], lang), f" {c['profile']} · {c['scope']} · {c['metric']} {c['op']} {c['threshold']}"])
              for c in pf.get("checks", [])]
    per = result["period"]
    return html.Div([
        html.H2(f"{t(lang, 'overview')} · {per['from']} — {per['to']}"),
        html.Div([card(t(lang, "portfolio_pue"), num(pf.get("pue"), lang, 3), id_="portfolio-pue"),
                  card(t(lang, "portfolio_occ"), pct(pf.get("occupancy_rate"), lang), id_="portfolio-occ"),
                  card(t(lang, "coverage"), pct(pf.get("coverage"), lang))], className="cards"),
        html.Ul(checks, className="portfolio-checks"),
        dash_table.DataTable(id="overview-grid", columns=cols, data=data, sort_action="native",
                             filter_action="native", page_size=50, markdown_options={"link_target": "_self"},
                             style_data_conditional=style, style_table={"overflowX": "auto"},
                             style_cell={"fontFamily": "inherit", "fontSize": "13px", "padding": "4px"}),
    ])
