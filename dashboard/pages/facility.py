"""Facility page (``/facility/<id>``): live PUE, period figures, trends, rack floor map, data quality.

Two callbacks, both checking the user on every call:

- ``update_period`` (period chosen, and once a minute): the period's PUE, occupancy, compute
  share and standard racks; today's, this quarter's and the trailing twelve months' PUE; the
  daily and monthly trends; energy by meter role.
- ``update_live`` (every 10 s, without a reload): live PUE over the last 15 minutes, IT and
  facility load, the rack floor map (latest power as a share of design power), data-quality
  events (meter silent, counter reset, rollover, gap, rejected payloads) and collector health.
- ``update_floor_texts`` (right after the page's first floor map): the map's hover texts, as a
  partial update (``Patch``) of the drawn figure.

Figures come from ``metrics`` through the loader; this module only lays them out.
"""
from __future__ import annotations

import hashlib
import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

import dash_ag_grid as dag
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import dash
from dash import Input, Output, Patch, State, dcc, html, no_update
from dcmon.dashboard import alerts, common
from dcmon.dashboard.common import card, forbidden, may_see
from dcmon.dashboard.i18n import (
    GRID_LOCALE_ZH,
    event_text,
    num,
    nums,
    pct,
    plotly_separators,
    t,
    timestamp,
)

from dcmon.errors import InputError
from dcmon.metrics.policy import DEFAULT_MIN_COVERAGE
from dcmon.terms import (
    IT_FROM_TEXT,
    KIND_TEXT,
    LABEL_TEXT,
    PUE_CATEGORY_TEXT,
    RACK_FUNCTION_TEXT,
    RACK_STATUS_TEXT,
    ROLE_TEXT,
    city_text,
    term,
)

LIVE_MS = 10_000
SLOW_MS = 60_000
HOVER = "%{text}<extra></extra>"   # a floor-map cell's hover label: its text, nothing else
HEALTH_STALE_S = 60  # a collector reports health every 10 s by default; three missed reports is stale


PATH_TEMPLATE = "/facility/<facility_id>"


def layout(facility_id: str | None = None, **query) -> html.Div:
    """The empty facility page, only for a facility this request's user may see."""
    lang, url_period, _ = common.page_query(query)
    refused = common.refused_page(lang, facility_id)
    if refused is not None:
        return refused
    graph = {"config": {"displayModeBar": False}, "figure": _empty_figure()}
    return html.Div([
        dcc.Store(id="facility-params", data={"facility_id": facility_id, "lang": lang, "url_period": url_period}),
        dcc.Interval(id="facility-tick", interval=LIVE_MS),
        dcc.Interval(id="facility-slow-tick", interval=SLOW_MS),
        html.H2(facility_id, id="facility-title"),
        html.P(id="facility-header"),
        html.Div([dcc.Link(t(lang, "subsidy"), href=f"/subsidy/{facility_id}" + common.state_query(lang, url_period),
                           id="facility-subsidy-link"),
                  html.Span(f" · {t(lang, 'refreshing')}", className="note")]),
        alerts.panel(lang, facility_id),
        html.Div(className="cards", id="facility-live-cards"),
        html.Div(className="cards", id="facility-period-cards"),
        html.Div(t(lang, "computing"), className="note", id="facility-basis"),
        dcc.Graph(id="trend-day", **graph),
        dcc.Graph(id="trend-month", **graph),
        dcc.Graph(id="energy-by-role", **graph),
        dcc.Graph(id="floor-map", **graph),
        dcc.Store(id="floor-map-drawn"),
        dcc.Store(id="floor-map-texts-due"),
        html.H3(t(lang, "events")),
        dag.AgGrid(id="events", rowData=[], columnDefs=[{"field": k, "headerName": t(lang, k)}
                                                        for k in ("time", "source", "event", "detail")],
                   defaultColDef={"sortable": True, "filter": True, "resizable": True},
                   dashGridOptions={"localeText": GRID_LOCALE_ZH if lang == "zh" else {}, "animateRows": False,
                                    "domLayout": "autoHeight", "pagination": True, "paginationPageSize": 10,
                                    "paginationPageSizeSelector": False},
                   columnSize="responsiveSizeToFit"),
        html.H3(t(lang, "health")),
        html.Ul(id="collector-health"),
    ])


