"""The applicant's pack in the evidence report: the notice's items (1)–(6), rendered from the
pack data (:func:`dcmon.metrics.applicant.applicant_pack`) that the report's summary embeds.

Every function here renders from that JSON alone (no data reads), so the pages say exactly
what the summary holds and what ``dcmon verify`` recomputes. :func:`form_xlsx` writes the
item (1) fields as a spreadsheet to paste from.
"""
from __future__ import annotations

import html
import io

from dcmon.metrics.exact import figure_text, to_fraction
from dcmon.terms import LABEL_TEXT, PUE_CATEGORY_TEXT

T = {
    "zh": {
        "part": "附：申报材料（成经信财〔2023〕31号 二(二)3）",
        "checklist": "申报材料清单与本报告对应关系", "item": "材料", "notice": "通知要求（原文）", "pack": "本报告提供",
        "attach": "申报单位须自行提供", "state": "状态", "clause": "条款",
        "status": {"complete": "已齐备", "incomplete": "待补充", "attach": "须另附", "supporting": "可选"},
        "pack_text": {
            1: "申报表预填字段（见“申报表预填信息”）", 2: "—", 3: "本报告采用的改造完成日期及其是否在结项时间范围内",
            4: "上一年度实际投资额（注明出处）、上年末计算功能占比（由机架清单计算）、平均每个在用物理机架改造成本",
            5: "报告框架；“系统功能”“服务成效”由实测数据填写（改造前后对比）",
            6: "本报告本身（可由 dcmon verify 复核）"},
        "attach_text": {
            1: "在成都市新经济公共管理服务平台在线填报申报表", 2: "营业执照（复印件）、法定代表人身份证（复印件）",
            3: "改造升级合同、协议等具有法律约束力的文件", 4: "投资额出处文件（审计报告等），加盖公章",
            5: "核对并补全标注为“申报单位填写”的章节", 6: "其他需要补充的有关证明材料"},
        "readings": {"design_power": "在用计算机架设计功率 ÷ 全部在用机架设计功率", "rack_count": "在用计算机架数 ÷ 全部在用机架数",
                     "compute_storage": "在用计算机架设计功率 ÷ 在用计算与存储机架设计功率"},
        "hypothetical": "假设测算：不符合申报条件或政策不在有效期，无应付金额", "upper_bound": "上限估算（未提供改造成本或政策仅规定上限）",
        "src_inventory": "机架清单（截至 {d}）", "src_subsidy": "本报告“补贴测算”一节", "pp": "个百分点",
        "missing": "缺：", "window": "结项时间条件", "completed": "改造完成（结项）日期",
        "window_rule": "{lo} 至 {hi}（含）", "in": "在范围内：符合", "out": "不在范围内：不符合申报条件（补贴金额仅为假设测算）",
        "unknown": "未配置改造完成日期：无法核验", "form": "申报表预填信息（第(1)项）", "field": "字段", "value": "内容",
        "source": "来源", "not_set": "（未配置）",
        "fields": {"applicant_name": "申报单位名称", "credit_code": "统一社会信用代码", "legal_representative": "法定代表人",
                   "address": "注册/办公地址", "contact_person": "联系人", "contact_phone": "联系电话", "contact": "联系方式",
                   "facility_name": "数据中心名称", "project_name": "项目名称", "retrofit_completed": "项目结项日期",
                   "retrofit_cost_cny": "改造总成本（元）", "actual_investment_cny": "上一年度实际投资额（元）",
                   "in_use_physical_racks": "在用物理机架数", "subsidy_requested_cny": "申请补贴金额（元，测算）"},
        "statement": "项目专项财务报表核心内容（第(4)项）", "st_item": "项目", "st_value": "数值", "st_basis": "依据与出处",
        "invest": "{year}年度该项目实际投资额（元）", "invest_missing": "未配置 {year} 年度实际投资额（请在数据中心配置文件的申报信息中填写）",
        "share": "截至{date}计算功能占比", "share_basis": "口径：{reading}；在用计算机架设计功率 {num} kW ÷ 在用机架设计功率 {den} kW"
                                                   "（在用机架 {racks} 架，其中计算 {comp} 架）；机架清单叠加该时点前的机架遥测变更 {n} 条",
        "share_fallback": "（能耗口径无法用于某一时点，改用设计功率口径）",
        "avg": "平均每个在用物理机架改造成本（元）", "avg_basis": "改造总成本 {cost} 元 ÷ 在用物理机架 {racks} 架（截至 {date}）；出处：{src}",
        "avg_missing": "未配置改造成本（请在数据中心配置文件的改造信息中填写）",
        "before_after": "改造前后对比（第(5)项“服务成效”）", "metric": "指标", "before": "改造前", "after": "改造后", "change": "变化",
        "period": "期间", "months": "{n}个月（{d}天）", "pue": "PUE", "pue_cat": "PUE计量类别", "coverage": "数据覆盖率",
        "fac_kwh": "总耗电量 kWh", "it_kwh": "IT耗电量 kWh", "occupancy": "上架率（期末）", "compute_share": "计算功能占比（期末）",
        "std": "标准机架（期末）", "saved": "同等IT负荷下节约电量", "saved_rule": "（改造前PUE − 改造后PUE）× 改造后IT耗电量",
        "co2": "折合减排二氧化碳", "factor": "电网排放因子 {f} tCO₂/MWh；出处：{src}",
        "factor_default": "（默认值；可在数据中心配置文件的申报信息中另行配置）",
        "inconclusive": "数据不足，无法得出改造前后对比结论：{why}。不作推测。",
        "why": {"not_enough_data_before": "改造完成前不足一个完整月的数据", "not_enough_data_after": "改造完成后不足一个完整月的数据",
                "no_completion_date": "未配置改造完成日期", "before:low_coverage": "改造前数据覆盖率低于要求",
                "after:low_coverage": "改造后数据覆盖率低于要求", "before:no_pue": "改造前无PUE", "after:no_pue": "改造后无PUE",
                "before:no_data": "改造前无数据", "after:no_data": "改造后无数据"},
        "data_span": "数据范围 {a} 至 {b}；改造前可用 {kb} 个完整月，改造后 {ka} 个；两侧取相同月数 {k}（上限 {m}）。",
        "chart": "月度PUE：灰色为改造前，绿色为改造后，竖虚线为改造完成日，横虚线为PUE条件",
        "report": "项目建设情况报告框架（第(5)项）", "from_config": "申报单位填写（数据中心配置文件的申报信息）",
        "from_data": "由 dcmon 实测数据生成", "to_fill": "【待申报单位填写】",
        "sections": {"background": "项目建设背景", "main_content": "建设主要内容", "key_directions": "重点方向",
                     "service_fields": "服务领域", "system_functions": "系统功能", "service_results": "服务成效"},
        "sysfn": "能耗与机架在线监测：{n}块电表按角色（总进线、IT、制冷等）连续计量累计电量，按ISO/IEC 30134-2以电量之比计算PUE（{cat}）；"
                 "机架清单与状态遥测实时折算标准机架（2.5 kW/架）、上架率与计算功能占比；异常读数（计数器重置、翻转、缺口）自动识别并计入覆盖率；"
                 "全部数值可由 dcmon verify 从原始数据复算核对。",
        "results_ok": "改造完成（{c}）后{k}个月PUE为{pa}，改造前同长度期间为{pb}；同等IT负荷下节约电量{saved} kWh，折合减排{co2} tCO₂。"
                      "期末计算功能占比由{sb}变为{sa}，标准机架{std}架。",
    },
    "en": {
        "part": "Annex: the application materials (成经信财〔2023〕31号 二(二)3)",
        "checklist": "Checklist: the notice's items and this report", "item": "Item", "notice": "Notice item (translated)",
        "notice_text": {1: "Application form for the cloud-computing-centre retrofit subsidy",
                        2: "Business licence bearing the unified social credit code (copy) and the legal representative's ID (copy)",
                        3: "Proof of the retrofit (contracts, agreements and other legally binding documents)",
                        4: "Project financial statement (core content: last year's actual investment in the project, the "
                           "compute-function share as of the end of last year, the average retrofit cost per rack)",
                        5: "Project construction report (background, main content, key directions, service fields, "
                           "system functions, service results)",
                        6: "Other supporting material"},
        "pack": "In this report", "attach": "The applicant provides", "state": "Status", "clause": "Clause",
        "status": {"complete": "complete", "incomplete": "to complete", "attach": "attach", "supporting": "optional"},
        "pack_text": {
            1: "pre-filled form fields (see \"Application form fields\")", 2: "—",
            3: "the retrofit completion date used and whether it is in the completion window",
            4: "prior year's actual investment (with its source), compute share at the prior year's end (from the rack "
               "inventory), average retrofit cost per in-use physical rack",
            5: "the report's outline; \"system functions\" and \"service results\" filled from measured data (before/after)",
            6: "this report (verifiable with dcmon verify)"},
        "attach_text": {
            1: "file the form online (Chengdu new-economy public service platform)",
            2: "business licence and legal representative's ID (copies)", 3: "retrofit contracts and agreements",
            4: "the document the investment figure comes from (audit report), sealed",
            5: "check and complete the sections marked for the applicant", 6: "any other supporting material"},
        "readings": {"design_power": "design power of in-service compute racks ÷ design power of all in-service racks",
                     "rack_count": "in-service compute racks ÷ all in-service racks",
                     "compute_storage": "design power of in-service compute racks ÷ in-service compute + storage racks"},
        "hypothetical": "hypothetical: a condition is not met or the measure is not in force; no amount is due",
        "upper_bound": "upper bound (no retrofit cost given, or the policy sets only a ceiling)",
        "src_inventory": "rack inventory as of {d}", "src_subsidy": "the subsidy computation in this report", "pp": " pp",
        "missing": "missing: ", "window": "Completion-window condition", "completed": "Retrofit completed",
        "window_rule": "{lo} to {hi} (inclusive)", "in": "inside: met",
        "out": "outside: the condition is not met (the subsidy figure is hypothetical)",
        "unknown": "no completion date configured: cannot be checked", "form": "Application form fields (item 1)",
        "field": "Field", "value": "Value", "source": "Source", "not_set": "(not configured)",
        "fields": {"applicant_name": "Applicant", "credit_code": "Unified social credit code",
                   "legal_representative": "Legal representative", "address": "Address", "contact_person": "Contact person",
                   "contact_phone": "Contact phone", "contact": "Contact", "facility_name": "Facility",
                   "project_name": "Project name", "retrofit_completed": "Project completed",
                   "retrofit_cost_cny": "Retrofit cost (CNY)", "actual_investment_cny": "Prior year's actual investment (CNY)",
                   "in_use_physical_racks": "In-use physical racks", "subsidy_requested_cny": "Subsidy requested (CNY, computed)"},
        "statement": "Project financial statement, core figures (item 4)", "st_item": "Item", "st_value": "Value",
        "st_basis": "Basis and source", "invest": "Actual investment in {year} (CNY)",
        "invest_missing": "no actual investment configured for {year} (set it in the facility file's applicant section)",
        "share": "Compute-function share as of {date}",
        "share_basis": "reading: {reading}; in-service compute design power {num} kW ÷ in-service design power {den} kW "
                       "({racks} in-service racks, {comp} compute); the racks list with {n} inventory changes before that instant",
        "share_fallback": " (the energy reading has no value at an instant: design power used)",
        "avg": "Average retrofit cost per in-use physical rack (CNY)",
        "avg_basis": "retrofit cost {cost} CNY ÷ {racks} in-use physical racks (as of {date}); source: {src}",
        "avg_missing": "no retrofit cost configured (set it in the facility file's retrofit section)",
        "before_after": "Before and after the retrofit (item 5, service results)", "metric": "Metric", "before": "Before",
        "after": "After", "change": "Change", "period": "Period", "months": "{n} months ({d} days)", "pue": "PUE",
        "pue_cat": "PUE category", "coverage": "Coverage", "fac_kwh": "Facility energy kWh", "it_kwh": "IT energy kWh",
        "occupancy": "Occupancy (period end)", "compute_share": "Compute share (period end)",
        "std": "Standard racks (period end)", "saved": "Energy saved at the same IT load",
        "saved_rule": "(PUE before − PUE after) × IT energy after", "co2": "CO₂ avoided",
        "factor": "grid factor {f} tCO₂/MWh; source: {src}",
        "factor_default": " (default; another can be set in the facility file's applicant section)",
        "inconclusive": "Not enough data to compare before and after the retrofit: {why}. No figure is guessed.",
        "why": {"not_enough_data_before": "less than one whole month of data before the completion",
                "not_enough_data_after": "less than one whole month of data after the completion",
                "no_completion_date": "no completion date configured", "before:low_coverage": "coverage before is below the minimum",
                "after:low_coverage": "coverage after is below the minimum", "before:no_pue": "no PUE before",
                "after:no_pue": "no PUE after", "before:no_data": "no data before", "after:no_data": "no data after"},
        "data_span": "Data from {a} to {b}; {kb} whole months available before the completion, {ka} after; "
                     "both sides take the same {k} months (at most {m}).",
        "chart": "Monthly PUE: grey before, green after the retrofit; vertical dashes: completion; horizontal dashes: PUE condition",
        "report": "Project construction report, outline (item 5)", "from_config": "written by the applicant (facility file, applicant section)",
        "from_data": "generated by dcmon from measured data", "to_fill": "[to be completed by the applicant]",
        "sections": {"background": "Background", "main_content": "Main content", "key_directions": "Key directions",
                     "service_fields": "Service fields", "system_functions": "System functions", "service_results": "Service results"},
        "sysfn": "Energy and rack monitoring: {n} meters by role (utility input, IT, cooling, …) count cumulative energy; PUE is the "
                 "ratio of energies (ISO/IEC 30134-2, {cat}); rack inventory and status telemetry give standard racks (2.5 kW), "
                 "occupancy and compute share; counter resets, rollovers and gaps are detected and shown in coverage; every figure "
                 "can be recomputed from the data with dcmon verify.",
        "results_ok": "In the {k} months after the completion ({c}) the PUE was {pa}, against {pb} in as many months before; "
                      "at the same IT load {saved} kWh were saved, {co2} t CO₂ avoided. The compute share at period end went "
                      "from {sb} to {sa}; {std} standard racks.",
    },
}


