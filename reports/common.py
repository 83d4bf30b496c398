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


def reading_digests(store, registry, facility_ids, period, options=None) -> list[dict]:
    """Content digests of the readings a period's figures are computed from, per source and UTC month.

    Meters over the period plus one day either side (the metrics pair readings across the
    boundary); rack-inventory changes up to the period end (the inventory "as of" it); rack
    readings when the figures use them (IT measured at the racks, or compute share by IT energy).
    Digests are of readings, not files (:mod:`dcmon.store.digest`), so compaction keeps them.
    """
    from dcmon.store.base import INVENTORY_KIND
    out = []
    margin = dt.timedelta(days=1)
    for fid in facility_ids:
        fac = registry.get(fid)
        start, end = period.utc_bounds(fac.timezone)
        spans = [("meter", start - margin, end + margin), (INVENTORY_KIND, None, end)]
        if fac.it_energy_from == "racks" or getattr(options, "compute_share_reading", None) == "it_energy":
            spans.append(("rack", start - margin, end + margin))
        for kind, a, b in spans:
            for (source, month), (sha, rows) in store.reading_digests(fid, kind, a, b).items():
                out.append({"facility_id": fid, "kind": kind, "source_id": source, "month": month, "rows": rows,
                            "sha256": sha})
    return out


def month_digests(digests: list[dict]) -> list[dict]:
    """The reading digests per facility, kind and month: ``{facility_id, kind, month, sources, rows, sha256}``,
    where ``sha256`` is the SHA-256 of the lines ``"<source_id> <rows> <sha256>\\n"`` of that kind's and
    month's sources in source order (what a report prints instead of one line per source)."""
    groups: dict[tuple, list[dict]] = {}
    for d in digests:
        groups.setdefault((d["facility_id"], d["kind"], d["month"]), []).append(d)
    out = []
    kinds = list(dict.fromkeys(k[1] for k in groups))
    for (fid, kind, month), ds in sorted(groups.items(), key=lambda g: (g[0][0], kinds.index(g[0][1]), g[0][2])):
        ds = sorted(ds, key=lambda d: d["source_id"])
        text = "".join(f"{d['source_id']} {d['rows']} {d['sha256']}\n" for d in ds)
        out.append({"facility_id": fid, "kind": kind, "month": month, "sources": len(ds),
                    "rows": sum(d["rows"] for d in ds), "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest()})
    return out


def compare_digests(listed: list[dict], now: list[dict]) -> list[str]:
    """One line per source and month whose readings changed, appeared or disappeared."""
    def key(d):
        return d["facility_id"], d["kind"], d["source_id"], d["month"]
    a = {key(d): d for d in listed}
    b = {key(d): d for d in now}
    lines = []
    for k in sorted(set(a) | set(b)):
        fid, kind, source, month = k
        where = f"{fid} {kind} {source}, {month}"
        if k not in b:
            lines.append(f"readings removed: {where} ({a[k]['rows']:,} readings at issue, none now)")
        elif k not in a:
            lines.append(f"readings added: {where} (none at issue, {b[k]['rows']:,} now)")
        elif a[k]["sha256"] != b[k]["sha256"] or a[k]["rows"] != b[k]["rows"]:
            n0, n1 = a[k]["rows"], b[k]["rows"]
            detail = f"{n0:,} readings at issue, {n1:,} now" if n0 != n1 else f"{n0:,} readings, values changed"
            lines.append(f"readings changed: {where} ({detail})")
    return lines


def period_from_json(doc: dict):
    """The Period a report or manifest states (``{from, to, label}``), with its label (2026Q3, 2025)."""
    from dcmon.periods import Period, parse_date
    first, last = parse_date(doc["from"]), parse_date(doc["to"])
    label = doc.get("label") or ""
    return Period(first, last, "" if label == f"{first.isoformat()}..{last.isoformat()}" else label)


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