def _empty_figure() -> dict:
    return {"data": [], "layout": {"height": 60, "margin": {"l": 0, "r": 0, "t": 0, "b": 0},
                                   "xaxis": {"visible": False}, "yaxis": {"visible": False}}}


def _no_data(fig: go.Figure, lang: str, why: str) -> go.Figure:
    """An empty chart says 无数据 and why, with no axes to misread."""
    fig.add_annotation(text=f"{t(lang, 'no_data')}<br><span style='font-size:12px'>{why}</span>", showarrow=False,
                       xref="paper", yref="paper", x=0.5, y=0.5, font=dict(size=16, color="#777"))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(yaxis2=dict(visible=False), showlegend=False, plot_bgcolor="white")
    return fig


# chart dates in the language: 7月6日 / 6 Jul
DATE_TICKS = {"zh": ("%-m月%-d日", "%Y年%-m月", "%Y年%-m月%-d日"), "en": ("%d %b", "%b %Y", "%d %b %Y")}


def pue_axis(values) -> dict:
    """A PUE axis of round ticks around the figures (1.20, 1.25, 1.30 …), never odd steps like 0.214."""
    v = [float(x) for x in values if x is not None and x == x]
    if not v:
        return {"visible": False}
    lo, hi = min(v), max(v)
    span = max(hi - lo, 0.05)
    step = next(s for s in (0.02, 0.05, 0.1, 0.2, 0.5, 1.0) if span / s <= 6)
    lo_t = math.floor(lo / step) * step - step
    hi_t = math.ceil(hi / step) * step + step
    return {"range": [max(lo_t, 0.0), hi_t], "dtick": step, "tick0": 0, "tickformat": ".2f"}


# ------------------------------------------------------------------------------------------- charts
def trend_figure(bins: pd.DataFrame | None, lang: str, title: str, monthly: bool) -> go.Figure:
    """Facility and IT energy as bars [kWh] and the PUE of each bin as a line (right axis)."""
    fig = go.Figure()
    if bins is not None and len(bins):
        x = list(bins["bin"])
        fig.add_bar(x=x, y=bins["facility_energy_kwh"], name=t(lang, "facility_kwh"), opacity=0.55)
        fig.add_bar(x=x, y=bins["it_energy_kwh"], name=t(lang, "it_kwh"), opacity=0.55)
        fig.add_scatter(x=x, y=bins["pue"], name="PUE", yaxis="y2", mode="lines+markers",
                        customdata=np.asarray(bins["coverage"], dtype=float) * 100,
                        hovertemplate="%{x}: PUE %{y:.3f}<br>" + t(lang, "coverage") + " %{customdata:.1f}%<extra></extra>")
    day, month, full = DATE_TICKS.get(lang, DATE_TICKS["zh"])
    fig.update_layout(title=title, barmode="group", height=300, margin=dict(l=60, r=60, t=40, b=30),
                      yaxis=dict(title="kWh", tickformat=",.0f", rangemode="tozero"), separators=plotly_separators(lang),
                      yaxis2=dict(title="PUE", overlaying="y", side="right", showgrid=False,
                                  **pue_axis([] if bins is None or not len(bins) else bins["pue"])),
                      xaxis=dict(type="date", tickformat=month if monthly else day,
                                 dtick="M1" if monthly else None, hoverformat=month if monthly else full),
                      legend=dict(orientation="h", y=-0.15))
    if bins is None or not len(bins) or not (bins["facility_energy_kwh"] > 0).any():
        return _no_data(fig, lang, t(lang, "no_data_period"))
    return fig


def role_figure(roles: dict[str, float], lang: str) -> go.Figure:
    fig = go.Figure(go.Bar(x=[term(ROLE_TEXT, lang, r) for r in roles], y=list(roles.values()),
                           hovertemplate="%{x}: %{y:,.1f} kWh<extra></extra>"))
    fig.update_layout(title=t(lang, "by_role"), height=260, separators=plotly_separators(lang), margin=dict(l=60, r=20, t=40, b=30),
                      yaxis=dict(title="kWh", tickformat=",.0f", rangemode="tozero"))
    if not roles or not any(v and v > 0 for v in roles.values()):
        return _no_data(fig, lang, t(lang, "no_data_roles"))
    return fig


