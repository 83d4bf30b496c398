"""Quarterly inventory export for regulators (seed 003 四(五): districts list every data centre
above 100 standard racks and report the list to the city each quarter).

One row per facility, every figure from :func:`dcmon.metrics.evaluate.evaluate`. Formats:
XLSX (summary by district, facilities, methodology, data quality), CSV (UTF-8 with BOM so
Excel shows Chinese; values as the XLSX displays them), Parquet and JSON (raw values; schema in
``docs/reports.md``), plus a manifest with the SHA-256 of the output and the content digests of
the readings used, which :func:`verify_export` checks and recomputes row by row.
"""
from __future__ import annotations

import csv
import io
import datetime as dt
import hashlib
import math
from pathlib import Path

import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from dcmon.metrics.checks import facility_flags, flag_checks, status_of
from dcmon.metrics.evaluate import Options, evaluate
from dcmon.metrics.exact import decide
from dcmon.metrics.policy import load_profiles
from dcmon import terms
from dcmon.reports.common import (KIND_TEXT, LABEL_TEXT, SIZE_TEXT, STATUS_TEXT, canonical, check_lang,
                                  compare_digests, provenance, reading_digests, sha256_file)
from dcmon.store.base import DIGEST_METHOD

FORMATS = ("xlsx", "csv", "parquet", "json")
MANIFEST_SCHEMA = "dcmon-manifest/2"
OPTION_KEYS = ("rack_basis", "compute_share_reading", "inventory", "min_coverage")
# How numbers are displayed: the XLSX number format and the same text for the CSV.
PCT_KEYS = {"occupancy_rate", "compute_share", "coverage"}
NUMBER_FORMATS = {"pue": ("0.000", "{:.3f}"), "standard_racks": ("#,##0.0", "{:,.1f}"),
                  "design_it_power_kw": ("#,##0.0", "{:,.1f}"), "facility_energy_kwh": ("#,##0", "{:,.0f}"),
                  "it_energy_kwh": ("#,##0", "{:,.0f}"), **{k: ("0.0%", None) for k in PCT_KEYS}}
DATE_KEYS = {"commissioned"}


class NoDataError(ValueError):
    """The period has no readings for any selected facility."""
MIN_STANDARD_RACKS = 100  # seed 003 四(五): 规模超过100个标准机架 (strictly more than 100)

# (key, Chinese header, English header, unit)
COLUMNS = [
    ("operator", "运营主体", "Operator", ""),
    ("credit_code", "统一社会信用代码", "Unified social credit code", ""),
    ("facility_id", "数据中心编号", "Facility id", ""),
    ("name", "数据中心名称", "Facility name", ""),
    ("city", "城市", "City", ""),
    ("district", "区（市）县", "District", ""),
    ("kind", "类型", "Kind", ""),
    ("commissioned", "投运日期", "Commissioned", ""),
    ("physical_racks", "物理机架数", "Physical racks", "racks"),
    ("in_service_racks", "在用机架数", "In-service racks", "racks"),
    ("standard_racks", "标准机架数（2.5kW）", "Standard racks (2.5 kW)", "racks"),
    ("size_class", "规模类别", "Size class", ""),
    ("design_it_power_kw", "IT设计功率(kW)", "Design IT power (kW)", "kW"),
    ("occupancy_rate", "上架率", "Occupancy rate", "0-1"),
    ("compute_share", "计算功能占比", "Compute-function share", "0-1"),
    ("facility_energy_kwh", "数据中心总耗电量(kWh)", "Facility energy (kWh)", "kWh"),
    ("it_energy_kwh", "IT设备耗电量(kWh)", "IT energy (kWh)", "kWh"),
    ("pue", "PUE", "PUE", "-"),
    ("pue_category", "PUE计量类别", "PUE category", ""),
    ("pue_label", "PUE性质", "PUE label", ""),
    ("coverage", "数据覆盖率", "Data coverage", "0-1"),
]
# Flag columns: each is the report-only check of the policy profiles that raises the flag
# (chengdu-hub-2025: seed 003 三(一)3); its condition, threshold and ``when`` come from the
# profile file, and its value from the evaluation (True raised, False not, None inconclusive or
# not applicable to the site). Headers name the condition that raises the flag.
FLAG_COLUMNS = {"flag_retrofit_required": "retrofit_required", "flag_below_50_racks": "consolidate_or_edge"}
RAISED_WHEN = {"<": ">=", "<=": ">", ">": "<=", ">=": "<"}   # a flag is raised when its check fails
FLAG_HEADERS = {"flag_retrofit_required": {"zh": "需节能改造（PUE{op}{th}）", "en": "Retrofit required (PUE {op} {th})"},
                "flag_below_50_racks": {"zh": "机架数{op_words}{th}架", "en": "{op_words} {th} racks"}}