def _e(x) -> str:
    return html.escape(str(x))


def _table(head, rows, cls="") -> str:
    th = "".join(f"<th>{_e(h)}</th>" for h in head)
    trs = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)  # cells are escaped by callers
    return f'<table class="{cls}"><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table>'


def _num(x, nd=1) -> str:
    return "—" if x is None else f"{x:,.{nd}f}"


def _pct(exact_text, value=None) -> str:
    v = to_fraction(exact_text) if exact_text is not None else to_fraction(value)
    return "—" if v is None else figure_text(v, 2, percent=True)


def _pue(exact_text, threshold=None) -> str:
    return "—" if exact_text is None else figure_text(exact_text, 3, threshold)


def _money(value, exact_text=None) -> str:
    if value is None:
        return "—"
    x = to_fraction(exact_text) if exact_text else to_fraction(value)
    if (x * 100).denominator == 1:
        return f"{float(x):,.2f}"
    return f"{float(x):,.2f} (= {x.numerator:,}/{x.denominator:,})"


def window_row(window: dict | None, lang: str) -> list[str] | None:
    """The completion window as a row of the checks table: metric, value, condition, margin, result, clause."""
    if not window:
        return None
    t = T[lang]
    result = t["unknown"] if window["inside"] is None else (t["in"] if window["inside"] else t["out"])
    return [t["completed"], window["completed"] or "—",
            t["window_rule"].format(lo=window["completion_from"], hi=window["completion_to"]), "—", result,
            window["clause"]]