def _natural(values) -> list:
    """Labels in natural order (row 2 before row 10)."""
    def key(v):
        s = str(v)
        return (0, float(s), s) if s.replace(".", "", 1).isdigit() else (1, 0.0, s)
    return sorted(set(values), key=key)


def inventory_digest(racks: pd.DataFrame) -> bytes:
    """A digest of the rack inventory as the floor map places and describes it (not the power)."""
    h = hashlib.blake2b(digest_size=16)
    for col in ("rack_id", "room", "row", "position", "status", "function"):
        h.update("\x1f".join(map(str, racks[col].tolist())).encode())
    h.update(racks["design_power_kw"].to_numpy(dtype="float64").tobytes())
    return h.digest()


@dataclass(frozen=True)
class _FloorBase:
    """What the floor map draws from the inventory alone: kept per (inventory, language)."""
    xs: list
    ys: list
    xi: np.ndarray
    yi: np.ndarray
    heads: list   # each rack's hover text before its power ...
    tails: list   # ... and after it


_FLOOR_BASES: OrderedDict = OrderedDict()
_FLOOR_BASES_MAX = 64
_FLOOR_LOCK = threading.Lock()


def _floor_base(racks: pd.DataFrame, lang: str, digest: bytes) -> _FloorBase:
    key = (lang, digest)
    with _FLOOR_LOCK:
        base = _FLOOR_BASES.get(key)
        if base is not None:
            _FLOOR_BASES.move_to_end(key)
            return base
    y = [f"{room} · {row}" for room, row in zip(racks["room"].tolist(), racks["row"].tolist())]
    x = list(map(str, racks["position"].tolist()))
    ys, xs = _natural(y), _natural(x)
    fn_words, st_words = RACK_FUNCTION_TEXT.get(lang, RACK_FUNCTION_TEXT["zh"]), RACK_STATUS_TEXT.get(lang, RACK_STATUS_TEXT["zh"])
    design = nums(racks["design_power_kw"].to_numpy(dtype=float), lang, 1)
    base = _FloorBase(xs=xs, ys=ys, xi=pd.Index(xs).get_indexer(x), yi=pd.Index(ys).get_indexer(y),
                      heads=[f"{r}<br>" for r in racks["rack_id"].tolist()],
                      tails=[f" / {d} kW<br>{fn_words.get(fn, fn)} · {st_words.get(st, st)}"
                             for d, fn, st in zip(design, racks["function"].tolist(), racks["status"].tolist())])
    with _FLOOR_LOCK:
        _FLOOR_BASES[key] = base
        while len(_FLOOR_BASES) > _FLOOR_BASES_MAX:
            _FLOOR_BASES.popitem(last=False)
    return base