FLAG_METHOD = {"flag_retrofit_required": ("改造标记", "Retrofit flag", "PUE {op} {th}（成都枢纽方案 三(一)3）",
                                          "PUE {op} {th} (Chengdu hub-node plan, part 3(1)3)"),
               "flag_below_50_racks": ("小型标记", "Small-site flag", "物理机架 {op} {th}（成都枢纽方案 三(一)3）",
                                       "physical racks {op} {th} (Chengdu hub-node plan, part 3(1)3)")}
OP_WORDS = {"zh": {"<": "少于", "<=": "不多于", ">": "多于", ">=": "不少于"},
            "en": {"<": "Fewer than", "<=": "At most", ">": "More than", ">=": "At least"}}
WIDE_OPS = {"<": "＜", "<=": "≤", ">": "＞", ">=": "≥"}


def flag_conditions(config_dir=None) -> dict[str, tuple[str, str]]:
    """Each flag column's raising condition from the profile files: ``{column: (op, threshold text)}``;
    a flag no profile defines has no column."""
    checks = flag_checks(load_profiles(config_dir))
    return {col: (RAISED_WHEN[checks[flag][1].op], f"{checks[flag][1].threshold:g}")
            for col, flag in FLAG_COLUMNS.items() if flag in checks}


def flag_header(col: str, cond: tuple[str, str], lang: str) -> str:
    op, th = cond
    return FLAG_HEADERS[col][lang].format(op=op, th=th, op_words=OP_WORDS[lang][op])


def rows_from_result(result: dict, lang: str = "zh", flags=FLAG_COLUMNS) -> tuple[list[dict], list[str]]:
    """Export rows (raw values, same numbers as the evaluation) and the profile ids, in column order.

    ``flags``: the flag columns to fill (:func:`flag_conditions`), each from the facility's
    report-only check that raises it."""
    profiles = sorted({pid for f in result["facilities"] for pid in f["profiles"]})
    rows = []
    for f in result["facilities"]:
        r = {k: f.get(k) for k, *_ in COLUMNS}
        raised = facility_flags(f)
        for col in flags:
            r[col] = raised.get(FLAG_COLUMNS[col])
        for pid in profiles:
            pr = f["profiles"].get(pid)
            if pr is None or not pr["applicable"] or pr.get("verdict") == "not_applicable":
                r[f"profile:{pid}"] = "not_applicable"  # no required check applies: not a pass
            else:
                r[f"profile:{pid}"] = status_of(pr["eligible"])
        rows.append(r)
    return rows, profiles


NOT_IN_FORCE = {"zh": "（该政策在此期间不在有效期内）", "en": " (measure not in force for this period)"}


