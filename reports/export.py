"""Quarterly inventory export for regulators (seed 003 四(五): districts list every data centre
above 100 standard racks and report the list to the city each quarter).

One row per facility, every figure from :func:`dcmon.metrics.evaluate.evaluate`. Formats:
XLSX (summary by district, facilities, methodology, data quality), CSV (UTF-8 with BOM so
Excel shows Chinese), Parquet and JSON (schema in ``docs/reports.md``), plus a manifest with
the SHA-256 of every output and of the input data.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from dcmon.metrics.evaluate import Options, evaluate
from dcmon.metrics.exact import decide
from dcmon.reports.common import (KIND_TEXT, LABEL_TEXT, SIZE_TEXT, STATUS_TEXT, canonical, check_lang, data_files,
                                  provenance, sha256_file)

FORMATS = ("xlsx", "csv", "parquet", "json")
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
    ("flag_retrofit_required", "需节能改造（PUE>1.5）", "Retrofit required (PUE > 1.5)", ""),
    ("flag_below_50_racks", "机架数少于50架", "Fewer than 50 racks", ""),
]


def rows_from_result(result: dict, lang: str = "zh") -> tuple[list[dict], list[str]]:
    """Export rows (raw values, same numbers as the evaluation) and the profile ids, in column order."""
    profiles = sorted({pid for f in result["facilities"] for pid in f["profiles"]})
    rows = []
    for f in result["facilities"]:
        r = {k: f.get(k) for k, *_ in COLUMNS if not k.startswith("flag_")}
        pue = f.get("pue")
        cov_ok = f["coverage"] >= result["basis"]["min_coverage"]
        r["flag_retrofit_required"] = None if pue is None or not cov_ok else decide(pue, ">", "1.5")
        r["flag_below_50_racks"] = decide(f["physical_racks"], "<", 50)
        for pid in profiles:
            pr = f["profiles"].get(pid)
            if pr is None or not pr["applicable"] or pr.get("verdict") == "not_applicable":
                r[f"profile:{pid}"] = "not_applicable"  # no required check applies: not a pass
            else:
                r[f"profile:{pid}"] = {True: "pass", False: "fail", None: "inconclusive"}[pr["eligible"]]
        rows.append(r)
    return rows, profiles


NOT_IN_FORCE = {"zh": "（该政策在此期间不在有效期内）", "en": " (measure not in force for this period)"}


def headers(profiles: list[str], lang: str, not_in_force: set[str] = frozenset()) -> list[tuple[str, str]]:
    i = 1 if lang == "zh" else 2
    out = [(c[0], c[i]) for c in COLUMNS]
    out += [(f"profile:{p}", ("政策：" if lang == "zh" else "Profile: ") + p + (NOT_IN_FORCE[lang] if p in not_in_force else ""))
            for p in profiles]
    return out


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
    if key.startswith("profile:"):
        return STATUS_TEXT[lang][value]
    if key.startswith("flag_"):
        return ("是" if value else "否") if lang == "zh" else ("yes" if value else "no")
    return value


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
    rows, profiles = rows_from_result(result, lang)
    hdr = headers(profiles, lang, not_in_force(result))
    stem = f"dcmon-inventory-{period.label or period.first_day}" + (f"-{district}" if district else "")
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow([h for _, h in hdr])
        for r in rows:
            w.writerow([_display(k, r.get(k), lang) for k, _ in hdr])
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
    return _xlsx(result, rows, hdr, lang, registry), stem + ".xlsx", result


def _xlsx(result, rows, hdr, lang, registry) -> bytes:
    import xlsxwriter
    zh = lang == "zh"
    buf = io.BytesIO()
    wb = xlsxwriter.Workbook(buf, {"in_memory": True, "strings_to_numbers": False})
    bold = wb.add_format({"bold": True, "bg_color": "#DDEBF7", "text_wrap": True, "valign": "top", "border": 1})
    pct = wb.add_format({"num_format": "0.0%"})
    num0 = wb.add_format({"num_format": "#,##0"})
    num1 = wb.add_format({"num_format": "#,##0.0"})
    num3 = wb.add_format({"num_format": "0.000"})
    fmt_of = {"occupancy_rate": pct, "compute_share": pct, "coverage": pct, "pue": num3, "standard_racks": num1,
              "design_it_power_kw": num1, "facility_energy_kwh": num0, "it_energy_kwh": num0}
    per = result["period"]

    # summary by district
    ws = wb.add_worksheet("按区汇总" if zh else "Summary by district")
    df = pd.DataFrame(rows)
    sh = (["区（市）县", "数据中心数", "标准机架数", "IT设计功率(kW)", "总耗电量(kWh)", "IT耗电量(kWh)", "加权PUE", "上架率"] if zh else
          ["District", "Facilities", "Standard racks", "Design IT power (kW)", "Facility energy (kWh)", "IT energy (kWh)",
           "Energy-weighted PUE", "Occupancy rate"])
    ws.write_row(0, 0, sh, bold)
    r = 1
    if len(df):
        facs = {f["facility_id"]: f for f in result["facilities"]}
        for district, g in df.groupby("district", sort=True):
            fe = g["facility_energy_kwh"].fillna(0).sum()
            ie = g["it_energy_kwh"].fillna(0).sum()
            design = sum(facs[i]["design_it_power_kw"] for i in g["facility_id"])
            ins = sum(facs[i]["in_service_design_power_kw"] for i in g["facility_id"])
            ws.write_row(r, 0, [district, len(g)])
            ws.write_number(r, 2, float(g["standard_racks"].sum()), num1)
            ws.write_number(r, 3, float(design), num1)
            ws.write_number(r, 4, float(fe), num0)
            ws.write_number(r, 5, float(ie), num0)
            if ie > 0:
                ws.write_number(r, 6, float(fe / ie), num3)
            if design > 0:
                ws.write_number(r, 7, float(ins / design), pct)
            r += 1
    ws.write(r + 1, 0, (f"统计期：{per['from']} 至 {per['to']}（各数据中心所在时区的日历日）" if zh else
                        f"Period: {per['from']} to {per['to']} (calendar days in each facility's time zone)"))
    ws.set_column(0, 0, 18)
    ws.set_column(1, 7, 16)

    # facilities
    ws = wb.add_worksheet("数据中心清单" if zh else "Facilities")
    ws.write_row(0, 0, [h for _, h in hdr], bold)
    ws.freeze_panes(1, 3)
    for i, row in enumerate(rows, start=1):
        for j, (k, _) in enumerate(hdr):
            v = row.get(k)
            if v is None:
                continue
            if isinstance(v, bool) or isinstance(v, str) or k.startswith("profile:"):
                ws.write(i, j, _display(k, v, lang))
            elif isinstance(v, (int, float)):
                ws.write_number(i, j, v, fmt_of.get(k))
            else:
                ws.write(i, j, str(v))
    ws.set_column(0, len(hdr) - 1, 15)
    ws.autofilter(0, 0, max(len(rows), 1), len(hdr) - 1)

    # methodology
    ws = wb.add_worksheet("方法说明" if zh else "Methodology")
    b = result["basis"]
    lines = [
        ("统计期" if zh else "Period", f"{per['from']} .. {per['to']} ({per['days']} days)"),
        ("纳入范围" if zh else "Scope", "规模超过100个标准机架的数据中心（成都枢纽方案 四(五)）" if zh else
         "data centres above 100 standard racks (seed 003 四(五)); option --all lists every facility"),
        ("标准机架" if zh else "Standard rack", "Σ设计功率 ÷ 2.5 kW（不含已退役机架）" if zh else
         "Σ design power ÷ 2.5 kW of racks not decommissioned (seed 003 annex §2)"),
        ("PUE", b["pue"]),
        ("上架率" if zh else "Occupancy", "在用机架设计功率 ÷ 机架设计总功率" if zh else
         "design power in service ÷ total design power (seed 003 annex §8)"),
        ("计算功能占比" if zh else "Compute share", f"{b['compute_share_reading']}: {b['compute_share_text']}"),
        ("机架口径" if zh else "Rack basis", f"{b['rack_basis']}: {b['rack_basis_text']}"),
        ("机架清单时点" if zh else "Inventory", b["inventory"]),
        ("数据覆盖率" if zh else "Coverage", b["coverage"]),
        ("判定阈值" if zh else "Minimum coverage", f"{b['min_coverage']:.0%}: below it a check is inconclusive"),
        ("改造标记" if zh else "Retrofit flag", "PUE > 1.5（成都枢纽方案 三(一)3）" if zh else "PUE > 1.5 (seed 003 三(一)3)"),
        ("小型标记" if zh else "Small-site flag", "物理机架 < 50（成都枢纽方案 三(一)3）" if zh else "physical racks < 50 (seed 003 三(一)3)"),
    ]
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


def write_export(registry, store, period, out: Path, *, fmt: str, lang: str = "zh", district=None, city=None,
                 include_all=False, options=None, progress=None) -> dict:
    """Write the export and ``<out>.manifest.json``; returns the manifest."""
    data, _, result = build_export(registry, store, period, fmt=fmt, lang=lang, district=district, city=city,
                                   include_all=include_all, options=options, progress=progress)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(out)
    ids = [f["facility_id"] for f in result["facilities"]]
    manifest = {"schema": "dcmon-manifest/1", **provenance(registry), "period": result["period"],
                "basis": result["basis"], "filters": {"district": district, "city": city, "all": include_all},
                "outputs": [{"path": out.name, "sha256": sha256_file(out), "bytes": out.stat().st_size, "format": fmt}],
                "inputs": data_files(store, ids, period, registry), "facilities": ids}
    mpath = out.with_name(out.name + ".manifest.json")
    mpath.write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
    return manifest