def verdict_note(window: dict | None, lang: str) -> str:
    """Said beside the overall verdict when the completion date is outside the application window."""
    if not window or window["inside"] is not False:
        return ""
    return ("<b class='warn'>；但项目结项日期不在申报范围内，不符合申报条件</b>" if lang == "zh"
            else "<b class='warn'>; but the project completion is outside the completion window: the condition is not met</b>")


def checklist_section(pack: dict, lang: str) -> str:
    t = T[lang]
    rows = []
    for c in pack["checklist"]:
        n = c["item"]
        state = t["status"][c["status"]] + (f"<br><span class='note'>{t['missing']}"
                                            f"{_e(('、' if lang == 'zh' else ', ').join(_missing_text(m, lang) for m in c['missing']))}</span>"
                                            if c["missing"] else "")
        notice = c["text"] if lang == "zh" else t["notice_text"][n]   # zh quotes the notice verbatim
        rows.append([f"({n})", _e(notice), _e(t["pack_text"][n]), _e(t["attach_text"][n]), state, _e(c["clause"])])
    return (f"<h3>{t['checklist']}</h3>"
            + _table([t["item"], t["notice"], t["pack"], t["attach"], t["state"], t["clause"]], rows, "checklist"))


def window_section(pack: dict, lang: str) -> str:
    row = window_row(pack.get("application_window"), lang)
    if row is None:
        return ""
    t = T[lang]
    return f"<h3>{t['window']}</h3>" + _table([""] * len(row), [[_e(c) for c in row]], "window")


