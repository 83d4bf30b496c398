"""Interface text in Chinese (default) and English; numbers and dates formatted per language (Babel).

Python formats what the server renders (cards, headings, tables); the overview grid formats
its numeric columns in the browser with ``Intl.NumberFormat`` for the same locale, so sorting
and filtering still work on the numbers themselves.
"""
from __future__ import annotations

import datetime as dt
import math
from functools import cache

from babel import Locale
from babel.dates import format_date, format_datetime
from babel.numbers import get_decimal_symbol, get_group_symbol

LANGS = ("zh", "en")
LOCALES = {"zh": "zh_CN", "en": "en_GB"}          # Babel
BROWSER_LOCALES = {"zh": "zh-CN", "en": "en-GB"}  # Intl / BCP 47

TEXT = {
    "zh": {
        "app": "dcmon 数据中心能效与机架合规监测", "overview": "总览", "facility": "数据中心", "subsidy": "补贴核验",
        "period": "统计期", "quarter": "季度", "year": "年度", "custom": "自定义", "apply": "应用", "lang": "语言",
        "district": "区（市）县", "city": "城市", "kind": "类型", "size": "规模", "std_racks": "标准机架",
        "phys_racks": "物理机架", "occupancy": "上架率", "pue": "PUE", "compute": "计算功能占比", "coverage": "数据覆盖率",
        "portfolio": "全市汇总", "portfolio_pue": "能耗加权PUE", "portfolio_occ": "平均上架率", "live_pue": "实时PUE（15分钟）",
        "today": "今日PUE", "this_quarter": "本季度PUE", "ttm": "近12个月PUE", "it_load": "IT负载", "fac_load": "总负载",
        "trend_day": "PUE与能耗（按日）", "trend_month": "PUE与能耗（近12个月，按月）", "by_role": "按电表角色的能耗（统计期）",
        "floor": "机架平面图（功率占设计功率之比，近30分钟）", "events": "数据质量事件", "health": "采集器状态",
        "no_data": "无数据", "forbidden": "无权访问该数据中心", "checks": "条件", "value": "数值", "threshold": "阈值",
        "margin": "余量", "clause": "条款", "result": "结果", "estimate": "补贴测算",
        "download_evidence": "下载佐证材料（PDF）", "download_export": "下载季度清单（XLSX）", "logout": "退出",
        "login": "登录", "user": "用户名", "password": "密码", "pass": "达标", "fail": "未达标", "inconclusive": "数据不足",
        "not_applicable": "不适用", "eligible": "综合判定", "upper_bound": "（上限估算）", "profile": "政策",
        "updated": "更新于", "energy_kwh": "能耗 kWh", "facility_kwh": "总耗电", "it_kwh": "IT耗电", "back": "返回总览",
        "readings_used": "口径", "computed_at": "计算时间", "period_pue": "统计期PUE", "time": "时间", "source": "来源",
        "event": "事件", "detail": "详情", "no_reading": "无读数", "rack": "机架", "function": "功能", "status": "状态",
        "design_kw": "设计功率", "power_kw": "功率", "connected": "已连接", "disconnected": "未连接", "stale": "已停止上报",
        "msg_s": "消息/秒", "readings": "条读数", "readings_s": "读数/秒", "rejected": "拒收", "queue": "队列", "ack_lag": "确认延迟",
        "meters": "电表", "last_reading": "最新读数", "silent": "静默", "ok": "正常", "role": "角色", "name": "名称",
        "local_time": "当地时间", "pue_label": "PUE 口径", "refreshing": "数据每10秒自动刷新",
        "evt_reset": "计数器复位", "evt_rollover": "计数器翻转", "evt_noise_dip": "读数小幅回落（噪声）",
        "evt_implausible_step": "不可能的计数跳变（未计入电量）", "evt_new_baseline": "计数器新基准（换表）",
        "evt_gap": "数据缺口", "evt_late": "迟到读数", "evt_rejected": "拒收报文", "evt_silent": "电表静默",
        "hours": "小时", "kwh": "kWh", "not_found": "页面不存在", "bad_period": "统计期无效", "n_facilities": "{n} 个数据中心", "it_from": "IT能耗来源",
        "it_from_meters": "IT电表", "it_from_racks": "机架计量汇总", "start_date": "开始日期", "end_date": "结束日期",
    },
    "en": {
        "app": "dcmon data-centre energy and rack compliance", "overview": "Overview", "facility": "Facility",
        "subsidy": "Subsidy check", "period": "Period", "quarter": "Quarter", "year": "Year", "custom": "Custom",
        "apply": "Apply", "lang": "Language", "district": "District", "city": "City", "kind": "Kind", "size": "Size class",
        "std_racks": "Standard racks", "phys_racks": "Physical racks", "occupancy": "Occupancy", "pue": "PUE",
        "compute": "Compute share", "coverage": "Coverage", "portfolio": "Portfolio", "portfolio_pue": "Energy-weighted PUE",
        "portfolio_occ": "Occupancy", "live_pue": "Live PUE (15 min)", "today": "PUE today",
        "this_quarter": "PUE this quarter", "ttm": "PUE trailing 12 months", "it_load": "IT load",
        "fac_load": "Facility load", "trend_day": "PUE and energy by day",
        "trend_month": "PUE and energy by month (trailing 12 months)", "by_role": "Energy by meter role (period)",
        "floor": "Rack floor map (power as share of design power, last 30 min)", "events": "Data-quality events",
        "health": "Collector health", "no_data": "no data", "forbidden": "You may not see this facility",
        "checks": "Check", "value": "Value", "threshold": "Threshold", "margin": "Margin", "clause": "Clause",
        "result": "Result", "estimate": "Subsidy estimate", "download_evidence": "Download evidence report (PDF)",
        "download_export": "Download quarterly list (XLSX)", "logout": "Log out", "login": "Log in", "user": "User",
        "password": "Password", "pass": "pass", "fail": "fail", "inconclusive": "inconclusive", "not_applicable": "n/a",
        "eligible": "Overall", "upper_bound": "(upper bound)", "profile": "Profile", "updated": "updated",
        "energy_kwh": "Energy kWh", "facility_kwh": "Facility", "it_kwh": "IT", "back": "Back to overview",
        "readings_used": "Readings", "computed_at": "computed", "period_pue": "PUE of the period", "time": "Time",
        "source": "Source", "event": "Event", "detail": "Detail", "no_reading": "no reading", "rack": "Rack",
        "function": "Function", "status": "Status", "design_kw": "Design power", "power_kw": "Power",
        "connected": "connected", "disconnected": "disconnected", "stale": "stopped reporting", "msg_s": "msg/s",
        "readings": "readings", "readings_s": "readings/s", "rejected": "rejected", "queue": "queue", "ack_lag": "ack lag", "meters": "Meters",
        "last_reading": "Last reading", "silent": "silent", "ok": "ok", "role": "Role", "name": "Name",
        "local_time": "local time", "pue_label": "PUE basis", "refreshing": "updates every 10 s",
        "evt_reset": "counter reset", "evt_rollover": "counter rollover", "evt_noise_dip": "small dip (meter noise)",
        "evt_implausible_step": "impossible counter step (not counted)", "evt_new_baseline": "counter new baseline (meter replaced)",
        "evt_gap": "data gap", "evt_late": "late reading", "evt_rejected": "rejected payload",
        "evt_silent": "meter silent", "hours": "h", "kwh": "kWh", "not_found": "no such page",
        "bad_period": "invalid period", "n_facilities": "{n} facilities", "it_from": "IT energy from",
        "it_from_meters": "IT meters", "it_from_racks": "sum of rack meters", "start_date": "Start date",
        "end_date": "End date",
    },
}