def floor_figure(racks: pd.DataFrame, lang: str, digest: bytes | None = None) -> dict:
    """Racks as cells of a heatmap: room·row down, position across, colour = share of design power.

    One heatmap trace (not a marker per rack) keeps a 10 000-rack floor quick to draw, and the
    figure is a plain dict (no per-element validation) because it is rebuilt every 10 s; what
    depends on the inventory alone (cell positions, hover texts) is built once per inventory and
    language. Racks without a reading in the window are grey; a share above 1 (over design power)
    is drawn at the top of the scale.
    """
    layout = {"title": {"text": t(lang, "floor")}, "margin": {"l": 90, "r": 20, "t": 60, "b": 20},
              "yaxis": {"type": "category", "autorange": "reversed"}, "xaxis": {"type": "category", "side": "top"},
              "plot_bgcolor": "white", "separators": plotly_separators(lang), "height": 200}
    if not len(racks):
        layout.update(height=160, xaxis={"visible": False}, yaxis={"visible": False},
                      annotations=[{"text": f"{t(lang, 'no_data')}：{t(lang, 'no_racks')}" if lang == "zh"
                                    else f"{t(lang, 'no_data')}: {t(lang, 'no_racks')}", "showarrow": False,
                                    "xref": "paper", "yref": "paper", "x": 0.5, "y": 0.5, "font": {"size": 16, "color": "#777"}}])
        return {"data": [], "layout": layout}
    base = _floor_base(racks, lang, digest or inventory_digest(racks))
    ys, xs, yi, xi = base.ys, base.xs, base.yi, base.xi
    no_reading = -0.1
    share = racks["share"].to_numpy(dtype=float)
    z = np.full((len(ys), len(xs)), np.nan)
    z[yi, xi] = np.where(np.isnan(share), no_reading, np.minimum(share, 1.2))
    text = np.full((len(ys), len(xs)), "", dtype=object)
    none = t(lang, "no_reading")
    power = [none if p == "—" else f"{p} kW ({s if s == '—' else s + '%'})" for p, s in
             zip(nums(racks["power_kw"].to_numpy(dtype=float), lang, 2), nums(share * 100, lang, 0))]
    text[yi, xi] = [f"{h}{p}{tl}" for h, p, tl in zip(base.heads, power, base.tails)]
    grey = 0.1 / 1.3
    scale = [[0, "#bdbdbd"], [grey, "#bdbdbd"], [grey + 1e-9, "#1a9850"], [grey + (1 - grey) * 0.45, "#fee08b"],
             [grey + (1 - grey) * 0.77, "#f46d43"], [1, "#a50026"]]
    trace = {"type": "heatmap", "x": xs, "y": ys, "z": np.where(np.isnan(z), None, z).tolist(), "text": text.tolist(),
             "hovertemplate": HOVER, "zmin": no_reading, "zmax": 1.2, "colorscale": scale,
             "xgap": 1, "ygap": 1,
             "colorbar": {"title": {"text": "功率/设计功率" if lang == "zh" else "P / P<sub>design</sub>"}, "tickvals": [no_reading, 0, 0.5, 1, 1.2],
                          "ticktext": [none, "0%", "50%", "100%", "≥120%"]}}
    layout["height"] = max(300, min(1400, 14 * len(ys) + 100))
    return {"data": [trace], "layout": layout}


def pue_card(title: str, fig: dict, lang: str, id_: str | None = None, why: str = "no_data_no_pue") -> html.Div:
    """A PUE card with its coverage; below the coverage a check needs, the card is marked as such."""
    cov = fig.get("coverage")
    low = fig.get("pue") is not None and (cov is None or cov < DEFAULT_MIN_COVERAGE)
    sub = f"{t(lang, 'coverage')} {pct(cov, lang)}"
    if fig.get("pue") is None:
        sub += " · " + t(lang, why)
    c = card(title, num(fig.get("pue"), lang, 3), sub, id_=id_)
    if low:
        c.className = "card card-warn"
        c.style = {"borderColor": "#f9a825", "background": "#fff8e1"}
        c.children.append(html.Div("⚠ " + t(lang, "low_coverage"), className="card-warn-note",
                                   style={"fontSize": "11px", "color": "#8d6e00", "fontWeight": "bold"}))
    return c


# ------------------------------------------------------------------------------------------- callbacks
def _visible(params: dict | None):
    """The page's facility if this request's user may see it, else None (checked per call)."""
    ld = common.loader()
    fid = (params or {}).get("facility_id")
    return ld.registry.get(fid) if may_see(ld.registry, common.current_user(), fid) else None


def _context(params: dict | None, choice: dict | None):
    """(lang, facility, period, user-allowed) for a callback; access is checked here, per call."""
    params = params or {}
    lang = params.get("lang", "zh")
    fac = _visible(params)
    if fac is None:
        return lang, None, None
    return lang, fac, common.period_from(choice, params.get("url_period"))


PERIOD_OUTPUTS = (Output("facility-title", "children"), Output("facility-header", "children"),
                  Output("facility-period-cards", "children"), Output("facility-basis", "children"),
                  Output("trend-day", "figure"), Output("trend-month", "figure"), Output("energy-by-role", "figure"))
