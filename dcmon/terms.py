"""The product's words for its codes, in Chinese and English: one table for the dashboard and the reports.

Codes (``small_medium``, ``cloud``, ``interim``, ``in_service`` …) stay in data and JSON; people
read the words here. Figures arrive structured from ``metrics`` (a check's ``value_text``,
``op``, ``threshold``; a margin's value, unit and direction; a subsidy step's numbers) and are
put into sentences only here, per language, so the dashboard, the PDF/HTML evidence and the
exports say the same thing. Nothing here computes a figure or a decision.

Numbers: grouping and decimal signs per language (CLDR through Babel), fixed decimals (never
scientific notation); money in 元, large amounts in 万元 (zh); shares as percentages.
"""
from __future__ import annotations

import math
import re
from decimal import Decimal
from fractions import Fraction
from functools import cache

from babel import Locale
from babel.numbers import get_decimal_symbol, get_group_symbol

LANGS = ("zh", "en")
LOCALES = {"zh": "zh_CN", "en": "en_GB"}  # Babel

STATUS_TEXT = {
    "zh": {"pass": "达标", "fail": "未达标", "inconclusive": "数据不足", "not_applicable": "不适用",
           True: "符合", False: "不符合", None: "待定（数据不足）"},
    "en": {"pass": "pass", "fail": "fail", "inconclusive": "inconclusive", "not_applicable": "not applicable",
           True: "eligible", False: "not eligible", None: "inconclusive"},
}
SIZE_TEXT = {"zh": {"hyperscale": "超大型", "large": "大型", "small_medium": "中小型", "micro": "边缘/微型"},
             "en": {"hyperscale": "hyperscale", "large": "large", "small_medium": "small/medium", "micro": "micro/edge"}}
KIND_TEXT = {"zh": {"cloud": "云计算中心", "supercomputing": "超算中心", "intelligent": "智算中心", "edge": "边缘数据中心",
                    "enterprise": "企业数据中心"},
             "en": {"cloud": "cloud-computing centre", "supercomputing": "supercomputing centre",
                    "intelligent": "AI computing centre", "edge": "edge data centre", "enterprise": "enterprise data centre"}}
LABEL_TEXT = {"zh": {"interim": "阶段值（不足12个月）", "annual": "年度值"},
              "en": {"interim": "interim (less than 12 months)", "annual": "annual"}}
# where IT energy is measured (ISO/IEC 30134-2 PUE categories 1-3)
PUE_CATEGORY_TEXT = {"zh": {1: "PUE1类（UPS输出）", 2: "PUE2类（PDU输出）", 3: "PUE3类（IT设备输入）"},
                     "en": {1: "PUE category 1 (UPS output)", 2: "PUE category 2 (PDU output)",
                            3: "PUE category 3 (IT equipment input)"}}
CITY_TEXT = {"zh": {"chengdu": "成都市", "baoding": "保定市", "*": "全国"},
             "en": {"chengdu": "Chengdu", "baoding": "Baoding", "*": "nationwide"}}
ROLE_TEXT = {"zh": {"facility": "总用电（市电进线）", "it": "IT设备", "cooling": "制冷", "lighting": "照明",
                    "power_loss": "供配电损耗", "other": "其他"},
             "en": {"facility": "facility (utility input)", "it": "IT equipment", "cooling": "cooling",
                    "lighting": "lighting", "power_loss": "power distribution losses", "other": "other"}}
RACK_FUNCTION_TEXT = {"zh": {"compute": "计算", "storage": "存储", "network": "网络", "other": "其他"},
                      "en": {"compute": "compute", "storage": "storage", "network": "network", "other": "other"}}
RACK_STATUS_TEXT = {"zh": {"in_service": "在用", "vacant": "空置", "reserved": "预留", "decommissioned": "已停用"},
                    "en": {"in_service": "in service", "vacant": "vacant", "reserved": "reserved",
                           "decommissioned": "decommissioned"}}
EVENT_TEXT = {"zh": {"reset": "计数器重置", "rollover": "计数器翻转", "noise_dip": "读数小幅回落（噪声）", "gap": "数据缺口",
                     "late": "迟到读数", "rejected": "拒收报文", "silent": "电表静默",
                     "implausible_step": "不可能的计数跳变（未计入电量）", "new_baseline": "计数器新基准（换表）"},
              "en": {"reset": "counter reset", "rollover": "counter rollover", "noise_dip": "small dip (meter noise)",
                     "gap": "data gap", "late": "late reading", "rejected": "rejected payload", "silent": "meter silent",
                     "implausible_step": "impossible counter step (not counted)",
                     "new_baseline": "counter new baseline (meter replaced)"}}