def headers(profiles: list[str], lang: str, not_in_force: set[str] = frozenset(),
            titles: dict | None = None, flags: dict | None = None) -> list[tuple[str, str]]:
    """Column keys and headers; a profile's column is headed by its title in the language, a flag's
    by the condition that raises it (``flags``: :func:`flag_conditions`, built-in profiles by default)."""
    i = 1 if lang == "zh" else 2
    out = [(c[0], c[i]) for c in COLUMNS]
    out += [(col, flag_header(col, cond, lang)) for col, cond in (flag_conditions() if flags is None else flags).items()]
    out += [(f"profile:{p}", ("政策：" if lang == "zh" else "Profile: ")
             + terms.profile_title(p, (titles or {}).get(p), lang) + (NOT_IN_FORCE[lang] if p in not_in_force else ""))
            for p in profiles]
    return out


def profile_titles(result: dict | None) -> dict:
    """Each profile's title (zh/en) as the evaluation gives it."""
    return {pid: pr.get("title") for f in (result or {}).get("facilities", []) for pid, pr in f["profiles"].items()}


def not_in_force(result: dict) -> set[str]:
    """Profiles whose measure is not in force for the period (the same for every facility)."""
    return {pid for f in result["facilities"] for pid, pr in f["profiles"].items() if pr.get("in_force") is False}


def _display(key, value, lang):
    if value is None:
        return ""
    if key == "size_class":
        return SIZE_TEXT[lang].get(value, value)
    if key == "kind":
        return KIND_TEXT[lang].get(value, value)
    if key == "pue_label":
        return LABEL_TEXT[lang].get(value, value)
    if key == "city":
        return terms.city_text(value, lang)
    if key == "pue_category":
        return terms.pue_category_text(value, lang)
    if key.startswith("profile:"):
        return STATUS_TEXT[lang][value]
    if key.startswith("flag_"):
        return ("是" if value else "否") if lang == "zh" else ("yes" if value else "no")
    return value


def display_text(key, value, lang) -> str:
    """A cell as the XLSX displays it (number formats above); the CSV holds exactly this text."""
    if value is None:
        return ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, float) and math.isnan(value):
            return ""
        if key in PCT_KEYS:
            return f"{value * 100:.1f}%"
        if key in NUMBER_FORMATS:
            return NUMBER_FORMATS[key][1].format(value)
        return str(value)
    return str(_display(key, value, lang))


def format_for(fmt: str, out: Path) -> None:
    """Refuse an output name whose extension contradicts the format (``--format xlsx --out x.csv``)."""
    ext = Path(out).suffix.lower().lstrip(".")
    if ext != fmt:
        raise ValueError(f"--format {fmt} writes a .{fmt} file, but --out {out} ends in "
                         f"{'.' + ext if ext else 'no extension'}: use --out {Path(out).with_suffix('.' + fmt)}")


def select(registry, store, period, *, district=None, city=None, include_all=False, options=None, progress=None):
    """Evaluate the facilities of a district/city and keep those above 100 standard racks."""
    from dcmon.metrics.racks import exact_summary
    ids = [f.id for f in registry.select(None)
           if (district is None or f.district == district) and (city is None or f.city == city.lower())]
    if not ids:
        raise ValueError("no facility matches " + ", ".join(x for x in (f"district {district!r}" if district else "",
                                                                        f"city {city!r}" if city else "") if x))
    if not include_all:
        ids = [i for i in ids if decide(exact_summary(registry.get(i).racks)["standard_racks"], ">", MIN_STANDARD_RACKS)]
    return evaluate(registry, store, period, ids, None, options or Options(), progress=progress) if ids else None