CONFIG_KEY_TEXT = {
    "zh": {"operator": "运营单位", "credit_code": "统一社会信用代码", "address": "地址", "contact": "联系方式", "name": "名称",
           "applicant.legal_representative": "申报信息·法定代表人", "applicant.contact_person": "申报信息·联系人",
           "applicant.contact_phone": "申报信息·联系电话", "applicant.project_name": "申报信息·项目名称",
           "retrofit.completed": "改造信息·完成日期", "retrofit.cost_cny": "改造信息·改造总成本"},
    "en": {"operator": "operator", "credit_code": "credit code", "address": "address", "contact": "contact", "name": "name",
           "applicant.legal_representative": "applicant · legal representative", "applicant.contact_person": "applicant · contact person",
           "applicant.contact_phone": "applicant · contact phone", "applicant.project_name": "applicant · project name",
           "retrofit.completed": "retrofit · completion date", "retrofit.cost_cny": "retrofit · total cost"},
}
STATEMENT_KEY_TEXT = {"zh": {"investment": "上一年度实际投资额", "compute_share": "上年末计算功能占比",
                             "avg_cost_per_rack": "平均每架改造成本", "before_after": "改造前后对比"},
                      "en": {"investment": "prior year's actual investment", "compute_share": "compute share at the prior year's end",
                             "avg_cost_per_rack": "average retrofit cost per rack", "before_after": "before/after comparison"}}