IT_FROM_TEXT = {"zh": {"meters": "IT电表", "racks": "机架计量汇总"}, "en": {"meters": "IT meters", "racks": "sum of rack meters"}}
SCOPE_TEXT = {"zh": {"city": "全市", "cluster_start_area": "集群起步区"}, "en": {"city": "city-wide", "cluster_start_area": "cluster start area"}}
FLAG_TEXT = {"zh": {"retrofit_required": "需实施节能改造", "consolidate_or_edge": "宜整合或转为边缘数据中心"},
             "en": {"retrofit_required": "energy-saving retrofit required", "consolidate_or_edge": "consolidate or convert to an edge site"}}
REASON_TEXT = {"zh": {"not_eligible": "未满足全部申报条件", "not_in_force": "该政策在此统计期不在有效期内",
                      "outside_application_window": "改造完成时间不在申报时间窗内"},
               "en": {"not_eligible": "not every requirement is met", "not_in_force": "the measure is not in force for this period",
                      "outside_application_window": "the retrofit was completed outside the application window"}}
RACK_BASIS_TEXT = {"zh": {"standard": "标准机架（2.5 kW折算）", "physical": "物理机架"},
                   "en": {"standard": "standard racks (2.5 kW each)", "physical": "physical racks"}}
SHARE_BASIS_TEXT = {"zh": {"design_power": "在用计算机架设计功率 ÷ 全部在用机架设计功率",
                           "rack_count": "在用计算机架数 ÷ 全部在用机架数（物理数量）",
                           "it_energy": "计算机架实测耗电量 ÷ 全部机架实测耗电量",
                           "compute_storage": "在用计算机架设计功率 ÷ 在用计算与存储机架设计功率"},
                    "en": {"design_power": "design power of in-service compute racks ÷ design power of all in-service racks",
                           "rack_count": "in-service compute racks ÷ all in-service racks (physical count)",
                           "it_energy": "measured energy of compute racks ÷ measured energy of all racks",
                           "compute_storage": "design power of in-service compute racks ÷ in-service compute and storage racks"}}
INVENTORY_TEXT = {"zh": {"end_of_period": "统计期末的机架清单", "time_weighted": "按时间加权的机架清单"},
                  "en": {"end_of_period": "rack inventory at the end of the period",
                         "time_weighted": "time-weighted rack inventory"}}
# how the figures are made, in words (the JSON's ``basis`` keeps the codes)
METHOD_TEXT = {
    "zh": {"pue": "统计期内总耗电量之和 ÷ IT设备耗电量之和（ISO/IEC 30134-2）",
           "periods": "各数据中心所在时区的日历日（含首尾两日）",
           "coverage": "相邻读数间隔不超过该电表最大允许间隔的时段占统计期的比例；PUE覆盖率取总耗电与IT耗电覆盖率中的较低者",
           "decisions": "精确判定：能耗以毫瓦时整数计，设计功率与阈值按其十进制值，比值按分数比较，不受四舍五入影响",
           "standard_rack": "Σ机架设计功率 ÷ 2.5 kW（不含已停用机架）",
           "occupancy": "在用机架设计功率 ÷ 机架设计总功率",
           "min_coverage": "数据覆盖率低于 {p} 的条件判定为数据不足"},
    "en": {"pue": "ratio of sums: facility energy ÷ IT energy over the period (ISO/IEC 30134-2)",
           "periods": "inclusive calendar days in each facility's time zone",
           "coverage": "share of the period spanned by readings no further apart than each meter's maximum gap; "
                       "PUE coverage is the lower of facility and IT energy coverage",
           "decisions": "exact: energies in whole milliwatt-hours, design powers and thresholds at their decimal values, "
                        "ratios compared as fractions, so no rounding can change a decision",
           "standard_rack": "Σ rack design power ÷ 2.5 kW (decommissioned racks excluded)",
           "occupancy": "design power in service ÷ total design power",
           "min_coverage": "a check with data coverage below {p} is inconclusive"},
}


SOURCE_KIND_TEXT = {"zh": {"meter": "电表", "rack": "机架", "rack-inventory": "机架清单变更"},
                    "en": {"meter": "meter", "rack": "rack", "rack-inventory": "rack inventory change"}}
METER_METHOD_TEXT = {"zh": {"counter": "电能计数器差值", "power": "功率积分", "none": "无读数"},
                     "en": {"counter": "energy counter difference", "power": "power integration", "none": "no readings"}}