PERIOD_INPUTS = (Input("facility-params", "data"), Input("period-choice", "data"),
                 Input("facility-slow-tick", "n_intervals"))


def update_period(params: dict, choice: dict | None, _tick=None):
    """The period's figures and the now-relative PUEs (today, this quarter, trailing 12 months)."""
    try:
        lang, fac, period = _context(params, choice)
    except InputError:
        lang = (params or {}).get("lang", "zh")
        return (t(lang, "bad_period"), common.period_error(lang, (params or {}).get("url_period")), [], "",
                _empty_figure(), _empty_figure(), _empty_figure())
    if fac is None:
        return (forbidden(lang), "", [], "", _empty_figure(), _empty_figure(), _empty_figure())
    fig, today_fig, this_q, ttm = common.loader().facility_page_figures(fac.id, period, common.today_china())
    name = fac.name if lang == "zh" or not fac.name_en else fac.name_en
    header = (f"{fac.operator} · {city_text(fac.city, lang)} {fac.district} · {term(KIND_TEXT, lang, fac.kind)} · "
              f"{term(PUE_CATEGORY_TEXT, lang, fac.pue_category)} · "
              f"{t(lang, 'period')} {common.period_heading({'from': period.first_day.isoformat(), 'to': period.last_day.isoformat()}, lang)}")
    cards = [pue_card(t(lang, "period_pue"), fig, lang, "period-pue"), pue_card(t(lang, "today"), today_fig, lang),
             pue_card(t(lang, "this_quarter"), this_q, lang), pue_card(t(lang, "ttm"), ttm, lang),
             card(t(lang, "occupancy"), pct(fig["occupancy_rate"], lang), id_="period-occupancy"),
             card(t(lang, "compute"), pct(fig["compute_share"], lang), id_="period-compute"),
             card(t(lang, "std_racks"), num(fig["standard_racks"], lang),
                  f"{t(lang, 'phys_racks')} {num(fig['physical_racks'], lang, 0)}")]
    basis = (f"{t(lang, 'pue_label')}: {term(LABEL_TEXT, lang, fig['pue_label'])} · "
             f"{t(lang, 'it_from')}: {term(IT_FROM_TEXT, lang, fig['it_energy_from'])}")
    return (f"{name} ({fac.id})", header, cards, basis,
            trend_figure(fig.get("bins"), lang, t(lang, "trend_day"), monthly=False),
            trend_figure(ttm.get("bins"), lang, t(lang, "trend_month"), monthly=True),
            role_figure(fig["energy_by_role_kwh"], lang))


LIVE_OUTPUTS = (Output("facility-live-cards", "children"), Output("floor-map", "figure"),
                Output("events", "rowData"), Output("collector-health", "children"), Output("floor-map-drawn", "data"),
                Output("floor-map-texts-due", "data"))
LIVE_INPUTS = (Input("facility-params", "data"), Input("period-choice", "data"), Input("facility-tick", "n_intervals"),
               State("floor-map-drawn", "data"))


def floor_signature(racks: pd.DataFrame, lang: str, digest: bytes | None = None) -> str:
    """A digest of what the floor map shows, so an unchanged map is not sent again every 10 s."""
    h = hashlib.blake2b(lang.encode(), digest_size=16)
    h.update(digest or inventory_digest(racks))
    h.update(racks["power_kw"].to_numpy(dtype="float64").tobytes())
    return h.hexdigest()


def events_rows(fac, fig: dict, meters: list[dict], rejected: list[dict], lang: str) -> list[dict]:
    """Data-quality events, newest first: silent meters now, quarantined payloads, the period's counter events."""
    rows = []
    for m in meters:
        if m["silent"]:
            detail = (t(lang, "no_data") if m["last_ts"] is None else
                      f"{t(lang, 'last_reading')} {timestamp(m['last_ts'], fac.timezone, lang)}")
            rows.append({"time": "", "source": m["meter_id"], "event": event_text("silent", lang), "detail": detail})
    for r in reversed(rejected):
        rows.append({"time": timestamp(r.get("received_at_ms"), fac.timezone, lang), "source": r.get("topic", ""),
                     "event": event_text("rejected", lang), "detail": r.get("reason", "")})
    for e in reversed(fig["data_quality"]["event_samples"][-50:]):
        if e["event"] == "gap":
            detail = f"{num(e.get('hours'), lang, 2)} {t(lang, 'hours')}"
        else:
            detail = f"{num(e.get('energy_kwh'), lang, 3)} kWh"
        rows.append({"time": timestamp(e["ts"], fac.timezone, lang), "source": e.get("source_id", ""),
                     "event": event_text(e["event"], lang), "detail": detail})
    return rows