def _source_text(src: str, lang: str) -> str:
    """``cd-east-01.yaml: retrofit.cost_cny`` in words: the facility file's field, never the key."""
    _, sep, key = src.partition(": ")
    if not sep or key not in CONFIG_KEY_TEXT[lang]:
        return src   # a document the applicant named (investment source): their words
    return (f"数据中心配置文件：{CONFIG_KEY_TEXT[lang][key]}" if lang == "zh"
            else f"facility file: {CONFIG_KEY_TEXT[lang][key]}")


def _form_source(src: str | None, lang: str) -> str:
    """Where an item (1) field comes from, in words."""
    t = T[lang]
    if not src:
        return "—"
    if src.startswith("inventory:"):
        return t["src_inventory"].format(d=src.split(":", 1)[1])
    if src == "subsidy_computation":
        return t["src_subsidy"]
    return _source_text(src, lang)


def _missing_text(name: str, lang: str) -> str:
    t = T[lang]
    return t["fields"].get(name) or t["sections"].get(name) or STATEMENT_KEY_TEXT[lang].get(name, name)


def form_section(pack: dict, lang: str) -> str:
    t = T[lang]
    rows = []
    for r in pack["form_fields"]:
        v = r["value"]
        if v is None:
            txt = f"<span class='todo'>{t['not_set']}</span>"
        elif r["field"].endswith("_cny"):
            txt = _money(v) + "".join(f"<br><b class='warn'>{_e(t[k])}</b>" for k in ("hypothetical", "upper_bound") if r.get(k))
        else:
            txt = _e(v)
        rows.append([_e(t["fields"][r["field"]]), txt, _e(_form_source(r["source"], lang))])
    return f"<h3>{t['form']}</h3>" + _table([t["field"], t["value"], t["source"]], rows, "form")


def statement_section(pack: dict, lang: str) -> str:
    t = T[lang]
    st = pack["statement"]
    year = st["year"]
    inv = st["investment"]
    rows = [[_e(t["invest"].format(year=year)),
             "—" if inv is None else _money(inv["amount_cny"]),
             _e(t["invest_missing"].format(year=year)) if inv is None else _e(inv["source"])]]
    cs = st["compute_share"]
    basis = t["share_basis"].format(reading=t["readings"].get(cs["reading"], cs["reading_text"]), num=_num(cs["compute_design_power_kw"]),
                                    den=_num(cs["in_service_design_power_kw"]), racks=cs["in_service_racks"],
                                    comp=cs["compute_racks"], file=cs["racks_file"], n=cs["inventory_changes_applied"])
    rows.append([_e(t["share"].format(date=cs["as_of"])), _pct(cs["value_exact"]),
                 _e(basis + (t["share_fallback"] if cs["fallback_from_it_energy"] else ""))])
    avg = st["avg_cost_per_rack"]
    rows.append([_e(t["avg"]), _money(avg["value_cny"], avg["value_exact"]),
                 _e(t["avg_missing"]) if avg["value_cny"] is None else
                 _e(t["avg_basis"].format(cost=_money(avg["retrofit_cost_cny"]), racks=avg["in_use_physical_racks"],
                                          date=avg["racks_as_of"], src=_source_text(avg["source"], lang)))])
    return f"<h3>{t['statement']}</h3>" + _table([t["st_item"], t["st_value"], t["st_basis"]], rows, "statement")