def date_text(d, lang: str) -> str:
    """A calendar date: 2026年7月6日 / 6 Jul 2026 (Babel, CLDR)."""
    import datetime as dt

    from babel.dates import format_date
    if d in (None, ""):
        return "—"
    if isinstance(d, str):
        d = dt.date.fromisoformat(d[:10])
    return format_date(d, "medium", locale=_locale(lang))


def pue_category_text(category, lang: str) -> str:
    """A PUE category (1-3, or its text form) in words."""
    try:
        return term(PUE_CATEGORY_TEXT, lang, int(category))
    except (TypeError, ValueError):
        return "—" if category in (None, "") else str(category)


# Metrics a check may name; "percent" ones are shares [0-1] shown as percentages, thresholds too.
METRIC_TEXT = {
    "zh": {"pue": "PUE", "racks": "标准机架数", "standard_racks": "标准机架数", "physical_racks": "物理机架数",
           "compute_share": "计算功能占比", "occupancy_rate": "上架率", "annual_terminals_served": "年服务终端数",
           "avg_design_power_per_rack_kw": "单机架平均设计功率"},
    "en": {"pue": "PUE", "racks": "standard racks", "standard_racks": "standard racks", "physical_racks": "physical racks",
           "compute_share": "compute share", "occupancy_rate": "occupancy", "annual_terminals_served": "terminals served a year",
           "avg_design_power_per_rack_kw": "average design power per rack"},
}
PERCENT_METRICS = frozenset({"compute_share", "occupancy_rate"})
METRIC_UNIT = {"avg_design_power_per_rack_kw": "kW"}
# the policy texts' own words for the operators, and the full-width signs a Chinese page uses
OP_WORDS = {"zh": {"<": "低于", "<=": "不高于", ">": "大于", ">=": "不低于"},
            "en": {"<": "below", "<=": "at most", ">": "above", ">=": "at least"}}
OP_SIGNS = {"zh": {"<": "＜", "<=": "≤", ">": "＞", ">=": "≥"}, "en": {"<": "<", "<=": "≤", ">": ">", ">=": "≥"}}

# Short titles of the built-in profiles, for column headers and badges; a profile of one's own
# uses its ``short_title`` (zh/en) when it has one, else its title.
PROFILE_SHORT = {
    "chengdu-2023-cloud-retrofit": {"zh": "成都·云中心改造补贴", "en": "Chengdu retrofit subsidy"},
    "chengdu-2023-edge-center": {"zh": "成都·边缘计算中心补贴", "en": "Chengdu edge-centre subsidy"},
    "chengdu-hub-2025": {"zh": "成都·枢纽节点目标", "en": "Chengdu hub targets"},
    "baoding-2024-cloud-retrofit": {"zh": "保定·改造补贴", "en": "Baoding retrofit subsidy"},
    "gb40879-2021": {"zh": "GB 40879 能效等级", "en": "GB 40879 grades"},
}


def term(table: dict, lang: str, code):
    """The word for ``code`` in ``lang`` (Chinese when the language is unknown), else the code."""
    return table.get(lang, table["zh"]).get(code, code)


def city_text(city: str, lang: str) -> str:
    """A city in words; an unknown city code capitalised (it is a pinyin name)."""
    words = CITY_TEXT.get(lang, CITY_TEXT["zh"]).get(city)
    return words if words else str(city).capitalize()


def profile_title(pid: str, title: dict | None, lang: str, short: bool = False, raw: dict | None = None) -> str:
    """A profile's title in the language (its short form for headers), never its file name when a title exists."""
    if short:
        own = (raw or {}).get("short_title") or PROFILE_SHORT.get(pid)
        if own and own.get(lang):
            return own[lang]
    title = title or {}
    return title.get(lang) or title.get("zh") or pid


# internal notes in a profile's ``source`` (where the text was filed), not for readers
_INTERNAL_NOTE = re.compile(r"\s*[(（][^()（）]*(seeds/|domain\.md)[^()（）]*[)）]")


def source_text(source: str | None) -> str:
    """A profile's source citation without the repository's filing notes ("(seeds/000)")."""
    return _INTERNAL_NOTE.sub("", source or "").strip()