def health_items(health: dict[str, dict], lang: str, now_ms: int | None = None, facility_id: str | None = None,
                 only_facility: bool = False) -> list:
    """One line per collector: connected / stale, message and reading rates, totals, this facility's
    accepted readings and rejects, queue and ack lag, last report.

    The rate is the collector's own over its last report interval; when that is empty (a report
    right after another) the average since the collector started is shown instead, marked so.

    ``only_facility``: the viewer is an operator: show only ``facility_id``'s figures (its accepted and
    rejected readings), never the collector-wide ones, which describe every facility's traffic."""
    now_ms = now_ms or int(time.time() * 1000)
    out = []
    for name, h in sorted(health.items()):
        updated = h.get("updated_at_ms")
        stale = updated is None or now_ms - updated > HEALTH_STALE_S * 1000
        state = t(lang, "stale") if stale else t(lang, "connected" if h.get("connected") else "disconnected")
        colour = "#c62828" if stale or not h.get("connected") else "#2e7d32"
        mine = (h.get("by_facility") or {}).get(facility_id) or {}
        rejects_here = sum((mine.get("rejects_by_reason") or {}).values())
        if only_facility:
            out.append(html.Li([html.B(name), " · ", html.Span(state, style={"color": colour}),
                                f" · {t(lang, 'accepted')} {num(mine.get('accepted', 0), lang, 0)}, "
                                f"{t(lang, 'rejected')} {num(rejects_here, lang, 0)}"
                                f" · {t(lang, 'updated')} {timestamp(updated, 'Asia/Shanghai', lang)}"]))
            continue
        up_s = ((updated or 0) - (h.get("started_at_ms") or updated or 0)) / 1000
        msg_rate, rd_rate, avg = h.get("messages_per_s"), h.get("readings_per_s"), False
        if not msg_rate and h.get("messages") and up_s > 0:
            msg_rate, rd_rate, avg = h["messages"] / up_s, (h.get("readings") or 0) / up_s, True
        note = (f"（{t(lang, 'avg_rate')}）" if lang == "zh" else f" ({t(lang, 'avg_rate')})") if avg else ""
        parts = [f"{num(msg_rate, lang, 1)} {t(lang, 'msg_s')}", f"{num(rd_rate, lang, 1)} {t(lang, 'readings_s')}{note}",
                 f"{t(lang, 'total')} {num(h.get('messages'), lang, 0)} {t(lang, 'messages')} / "
                 f"{num(h.get('readings'), lang, 0)} {t(lang, 'readings')}"]
        if facility_id:
            parts.append(f"{t(lang, 'accepted')} {num(mine.get('accepted', 0), lang, 0)}, "
                         f"{t(lang, 'rejected')} {num(rejects_here, lang, 0)}")
        parts += [f"{t(lang, 'rejected')} {num(h.get('rejected'), lang, 0)}", f"{t(lang, 'queue')} {num(h.get('queue'), lang, 0)}",
                  f"{t(lang, 'ack_lag')} {num(h.get('ack_lag_ms'), lang, 0)} ms",
                  f"{t(lang, 'updated')} {timestamp(updated, 'Asia/Shanghai', lang)}"]
        out.append(html.Li([html.B(name), " · ", html.Span(state, style={"color": colour}), " · " + " · ".join(parts)]))
    return out or [html.Li(t(lang, "no_data"))]


def _load_text(live: dict, key: str, lang: str) -> str:
    """A live load [kW]; with no reading in the window it is unknown (—), not 0 kW."""
    if not live.get("coverage"):
        return "—"
    return f"{num(live[key], lang)} kW"