def _change(b, a, fmt) -> str:
    return "—" if b is None or a is None else fmt(a, b)


def _pp(b, a, key, lang) -> str:
    """Change of a share in percentage points, from the exact fractions."""
    if b is None or a is None or b["exact"].get(key) is None or a["exact"].get(key) is None:
        return "—"
    d = (to_fraction(a["exact"][key]) - to_fraction(b["exact"][key])) * 100
    return ("+" if d >= 0 else "") + figure_text(d, 2) + T[lang]["pp"]


def before_after_section(pack: dict, lang: str, pue_threshold=None) -> str:
    t = T[lang]
    ba = pack["before_after"]
    b, a = ba["before"], ba["after"]
    out = [f"<h3>{t['before_after']}</h3>"]
    if ba.get("data_first_day") is not None or ba.get("data_last_day") is not None:
        out.append("<p class='note'>" + _e(t["data_span"].format(
            a=ba.get("data_first_day") or "—", b=ba.get("data_last_day") or "—", kb=ba.get("months_before_available", 0),
            ka=ba.get("months_after_available", 0), k=ba["months"], m=ba["months_asked"])) + "</p>")
    if ba["status"] != "ok":
        out.append("<p class='warn'><b>" + _e(t["inconclusive"].format(
            why="；".join(t["why"].get(r, r) for r in ba["reasons"]) if lang == "zh"
            else "; ".join(t["why"].get(r, r) for r in ba["reasons"]))) + "</b></p>")
    if b is None and a is None:
        return "".join(out)

    def col(side, f):
        return "—" if side is None else f(side)
    rows = [
        [t["period"], col(b, lambda s: f"{s['from']} — {s['to']}<br>" + _e(t["months"].format(n=s["months"], d=s["days"]))),
         col(a, lambda s: f"{s['from']} — {s['to']}<br>" + _e(t["months"].format(n=s["months"], d=s["days"]))), ""],
        [t["pue"], col(b, lambda s: f"<b>{_pue(s['exact']['pue'], pue_threshold)}</b> ({_e(LABEL_TEXT[lang][s['pue_label']])})"),
         col(a, lambda s: f"<b>{_pue(s['exact']['pue'], pue_threshold)}</b> ({_e(LABEL_TEXT[lang][s['pue_label']])})"),
         "—" if b is None or a is None or b["pue"] is None or a["pue"] is None else
         figure_text(to_fraction(a["exact"]["pue"]) - to_fraction(b["exact"]["pue"]), 3)],
        [t["pue_cat"], col(b, lambda s: _e(PUE_CATEGORY_TEXT[lang][s["pue_category"]])),
         col(a, lambda s: _e(PUE_CATEGORY_TEXT[lang][s["pue_category"]])), ""],
        [t["coverage"], col(b, lambda s: _num(s["coverage"] * 100, 2) + "%"),
         col(a, lambda s: _num(s["coverage"] * 100, 2) + "%"), ""],
        [t["fac_kwh"], col(b, lambda s: _num(s["facility_energy_kwh"])), col(a, lambda s: _num(s["facility_energy_kwh"])),
         _change(b and b["facility_energy_kwh"], a and a["facility_energy_kwh"], lambda x, y: f"{x - y:+,.1f}")],
        [t["it_kwh"], col(b, lambda s: _num(s["it_energy_kwh"])), col(a, lambda s: _num(s["it_energy_kwh"])),
         _change(b and b["it_energy_kwh"], a and a["it_energy_kwh"], lambda x, y: f"{x - y:+,.1f}")],
        [t["occupancy"], col(b, lambda s: _pct(s["exact"]["occupancy_rate"])), col(a, lambda s: _pct(s["exact"]["occupancy_rate"])),
         _pp(b, a, "occupancy_rate", lang)],
        [t["compute_share"], col(b, lambda s: _pct(s["exact"]["compute_share"])), col(a, lambda s: _pct(s["exact"]["compute_share"])),
         _pp(b, a, "compute_share", lang)],
        [t["std"], col(b, lambda s: _num(s["standard_racks"])), col(a, lambda s: _num(s["standard_racks"])),
         _change(b and b["standard_racks"], a and a["standard_racks"], lambda x, y: f"{x - y:+,.1f}")],
    ]
    out.append(_table([t["metric"], t["before"], t["after"], t["change"]], [[_e(r[0])] + r[1:] for r in rows], "ba"))
    gf = ba["grid_emission_factor"]
    factor = t["factor"].format(f=gf["t_co2_per_mwh"], src=gf["source"]) + ("" if ba["grid_factor_configured"] else t["factor_default"])
    if ba["status"] == "ok":
        out.append(_table(["", t["value"], ""], [
            [_e(t["saved"]), f"<b>{_num(ba['energy_saved_kwh'])} kWh</b>", _e(t["saved_rule"])],
            [_e(t["co2"]), f"<b>{_num(ba['energy_saved_t_co2'], 2)} t</b>", _e(factor)]], "kv3"))
    out.append(f"<figure>{svg_across(ba['monthly'], ba.get('completed'), pue_threshold)}"
               f"<figcaption>{_e(t['chart'])}</figcaption></figure>")
    return "".join(out)