def t(lang: str, key: str) -> str:
    return TEXT.get(lang, TEXT["zh"]).get(key, key)


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
    """A number with the language's grouping and decimal signs, ``nd`` decimals; — when missing.

    Fast enough for a 10 000-rack floor map: Python formats, the CLDR signs are swapped in.
    """
    if _missing(x):
        return "—"
    text = f"{x:,.{nd}f}"
    signs = _number_signs(lang)
    return text.translate(signs) if signs else text


def pct(x, lang: str, nd: int = 1) -> str:
    """A share [-] as a percentage in the language's format; — when missing."""
    if _missing(x):
        return "—"
    return num(x * 100, lang, nd) + "%"


def plotly_separators(lang: str) -> str:
    """Plotly's ``layout.separators`` (decimal sign, then grouping sign) for the language."""
    return get_decimal_symbol(_locale(lang)) + get_group_symbol(_locale(lang))


def date(d: dt.date | str | None, lang: str) -> str:
    """A calendar date: 2026年7月6日 / 6 Jul 2026."""
    if d is None:
        return "—"
    if isinstance(d, str):
        d = dt.date.fromisoformat(d[:10])
    return format_date(d, "medium", locale=_locale(lang))


def date_range(first, last, lang: str) -> str:
    return f"{date(first, lang)} — {date(last, lang)}"