def update_live(params: dict, choice: dict | None, _tick=None, drawn: str | None = None):
    """The live part of the page, refreshed every 10 s while the page is open.

    ``drawn`` is the digest of the floor map the browser already shows: when the racks have not
    reported anything new, the map (10 000 cells at a large site) is not rebuilt or sent again.
    """
    try:
        lang, fac, period = _context(params, choice)
    except InputError:
        return [], _empty_figure(), [], [], None, None
    if fac is None:
        return [], _empty_figure(), [], [], None, None
    ld = common.loader()
    live = ld.live(fac.id)
    cards = [pue_card(t(lang, "live_pue"), live, lang, "live-pue", why="no_data_live"),
             card(t(lang, "it_load"), _load_text(live, "it_load_kw", lang), id_="live-it-load"),
             card(t(lang, "fac_load"), _load_text(live, "facility_load_kw", lang), id_="live-facility-load")]
    events = events_rows(fac, ld.figures(period, fac.id, "day"), ld.meters(fac.id), ld.rejected(fac.id), lang)
    racks = ld.racks(fac.id)
    digest = inventory_digest(racks)
    signature = floor_signature(racks, lang, digest)
    floor, texts_due = no_update, no_update
    if drawn != signature:
        floor = floor_figure(racks, lang, digest)
        if drawn is None and floor["data"]:
            # the page's first map: its cells now, its hover texts (10 000 strings at a large site, most of
            # the browser's work on the figure) in a second response right after it is drawn
            floor = _without_hover_texts(floor, (fac.id, lang, signature))
            texts_due = signature
    user = common.current_user()
    only = user is None or user.role == "operator"   # operators: their facility's figures only
    return (cards, floor, events, health_items(ld.collector_health(), lang, facility_id=fac.id, only_facility=only),
            signature, texts_due)


_FLOOR_TEXTS: OrderedDict = OrderedDict()   # (facility id, language, map signature) → hover texts
_FLOOR_TEXTS_MAX = 32


def _without_hover_texts(fig: dict, key: tuple) -> dict:
    """The floor map without its hover texts (kept for :func:`update_floor_texts` under ``key``)."""
    trace = dict(fig["data"][0])
    text = trace.pop("text")
    trace.pop("hovertemplate", None)
    trace["hoverinfo"] = "none"
    with _FLOOR_LOCK:
        _FLOOR_TEXTS[key] = text
        while len(_FLOOR_TEXTS) > _FLOOR_TEXTS_MAX:
            _FLOOR_TEXTS.popitem(last=False)
    return {**fig, "data": [trace, *fig["data"][1:]]}


FLOOR_TEXT_OUTPUT = Output("floor-map", "figure", allow_duplicate=True)
FLOOR_TEXT_INPUTS = (Input("floor-map-texts-due", "data"), State("facility-params", "data"))


def update_floor_texts(due: str | None, params: dict | None):
    """The hover texts of the floor map the browser has just drawn without them, as a ``Patch``
    of its trace: each rack's id, measured power and share, design power, function and status."""
    fac = _visible(params)
    if fac is None or not due:
        return no_update
    lang = (params or {}).get("lang", "zh")
    with _FLOOR_LOCK:
        text = _FLOOR_TEXTS.pop((fac.id, lang, due), None)
    if text is None:   # forgotten (many pages opened since) or drawn by another server process: the racks now
        fig = floor_figure(common.loader().racks(fac.id), lang)
        if not fig["data"]:
            return no_update
        text = fig["data"][0]["text"]
    patch = Patch()
    trace = patch["data"][0]
    trace["text"] = text
    trace["hovertemplate"] = HOVER
    del trace["hoverinfo"]
    return patch


def register(app) -> None:
    dash.register_page(__name__, path_template=PATH_TEMPLATE, layout=layout)
    app.callback(*PERIOD_OUTPUTS, *PERIOD_INPUTS)(update_period)
    app.callback(*LIVE_OUTPUTS, *LIVE_INPUTS)(update_live)
    app.callback(FLOOR_TEXT_OUTPUT, *FLOOR_TEXT_INPUTS, prevent_initial_call=True)(update_floor_texts)
