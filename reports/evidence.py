"""Subsidy evidence report: the pack an applicant files (seed 001 二(二)3), as HTML or PDF.

Everything printed comes from :func:`dcmon.metrics.evaluate.evaluate` (with monthly bins).
The report embeds a machine-readable summary (the figures, the period, the options, the
config fingerprint and the content digest of the readings of every source and month) that
``dcmon verify`` recomputes. HTML: ``<script type="application/json" id="dcmon-summary">``;
PDF: an attached file ``dcmon-summary.json``, and a PAdES signature over the whole file
(:mod:`dcmon.reports.keys`). The rendering is a function of the data and the summary's
provenance (issue time, software, signer), so ``verify`` re-renders the document and compares
it whole. Charts are inline SVG, so the HTML works offline and the PDF keeps
vector graphics. Chinese renders in the PDF with Debian ``fonts-noto-cjk``.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import html
import threading
from pathlib import Path

import orjson

import pandas as pd

from dcmon.metrics.applicant import applicant_pack
from dcmon.metrics.evaluate import Options, evaluate, inventory_at
from dcmon.metrics.exact import decide, figure_text, ratio
from dcmon.metrics.racks import racks_by
from dcmon import terms
from dcmon.reports.applicant import PACK_CSS, pack_html, verdict_note, window_row
from dcmon.reports.common import (LABEL_TEXT, SIZE_TEXT, canonical, check_lang, fmt_num, month_digests,
                                  provenance, reading_digests)
from dcmon.store.base import DIGEST_METHOD

SUMMARY_ID = "dcmon-summary"
SUMMARY_NAME = "dcmon-summary.json"
SUMMARY_SCHEMA = "dcmon-evidence/2"
DEFAULT_PROFILE = "chengdu-2023-cloud-retrofit"
# one sans-serif family for every text, page numbers and the digest table's kind column included: each
# family WeasyPrint uses is another CJK font subset in the PDF (Noto CJK: tens of MB to subset each)
VERIFY_COMMAND = '<span class="nowrap">dcmon verify</span>'   # never broken across lines
SANS = '"Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "Microsoft YaHei", sans-serif'

# figures verify recomputes: (path in the summary, description)
VERIFIED = ("pue", "facility_energy_kwh", "it_energy_kwh", "coverage", "physical_racks", "in_service_racks",
            "standard_racks", "occupancy_rate", "compute_share", "compute_share_prior_year_end")

T = {
    "zh": {
        "title": "数据中心改造补贴申报佐证材料", "identity": "一、申报主体与数据中心", "window": "二、评估期",
        "method": "三、计量与计算方法", "monthly": "四、月度PUE", "energy": "五、能耗构成", "racks": "六、机架清单与标准机架折算",
        "checks": "七、申报条件核验", "subsidy": "八、补贴测算", "quality": "九、数据覆盖与异常处理", "provenance": "十、数据来源与可复核性",
        "operator": "运营主体", "credit": "统一社会信用代码", "facility": "数据中心", "district": "所在区（市）县",
        "kind": "类型", "commissioned": "投运日期", "retrofit": "改造完成日期", "period": "评估期",
        "tz": "时区（评估期为该时区的日历日）", "pue_cat": "PUE计量类别", "meters": "电表及其角色", "role": "角色",
        "std_rule": "标准机架 = Σ机架设计功率 ÷ 2.5 kW（不含已退役机架）", "cs_reading": "计算功能占比口径",
        "clauses": "引用条款", "month": "月份", "fac_kwh": "总耗电量 kWh", "it_kwh": "IT耗电量 kWh", "coverage": "覆盖率",
        "role_kwh": "各角色耗电量 kWh", "room": "机房", "function": "功能", "count": "机架数", "design": "设计功率 kW",
        "std": "标准机架", "status": "状态", "occupancy": "上架率", "compute_share": "计算功能占比",
        "prior": "上年末计算功能占比（{date}）", "metric": "指标", "value": "数值", "threshold": "条件", "margin": "余量",
        "result": "结果", "clause": "条款", "eligible": "综合结论", "steps": "测算步骤", "upper": "（上限估算：未提供改造成本或政策仅规定上限）",
        "events": "异常事件", "event": "事件", "count_n": "次数", "rejected": "被拒收的数据（隔离区）", "late": "迟到读数",
        "software": "软件版本", "config": "配置指纹 SHA-256", "files": "读数内容摘要 SHA-256（按类别和月份汇总）",
        "files_note": "每个数据源每月的摘要列在内嵌的机器可读摘要文件中，由 {verify} 逐一复算核对；"
                      "本表每行的 SHA-256 为该类别该月各数据源摘要行“数据源编号 读数条数 摘要”（按数据源编号排序，每行以换行结尾）的 SHA-256。",
        "sources": "数据源数", "kind_col": "类别",
        "source": "数据源", "rows": "读数条数", "it_from": "IT能耗来源", "meter_id": "电表编号", "meter_method": "计量方法",
        "racks_suffix": "（机架）", "fac_cov": "总耗电", "reason": "原因", "signed_by": "本报告已数字签名（PAdES），签名证书 SHA-256 指纹",
        "unsigned": "未签名：本报告没有数字签名，文件内容可被改动而不留痕迹；请以签名版为准。",
        "html_unsigned": "HTML 版不带签名：dcmon verify 由数据重新生成全文逐字核对；签名版为 PDF。", "verify_hint":
        "监管部门可运行 dcmon verify 本报告 --config … --data … 由原始数据复算并核对全部数值。",
        "pue_label": "PUE性质", "total": "合计", "interim_note": "评估期不足12个月，PUE为阶段值。",
        "none": "无", "generated": "生成时间", "physical": "物理机架", "in_service": "在用机架", "chart": "月度PUE（柱）与阈值（线）",
        "reset": "计数器重置", "rollover": "计数器翻转", "noise_dip": "噪声回落", "gap": "数据缺口",
        "subsidy_total": "补贴金额", "not_eligible_sub": "未满足全部条件，以下为满足条件时的测算：",
    },
    "en": {
        "title": "Retrofit subsidy evidence report", "identity": "1. Applicant and facility", "window": "2. Evaluation window",
        "method": "3. Method", "monthly": "4. Monthly PUE", "energy": "5. Energy breakdown",
        "racks": "6. Rack inventory and standard-rack conversion", "checks": "7. Eligibility checks",
        "subsidy": "8. Subsidy computation", "quality": "9. Data coverage and anomalies handled",
        "provenance": "10. Provenance and verification", "operator": "Operator", "credit": "Unified social credit code",
        "facility": "Facility", "district": "District", "kind": "Kind", "commissioned": "Commissioned",
        "retrofit": "Retrofit completed", "period": "Period", "tz": "Time zone (the period is calendar days here)",
        "pue_cat": "PUE category", "meters": "Meters and roles", "role": "Role",
        "std_rule": "standard racks = Σ rack design power ÷ 2.5 kW (decommissioned racks excluded)",
        "cs_reading": "Compute-share reading", "clauses": "Clauses cited", "month": "Month", "fac_kwh": "Facility kWh",
        "it_kwh": "IT kWh", "coverage": "Coverage", "role_kwh": "Energy by meter role, kWh", "room": "Room",
        "function": "Function", "count": "Racks", "design": "Design power kW", "std": "Standard racks", "status": "Status",
        "occupancy": "Occupancy rate", "compute_share": "Compute-function share", "prior": "Compute share at the end of the prior year ({date})",
        "metric": "Metric", "value": "Value", "threshold": "Condition", "margin": "Margin", "result": "Result",
        "clause": "Clause", "eligible": "Overall", "steps": "Steps",
        "upper": "(upper bound: no retrofit cost given, or the policy sets only a ceiling)", "events": "Anomalies",
        "event": "Event", "count_n": "Count", "rejected": "Rejected data (quarantine)", "late": "Late readings",
        "software": "Software", "config": "Configuration SHA-256", "files": "Reading digests SHA-256 (per kind and month)",
        "files_note": "The digest of each source and month is listed in the embedded machine-readable summary, "
                      "and {verify} recomputes every one; the SHA-256 of each row here is that of the kind's and month's "
                      "lines \"source_id readings digest\" (in source order, each ending in a line feed).",
        "sources": "Sources", "kind_col": "Kind",
        "source": "Source", "rows": "Readings", "it_from": "IT energy from", "meter_id": "Meter", "meter_method": "Method",
        "racks_suffix": " (racks)", "fac_cov": "facility", "reason": "Reason",
        "signed_by": "This report is digitally signed (PAdES); signing certificate SHA-256 fingerprint",
        "unsigned": "UNSIGNED: this report carries no digital signature, so its content can be changed without trace; rely on a signed copy.",
        "html_unsigned": "The HTML form is not signed: dcmon verify re-renders it from the data and compares every character; the signed form is the PDF.",
        "verify_hint": "A regulator can run dcmon verify on this report with --config … --data … to recompute every figure from the data.",
        "pue_label": "PUE label", "total": "Total", "interim_note": "The period is shorter than 12 months: the PUE is an interim figure.",
        "none": "none", "generated": "Generated", "physical": "Physical racks", "in_service": "In-service racks",
        "chart": "Monthly PUE (bars) and threshold (line)", "reset": "counter reset", "rollover": "counter rollover",
        "noise_dip": "noise dip", "gap": "gap", "subsidy_total": "Subsidy",
        "not_eligible_sub": "Not every condition is met; the computation below shows the amount if they were:",
    },
}


def build_summary(registry, store, facility_id: str, period, profile: str, options: Options, result: dict, *,
                  lang: str = "zh", fmt: str = "html", signer: dict | None = None, rejected: dict | None = None,
                  issued: dict | None = None, applicant: dict | None = None) -> dict:
    """The machine-readable summary. ``issued`` is the summary of an earlier issue of this report:
    its provenance (time, software, configuration, signer, quarantine counts) is kept so the
    re-rendering for ``verify`` is the same document. ``applicant`` is the applicant's pack; its
    before/after periods widen the readings digested."""
    fig = result["facilities"][0]
    prof = fig["profiles"].get(profile)
    doc = {
        "schema": SUMMARY_SCHEMA, "facility_id": facility_id, "period": result["period"], "profile": profile,
        "options": {k: options.to_json()[k] for k in ("rack_basis", "compute_share_reading", "inventory", "min_coverage")},
        "figures": {k: fig.get(k) for k in VERIFIED},
        "profile_result": None if prof is None else {
            "eligible": prof["eligible"], "subsidy_cny": prof["subsidy_cny"],
            "checks": [{k: c.get(k) for k in ("metric", "value", "op", "threshold", "status")} for c in prof["checks"]]},
        "monthly": [{k: b.get(k) for k in ("bin", "facility_energy_kwh", "it_energy_kwh", "pue", "coverage")}
                    for b in fig.get("bins", [])],
        "applicant": applicant,   # the applicant's pack (items (1)–(6)); None for profiles without an application notice
        **provenance(registry),
        "lang": lang, "format": fmt, "signature": signer, "rejected": rejected or {},
        "readings": {"method": DIGEST_METHOD, "digests": reading_digests(store, registry, [facility_id],
                                                                         pack_span(period, applicant), options)},
    }
    if fmt == "pdf":
        import weasyprint
        doc["renderer"] = f"WeasyPrint {weasyprint.__version__}"
    if issued is not None:
        for k in ("software", "config_fingerprint", "generated_at", "signature", "rejected", "renderer"):
            if k in issued:
                doc[k] = issued[k]
    doc["sha256"] = summary_digest(doc)
    return doc


def summary_digest(doc: dict) -> str:
    return hashlib.sha256(canonical({k: v for k, v in doc.items() if k not in ("sha256", "generated_at")})).hexdigest()


def bin_pue_exact(b: dict):
    """A bin's PUE as the exact ratio of its energies (rounded to the milliwatt-hour by metrics)."""
    return ratio(b["facility_energy_kwh"], b["it_energy_kwh"])


