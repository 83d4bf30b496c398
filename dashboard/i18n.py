"""Interface text in Chinese (default) and English, and number formatting per language."""
from __future__ import annotations

LANGS = ("zh", "en")

TEXT = {
    "zh": {
        "app": "dcmon 数据中心能效与机架合规监测", "overview": "总览", "facility": "数据中心", "subsidy": "补贴核验",
        "period": "统计期", "quarter": "季度", "year": "年度", "custom": "自定义", "apply": "应用", "lang": "语言",
        "district": "区（市）县", "city": "城市", "kind": "类型", "size": "规模", "std_racks": "标准机架",
        "phys_racks": "物理机架", "occupancy": "上架率", "pue": "PUE", "compute": "计算功能占比", "coverage": "数据覆盖率",
        "portfolio": "全市汇总", "portfolio_pue": "能耗加权PUE", "portfolio_occ": "平均上架率", "live_pue": "实时PUE（15分钟）",
        "today": "今日", "this_quarter": "本季度", "ttm": "近12个月", "it_load": "IT负载", "fac_load": "总负载",
        "trend_day": "PUE与能耗（按日）", "trend_month": "PUE与能耗（按月）", "by_role": "按电表角色的能耗",
        "floor": "机架平面图（设计功率利用率）", "events": "数据质量事件", "health": "采集器状态", "no_data": "无数据",
        "forbidden": "无权访问该数据中心", "checks": "条件", "value": "数值", "threshold": "阈值", "margin": "余量",
        "clause": "条款", "result": "结果", "estimate": "补贴测算", "download_evidence": "下载佐证材料（PDF）",
        "download_export": "下载季度清单（XLSX）", "logout": "退出", "login": "登录", "user": "用户名", "password": "密码",
        "pass": "达标", "fail": "未达标", "inconclusive": "数据不足", "not_applicable": "不适用", "eligible": "综合",
        "upper_bound": "（上限估算）", "profile": "政策", "updated": "更新于", "energy_kwh": "能耗 kWh",
        "facility_kwh": "总耗电", "it_kwh": "IT耗电", "back": "返回总览", "readings_used": "口径",
    },
    "en": {
        "app": "dcmon data-centre energy and rack compliance", "overview": "Overview", "facility": "Facility",
        "subsidy": "Subsidy check", "period": "Period", "quarter": "Quarter", "year": "Year", "custom": "Custom",
        "apply": "Apply", "lang": "Language", "district": "District", "city": "City", "kind": "Kind", "size": "Size class",
        "std_racks": "Standard racks", "phys_racks": "Physical racks", "occupancy": "Occupancy", "pue": "PUE",
        "compute": "Compute share", "coverage": "Coverage", "portfolio": "Portfolio", "portfolio_pue": "Energy-weighted PUE",
        "portfolio_occ": "Occupancy", "live_pue": "Live PUE (15 min)", "today": "Today", "this_quarter": "This quarter",
        "ttm": "Trailing 12 months", "it_load": "IT load", "fac_load": "Facility load", "trend_day": "PUE and energy by day",
        "trend_month": "PUE and energy by month", "by_role": "Energy by meter role",
        "floor": "Rack floor map (share of design power)", "events": "Data-quality events", "health": "Collector health",
        "no_data": "no data", "forbidden": "You may not see this facility", "checks": "Check", "value": "Value",
        "threshold": "Threshold", "margin": "Margin", "clause": "Clause", "result": "Result", "estimate": "Subsidy estimate",
        "download_evidence": "Download evidence report (PDF)", "download_export": "Download quarterly list (XLSX)",
        "logout": "Log out", "login": "Log in", "user": "User", "password": "Password", "pass": "pass", "fail": "fail",
        "inconclusive": "inconclusive", "not_applicable": "n/a", "eligible": "Overall", "upper_bound": "(upper bound)",
        "profile": "Profile", "updated": "updated", "energy_kwh": "Energy kWh", "facility_kwh": "Facility", "it_kwh": "IT",
        "back": "Back to overview", "readings_used": "Readings",
    },
}


def t(lang: str, key: str) -> str:
    return TEXT.get(lang, TEXT["zh"]).get(key, key)


def num(x, lang: str, nd: int = 1) -> str:
    """Numbers grouped as the language writes them (both use 1,234.5)."""
    return "—" if x is None else f"{x:,.{nd}f}"


def pct(x, lang: str, nd: int = 1) -> str:
    return "—" if x is None else f"{x * 100:.{nd}f}%"


def badge_text(status, lang: str) -> str:
    key = {True: "pass", False: "fail", None: "inconclusive"}.get(status, status)
    mark = {"pass": "✔", "fail": "✘", "inconclusive": "?", "not_applicable": "–"}[key]
    return f"{mark} {t(lang, key)}"
