"""What exports and reports share: labels in two languages, hashing, provenance."""
from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import orjson

from dcmon import __version__
from dcmon.terms import KIND_TEXT, LABEL_TEXT, SIZE_TEXT, STATUS_TEXT  # noqa: F401 - re-exported for the reports

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