def svg_across(monthly: list[dict], completed: str | None, threshold=None, op: str = "<") -> str:
    """Monthly PUE bars across the completion date (before grey, after green), as inline SVG."""
    vals = [m["pue"] for m in monthly]
    present = [v for v in vals if v is not None]
    if not present:
        return ""
    w, h, pad = 680, 230, 40
    top = max(present + ([threshold] if threshold else [])) * 1.04
    bottom = min(1.0, min(present))
    span = max(top - bottom, 1e-9)
    bw = (w - 2 * pad) / len(vals)

    def y(v):
        return h - pad - (v - bottom) / span * (h - 2 * pad)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="100%" role="img">',
             f'<line x1="{pad}" y1="{h - pad}" x2="{w - pad}" y2="{h - pad}" stroke="#555"/>']
    split = None
    for i, (m, v) in enumerate(zip(monthly, vals)):
        x = pad + i * bw + bw * 0.12
        if split is None and m["side"] == "after":
            split = pad + i * bw
        if v is not None:
            color = "#9e9e9e" if m["side"] == "before" else "#2e7d32"
            parts.append(f'<rect x="{x:.1f}" y="{y(v):.1f}" width="{bw * 0.76:.1f}" height="{h - pad - y(v):.1f}" fill="{color}"/>')
            if len(vals) <= 26:
                parts.append(f'<text x="{x + bw * 0.38:.1f}" y="{y(v) - 3:.1f}" font-size="7" text-anchor="middle">'
                             f'{v:.3f}</text>')
        if i % max(1, len(vals) // 12) == 0 or m["side"] == "after" and monthly[i - 1]["side"] == "before":
            parts.append(f'<text x="{x + bw * 0.38:.1f}" y="{h - pad + 12:.1f}" font-size="8" text-anchor="middle">{html.escape(m["bin"])}</text>')
    if split is not None:
        parts.append(f'<line x1="{split:.1f}" y1="{pad / 2}" x2="{split:.1f}" y2="{h - pad}" stroke="#e65100" stroke-dasharray="4 3"/>')
        if completed:
            parts.append(f'<text x="{split + 3:.1f}" y="{pad / 2 + 8}" font-size="9" fill="#e65100">{html.escape(completed)}</text>')
    if threshold is not None:
        parts.append(f'<line x1="{pad}" y1="{y(threshold):.1f}" x2="{w - pad}" y2="{y(threshold):.1f}" stroke="#1565c0" stroke-dasharray="6 4"/>')
        parts.append(f'<text x="{w - pad}" y="{y(threshold) - 4:.1f}" font-size="9" text-anchor="end" fill="#1565c0">{threshold}</text>')
    parts.append("</svg>")
    return "".join(parts)


def report_section(pack: dict, lang: str, meters: int, pue_category: int) -> str:
    t = T[lang]
    ba = pack["before_after"]
    rows = []
    for k, sec in pack["report"].items():
        if sec["from"] == "config":
            body = f"<span class='todo'>{t['to_fill']}</span>" if sec["missing"] else _e(sec["text"])
            origin = t["from_config"]
        elif k == "system_functions":
            body = _e(t["sysfn"].format(n=meters, cat=PUE_CATEGORY_TEXT[lang][pue_category]))
            origin = t["from_data"]
        else:
            origin = t["from_data"]
            if ba["status"] == "ok":
                b, a = ba["before"], ba["after"]
                body = _e(t["results_ok"].format(
                    k=ba["months"], c=ba["completed"], pa=_pue(a["exact"]["pue"]), pb=_pue(b["exact"]["pue"]),
                    saved=_num(ba["energy_saved_kwh"]), co2=_num(ba["energy_saved_t_co2"], 2),
                    sb=_pct(b["exact"]["compute_share"]), sa=_pct(a["exact"]["compute_share"]), std=_num(a["standard_racks"])))
            else:
                body = "<b>" + _e(t["inconclusive"].format(why=", ".join(t["why"].get(r, r) for r in ba["reasons"]))) + "</b>"
        rows.append([_e(t["sections"][k]), body, f"<span class='note'>{_e(origin)}</span>"])
    return f"<h3>{t['report']}</h3>" + _table(["", "", ""], rows, "report")


def pack_html(pack: dict, lang: str, *, meters: int, pue_category: int, pue_threshold=None) -> str:
    """The annex: checklist, completion window, form fields, statement, before/after, report outline."""
    t = T[lang]
    return ("<section class='pack'>"
            f"<h2>{t['part']}</h2>"
            + checklist_section(pack, lang) + window_section(pack, lang) + form_section(pack, lang)
            + statement_section(pack, lang) + before_after_section(pack, lang, pue_threshold)
            + report_section(pack, lang, meters, pue_category) + "</section>")


PACK_CSS = """
.pack { page-break-before: always; } .pack h3 { margin-top: 5mm; page-break-after: avoid; }
.pack tr, .pack figure { page-break-inside: avoid; }
.checklist th:first-child { width: 7%; } .checklist th:nth-child(5) { width: 11%; } .checklist th:last-child { width: 14%; }
.window thead, .report thead { display: none; } .report td:first-child { width: 16%; background: #f6f8fa; }
.report td:last-child { width: 18%; } .statement td:first-child, .form td:first-child { width: 28%; background: #f6f8fa; }
.statement td:nth-child(2) { width: 20%; } .ba td:first-child { width: 22%; background: #f6f8fa; }
.kv3 thead { display: none; } .kv3 td:first-child { width: 28%; }
.todo { color: #b26a00; font-weight: bold; } .warn { color: #b71c1c; }
"""


def form_xlsx(pack: dict, lang: str) -> bytes:
    """The item (1) fields as a two-sheet workbook (fields; statement) to paste into the online form."""
    from openpyxl import Workbook
    from openpyxl.styles import Font
    t = T[lang]
    wb = Workbook()
    ws = wb.active
    ws.title = "申报表" if lang == "zh" else "form"
    ws.append([t["field"], t["value"], t["source"]])
    for r in pack["form_fields"]:
        ws.append([t["fields"][r["field"]], r["value"], _form_source(r["source"], lang)])
    st = pack["statement"]
    ws2 = wb.create_sheet("专项财务报表" if lang == "zh" else "statement")
    ws2.append([t["st_item"], t["st_value"], t["st_basis"]])
    inv = st["investment"]
    ws2.append([t["invest"].format(year=st["year"]), None if inv is None else inv["amount_cny"],
                t["invest_missing"].format(year=st["year"]) if inv is None else inv["source"]])
    cs = st["compute_share"]
    ws2.append([t["share"].format(date=cs["as_of"]), cs["value"], cs["reading_text"]])
    avg = st["avg_cost_per_rack"]
    ws2.append([t["avg"], avg["value_cny"], avg["value_exact"]])
    for sheet in (ws, ws2):
        for c in sheet[1]:
            c.font = Font(bold=True)
        sheet.column_dimensions["A"].width = 34
        sheet.column_dimensions["B"].width = 40
        sheet.column_dimensions["C"].width = 60
    ws2["B3"].number_format = "0.00%"
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()

