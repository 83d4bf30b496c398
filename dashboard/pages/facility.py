"""Facility page: live PUE, period PUE, trends, energy by role, rack floor map, data quality, collector health."""
from __future__ import annotations

import datetime as dt

import plotly.graph_objects as go
from dash import dash_table, dcc, html

from dcmon.dashboard.common import card, default_quarter, forbidden
from dcmon.dashboard.i18n import num, pct, t
from dcmon.periods import Period, quarter


def _trend(bins: list[dict] | None, lang: str, title: str, id_: str):
    fig = go.Figure()
    if bins:
        x = [b["bin"] for b in bins]
        fig.add_bar(x=x, y=[b["facility_energy_kwh"] for b in bins], name=t(lang, "facility_kwh"), opacity=0.5)
        fig.add_bar(x=x, y=[b["it_energy_kwh"] for b in bins], name=t(lang, "it_kwh"), opacity=0.5)
        fig.add_scatter(x=x, y=[b["pue"] for b in bins], name="PUE", yaxis="y2", mode="lines+markers")
    fig.update_layout(title=title, barmode="group", height=300, margin=dict(l=40, r=40, t=40, b=30),
                      yaxis=dict(title="kWh"), yaxis2=dict(title="PUE", overlaying="y", side="right"),
                      legend=dict(orientation="h"))
    return dcc.Graph(id=id_, figure=fig, config={"displayModeBar": False})


def _floor(racks, lang: str):
    """Scatter of racks by room/row (y) and position (x), coloured by share of design power."""
    fig = go.Figure()
    if len(racks):
        y = racks["room"].astype(str) + "-" + racks["row"].astype(str)
        hover = [f"{r.rack_id}<br>{r.function} · {r.status}<br>{'—' if r.power_kw != r.power_kw else f'{r.power_kw:.2f}'} kW"
                 f" / {r.design_power_kw:g} kW" for r in racks.itertuples()]
        fig.add_scatter(x=racks["position"].astype(str), y=y, mode="markers", text=hover, hoverinfo="text",
                        marker=dict(symbol="square", size=9, color=racks["share"].fillna(-0.05), cmin=0, cmax=1,
                                    colorscale="RdYlGn_r", colorbar=dict(title="P/Pdesign")))
    fig.update_layout(title=t(lang, "floor"), height=max(300, min(900, 12 * racks["row"].nunique() * max(1, racks["room"].nunique()))),
                      margin=dict(l=60, r=20, t=40, b=30), yaxis=dict(type="category"), xaxis=dict(type="category"))
    return dcc.Graph(id="floor-map", figure=fig, config={"displayModeBar": False})


def render(loader, user, facility_id: str, period: Period, lang: str):
    if facility_id not in loader.registry.facilities or user is None or not user.may_see(facility_id):
        return forbidden(lang)
    fac = loader.registry.get(facility_id)
    fig = loader.figures(period, facility_id, "day")
    live = loader.live(facility_id)
    today_local = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).date()
    today = loader.figures(Period(today_local, today_local), facility_id, None)
    this_q = loader.figures(quarter(default_quarter(today_local)), facility_id, None)
    ttm = loader.figures(Period(today_local.replace(day=1) - dt.timedelta(days=365) + dt.timedelta(days=1), today_local),
                         facility_id, "month")
    racks = loader.racks(facility_id)
    events = [{"source": e.get("source_id", ""), "event": e["event"],
               "time": dt.datetime.fromtimestamp(e["ts"] / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M"),
               "detail": str(e.get("energy_kwh", e.get("hours", "")))} for e in fig["data_quality"]["event_samples"][-20:]]
    events += [{"source": r.get("topic", ""), "event": "rejected", "time": r.get("time", ""), "detail": r.get("reason", "")}
               for r in loader.rejected(facility_id)]
    silent = [m["meter_id"] for m in fig["meters"] if m["readings"] == 0]
    events += [{"source": m, "event": "silent", "time": "", "detail": "no readings in the period"} for m in silent]
    health = [html.Li(f"{name}: {h.get('state', '')} · {h.get('messages_per_s', h.get('rate_msg_s', ''))} msg/s · "
                      f"rejected {h.get('rejected', '')} · {t(lang, 'updated')} {h.get('updated_at', h.get('time', ''))}")
              for name, h in loader.collector_health().items()]
    roles = fig["energy_by_role_kwh"]
    role_fig = go.Figure(go.Bar(x=list(roles), y=list(roles.values())))
    role_fig.update_layout(title=t(lang, "by_role"), height=260, margin=dict(l=40, r=20, t=40, b=30))
    name = fac.name if lang == "zh" or not fac.name_en else fac.name_en
    return html.Div([
        html.H2(f"{name} ({fac.id})", id="facility-title"),
        html.P(f"{fac.operator} · {fac.district} · {fac.kind} · PUE cat. {fac.pue_category} · "
               f"{t(lang, 'period')} {period.first_day} — {period.last_day}"),
        dcc.Link(t(lang, "subsidy"), href=f"/subsidy/{fac.id}"),
        html.Div([card(t(lang, "live_pue"), num(live["pue"], lang, 3), f"{t(lang, 'coverage')} {pct(live['coverage'], lang)}",
                       id_="live-pue"),
                  card(t(lang, "it_load"), f"{num(live['it_load_kw'], lang)} kW"),
                  card(t(lang, "fac_load"), f"{num(live['facility_load_kw'], lang)} kW"),
                  card(t(lang, "today"), num(today["pue"], lang, 3)),
                  card(t(lang, "this_quarter"), num(this_q["pue"], lang, 3)),
                  card(t(lang, "ttm"), num(ttm["pue"], lang, 3)),
                  card(t(lang, "period"), num(fig["pue"], lang, 3), f"{t(lang, 'coverage')} {pct(fig['coverage'], lang)}",
                       id_="period-pue"),
                  card(t(lang, "occupancy"), pct(fig["occupancy_rate"], lang)),
                  card(t(lang, "compute"), pct(fig["compute_share"], lang)),
                  card(t(lang, "std_racks"), num(fig["standard_racks"], lang))], className="cards"),
        _trend(fig.get("bins").to_dict("records") if fig.get("bins") is not None else None, lang, t(lang, "trend_day"), "trend-day"),
        _trend(ttm.get("bins").to_dict("records") if ttm.get("bins") is not None else None, lang, t(lang, "trend_month"), "trend-month"),
        dcc.Graph(id="energy-by-role", figure=role_fig, config={"displayModeBar": False}),
        _floor(racks, lang),
        html.H3(t(lang, "events")),
        dash_table.DataTable(id="events", data=events, columns=[{"name": k, "id": k} for k in ("time", "source", "event", "detail")],
                             page_size=15, style_cell={"fontSize": "12px", "textAlign": "left"}),
        html.H3(t(lang, "health")), html.Ul(health or [html.Li(t(lang, "no_data"))], id="collector-health"),
    ])
