"""Interface text in Chinese (default) and English; numbers and dates formatted per language (Babel).

Python formats what the server renders (cards, headings, tables); the overview grid formats
its numeric columns in the browser with ``Intl.NumberFormat`` for the same locale, so sorting
and filtering still work on the numbers themselves.
"""
from __future__ import annotations

import datetime as dt
import re

from babel.dates import format_datetime
from babel.numbers import get_decimal_symbol, get_group_symbol

from dcmon.terms import STATUS_MARK, STATUS_OF, status_of
from dcmon.terms import EVENT_TEXT, LANGS, _locale, date_text, num, nums, pct, term  # noqa: F401 (LANGS, num, nums, pct re-exported)

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
        "msg_s": "消息/秒", "readings_s": "读数/秒", "rejected": "拒收", "queue": "队列", "ack_lag": "确认延迟",
        "meters": "电表", "last_reading": "最新读数", "silent": "静默", "ok": "正常", "role": "角色", "name": "名称",
        "local_time": "当地时间", "pue_label": "PUE 口径", "refreshing": "数据每10秒自动刷新",
        "computing": "正在计算统计期的数据，完成后自动显示…",
        "hours": "小时", "kwh": "kWh", "not_found": "页面不存在", "bad_period": "统计期无效", "n_facilities": "{n} 个数据中心", "it_from": "IT能耗来源",
        "it_from_meters": "IT电表", "it_from_racks": "机架计量汇总", "start_date": "开始日期", "end_date": "结束日期",
        "facility_not_found": "未找到该数据中心", "not_found_hint": "请检查网址中的数据中心编号，或从总览中选择。",
        "low_coverage": "数据覆盖率低，数值仅供参考", "no_data_period": "所选统计期内没有读数",
        "no_data_no_pue": "没有IT能耗读数，无法计算PUE", "no_data_roles": "所选统计期内没有电表读数",
        "no_data_live": "近15分钟没有读数", "no_racks": "该数据中心未登记机架", "threshold_of": "阈值（{p}）",
        "targets": "城市目标", "total": "累计", "avg_rate": "启动以来平均", "accepted": "本数据中心已接收读数",
        "messages": "消息", "readings": "读数", "verdict": "综合判定", "steps": "测算步骤", "reason": "说明",
        "report_only": "仅报告的标记", "raised": "已触发", "not_raised": "未触发", "source_text": "政策依据",
        "bad_period_hint": "统计期应为季度（如 2026Q3）、年份（如 2026）或起止日期。", "pue_axis": "PUE",
        "operator": "运营单位", "facility_id": "编号",
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
        "computing": "Computing the figures of the period; they appear here when done…",
        "hours": "h", "kwh": "kWh", "not_found": "no such page",
        "bad_period": "invalid period", "n_facilities": "{n} facilities", "it_from": "IT energy from",
        "it_from_meters": "IT meters", "it_from_racks": "sum of rack meters", "start_date": "Start date",
        "end_date": "End date", "facility_not_found": "No such facility",
        "not_found_hint": "Check the facility id in the address, or choose one from the overview.",
        "low_coverage": "low data coverage: figure for reference only", "no_data_period": "no readings in the chosen period",
        "no_data_no_pue": "no IT energy readings: PUE cannot be computed",
        "no_data_roles": "no meter readings in the chosen period", "no_data_live": "no readings in the last 15 minutes",
        "no_racks": "no racks registered for this facility", "threshold_of": "threshold ({p})",
        "targets": "City targets", "total": "total", "avg_rate": "average since start",
        "accepted": "readings accepted for this facility", "messages": "messages", "readings": "readings",
        "verdict": "Overall", "steps": "Steps", "reason": "Note", "report_only": "Report-only flags", "raised": "raised",
        "not_raised": "not raised", "source_text": "Source", "pue_axis": "PUE",
        "bad_period_hint": "A period is a quarter (2026Q3), a year (2026) or a date range.",
        "operator": "Operator", "facility_id": "ID",
    },
}


def t(lang: str, key: str) -> str:
    return TEXT.get(lang, TEXT["zh"]).get(key, key)


def plotly_separators(lang: str) -> str:
    """Plotly's ``layout.separators`` (decimal sign, then grouping sign) for the language."""
    return get_decimal_symbol(_locale(lang)) + get_group_symbol(_locale(lang))


def date(d, lang: str) -> str:
    """A calendar date: 2026年7月6日 / 6 Jul 2026."""
    return date_text(d, lang)


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
    if not re.fullmatch(r"\d{4}(Q[1-4])?", v):
        return value  # not a period: shown as given (the page says why)
    if "Q" in v:
        y, q = v.split("Q")
        return f"{y}年第{q}季度" if lang == "zh" else f"{y} Q{q}"
    return f"{v}年" if lang == "zh" else v


def status_key(status) -> str:
    """The status word of a badge: a tri-state result (True/False/None) as pass/fail/inconclusive,
    a status word (``not_applicable`` …) as it is."""
    return status_of(status) if status in STATUS_OF else status


def badge_text(status, lang: str) -> str:
    key = status_key(status)
    return f"{STATUS_MARK[key]} {t(lang, key)}"


def event_text(event: str, lang: str) -> str:
    return term(EVENT_TEXT, lang, event)


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
