"""What exports and reports share: labels in two languages, hashing, provenance."""
from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import orjson

from dcmon import __version__

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
LANGS = ("zh", "en")


def check_lang(lang: str) -> str:
    if lang not in LANGS:
        raise ValueError(f"language must be zh or en: {lang!r}")
    return lang


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while True:
            b = fh.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def data_files(store, facility_ids, period, registry) -> list[dict]:
    """The store files a period's figures were computed from, with SHA-256 (paths relative to the store).

    Hashing many small files is system-call bound, so it runs on a few threads.
    """
    from concurrent.futures import ThreadPoolExecutor
    paths = []
    for fid in facility_ids:
        fac = registry.get(fid)
        start, end = period.utc_bounds(fac.timezone)
        margin = dt.timedelta(days=1)  # the metrics read one day either side for boundary pairs
        paths += store.files(fid, None, start - margin, end + margin)

    def one(p):
        return {"path": str(Path(p).relative_to(store.root)), "sha256": sha256_file(p), "bytes": p.stat().st_size}
    with ThreadPoolExecutor(max_workers=4) as ex:
        return list(ex.map(one, paths))


def canonical(doc) -> bytes:
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)


def provenance(registry) -> dict:
    return {"software": f"dcmon {__version__}", "config_fingerprint": registry.fingerprint(),
            "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}


def fmt_num(x, nd=1, pct=False) -> str:
    if x is None:
        return "—"
    if pct:
        return f"{x * 100:.{nd}f}%"
    return f"{x:,.{nd}f}"