def build_export(registry, store, period, *, fmt: str, lang: str = "zh", district=None, city=None,
                 include_all=False, options=None, progress=None) -> tuple[bytes, str, dict]:
    """The export as bytes, its file name, and the evaluation it came from."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}: {fmt!r}")
    check_lang(lang)
    result = select(registry, store, period, district=district, city=city, include_all=include_all,
                    options=options, progress=progress)
    if result is None:
        result = {"period": period.to_json(), "basis": (options or Options()).to_json(), "facilities": [],
                  "portfolio": {}}
    flags = flag_conditions(registry.config_dir)
    rows, profiles = rows_from_result(result, lang, flags)
    hdr = headers(profiles, lang, not_in_force(result), profile_titles(result), flags)
    stem = f"dcmon-inventory-{period.label or period.first_day}" + (f"-{district}" if district else "")
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow([h for _, h in hdr])
        for r in rows:
            w.writerow([display_text(k, r.get(k), lang) for k, _ in hdr])
        return buf.getvalue().encode("utf-8-sig"), stem + ".csv", result
    if fmt == "json":
        doc = {"schema": "dcmon-inventory/1", "period": result["period"], "basis": result["basis"],
               "columns": [{"key": k, "header": h} for k, h in hdr], "rows": rows,
               "portfolio": result.get("portfolio", {})}
        return orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY), stem + ".json", result
    if fmt == "parquet":
        df = pd.DataFrame(rows, columns=[k for k, _ in hdr])
        table = pa.Table.from_pandas(df, preserve_index=False)
        meta = {b"dcmon.schema": b"dcmon-inventory/1", b"dcmon.period": canonical(result["period"]),
                b"dcmon.headers": canonical(dict(hdr))}
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **meta})
        sink = io.BytesIO()
        pq.write_table(table, sink)
        return sink.getvalue(), stem + ".parquet", result
    return _xlsx(result, rows, hdr, lang, registry, flags), stem + ".xlsx", result


def _text_width(text) -> int:
    """Column width in Excel character units: East Asian characters take two."""
    import unicodedata
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in str(text))


def _xlsx(result, rows, hdr, lang, registry, flags: dict) -> bytes:
    import xlsxwriter
    zh = lang == "zh"
    buf = io.BytesIO()
    wb = xlsxwriter.Workbook(buf, {"in_memory": True, "strings_to_numbers": False})
    bold = wb.add_format({"bold": True, "bg_color": "#DDEBF7", "text_wrap": True, "valign": "top", "border": 1})
    pct = wb.add_format({"num_format": "0.0%"})
    num0 = wb.add_format({"num_format": "#,##0"})
    num1 = wb.add_format({"num_format": "#,##0.0"})
    num3 = wb.add_format({"num_format": "0.000"})
    date_fmt = wb.add_format({"num_format": "yyyy-mm-dd"})
    fmt_of = {k: wb.add_format({"num_format": f}) for k, (f, _) in NUMBER_FORMATS.items()}

    per = result["period"]

    # summary by district, districts grouped by city, a total per city and overall
    ws = wb.add_worksheet("按区汇总" if zh else "Summary by district")
    # the same number formats, bold with a rule above, for total rows
    total_of = {f: wb.add_format({"bold": True, "top": 1, **({"num_format": n} if n else {})})
                for f, n in ((None, None), (pct, "0.0%"), (num0, "#,##0"), (num1, "#,##0.0"), (num3, "0.000"))}
    sh = (["城市", "区（市）县", "数据中心数", "标准机架数", "IT设计功率(kW)", "总耗电量(kWh)", "IT耗电量(kWh)", "加权PUE", "上架率"] if zh else
          ["City", "District", "Facilities", "Standard racks", "Design IT power (kW)", "Facility energy (kWh)",
           "IT energy (kWh)", "Energy-weighted PUE", "Occupancy rate"])
    ws.write_row(0, 0, sh, bold)
    widths = [_text_width(h) for h in sh]
    facs = {f["facility_id"]: f for f in result["facilities"]}

    def summary_row(r, city, district, ids, total=False):
        g = [facs[i] for i in ids]
        fe = sum(f["facility_energy_kwh"] or 0.0 for f in g)
        ie = sum(f["it_energy_kwh"] or 0.0 for f in g)
        design = sum(f["design_it_power_kw"] for f in g)
        ins = sum(f["in_service_design_power_kw"] for f in g)
        cells = [(city, None), (district, None), (len(g), num0), (float(sum(f["standard_racks"] for f in g)), num1),
                 (float(design), num1), (float(fe), num0), (float(ie), num0),
                 (float(fe / ie) if ie > 0 else None, num3), (float(ins / design) if design > 0 else None, pct)]
        for j, (v, f) in enumerate(cells):
            style = total_of[f] if total else f
            if v is None:
                ws.write_blank(r, j, None, style)
            elif isinstance(v, str):
                ws.write_string(r, j, v, style)
            else:
                ws.write_number(r, j, v, style)
            widths[j] = max(widths[j], _text_width(v if isinstance(v, str) else f"{v:,.3f}" if v is not None else ""))
    r = 1
    by_city: dict[str, dict[str, list[str]]] = {}
    for row in rows:
        by_city.setdefault(row["city"], {}).setdefault(row["district"], []).append(row["facility_id"])
    for city in sorted(by_city):
        words = terms.city_text(city, lang)
        for district in sorted(by_city[city]):
            summary_row(r, words, district, by_city[city][district])
            r += 1
        if len(by_city) > 1:
            summary_row(r, words, f"{words} 合计" if zh else f"{words} total",
                        [i for d in by_city[city].values() for i in d], total=True)
            r += 1
    if rows:
        summary_row(r, "总计" if zh else "Total", "", [row["facility_id"] for row in rows], total=True)
        r += 1
    ws.write(r + 1, 0, (f"统计期：{per['from']} 至 {per['to']}（各数据中心所在时区的日历日）；加权PUE = Σ总耗电量 ÷ ΣIT耗电量" if zh else
                        f"Period: {per['from']} to {per['to']} (calendar days in each facility's time zone); "
                        "energy-weighted PUE = Σ facility energy ÷ Σ IT energy"))
    for j, w in enumerate(widths):
        ws.set_column(j, j, min(w + 2, 60))
    ws.freeze_panes(1, 2)

    # facilities
    ws = wb.add_worksheet("数据中心清单" if zh else "Facilities")
    ws.write_row(0, 0, [h for _, h in hdr], bold)
    ws.freeze_panes(1, 3)
    widths = [min(_text_width(h), 24) for _, h in hdr]  # headers wrap; the values set the width
    for i, row in enumerate(rows, start=1):
        for j, (k, _) in enumerate(hdr):
            v = row.get(k)
            if v is None:
                continue
            if k in DATE_KEYS:
                ws.write_datetime(i, j, dt.datetime.fromisoformat(v), date_fmt)
            elif isinstance(v, bool) or isinstance(v, str) or k.startswith("profile:"):
                ws.write_string(i, j, display_text(k, v, lang))
            elif isinstance(v, (int, float)):
                ws.write_number(i, j, v, fmt_of.get(k))
            else:
                ws.write(i, j, str(v))
            widths[j] = max(widths[j], _text_width(display_text(k, v, lang)))
    for j, w in enumerate(widths):
        ws.set_column(j, j, min(w + 2, 60))
    ws.autofilter(0, 0, max(len(rows), 1), len(hdr) - 1)

    # methodology
    ws = wb.add_worksheet("方法说明" if zh else "Methodology")
    b = result["basis"]
    mt = terms.METHOD_TEXT[lang]
    lines = [
        ("统计期" if zh else "Period", f"{terms.date_text(per['from'], lang)} — {terms.date_text(per['to'], lang)}"
         + (f"（共{per['days']}天，{mt['periods']}）" if zh else f" ({per['days']} days, {mt['periods']})")),
        ("纳入范围" if zh else "Scope", "规模超过100个标准机架的数据中心（成都枢纽方案 四(五)）；选项 --all 列出全部数据中心" if zh else
         "data centres above 100 standard racks (Chengdu hub-node plan, part 4(5)); option --all lists every facility"),
        ("标准机架" if zh else "Standard rack", mt["standard_rack"]),
        ("PUE", mt["pue"]),
        ("上架率" if zh else "Occupancy", mt["occupancy"]),
        ("计算功能占比" if zh else "Compute share", terms.term(terms.SHARE_BASIS_TEXT, lang, b["compute_share_reading"])),
        ("机架口径" if zh else "Rack basis", terms.term(terms.RACK_BASIS_TEXT, lang, b["rack_basis"])),
        ("机架清单时点" if zh else "Inventory", terms.term(terms.INVENTORY_TEXT, lang, b["inventory"])),
        ("数据覆盖率" if zh else "Coverage", mt["coverage"]),
        ("判定阈值" if zh else "Minimum coverage", mt["min_coverage"].format(p=terms.pct(b["min_coverage"], lang, 0))),
        ("判定方法" if zh else "Decisions", mt["decisions"]),
    ]
    for col, (op, th) in flags.items():
        name_zh, name_en, text_zh, text_en = FLAG_METHOD[col]
        lines.append((name_zh, text_zh.format(op=WIDE_OPS[op], th=th)) if zh else (name_en, text_en.format(op=op, th=th)))
    prov = provenance(registry)
    lines += [("软件" if zh else "Software", prov["software"]), ("配置指纹" if zh else "Config SHA-256", prov["config_fingerprint"]),
              ("生成时间" if zh else "Generated at", prov["generated_at"])]
    ws.write_row(0, 0, ["项目" if zh else "Item", "说明" if zh else "Definition"], bold)
    for i, (k, v) in enumerate(lines, start=1):
        ws.write(i, 0, k)
        ws.write(i, 1, v)
    ws.set_column(0, 0, 20)
    ws.set_column(1, 1, 100)

    # data quality
    ws = wb.add_worksheet("数据质量" if zh else "Data quality")
    dq_head = (["数据中心编号", "覆盖率", "总耗电覆盖率", "IT覆盖率", "计数器重置", "翻转", "噪声回落", "数据缺口", "迟到读数", "低覆盖电表"] if zh else
               ["Facility id", "Coverage", "Facility-energy coverage", "IT coverage", "Counter resets", "Rollovers",
                "Noise dips", "Gaps", "Late readings", "Meters below minimum coverage"])
    ws.write_row(0, 0, dq_head, bold)
    for i, f in enumerate(result["facilities"], start=1):
        ev = f["data_quality"]["events"]
        low = [m["meter_id"] for m in f["meters"] if m["coverage"] < b["min_coverage"]]
        ws.write(i, 0, f["facility_id"])
        ws.write_number(i, 1, f["coverage"], pct)
        ws.write_number(i, 2, f["facility_energy_coverage"], pct)
        ws.write_number(i, 3, f["it_energy_coverage"], pct)
        for j, k in enumerate(("reset", "rollover", "noise_dip", "gap"), start=4):
            ws.write_number(i, j, ev.get(k, 0) + ev.get(f"rack_{k}", 0))
        ws.write_number(i, 8, f["data_quality"]["late_readings"])
        ws.write(i, 9, ", ".join(low))
    ws.set_column(0, 9, 16)
    wb.close()
    return buf.getvalue()


def manifest_digest(manifest: dict) -> str:
    return hashlib.sha256(canonical({k: v for k, v in manifest.items() if k not in ("sha256", "generated_at")})).hexdigest()


def write_export(registry, store, period, out: Path, *, fmt: str, lang: str = "zh", district=None, city=None,
                 include_all=False, options=None, progress=None) -> dict:
    """Write the export and ``<out>.manifest.json``; returns the manifest.

    :class:`NoDataError` (nothing written) when no selected facility has a reading in the period.
    """
    out = Path(out)
    format_for(fmt, out)
    options = options or Options()
    data, _, result = build_export(registry, store, period, fmt=fmt, lang=lang, district=district, city=city,
                                   include_all=include_all, options=options, progress=progress)
    ids = [f["facility_id"] for f in result["facilities"]]
    digests = reading_digests(store, registry, ids, period, options)
    if ids and not any(d["kind"] == "meter" for d in digests):
        raise NoDataError(f"no meter readings in {period.label or period.to_json()['label']} for any of the "
                          f"{len(ids)} selected facilities: nothing written (is the --data folder right?)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(out)
    manifest = {"schema": MANIFEST_SCHEMA, **provenance(registry), "period": result["period"],
                "basis": result["basis"], "options": {k: options.to_json()[k] for k in OPTION_KEYS},
                "filters": {"district": district, "city": city, "all": include_all}, "lang": lang,
                "outputs": [{"path": out.name, "sha256": sha256_file(out), "bytes": out.stat().st_size, "format": fmt}],
                "inputs": {"method": DIGEST_METHOD, "digests": digests}, "facilities": ids}
    manifest["sha256"] = manifest_digest(manifest)
    mpath = out.with_name(out.name + ".manifest.json")
    mtmp = mpath.with_name(f".{mpath.name}.tmp")
    mtmp.write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
    mtmp.replace(mpath)
    return manifest


# ------------------------------------------------------------------------------------------ verify
def _read_cells(path: Path, fmt: str, hdr: list[tuple[str, str]]) -> tuple[list[str], list[list], str]:
    """(headers in the file, rows of cell values, how values compare: 'text' | 'raw' | 'xlsx')."""
    if fmt == "csv":
        text = path.read_bytes().decode("utf-8-sig")
        table = list(csv.reader(io.StringIO(text)))
        return (table[0] if table else []), table[1:], "text"
    if fmt == "json":
        doc = orjson.loads(path.read_bytes())
        keys = [c["key"] for c in doc.get("columns", [])]
        return [c["header"] for c in doc.get("columns", [])], [[r.get(k) for k in keys] for r in doc.get("rows", [])], "raw"
    if fmt == "parquet":
        t = pq.read_table(path)
        heads = orjson.loads(t.schema.metadata.get(b"dcmon.headers", b"{}")) if t.schema.metadata else {}
        cols = t.column_names
        data = t.to_pylist()
        return [heads.get(c, c) for c in cols], [[r[c] for c in cols] for r in data], "raw"
    import openpyxl
    wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    sheet = wb[wb.sheetnames[1]]
    table = [list(r) for r in sheet.iter_rows(values_only=True)]
    wb.close()
    return ([str(h) for h in table[0]] if table else []), [r + [None] * (len(hdr) - len(r)) for r in table[1:]], "xlsx"


def _cell_ok(mode: str, key: str, got, want, lang: str) -> tuple[bool, str]:
    """(equal, recomputed value as the file would hold it)."""
    from dcmon.reports.verify import same
    if mode == "text":
        w = display_text(key, want, lang)
        return got == w, w
    if mode == "raw":
        return same(got, want), want
    # xlsx: numbers as numbers, dates as dates, words as displayed
    if want is None:
        return got in (None, ""), None
    if key in DATE_KEYS:
        w = dt.datetime.fromisoformat(want)
        return got == w, want
    if isinstance(want, bool) or isinstance(want, str) or key.startswith("profile:"):
        w = display_text(key, want, lang)
        return got == w, w
    return isinstance(got, (int, float)) and not isinstance(got, bool) and same(got, want), want


def verify_export(path, registry, store) -> tuple[bool, list[str]]:
    """Check an export against its manifest and the data: ``(ok, lines)``.

    The manifest is intact; the file is the one issued (SHA-256); the readings of every source and
    month still hash to the listed digests; and every row, recomputed from the data with the
    manifest's period, filters and options, equals the file's cell by cell (an edited cell is
    named: row, column, value in the file, recomputed value).
    """
    from dcmon.reports.common import period_from_json
    path = Path(path)
    mpath = path.with_name(path.name + ".manifest.json")
    if not mpath.is_file():
        raise ValueError(f"{path}: no manifest {mpath.name} beside it (exports are verified against their manifest)")
    try:
        m = orjson.loads(mpath.read_bytes())
    except orjson.JSONDecodeError as e:
        raise ValueError(f"{mpath}: not valid JSON ({e})") from None
    if m.get("schema") != MANIFEST_SCHEMA:
        raise ValueError(f"{mpath}: manifest schema {m.get('schema')!r}, this dcmon verifies {MANIFEST_SCHEMA!r}")
    lines, ok = [], True
    if manifest_digest(m) != m.get("sha256"):
        ok = False
        lines.append(f"✘ the manifest was altered: its SHA-256 does not match its content ({mpath.name})")
    else:
        lines.append("✔ manifest intact")
    out = next((o for o in m.get("outputs", []) if o.get("path") == path.name), None)
    if out is None:
        ok = False
        lines.append(f"✘ the manifest does not list {path.name}")
        fmt = path.suffix.lower().lstrip(".")
    else:
        fmt = out["format"]
        if sha256_file(path) != out["sha256"]:
            ok = False
            lines.append(f"✘ {path.name} changed since it was issued (SHA-256 differs from the manifest)")
        else:
            lines.append(f"✔ {path.name} is the file issued (SHA-256)")
    if registry.fingerprint() != m.get("config_fingerprint"):
        lines.append("! configuration differs from the one the export was made with (config SHA-256 changed)")
    o = m["options"]
    options = Options(rack_basis=o["rack_basis"], compute_share_reading=o["compute_share_reading"],
                      inventory=o["inventory"], min_coverage=o["min_coverage"])
    period = period_from_json(m["period"])
    f = m.get("filters", {})
    result = select(registry, store, period, district=f.get("district"), city=f.get("city"),
                    include_all=bool(f.get("all")), options=options)
    facilities = [] if result is None else result["facilities"]
    ids = [x["facility_id"] for x in facilities]
    if ids != m.get("facilities"):
        ok = False
        lines.append(f"✘ facilities listed: manifest {m.get('facilities')}, recomputed {ids}")
    changes = compare_digests(m["inputs"]["digests"], reading_digests(store, registry, ids, period, options))
    if changes:
        ok = False
        lines += ["✘ " + c for c in changes[:20]] + ([f"✘ … and {len(changes) - 20} more"] if len(changes) > 20 else [])
    else:
        lines.append(f"✔ readings unchanged: {len(m['inputs']['digests'])} source-months ({m['inputs']['method']})")
    lang = m.get("lang", "zh")
    flags = flag_conditions(registry.config_dir)
    rows, profiles = rows_from_result(result or {"facilities": [], "basis": options.to_json()}, lang, flags)
    hdr = headers(profiles, lang, not_in_force(result) if result else set(), profile_titles(result), flags)
    heads, cells, mode = _read_cells(path, fmt, hdr)
    want_heads = [h for _, h in hdr]
    bad = []
    if heads != want_heads:
        bad.append(f"header row: in the file {heads}, recomputed {want_heads}")
    first_row = 2 if mode in ("text", "xlsx") else 1  # spreadsheet row numbers count the header
    for i in range(max(len(rows), len(cells))):
        rn = i + first_row
        if i >= len(cells):
            bad.append(f"row {rn} ({rows[i]['facility_id']}): missing from the file")
            continue
        if i >= len(rows):
            bad.append(f"row {rn}: in the file but not recomputed ({cells[i][:3]})")
            continue
        for j, (k, h) in enumerate(hdr):
            got = cells[i][j] if j < len(cells[i]) else None
            eq, w = _cell_ok(mode, k, got, rows[i].get(k), lang)
            if not eq:
                bad.append(f"row {rn} ({rows[i]['facility_id']}), column {h}: value in file {got!r}, recomputed {w!r}")
    if bad:
        ok = False
        lines += ["✘ " + b for b in bad[:20]] + ([f"✘ … and {len(bad) - 20} more cells"] if len(bad) > 20 else [])
    else:
        lines.append(f"✔ {len(rows)} rows × {len(hdr)} columns recomputed from the data and equal")
    return ok, lines