# ------------------------------------------------------------------------------------------ numbers
def _missing(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


@cache
def _locale(lang: str) -> Locale:
    return Locale.parse(LOCALES.get(lang, "zh_CN"))


@cache
def _number_signs(lang: str) -> dict | None:
    """The language's decimal and grouping signs (CLDR, through Babel); None when they are ``.`` and ``,``."""
    dec, grp = get_decimal_symbol(_locale(lang)), get_group_symbol(_locale(lang))
    return None if (dec, grp) == (".", ",") else str.maketrans({".": dec, ",": grp})


def num(x, lang: str, nd: int = 1) -> str:
    """A number with the language's grouping and decimal signs, ``nd`` decimals, never in
    scientific notation; — when missing."""
    return nums((x,), lang, nd)[0]


def nums(values, lang: str, nd: int = 1) -> list[str]:
    """``num`` of each value, quick enough for every rack of a 10 000-rack floor map every 10 s."""
    signs = _number_signs(lang)
    out = []
    for x in values:
        if _missing(x):
            out.append("—")
            continue
        text = f"{float(x):,.{nd}f}"
        if text.startswith("-0") and not text.strip("-0."):   # -0, -0.00: a negative that rounds to zero
            text = text[1:]
        out.append(text.translate(signs) if signs else text)
    return out


def pct(x, lang: str, nd: int = 1) -> str:
    """A share [-] as a percentage in the language's format; — when missing."""
    if _missing(x):
        return "—"
    return num(x * 100, lang, nd) + "%"


def plain(x, lang: str) -> str:
    """A decimal as written (``1.25``, ``1000``, ``0.7``), grouped, without added or lost digits."""
    if _missing(x):
        return "—"
    d = Decimal(repr(float(x))) if not isinstance(x, int) else Decimal(x)
    d = d.normalize()
    nd = max(0, -d.as_tuple().exponent)
    return num(float(d), lang, nd)


def _trimmed(value: Fraction, max_nd: int) -> int:
    """The fewest decimals (≤ max_nd) that show ``value`` exactly, else max_nd."""
    for nd in range(max_nd + 1):
        if (value * 10 ** nd).denominator == 1:
            return nd
    return max_nd


def money(cny, lang: str) -> str:
    """An amount [CNY]: 1,234.50元 / 62万元 / 50.0005万元 in Chinese (万元 from 10 000 on, exact to the
    fen), CNY 620,000.00 in English."""
    if _missing(cny):
        return "—"
    v = Fraction(repr(float(cny)))
    if lang == "zh":
        if abs(v) >= 10_000:
            wan = v / 10_000
            return num(float(wan), lang, _trimmed(wan, 6)) + "万元"
        return num(float(v), lang, 2) + "元"
    return "CNY " + num(float(v), lang, 2)


# ------------------------------------------------------------------------------------------ checks
def metric_name(metric: str, lang: str) -> str:
    return term(METRIC_TEXT, lang, metric)


def threshold_text(metric: str, op: str, threshold, lang: str, words: bool = False) -> str:
    """``＜ 1.25`` / ``≥ 1,000`` / ``＞ 70%`` (``words``: 低于 1.25 / below 1.25); shares as percentages."""
    sign = term(OP_WORDS if words else OP_SIGNS, lang, op)
    if metric in PERCENT_METRICS:
        value = plain(float(Fraction(repr(float(threshold))) * 100), lang) + "%"
    else:
        value = plain(threshold, lang) + (f" {METRIC_UNIT[metric]}" if metric in METRIC_UNIT else "")
    return f"{sign} {value}"


def value_text(check: dict, lang: str) -> str:
    """A check's figure as ``metrics`` printed it (agreeing with the exact decision), in the language's signs."""
    text = check.get("value_text")
    if text in (None, "", "—"):
        return "—"
    m = re.fullmatch(r"(-?\d+)(?:\.(\d+))?([+−]?%?|%?[+−]?)", text)
    if m:  # grouped, with exactly the digits metrics printed
        grouped = f"{int(m.group(1)):,}" + (f".{m.group(2)}" if m.group(2) else "")  # as strings: no digit changes
        signs = _number_signs(lang)
        return (grouped.translate(signs) if signs else grouped) + m.group(3) \
            + (f" {METRIC_UNIT[check['metric']]}" if check.get("metric") in METRIC_UNIT else "")
    signs = _number_signs(lang)
    text = text.translate(signs) if signs else text
    unit = METRIC_UNIT.get(check.get("metric"))
    return f"{text} {unit}" if unit else text


MARGIN_TEXT = {
    # kind: (short side, surplus side) per language; {v} is the amount with its unit
    "facility_energy": {"zh": ("需在IT能耗不变时减少总耗电超过 {v}", "在IT能耗不变时总耗电尚余 {v}"),
                        "en": ("save more than {v} of facility energy at the same IT energy",
                               "{v} of facility energy headroom at the same IT energy")},
    "standard_racks": {"zh": ("还差 {v} 个标准机架（{kw} 设计功率）", "超出阈值 {v} 个标准机架"),
                       "en": ("add {v} standard racks ({kw} of design power)", "{v} standard racks above the threshold")},
    "physical_racks": {"zh": ("还差 {v} 个物理机架", "超出阈值 {v} 个物理机架"),
                       "en": ("{v} physical racks short", "{v} physical racks above the threshold")},
    "compute_design_power": {"zh": ("需将超过 {v} 的在用设计功率转为计算功能", "计算功能设计功率超出阈值 {v}"),
                             "en": ("move more than {v} of in-service design power to compute",
                                    "{v} of compute design power above the threshold")},
    "in_service_design_power": {"zh": ("需新增在用设计功率 {v}", "在用设计功率尚余 {v}"),
                                "en": ("bring {v} of design power into service", "headroom of {v} of design power")},
}
_UNIT_DIGITS = {"kWh": 0, "kW": 1, "racks": 1}


def margin_text(detail: dict | None, lang: str) -> str:
    """A structured margin (``metrics.checks``: kind, value, unit, direction) as a sentence."""
    if not detail or detail.get("kind") not in MARGIN_TEXT:
        return ""
    short, surplus = MARGIN_TEXT[detail["kind"]].get(lang, MARGIN_TEXT[detail["kind"]]["zh"])
    unit = detail.get("unit") or ""
    nd = 0 if detail["kind"] == "physical_racks" else _UNIT_DIGITS.get(unit, 1)
    amount = num(abs(detail["value"]), lang, nd) + ("" if unit == "racks" else f" {unit}")
    kw = num(abs(detail.get("design_power_kw") or 0), lang, 1) + " kW"
    return (short if detail["direction"] == "short" else surplus).format(v=amount, kw=kw)


def flag_text(flag: str, lang: str) -> str:
    return term(FLAG_TEXT, lang, flag)


REPORT_ONLY = {"zh": "仅报告，不作为申报条件", "en": "report only, not a requirement"}
NOT_IN_FORCE = {"zh": "该政策在此期间不在有效期内", "en": "measure not in force for this period"}
NOT_DUE = {"zh": "无应付金额，以下为假设测算（仅供参考）", "en": "no amount due; the figure below is hypothetical"}
UPPER_BOUND = {"zh": {"no_retrofit_cost": "上限估算：未提供改造成本", "ceiling_only": "上限估算：政策仅规定上限"},
               "en": {"no_retrofit_cost": "upper bound: no retrofit cost given",
                      "ceiling_only": "upper bound: the text sets only a ceiling"}}
CAP_TEXT = {"zh": {"per_rack_capped": "单架上限限制了单架补贴", "capped": "总额上限限制了补贴金额"},
            "en": {"per_rack_capped": "the per-rack ceiling limited the per-rack amount",
                   "capped": "the total ceiling limited the amount"}}


def result_text(check: dict, lang: str) -> str:
    """A check's result; a report-only check says so and names its flag."""
    out = term(STATUS_TEXT, lang, check["status"])
    if check.get("flag"):
        out += ("（" if lang == "zh" else " (") + REPORT_ONLY[lang] + ("：" if lang == "zh" else ": ") \
            + flag_text(check["flag"], lang) + ("）" if lang == "zh" else ")")
    return out


def reason_text(check: dict, lang: str, min_coverage: float | None = None) -> str:
    """Why a check is inconclusive: no figure, or coverage below the minimum."""
    if check.get("status") != "inconclusive":
        return ""
    if check.get("value") is None:
        return "缺少数据，无法计算该指标" if lang == "zh" else "no figure (missing data)"
    cov = pct(check.get("coverage"), lang)
    need = pct(min_coverage if min_coverage is not None else 0.95, lang, 0)
    return f"数据覆盖率 {cov} 低于要求的 {need}" if lang == "zh" else f"coverage {cov} below the required {need}"


def verdict_text(profile_result: dict, lang: str) -> str:
    """A profile's overall result: 符合 / 不符合 / 待定（数据不足） / 不适用."""
    if not profile_result.get("applicable", True) or profile_result.get("verdict") == "not_applicable":
        return term(STATUS_TEXT, lang, "not_applicable")
    return term(STATUS_TEXT, lang, profile_result.get("eligible"))


# ------------------------------------------------------------------------------------------ subsidy
def _cny_text(text_or_value, lang: str) -> str:
    """A step's amount: the exact text of ``metrics.subsidy`` ("500,000.00", or "5,000/11 (≈ 454.55)"
    when it has no exact two-decimal form) or a number, in 元/万元 or CNY."""
    if not isinstance(text_or_value, str):
        return money(text_or_value, lang)
    m = re.fullmatch(r"([\d,]+/[\d,]+) \(≈ ([\d,.]+)\)", text_or_value)
    if m is None:
        return money(float(text_or_value.replace(",", "")), lang)
    signs = _number_signs(lang)
    frac = m.group(1).translate(signs) if signs else m.group(1)
    approx = money(float(m.group(2).replace(",", "")), lang)
    return f"{frac}元（≈ {approx}）" if lang == "zh" else f"CNY {frac} (≈ {approx})"


def steps_text(estimate: dict | None, lang: str) -> list[str]:
    """The subsidy estimate's steps (structured in ``metrics.subsidy``) as sentences."""
    out = []
    for s in (estimate or {}).get("steps", []):
        k = s.get("step")
        if k == "in_use_racks":
            out.append(f"在用物理机架数 = {num(s['racks'], lang, 0)}" if lang == "zh"
                       else f"in-use physical racks = {num(s['racks'], lang, 0)}")
        elif k == "avg_cost":
            cost, n, avg = money(s["retrofit_cost_cny"], lang), num(s["racks"], lang, 0), _cny_text(s["avg_cny"], lang)
            out.append(f"单架平均改造成本 = {cost} ÷ {n} = {avg}" if lang == "zh"
                       else f"average retrofit cost per rack = {cost} / {n} = {avg}")
        elif k == "cost_share":
            share = pct(s["cost_share"], lang, 0)
            amt, cap, per = _cny_text(s["share_cny"], lang), money(s["per_rack_max_cny"], lang), _cny_text(s["per_rack_cny"], lang)
            out.append(f"按改造成本的 {share} 计 = {amt}；单架补贴取 {cap} 与 {amt} 中较小者 = {per}" if lang == "zh"
                       else f"{share} of it = {amt}; per rack = min({cap}, {amt}) = {per}")
        elif k == "no_cost":
            cap = money(s["per_rack_max_cny"], lang)
            out.append(f"未提供改造成本：单架按上限 {cap} 计（上限估算）" if lang == "zh"
                       else f"no retrofit cost given: per rack taken at its ceiling {cap} (upper bound)")
        elif k == "ceiling_only":
            cap = money(s["per_rack_max_cny"], lang)
            out.append(f"单架至多 {cap}（政策仅规定上限）" if lang == "zh"
                       else f"per rack at most {cap} (the text sets only a ceiling)")
        elif k == "total":
            per, n = _cny_text(s["per_rack_cny"], lang), num(s["racks"], lang, 0)
            gross, cap, total = _cny_text(s["gross_cny"], lang), money(s["total_max_cny"], lang), _cny_text(s["subsidy_cny"], lang)
            out.append(f"{per} × {n} = {gross}；总额上限 {cap} → {total}" if lang == "zh"
                       else f"{per} × {n} = {gross}; capped at {cap} → {total}")
    return out


def margin_cell(check: dict, lang: str) -> str:
    """A check's signed distance from the threshold (positive on the passing side; shares in
    percentage points) and, in words, what it means to act on."""
    if check.get("margin") is None:
        return "—"
    m = check["margin"]
    if check["metric"] in PERCENT_METRICS:
        head = ("+" if m >= 0 else "−") + num(abs(m) * 100, lang, 1) + ("个百分点" if lang == "zh" else " points")
    else:
        nd = {"pue": 3, "physical_racks": 0, "annual_terminals_served": 0}.get(check["metric"], 1)
        head = ("+" if m >= 0 else "−") + num(abs(m), lang, nd)
    detail = margin_text(check.get("margin_detail"), lang)
    if not detail:
        return head
    return f"{head}（{detail}）" if lang == "zh" else f"{head} ({detail})"


# A check's status: the one mapping from a tri-state result, and the mark each status is printed with.
STATUS_OF = {True: "pass", False: "fail", None: "inconclusive"}
STATUS_MARK = {"pass": "✔", "fail": "✘", "inconclusive": "?", "not_applicable": "–"}


def status_of(passed: bool | None) -> str:
    """A tri-state result as a status word: True → pass, False → fail, None → inconclusive."""
    return STATUS_OF[passed]