def timestamp(ms: int | None, tz: str, lang: str) -> str:
    """A UTC epoch-millisecond time shown in the facility's time zone with its offset."""
    if ms is None:
        return "—"
    from zoneinfo import ZoneInfo
    when = dt.datetime.fromtimestamp(ms / 1000, dt.UTC).astimezone(ZoneInfo(tz))
    return format_datetime(when, "yyyy-MM-dd HH:mm:ss xxx", locale=_locale(lang))


def quarter_label(value: str, lang: str) -> str:
    """2026Q3 → 2026年第3季度 / 2026 Q3; 2026 → 2026年 / 2026."""
    v = value.upper()
    if "Q" in v:
        y, q = v.split("Q")
        return f"{y}年第{q}季度" if lang == "zh" else f"{y} Q{q}"
    return f"{v}年" if lang == "zh" else v


def badge_text(status, lang: str) -> str:
    key = {True: "pass", False: "fail", None: "inconclusive"}.get(status, status)
    mark = {"pass": "✔", "fail": "✘", "inconclusive": "?", "not_applicable": "–"}[key]
    return f"{mark} {t(lang, key)}"


METRICS = {
    "zh": {"pue": "PUE", "racks": "标准机架数", "physical_racks": "物理机架数", "compute_share": "计算功能占比",
           "occupancy_rate": "上架率", "annual_terminals_served": "年服务终端数",
           "avg_design_power_per_rack_kw": "单机架平均设计功率 kW"},
    "en": {"pue": "PUE", "racks": "standard racks", "physical_racks": "physical racks", "compute_share": "compute share",
           "occupancy_rate": "occupancy", "annual_terminals_served": "terminals served a year",
           "avg_design_power_per_rack_kw": "average design power per rack kW"},
}


def metric_text(metric: str, lang: str) -> str:
    """A policy metric's name in the language, with its code: 标准机架数 (racks)."""
    label = METRICS.get(lang, METRICS["zh"]).get(metric)
    return f"{label} ({metric})" if label and label != metric else metric


def event_text(event: str, lang: str) -> str:
    return t(lang, f"evt_{event}") if f"evt_{event}" in TEXT["en"] else event


# AG Grid's own strings (filter menus, paging) in Chinese; English is its default.
GRID_LOCALE_ZH = {
    "page": "页", "more": "更多", "to": "至", "of": "/", "next": "下一页", "last": "末页", "first": "首页",
    "previous": "上一页", "loadingOoo": "加载中…", "noRowsToShow": "无数据", "filterOoo": "筛选…",
    "equals": "等于", "notEqual": "不等于", "blank": "空白", "notBlank": "非空", "empty": "请选择",
    "lessThan": "小于", "greaterThan": "大于", "lessThanOrEqual": "小于或等于", "greaterThanOrEqual": "大于或等于",
    "inRange": "介于", "inRangeStart": "从", "inRangeEnd": "到", "contains": "包含", "notContains": "不包含",
    "startsWith": "开头是", "endsWith": "结尾是", "andCondition": "且", "orCondition": "或", "applyFilter": "应用",
    "resetFilter": "重置", "clearFilter": "清除", "cancelFilter": "取消", "pageSizeSelectorLabel": "每页行数：",
    "ariaPageSizeSelectorLabel": "每页行数", "firstPage": "首页", "lastPage": "末页", "nextPage": "下一页",
    "previousPage": "上一页", "pinColumn": "固定列", "autosizeThisColumn": "自动调整此列", "resetColumns": "重置列",
    "sortAscending": "升序", "sortDescending": "降序", "sortUnSort": "取消排序", "columnFilter": "列筛选",
}