def _svg_monthly(bins: list[dict], threshold: float | None, lang: str, op: str = "<") -> str:
    """Bar chart of monthly PUE with the threshold as a line, as inline SVG (vector in PDF)."""
    vals = [b.get("pue") for b in bins]
    present = [v for v in vals if v is not None]
    if not present:
        return ""
    w, h, pad = 640, 220, 40
    top = max(present + ([threshold] if threshold else [])) * 1.05
    bottom = min(1.0, min(present))
    span = max(top - bottom, 1e-9)
    bw = (w - 2 * pad) / max(len(vals), 1)

    def y(v):
        return h - pad - (v - bottom) / span * (h - 2 * pad)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="100%" role="img" '
             f'aria-label="{html.escape(T[lang]["chart"])}">',
             f'<line x1="{pad}" y1="{h - pad}" x2="{w - pad}" y2="{h - pad}" stroke="#555"/>']
    for i, (b, v) in enumerate(zip(bins, vals)):
        x = pad + i * bw + bw * 0.15
        if v is not None:
            exact = bin_pue_exact(b)  # decided and printed like every check (metrics.exact)
            color = "#2e7d32" if threshold is None or decide(exact, op, threshold) else "#c62828"
            parts.append(f'<rect x="{x:.1f}" y="{y(v):.1f}" width="{bw * 0.7:.1f}" height="{h - pad - y(v):.1f}" fill="{color}"/>')
            parts.append(f'<text x="{x + bw * 0.35:.1f}" y="{y(v) - 4:.1f}" font-size="10" text-anchor="middle">'
                         f'{figure_text(exact, 3, threshold)}</text>')
        parts.append(f'<text x="{x + bw * 0.35:.1f}" y="{h - pad + 14:.1f}" font-size="10" text-anchor="middle">{html.escape(str(b["bin"]))}</text>')
    if threshold is not None:
        parts.append(f'<line x1="{pad}" y1="{y(threshold):.1f}" x2="{w - pad}" y2="{y(threshold):.1f}" stroke="#1565c0" stroke-dasharray="6 4"/>')
        parts.append(f'<text x="{w - pad}" y="{y(threshold) - 4:.1f}" font-size="10" text-anchor="end" fill="#1565c0">{threshold}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _table(head: list[str], rows: list[list], cls="", raw: bool = False) -> str:
    """A table; ``raw`` cells are HTML already (escaped by the caller)."""
    cell = str if raw else (lambda c: html.escape(str(c)))
    th = "".join(f"<th>{html.escape(str(h))}</th>" for h in head)
    trs = "".join("<tr>" + "".join(f"<td>{cell(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table>'


def render_html(registry, store, facility_id: str, period, *, profile: str = DEFAULT_PROFILE, lang: str = "zh",
                options: Options | None = None, fmt: str = "html", signer: dict | None = None,
                issued: dict | None = None) -> tuple[str, dict, dict]:
    """The report as one self-contained HTML document, its summary and the evaluation.

    ``signer`` ({certificate_sha256, subject}) is printed on the first page; ``issued`` re-renders
    an earlier issue (see :func:`build_summary`)."""
    check_lang(lang)
    base = options or Options()
    options = Options(rack_basis=base.rack_basis, compute_share_reading=base.compute_share_reading,
                      inventory=base.inventory, min_coverage=base.min_coverage, bins="month")
    fac = registry.get(facility_id)
    result = evaluate(registry, store, period, [facility_id], [profile], options)
    pack = applicant_pack_for(store, fac, period, options, result, profile)
    fig = result["facilities"][0]
    start_ms = int(dt.datetime.fromisoformat(fig["utc_from"]).timestamp() * 1000)
    end_ms = int(dt.datetime.fromisoformat(fig["utc_to"]).timestamp() * 1000)
    rej = None if issued is not None else store.rejected_counts(facility_id, start_ms, end_ms)
    summary = build_summary(registry, store, facility_id, period, profile, options, result, lang=lang, fmt=fmt,
                            signer=signer, rejected=rej, issued=issued, applicant=pack)
    rej = summary["rejected"]
    prof = fig["profiles"][profile]
    t = T[lang]
    b = result["basis"]
    e = html.escape
    name = fac.name if lang == "zh" or not fac.name_en else fac.name_en
    pue_check = next((c for c in prof["checks"] if c["metric"] == "pue"), None)
    pue_thr = pue_check["threshold"] if pue_check else None
    sec = []
    identity = [[t["operator"], fac.operator], [t["credit"], fac.credit_code], [t["facility"], f"{name} ({fac.id})"],
                [t["district"], f"{terms.city_text(fac.city, lang)} {fac.district}"],
                [t["kind"], terms.term(terms.KIND_TEXT, lang, fac.kind)],
                [t["commissioned"], terms.date_text(fig["commissioned"], lang)],
                [t["retrofit"], terms.date_text(fig["retrofit"]["completed"], lang)]]
    sec.append(f"<h2>{t['identity']}</h2>" + _table(["", ""], identity, "kv"))
    per = result["period"]
    days = f"共{per['days']}天" if lang == "zh" else f"{per['days']} days"
    sec.append(f"<h2>{t['window']}</h2><p>{t['period']}: <b>{terms.date_text(per['from'], lang)} — "
               f"{terms.date_text(per['to'], lang)}</b> ({days}); "
               f"{t['tz']}: {fac.timezone}; UTC {fig['utc_from']} — {fig['utc_to']}. "
               f"{t['pue_label']}: {LABEL_TEXT[lang][fig['pue_label']]}. "
               + (t["interim_note"] if fig["pue_label"] == "interim" else "") + "</p>")
    meters = [[m["meter_id"], terms.term(terms.ROLE_TEXT, lang, m["role"]), fmt_num(m["energy_kwh"]),
               fmt_num(m["coverage"], 1, True), terms.term(terms.METER_METHOD_TEXT, lang, m["method"])]
              for m in fig["meters"]]
    mt = terms.METHOD_TEXT[lang]
    clauses = sorted({c["clause"] for c in prof["checks"]})
    sec.append(f"<h2>{t['method']}</h2><ul>"
               f"<li>PUE: {e(mt['pue'])}</li>"
               f"<li>{t['pue_cat']}: {e(terms.pue_category_text(fig['pue_category'], lang))}; "
               f"{t['it_from']}: {e(terms.term(terms.IT_FROM_TEXT, lang, fig['it_energy_from']))}</li>"
               f"<li>{e(t['std_rule'])}</li>"
               f"<li>{t['cs_reading']}: {e(terms.term(terms.SHARE_BASIS_TEXT, lang, b['compute_share_reading']))}</li>"
               f"<li>{t['coverage']}: {e(mt['coverage'])}; "
               f"{e(mt['min_coverage'].format(p=terms.pct(b['min_coverage'], lang, 0)))}</li>"
               f"<li>{t['clauses']}: {e(terms.source_text(prof['source']))}<br>" + "<br>".join(e(c) for c in clauses) + "</li></ul>"
               + f"<h3>{t['meters']}</h3>" + _table([t["meter_id"], t["role"], "kWh", t["coverage"], t["meter_method"]], meters))
    bins = fig.get("bins", [])
    mrows = [[bn["bin"], fmt_num(bn["facility_energy_kwh"]), fmt_num(bn["it_energy_kwh"]),
              "—" if bn["pue"] is None else figure_text(bin_pue_exact(bn), 4, pue_thr), fmt_num(bn["coverage"], 1, True)]
             for bn in bins]
    mrows.append([t["total"], fmt_num(fig["facility_energy_kwh"]), fmt_num(fig["it_energy_kwh"]),
                  "—" if fig["pue"] is None else figure_text((fig.get("exact") or {}).get("pue", fig["pue"]), 4, pue_thr),
                  fmt_num(fig["coverage"], 1, True)])
    sec.append(f"<h2>{t['monthly']}</h2>" + _table([t["month"], t["fac_kwh"], t["it_kwh"], "PUE", t["coverage"]], mrows)
               + f'<figure>{_svg_monthly(bins, pue_thr, lang, pue_check["op"] if pue_check else "<")}<figcaption>{t["chart"]}</figcaption></figure>')
    sec.append(f"<h2>{t['energy']}</h2>" + _table([t["role"], "kWh"], [[terms.term(terms.ROLE_TEXT, lang, k), fmt_num(v)]
                                                                        for k, v in fig["energy_by_role_kwh"].items()]))
    # the same inventory the figures use: the racks CSV updated by telemetry, as of the period end
    inv, _ = inventory_at(store, fac, pd.Timestamp(fig["utc_to"]))
    inv_rows = [[r.room, terms.term(terms.RACK_FUNCTION_TEXT, lang, r.function), int(r.racks), fmt_num(r.design_power_kw),
                 fmt_num(r.standard_racks)]
                for r in racks_by(inv, ["room", "function"]).itertuples()]
    inv_rows.append([t["total"], "", fig["physical_racks"], fmt_num(fig["design_it_power_kw"]), fmt_num(fig["standard_racks"])])
    status_rows = [[terms.term(terms.RACK_STATUS_TEXT, lang, k), v] for k, v in fig["racks_by_status"].items()]
    sec.append(f"<h2>{t['racks']}</h2><p>{e(t['std_rule'])}: {fmt_num(fig['design_it_power_kw'])} kW ÷ 2.5 kW = "
               f"<b>{fmt_num(fig['standard_racks'])}</b> ({SIZE_TEXT[lang][fig['size_class']]}). "
               f"{t['physical']}: {fig['physical_racks']}; {t['in_service']}: {fig['in_service_racks']}. "
               f"{t['occupancy']}: <b>{fmt_num(fig['occupancy_rate'], 2, True)}</b>; {t['compute_share']}: "
               f"<b>{fmt_num(fig['compute_share'], 2, True)}</b>; "
               f"{t['prior'].format(date=terms.date_text(fig['prior_year_end'], lang))}: <b>{fmt_num(fig['compute_share_prior_year_end'], 2, True)}</b>.</p>"
               + _table([t["room"], t["function"], t["count"], t["design"], t["std"]], inv_rows)
               + _table([t["status"], t["count"]], status_rows))
    crow = []
    for c in prof["checks"]:
        # the figure as metrics printed it, so that the text agrees with the exact decision
        reason = terms.reason_text(c, lang, b["min_coverage"])
        crow.append([terms.metric_name(c["metric"], lang), terms.value_text(c, lang),
                     terms.threshold_text(c["metric"], c["op"], c["threshold"], lang), terms.margin_cell(c, lang),
                     terms.result_text(c, lang) + (("：" if lang == "zh" else ": ") + reason if reason else ""), c["clause"]])
    if window_row(prof.get("application_window"), lang):
        crow.append(window_row(prof["application_window"], lang))   # the completion window, a condition like the thresholds
    sec.append(f"<h2>{t['checks']}</h2>" + _table([t["metric"], t["value"], t["threshold"], t["margin"], t["result"], t["clause"]], crow)
               + f"<p>{t['eligible']}: <b>{terms.verdict_text(prof, lang)}</b>{verdict_note(prof.get('application_window'), lang)}</p>"
               + ("<p class='note'><b>" + terms.NOT_IN_FORCE[lang] + "</b></p>" if prof.get("in_force") is False else ""))
    est = prof.get("subsidy_estimate")
    if est:
        srows = [[str(i), e(step)] for i, step in enumerate(terms.steps_text(est, lang), start=1)]
        bound = est.get("upper_bound_reason")
        srows.append([t["subsidy_total"], f"<b>{terms.money(est['subsidy_cny'], lang)}</b>"
                      + (f"（{terms.term(terms.UPPER_BOUND, lang, bound)}）" if bound and lang == "zh"
                         else f" ({terms.term(terms.UPPER_BOUND, lang, bound)})" if bound else "")])
        head = "" if prof["eligible"] else f"<p>{t['not_eligible_sub']}</p>"
        if prof.get("subsidy_hypothetical"):
            sep = "；" if lang == "zh" else "; "
            why = sep.join(terms.term(terms.REASON_TEXT, lang, r) for r in prof.get("hypothetical_reasons", []))
            head += f"<p><b>{terms.NOT_DUE[lang]}" + (f"（{why}）" if lang == "zh" else f" ({why})") + "</b></p>"
        sec.append(f"<h2>{t['subsidy']}</h2>{head}" + _table([t["steps"], t["value"]], srows, raw=True)
                   + "".join(f"<p class='note'>{terms.term(terms.CAP_TEXT, lang, k)}</p>"
                             for k in ("per_rack_capped", "capped") if est.get(k))
                   + f"<p class='note'>{e(est.get('clause', ''))}</p>")
    dq = fig["data_quality"]
    ev_rows = [[terms.term(terms.EVENT_TEXT, lang, k.replace("rack_", "")) + (t["racks_suffix"] if k.startswith("rack_") else ""), v]
               for k, v in sorted(dq["events"].items())]
    samples = [[s.get("source_id", ""), dt.datetime.fromtimestamp(s["ts"] / 1000, dt.UTC).isoformat(timespec="minutes"),
                terms.term(terms.EVENT_TEXT, lang, s["event"]), s.get("energy_kwh", s.get("hours", ""))] for s in dq["event_samples"][:50]]
    sec.append(f"<h2>{t['quality']}</h2><p>{t['coverage']}: {fmt_num(fig['coverage'], 2, True)} "
               f"({t['fac_cov']} {fmt_num(fig['facility_energy_coverage'], 2, True)}, IT {fmt_num(fig['it_energy_coverage'], 2, True)}); "
               f"{t['late']}: {dq['late_readings']}</p>"
               + (_table([t["event"], t["count_n"]], ev_rows) if ev_rows else f"<p>{t['events']}: {t['none']}</p>")
               + (_table([t["source"], "UTC", t["event"], "kWh / h"], samples) if samples else "")
               + f"<h3>{t['rejected']}</h3>"
               + (_table([t["reason"], t["count_n"]], [[k, v] for k, v in sorted(rej.items())]) if rej else f"<p>{t['none']}</p>"))
    # per kind and month (a 10 000-rack site has 10 000 rack sources a month); the per-source digests
    # are in the embedded summary, which verify checks one by one
    digests = [[terms.term(terms.SOURCE_KIND_TEXT, lang, d["kind"]), d["month"], f"{d['sources']:,}", f"{d['rows']:,}",
                d["sha256"]] for d in month_digests(summary["readings"]["digests"])]
    sig = summary["signature"]
    sig_text = (f"{t['signed_by']}: <code>{sig['certificate_sha256']}</code> ({e(sig['subject'])})" if sig else
                t["html_unsigned"] if fmt == "html" else t["unsigned"])
    sec.append(f"<h2>{t['provenance']}</h2><p>{t['software']}: {summary['software']}; {t['generated']}: {summary['generated_at']}; "
               f"{t['config']}: <code>{summary['config_fingerprint']}</code></p><p>{sig_text}</p><p>{t['verify_hint']}</p>"
               f"<details><summary>{t['files']} ({len(digests)}; {summary['readings']['method']})</summary>"
               f"<p class='note'>{e(t['files_note']).format(verify=VERIFY_COMMAND)}</p>"
               + _table([t["kind_col"], t["month"], t["sources"], t["rows"], "SHA-256"], digests, "mono digests")
               + "</details>")
    if pack is not None:
        sec.append(pack_html(pack, lang, meters=len(fac.meters), pue_category=fac.pue_category, pue_threshold=pue_thr))
    if sig:
        banner = f"<p class='sig'>{t['signed_by']}:<br><code>{sig['certificate_sha256']}</code></p>"
    elif fmt == "pdf":
        banner = f"<p class='unsigned'>{t['unsigned']}</p>"
    else:
        banner = ""
    # a re-rendering embeds the issued summary: verify compares it with the recomputed one separately
    # (with the float tolerance), so last-bit summation differences between machines do not fail the document
    embedded = summary if issued is None else issued
    summary_json = orjson.dumps(embedded, option=orjson.OPT_SERIALIZE_NUMPY).decode().replace("</", "<\\/")
    doc = f"""<!DOCTYPE html>
<html lang="{'zh-CN' if lang == 'zh' else 'en'}"><head><meta charset="utf-8">
<meta name="generator" content="{e(summary['software'])}">
<meta name="dcterms.created" content="{summary['generated_at']}">
<meta name="dcterms.modified" content="{summary['generated_at']}">
<title>{e(t['title'])} — {e(name)}</title>
<style>
@page {{ size: A4; margin: 16mm 14mm; @bottom-center {{ content: counter(page) " / " counter(pages); font-size: 8pt; font-family: {SANS}; }} }}
body {{ font-family: {SANS}; font-size: 9.5pt; color: #111; }}
h1 {{ font-size: 16pt; margin-bottom: 2mm; }} h2 {{ font-size: 12pt; border-bottom: 1px solid #999; margin-top: 6mm; }}
h3 {{ font-size: 10pt; }} table {{ border-collapse: collapse; width: 100%; margin: 2mm 0; table-layout: fixed; }}
th, td {{ border: 1px solid #bbb; padding: 1mm 1.5mm; text-align: left; vertical-align: top; overflow-wrap: anywhere; }}
th {{ background: #eef3f8; }} .note {{ color: #555; font-size: 8.5pt; }} .mono td {{ font-family: monospace; font-size: 7pt; }} .mono td:first-child {{ font-family: {SANS}; }}
.digests th:first-child {{ width: 8%; }} .digests th:nth-child(2) {{ width: 8%; }} .digests th:nth-child(3) {{ width: 8%; }} .digests th:nth-child(4) {{ width: 9%; }}
.sig {{ border: 1px solid #2a6; background: #eef8f1; padding: 1.5mm 2mm; font-size: 8.5pt; }}
.unsigned {{ border: 2px solid #c00; background: #fdecea; color: #900; padding: 2mm; font-weight: bold; }}
.kv thead {{ display: none; }} .kv td:first-child {{ width: 30%; background: #f6f8fa; }}
figure {{ margin: 2mm 0; }} .nowrap {{ white-space: nowrap; }} figcaption {{ font-size: 8.5pt; color: #555; }}
{PACK_CSS}
</style></head><body>
<h1>{e(t['title'])}</h1>
<p>{e(name)} · {e(fac.operator)} · {e(terms.profile_title(profile, prof.get('title'), lang))} · {terms.date_text(per['from'], lang)} — {terms.date_text(per['to'], lang)}</p>
{banner}
{''.join(sec)}
<script type="application/json" id="{SUMMARY_ID}">{summary_json}</script>
</body></html>"""
    return doc, summary, result


def applicant_pack_for(store, facility, period, options: Options, result: dict, profile: str) -> dict | None:
    """The applicant's pack, for a profile that names an application notice (its completion window)."""
    fig = result["facilities"][0]
    prof = fig["profiles"].get(profile)
    if not prof or not prof.get("application_window"):
        return None
    return applicant_pack(store, facility, period, options, prof, fig["in_service_racks"],
                          facility.applicant.get("compare_months", 12))


def pack_span(period, pack: dict | None):
    """The days the report reads: the period, widened to the pack's before/after periods."""
    from dcmon.periods import Period
    days = [period.first_day, period.last_day]
    for side in ("before", "after"):
        s = ((pack or {}).get("before_after") or {}).get(side)
        if s:
            days += [dt.date.fromisoformat(s["from"]), dt.date.fromisoformat(s["to"])]
    return Period(min(days), max(days))


def build_evidence(registry, store, facility_id: str, period, *, profile: str = DEFAULT_PROFILE, lang: str = "zh",
                   fmt: str = "pdf", options: Options | None = None, keys=None) -> tuple[bytes, str]:
    """The evidence report as bytes (``fmt`` pdf or html) and a file name.

    ``keys`` (a :class:`dcmon.reports.keys.KeyPair`) signs a PDF; without it the PDF says on its
    first page that it is unsigned. HTML is never signed (``verify`` re-renders it instead).
    """
    if fmt not in ("pdf", "html"):
        raise ValueError(f"format must be pdf or html: {fmt!r}")
    if fmt == "pdf":
        preload_pdf_libraries(signed=keys is not None)
    signer = None
    if fmt == "pdf" and keys is not None:
        from cryptography import x509
        cert = x509.load_der_x509_certificate(keys.cert_der)
        signer = {"certificate_sha256": keys.fingerprint, "subject": cert.subject.rfc4514_string()}
    doc, summary, _ = render_html(registry, store, facility_id, period, profile=profile, lang=lang, options=options,
                                  fmt=fmt, signer=signer)
    stem = f"dcmon-evidence-{facility_id}-{summary['period']['from']}-{summary['period']['to']}-{lang}"
    if fmt == "html":
        return doc.encode("utf-8"), stem + ".html"
    pdf = render_pdf(doc, summary)
    if keys is not None:
        from dcmon.reports.keys import sign_pdf
        pdf = sign_pdf(pdf, keys, reason=f"dcmon evidence report {facility_id} {summary['period']['from']}"
                                          f"..{summary['period']['to']} (summary SHA-256 {summary['sha256']})")
    return pdf, stem + ".pdf"


def preload_pdf_libraries(signed: bool = False) -> threading.Thread:
    """Import WeasyPrint (which loads Pango, HarfBuzz and fontconfig) and, for a signed PDF, pyHanko
    in a background thread while the data is evaluated: about half a second of imports that would
    otherwise wait for the evaluation. Parquet decoding and hashing release the interpreter lock,
    so the two overlap on a second core. Importing a module another thread is importing waits for
    it, so the renderer needs no join; an import that fails here fails again, with its message,
    where the module is used."""
    def load():
        try:
            import weasyprint  # noqa: F401
            if signed:
                import pyhanko.pdf_utils.incremental_writer  # noqa: F401
                import pyhanko.sign  # noqa: F401
        except Exception:   # noqa: BLE001 - reported by the import where it is used
            pass
    th = threading.Thread(target=load, name="dcmon-pdf-imports", daemon=True)
    th.start()
    return th


def render_pdf(doc: str, summary: dict) -> bytes:
    """The PDF of a rendered report with its summary attached; the same inputs give the same bytes."""
    import weasyprint
    issued_at = dt.datetime.fromisoformat(summary["generated_at"])  # fixed dates: the same inputs, the same bytes
    att = weasyprint.Attachment(string=orjson.dumps(summary, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY).decode(),
                                name=SUMMARY_NAME, description="dcmon machine-readable summary (dcmon verify)",
                                created=issued_at, modified=issued_at)
    return weasyprint.HTML(string=doc).write_pdf(attachments=[att])


def reproduce(registry, store, summary: dict) -> tuple[bytes, dict, dict]:
    """Re-render the report an embedded summary describes, from the data: (document bytes, new summary).

    For an unchanged store, configuration and software this is byte-for-byte the issued document
    (the unsigned revision, for a signed PDF). The document embeds the given summary; the new
    one (recomputed figures and digests) is returned for comparison, with the evaluation."""
    from dcmon.reports.common import period_from_json
    o = summary["options"]
    options = Options(rack_basis=o["rack_basis"], compute_share_reading=o["compute_share_reading"],
                      inventory=o["inventory"], min_coverage=o["min_coverage"], bins="month")
    period = period_from_json(summary["period"])
    doc, new, result = render_html(registry, store, summary["facility_id"], period, profile=summary["profile"],
                                   lang=summary["lang"], options=options, fmt=summary["format"], issued=summary)
    if summary["format"] == "html":
        return doc.encode("utf-8"), new, result
    return render_pdf(doc, summary), new, result


def read_summary(path: Path) -> dict:
    """The embedded summary of an HTML or PDF report; ValueError naming what is missing."""
    path = Path(path)
    data = path.read_bytes()
    if data[:5] == b"%PDF-":
        import io

        import pypdf
        try:
            reader = pypdf.PdfReader(io.BytesIO(data))
            att = reader.attachments.get(SUMMARY_NAME)
        except pypdf.errors.PdfReadError as e:
            raise ValueError(f"{path}: not a readable PDF ({e})") from None
        if not att:
            raise ValueError(f"{path}: no embedded {SUMMARY_NAME} (not a dcmon evidence report?)")
        return orjson.loads(att[0])
    text = data.decode("utf-8", errors="replace")
    marker = f'<script type="application/json" id="{SUMMARY_ID}">'
    i = text.find(marker)
    if i < 0:
        raise ValueError(f"{path}: no embedded summary (<script id=\"{SUMMARY_ID}\">; not a dcmon evidence report?)")
    j = text.find("</script>", i)
    return orjson.loads(text[i + len(marker):j].replace("<\\/", "</"))
