"""The product's words for its codes, in Chinese and English: one table for the dashboard and the reports.

Codes (``small_medium``, ``cloud``, ``interim`` …) stay in data and JSON; people read these.
"""
from __future__ import annotations

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
             "en": {k: k for k in ("cloud", "supercomputing", "intelligent", "edge", "enterprise")}}
LABEL_TEXT = {"zh": {"interim": "阶段值（不足12个月）", "annual": "年度值"}, "en": {"interim": "interim", "annual": "annual"}}
# where IT energy is measured (ISO/IEC 30134-2 PUE categories 1-3)
PUE_CATEGORY_TEXT = {"zh": {1: "PUE1类（UPS输出）", 2: "PUE2类（PDU输出）", 3: "PUE3类（IT设备输入）"},
                     "en": {1: "PUE category 1 (UPS output)", 2: "PUE category 2 (PDU output)",
                            3: "PUE category 3 (IT equipment input)"}}


def term(table: dict, lang: str, code):
    """The word for ``code`` in ``lang`` (Chinese when the language is unknown), else the code."""
    return table.get(lang, table["zh"]).get(code, code)
